//! Part 4C: Get served by ReadIndex (thesis 6.4): confirmed by a round of heartbeats, with no
//! log entry, on Raft with pre-vote and check-quorum. The histories must stay linearizable
//! under the same faults as 4A and 4B, and reads must not grow the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tests::kv_harness::{ELECTION_TIMEOUT, KvConfig};
use tokio::time::sleep;

use super::{Generic, generic, generic_test, kv_test, lease_options, one_partition, reads_options};

fn reads(part: &'static str, nclients: usize, nservers: usize) -> Generic {
    Generic {
        reads: true,
        ..generic(part, nclients, nservers)
    }
}

fn leases(part: &'static str, nclients: usize, nservers: usize) -> Generic {
    Generic {
        lease: true,
        ..reads(part, nclients, nservers)
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

// Lease reads (thesis 6.4.1): the leader answers a Get alone while a majority acknowledged a
// heartbeat it sent less than `election_ticks * (1 - LEASE_DRIFT)` ticks ago. The rule monitor
// checks every lease read against the heartbeats it saw sent and acknowledged; these tests
// make leases run out under clients.

/// How long a lease may last in the labs' timing: 30 ticks of 10 ms less the 10% drift margin.
const LEASE: Duration = Duration::from_millis(270);

/// Five times: a leader serving lease reads to a client is cut off from everyone; while the
/// majority elects another leader and writes, the old leader may answer Gets only until its
/// lease ends. The heartbeats a majority acknowledged were all sent before the cut, so no Get
/// may complete more than [`LEASE`] after it (the network delivers in microseconds here). A
/// lease of a whole election timeout (no drift margin) or one counted from the acknowledgement
/// goes past it; a Get answered after a new leader's write would also break linearizability.
#[test]
fn lease_ends_before_another_leader_can_be_elected_4c() {
    kv_test(|sim| async move {
        let nservers = 5;
        let cfg = KvConfig::with_options(&sim, nservers, false, lease_options(None));
        let mut ck = cfg.make_client(&cfg.all());
        cfg.begin("Test: a lease ends before another leader can be elected (4C)");
        cfg.put(&mut ck, "k", "v0", true).await;
        let mut served_by_lease = 0;
        for round in 0..5 {
            cfg.check(&mut ck, "k", &format!("v{round}")).await;
            let Some(old) = cfg.leader() else {
                panic!("no leader after a completed Put and Get");
            };
            let others: Vec<usize> = cfg.all().into_iter().filter(|&i| i != old).collect();
            // A client of the old leader alone, reading back to back.
            let mut reader = cfg.make_client(&[old]);
            let reader_id = reader.id();
            let stop = Arc::new(AtomicBool::new(false));
            let done: Arc<std::sync::Mutex<Vec<u64>>> = Arc::default();
            let task = {
                let (cfg, stop, done) = (cfg.clone(), stop.clone(), done.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        cfg.get(&mut reader, "k", true).await;
                        if let Ok(mut d) = done.lock() {
                            d.push(labrpc::sim::now_micros());
                        }
                    }
                })
            };
            // Until the reader found the leader (it tries the servers it cannot reach first).
            for _ in 0..300 {
                if done.lock().is_ok_and(|d| !d.is_empty()) {
                    break;
                }
                sleep(Duration::from_millis(10)).await;
            }
            sleep(Duration::from_millis(50)).await;
            let cut = labrpc::sim::now_micros();
            cfg.partition(&[old], &others);
            let mut majority = cfg.make_client(&others);
            cfg.put(&mut majority, "k", &format!("v{}", round + 1), true)
                .await;
            sleep(ELECTION_TIMEOUT).await;
            let heal = labrpc::sim::now_micros();
            stop.store(true, Ordering::Relaxed);
            cfg.connect_all();
            cfg.connect_client_id(reader_id, &cfg.all());
            if let Err(e) = task.await {
                std::panic::resume_unwind(e.into_panic());
            }
            let times = done.lock().map(|d| d.clone()).unwrap_or_default();
            let before = times.iter().filter(|&&t| t < cut).count();
            assert!(
                before > 0,
                "round {round}: no Get completed at leader {old} before the cut: reads must flow while it leads"
            );
            served_by_lease += before;
            if let Some(late) = times
                .iter()
                .find(|&&t| t < heal && t > cut + LEASE.as_micros() as u64)
            {
                panic!(
                    "round {round}: leader {old}, cut off at {} ms, answered a Get at {} ms, {} ms after the cut: a lease lasts at most {} ms from the last heartbeat a majority acknowledged (thesis 6.4.1)",
                    cut / 1000,
                    late / 1000,
                    (late - cut) / 1000,
                    LEASE.as_millis()
                );
            }
        }
        assert!(
            served_by_lease >= 5,
            "only {served_by_lease} Gets completed at the leaders"
        );
        cfg.check_linearizable();
        cfg.end();
    });
}

#[test]
fn lease_reads_partitions_many_clients_4c() {
    kv_test(|sim| {
        let g = Generic {
            partitions: true,
            ..leases("4C", 5, 5)
        };
        generic_test(sim, g)
    });
}

#[test]
fn lease_reads_persist_partition_unreliable_linearizable_4c() {
    kv_test(|sim| {
        let g = Generic {
            unreliable: true,
            crash: true,
            partitions: true,
            randomkeys: true,
            ..leases("4C", 15, 7)
        };
        generic_test(sim, g)
    });
}
