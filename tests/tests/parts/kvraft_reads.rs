//! Part 4C: Get served by ReadIndex (thesis 6.4): confirmed by a round of heartbeats, with no
//! log entry, on Raft with pre-vote and check-quorum. The histories must stay linearizable
//! under the same faults as 4A and 4B, and reads must not grow the log.

use tests::kv_harness::{ELECTION_TIMEOUT, KvConfig};
use tokio::time::sleep;

use super::{Generic, generic, generic_test, kv_test, one_partition, reads_options};

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
/// cannot reach a majority) while the majority serves newer values; after the heal the
/// minority's requests complete and the history is linearizable (4A's `one_partition`).
#[test]
fn reads_no_stale_read_in_minority_4c() {
    kv_test(|sim| one_partition(sim, reads_options(None), "4C"));
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
