//! Part 4C: Get served by ReadIndex (thesis 6.4): confirmed by a round of heartbeats, with no
//! log entry, on Raft with pre-vote and check-quorum. The histories must stay linearizable
//! under the same faults as 4A and 4B, and reads must not grow the log.

use std::time::Duration;

use tests::kv_harness::{ELECTION_TIMEOUT, KvConfig};
use tokio::time::sleep;

use super::{Generic, generic, generic_test, kv_test, reads_options};

fn reads(part: &'static str, nclients: usize, nservers: usize) -> Generic {
    Generic {
        reads: true,
        ..generic(part, nclients, nservers)
    }
}

/// Two hundred Gets on a quiet cluster append nothing to any server's log.
#[test]
fn reads_write_nothing_to_the_log_4c() {
    kv_test(|sim| async move {
        let nservers = 3;
        let cfg = KvConfig::with_options(&sim, nservers, false, reads_options(None));
        let mut ck = cfg.make_client(&cfg.all());
        cfg.begin("Test: reads write nothing to the log (4C)");
        cfg.put(&mut ck, "k", "v", true).await;
        // The first read of a leader may need its no-op entry; after it, none.
        cfg.check(&mut ck, "k", "v").await;
        sleep(ELECTION_TIMEOUT / 2).await;
        let before: Vec<Option<u64>> = (0..nservers)
            .map(|i| cfg.raft_status(i).map(|s| s.last_index.0))
            .collect();
        for _ in 0..200 {
            cfg.check(&mut ck, "k", "v").await;
        }
        sleep(ELECTION_TIMEOUT / 2).await;
        let after: Vec<Option<u64>> = (0..nservers)
            .map(|i| cfg.raft_status(i).map(|s| s.last_index.0))
            .collect();
        assert_eq!(before, after, "Gets appended entries to the log");
        cfg.check_linearizable();
        cfg.end();
    });
}

/// The leader ends up in the minority: a Get there must not complete (its heartbeat round
/// cannot reach a majority) while the majority serves the newest value; after the heal the
/// minority's Get completes.
#[test]
fn reads_no_stale_read_in_minority_4c() {
    kv_test(|sim| async move {
        let nservers = 5;
        let cfg = KvConfig::with_options(&sim, nservers, false, reads_options(None));
        let mut ck = cfg.make_client(&cfg.all());
        cfg.put(&mut ck, "1", "13", true).await;
        cfg.begin("Test: no stale read in a minority (4C)");
        let (p1, p2) = cfg.make_partition();
        cfg.partition(&p1, &p2);
        let mut ckp1 = cfg.make_client(&p1);
        let mut ckp2 = cfg.make_client(&p2);
        let id2 = ckp2.id();
        cfg.put(&mut ckp1, "1", "14", true).await;
        let mut minority = {
            let cfg = cfg.clone();
            tokio::spawn(async move { cfg.get(&mut ckp2, "1", true).await })
        };
        tokio::select! {
            biased;
            v = &mut minority => panic!("Get in minority completed with {v:?}"),
            () = sleep(Duration::from_secs(1)) => {}
        }
        cfg.check(&mut ckp1, "1", "14").await;
        cfg.connect_all();
        cfg.connect_client_id(id2, &cfg.all());
        match tokio::time::timeout(Duration::from_secs(3), minority).await {
            Ok(Ok(v)) => assert_eq!(v, "14", "the minority's Get read a stale value"),
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(e)) => panic!("Get task failed: {e}"),
            Err(_) => panic!("Get did not complete after the heal"),
        }
        cfg.check_linearizable();
        cfg.end();
    });
}

#[test]
fn reads_concurrent_unreliable_4c() {
    kv_test(|sim| {
        let g = Generic {
            unreliable: true,
            ..reads("4C", 5, 5)
        };
        generic_test(sim, g)
    });
}

#[test]
fn reads_partitions_many_clients_4c() {
    kv_test(|sim| {
        let g = Generic {
            partitions: true,
            ..reads("4C", 5, 5)
        };
        generic_test(sim, g)
    });
}

#[test]
fn reads_persist_partition_unreliable_linearizable_4c() {
    kv_test(|sim| {
        let g = Generic {
            unreliable: true,
            crash: true,
            partitions: true,
            randomkeys: true,
            ..reads("4C", 15, 7)
        };
        generic_test(sim, g)
    });
}

#[test]
fn reads_snapshot_unreliable_recover_concurrent_partition_linearizable_4c() {
    kv_test(|sim| {
        let g = Generic {
            unreliable: true,
            crash: true,
            partitions: true,
            randomkeys: true,
            maxraftstate: Some(1000),
            ..reads("4C", 15, 7)
        };
        generic_test(sim, g)
    });
}
