//! The rsm layer's graded suite (part 4R, like 6.5840's 2025 `rsm` part): submit, concurrent
//! submitters, leader failure and partition, replay after a restart, exactly-once sessions,
//! and snapshots, each on a small state machine that records where every command landed.

use std::future::Future;
use std::time::Duration;

use labrpc::Sim;
use rsm::{Session, SubmitError};
use tests::raft_harness::join_all;
use tests::rsm_harness::{RsmCluster, TEST_TIME_LIMIT};
use tokio::time::sleep;

fn rsm_test<F, Fut>(body: F)
where
    F: FnOnce(Sim) -> Fut,
    Fut: Future<Output = ()>,
{
    tests::sim_test(TEST_TIME_LIMIT, body);
}

/// A submitted command's output is its position among the applied commands: 1, 2, 3, ...
#[test]
fn basic_4r() {
    rsm_test(|sim| async move {
        let c = RsmCluster::start(&sim, 3, true, None);
        let mut want = Vec::new();
        for cmd in 100..110u64 {
            let out = c.submit(None, cmd).await;
            want.push(cmd);
            assert_eq!(out, want.len() as u64, "command {cmd} landed at {out}");
        }
        c.wait_applied(&[0, 1, 2], &want).await;
        c.check_safety();
    });
}

/// Concurrent submitters each get a distinct position, and every replica applies the same
/// commands in the same order.
#[test]
fn concurrent_4r() {
    rsm_test(|sim| async move {
        let c = RsmCluster::start(&sim, 3, true, None);
        let handles = (0..5u64)
            .map(|t| {
                let c = c.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for k in 0..10u64 {
                        mine.push(c.submit(None, t * 1000 + k).await);
                    }
                    mine
                })
            })
            .collect();
        let outs = join_all(handles).await;
        let mut positions: Vec<u64> = outs.into_iter().flatten().collect();
        positions.sort_unstable();
        assert_eq!(
            positions,
            (1..=50).collect::<Vec<_>>(),
            "positions not 1..=50"
        );
        let log = c.longest_applied();
        assert_eq!(log.len(), 50);
        c.wait_applied(&[0, 1, 2], &log).await;
        c.check_safety();
    });
}

/// The leader fails: the others elect a new one and go on; the old one catches up.
#[test]
fn leader_failure_4r() {
    rsm_test(|sim| async move {
        let c = RsmCluster::start(&sim, 3, true, None);
        let mut want = vec![1u64];
        c.submit(None, 1).await;
        let leader = (0..3)
            .find(|&i| c.rsm(i).is_some_and(|r| r.is_leader()))
            .expect("a leader after a commit");
        c.disconnect(leader);
        for cmd in 2..6 {
            c.submit(None, cmd).await;
            want.push(cmd);
        }
        c.connect(leader);
        c.wait_applied(&[0, 1, 2], &want).await;
        c.check_safety();
    });
}

/// A leader in a minority cannot commit: its submitters hear NotLeader, Lost or Timeout, never
/// an output; the majority goes on, and after the heal everyone agrees.
#[test]
fn leader_partition_4r() {
    rsm_test(|sim| async move {
        let c = RsmCluster::start(&sim, 5, true, None);
        c.submit(None, 1).await;
        let leader = (0..5)
            .find(|&i| c.rsm(i).is_some_and(|r| r.is_leader()))
            .expect("a leader after a commit");
        c.disconnect(leader);
        let stuck = {
            let c = c.clone();
            async move { c.submit_to(leader, 666).await }
        };
        let majority = {
            let c = c.clone();
            async move {
                for cmd in 2..5 {
                    c.submit(None, cmd).await;
                }
            }
        };
        let (stuck, ()) = tokio::join!(stuck, majority);
        assert!(
            matches!(
                stuck,
                Err(SubmitError::Timeout | SubmitError::Lost | SubmitError::NotLeader)
            ),
            "a minority leader reported an outcome: {stuck:?}"
        );
        c.connect(leader);
        sleep(Duration::from_secs(1)).await;
        let log = c.longest_applied();
        assert!(
            !log.contains(&666),
            "the minority's command committed: {log:?}"
        );
        c.wait_applied(&[0, 1, 2, 3, 4], &log).await;
        c.check_safety();
    });
}

/// A deposed leader's submitter, still waiting when another leader's entry commits at its
/// command's index, must hear that its command lost its place, not the other entry's output
/// (the entry at an index is the submitter's only if its term is the one Raft gave).
#[test]
fn deposed_leader_answers_no_one_else_s_output_4r() {
    rsm_test(|sim| async move {
        let c = RsmCluster::start_waiting(&sim, 3, true, None, Duration::from_secs(20));
        c.submit(None, 1).await;
        let leader = (0..3)
            .find(|&i| c.rsm(i).is_some_and(|r| r.is_leader()))
            .expect("a leader after a commit");
        c.disconnect(leader);
        let stuck = {
            let c = c.clone();
            tokio::spawn(async move { c.submit_to(leader, 666).await })
        };
        for cmd in 2..5 {
            c.submit(None, cmd).await;
        }
        // The old leader comes back while its submitter still waits: its entry for 666 is
        // replaced by the new leader's.
        c.connect(leader);
        let outcome = match stuck.await {
            Ok(o) => o,
            Err(e) => panic!("the submitter task failed: {e}"),
        };
        assert!(
            matches!(outcome, Err(SubmitError::Lost | SubmitError::Timeout)),
            "the deposed leader's submitter got an output for another command: {outcome:?}"
        );
        let log = c.longest_applied();
        assert!(!log.contains(&666), "{log:?}");
        c.wait_applied(&[0, 1, 2], &log).await;
        c.check_safety();
    });
}

/// After every replica crashes and restarts, the state is rebuilt from the log.
#[test]
fn restart_replay_4r() {
    rsm_test(|sim| async move {
        let c = RsmCluster::start(&sim, 3, true, None);
        let want: Vec<u64> = (1..=20).collect();
        for &cmd in &want {
            c.submit(None, cmd).await;
        }
        for i in 0..3 {
            c.crash(i);
        }
        for i in 0..3 {
            c.start_replica(i);
            c.connect(i);
        }
        // Raft applies what it committed before only once a new leader commits in its term.
        let out = c.submit(None, 21).await;
        assert_eq!(out, 21, "the restarted replicas lost or repeated commands");
        let mut all = want.clone();
        all.push(21);
        c.wait_applied(&[0, 1, 2], &all).await;
        c.check_safety();
    });
}

/// A session's command is applied once however often it is submitted, also to another leader
/// and after a restart; every retry gets the first output.
#[test]
fn exactly_once_4r() {
    rsm_test(|sim| async move {
        let c = RsmCluster::start(&sim, 3, false, None);
        let s = Session { client: 7, seq: 1 };
        let first = c.submit(Some(s), 41).await;
        for _ in 0..3 {
            assert_eq!(
                c.submit(Some(s), 41).await,
                first,
                "a retry got another output"
            );
        }
        let leader = (0..3).find(|&i| c.rsm(i).is_some_and(|r| r.is_leader()));
        if let Some(l) = leader {
            c.crash(l);
            c.start_replica(l);
            c.connect(l);
        }
        assert_eq!(
            c.submit(Some(s), 41).await,
            first,
            "a retry after a crash applied again"
        );
        let next = c.submit(Some(Session { client: 7, seq: 2 }), 42).await;
        assert_eq!(next, first + 1);
        let log = c.longest_applied();
        c.wait_applied(&[0, 1, 2], &log).await;
        assert_eq!(
            log.iter().filter(|&&x| x == 41).count(),
            1,
            "command 41 applied more than once: {log:?}"
        );
        c.check_safety();
    });
}

/// Past `maxraftstate`, replicas snapshot: Raft's state stays small, and a replica restarted
/// from a snapshot has the machine and the sessions (an old session is not applied again).
#[test]
fn snapshot_4r() {
    rsm_test(|sim| async move {
        let max = 1000;
        let c = RsmCluster::start(&sim, 3, true, Some(max));
        let s = Session { client: 9, seq: 1 };
        c.submit(Some(s), 5).await;
        let mut want = vec![5u64];
        for cmd in 0..200u64 {
            c.submit(None, 1000 + cmd).await;
            want.push(1000 + cmd);
        }
        c.wait_applied(&[0, 1, 2], &want).await;
        for i in 0..3 {
            let size = c.raft_state_size(i);
            assert!(
                size <= 8 * max,
                "replica {i} keeps {size} bytes of Raft state (max {max})"
            );
        }
        for i in 0..3 {
            c.crash(i);
        }
        for i in 0..3 {
            c.start_replica(i);
            c.connect(i);
        }
        assert_eq!(
            c.submit(Some(s), 5).await,
            1,
            "a session lost in the snapshot"
        );
        let out = c.submit(None, 7).await;
        want.push(7);
        assert_eq!(out, want.len() as u64);
        c.wait_applied(&[0, 1, 2], &want).await;
        c.check_safety();
    });
}

/// Linearizable reads (`Rsm::read_linearizable`, ReadIndex) while submitters commit and the
/// leader is cut off, brought back and crashed in turn: every read is checked by the tester
/// against what was applied (`RsmCluster::read_at`): it sees every command applied anywhere
/// before it was asked, and nothing that is not in the log. A read answered before the machine
/// applied through its read index, typically at a new leader that knows a commit index its
/// machine has not reached, fails here.
#[test]
fn linearizable_reads_see_everything_applied_before_them_4r() {
    rsm_test(|sim| async move {
        let c = RsmCluster::start(&sim, 5, false, None);
        c.submit(None, 1).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let running = |stop: &std::sync::Arc<std::sync::atomic::AtomicBool>| {
            !stop.load(std::sync::atomic::Ordering::Relaxed)
        };
        let submitters: Vec<_> = (0..3u64)
            .map(|t| {
                let (c, stop) = (c.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut k = 0;
                    while running(&stop) {
                        c.submit(None, 1000 * (t + 1) + k).await;
                        k += 1;
                    }
                    k
                })
            })
            .collect();
        let readers: Vec<_> = (0..2usize)
            .map(|t| {
                let (c, stop) = (c.clone(), stop.clone());
                tokio::spawn(async move {
                    let (mut answered, mut i) = (0u64, t);
                    while running(&stop) {
                        match c.read_at(i).await {
                            Ok(_) => answered += 1,
                            Err(_) => i = (i + 1) % c.n,
                        }
                        // Time passes between reads, whatever the replica does.
                        sleep(Duration::from_millis(2)).await;
                    }
                    answered
                })
            })
            .collect();
        for round in 0..6 {
            sleep(Duration::from_millis(400)).await;
            let Some(leader) = (0..c.n).find(|&i| c.rsm(i).is_some_and(|r| r.is_leader())) else {
                continue;
            };
            if round % 3 == 2 {
                c.crash(leader);
                sleep(Duration::from_millis(600)).await;
                c.start_replica(leader);
                c.connect(leader);
            } else {
                c.disconnect(leader);
                sleep(Duration::from_millis(600)).await;
                c.connect(leader);
            }
        }
        sleep(Duration::from_millis(400)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let committed: u64 = join_all(submitters).await.into_iter().sum();
        let answered: u64 = join_all(readers).await.into_iter().sum();
        assert!(committed > 0, "nothing was committed");
        assert!(answered >= 20, "only {answered} reads were answered");
        c.check_safety();
    });
}
