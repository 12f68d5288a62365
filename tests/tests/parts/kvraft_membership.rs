//! Part 4D: KV servers join and leave the replica group while clients run (thesis chapter
//! 4): new servers are added as learners, catch up (by snapshot when the log was compacted)
//! and are promoted; old ones are replaced through joint consensus and shut down. Every
//! client's appends must survive, in order, and the history must stay linearizable.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use raft::{ConfChange, NodeId};
use tests::kv_harness::{ELECTION_TIMEOUT, KvConfig};
use tests::membership::change_membership;
use tests::raft_harness::join_all;
use tokio::time::sleep;

use super::{check_clnt_appends, kv_test, reads_options};

const CHANGE_LIMIT: Duration = Duration::from_secs(30);

fn ids(v: &[u64]) -> BTreeSet<NodeId> {
    v.iter().map(|i| NodeId(*i)).collect()
}

async fn change(cfg: &Arc<KvConfig>, change: ConfChange) -> raft::Membership {
    let c = cfg.clone();
    match change_membership(move || c.rafts(), &change, CHANGE_LIMIT).await {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

/// Three servers grow to five and shrink to a different three ({0,1,2} -> {2,3,4}) under
/// three clients' appends and gets, with snapshots on.
#[test]
fn membership_grow_and_replace_under_load_4d() {
    kv_test(|sim| async move {
        let options = kvraft::ServerOptions {
            maxraftstate: Some(1000),
            voters: Some(vec![0, 1, 2]),
            ..kvraft::ServerOptions::default()
        };
        let cfg = KvConfig::with_options(&sim, 5, false, options);
        cfg.begin("Test: servers join and leave under load (4D)");
        let done = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..3u64)
            .map(|cli| {
                let (cfg, done) = (cfg.clone(), done.clone());
                tokio::spawn(async move {
                    let mut ck = cfg.make_client(&cfg.all());
                    let key = cli.to_string();
                    let mut last = String::new();
                    cfg.put(&mut ck, &key, &last, true).await;
                    let mut j = 0u64;
                    while !done.load(Ordering::Relaxed) {
                        if cfg.rand(1000) < 600 {
                            let nv = format!("x {cli} {j} y");
                            cfg.append(&mut ck, &key, &nv, true).await;
                            last += &nv;
                            j += 1;
                        } else {
                            let v = cfg.get(&mut ck, &key, true).await;
                            assert_eq!(v, last, "get of key {key} during a membership change");
                        }
                    }
                    cfg.delete_client(&ck);
                    j
                })
            })
            .collect();
        sleep(Duration::from_secs(1)).await;
        for new in [3, 4] {
            change(&cfg, ConfChange::AddLearner(NodeId(new))).await;
            // The learner catches up (past the compacted log, by snapshot) before it votes.
            sleep(ELECTION_TIMEOUT / 2).await;
            let m = change(&cfg, ConfChange::AddVoter(NodeId(new))).await;
            assert!(m.voters.contains(&NodeId(new)), "{m}");
        }
        let m = change(
            &cfg,
            ConfChange::Replace {
                voters: ids(&[2, 3, 4]),
                learners: BTreeSet::new(),
            },
        )
        .await;
        assert_eq!(m.voters, ids(&[2, 3, 4]));
        assert!(!m.is_joint(), "left the joint configuration: {m}");
        for old in [0, 1] {
            cfg.shutdown_server(old);
        }
        sleep(Duration::from_secs(2)).await;
        done.store(true, Ordering::Relaxed);
        let counts = join_all(clients).await;
        let mut ck = cfg.make_client(&[2, 3, 4]);
        for (i, j) in counts.into_iter().enumerate() {
            assert!(j > 0, "client {i} made no progress");
            let v = cfg.get(&mut ck, &i.to_string(), true).await;
            check_clnt_appends(i as u64, &v, j);
        }
        assert!(
            cfg.snapshot_size() > 0,
            "the test is meant to run with snapshots"
        );
        cfg.check_linearizable();
        cfg.end();
    });
}

/// The leader is removed while clients run: it steps down once its removal commits, the
/// remaining servers elect a leader among themselves, and no acknowledged append is lost.
#[test]
fn membership_remove_the_leader_under_load_4d() {
    kv_test(|sim| async move {
        let cfg = KvConfig::with_options(&sim, 3, false, kvraft::ServerOptions::default());
        cfg.begin("Test: the leader is removed under load (4D)");
        let mut ck = cfg.make_client(&cfg.all());
        cfg.put(&mut ck, "k", "", true).await;
        let mut last = String::new();
        for round in 0..3 {
            for j in 0..5 {
                let nv = format!("x 0 {} y", round * 5 + j);
                cfg.append(&mut ck, "k", &nv, true).await;
                last += &nv;
            }
            let leader = loop {
                if let Some(l) = cfg.leader() {
                    break l;
                }
                sleep(Duration::from_millis(50)).await;
            };
            if round == 0 {
                let m = change(&cfg, ConfChange::Remove(NodeId(leader as u64))).await;
                assert!(!m.contains(NodeId(leader as u64)), "{m}");
                sleep(ELECTION_TIMEOUT).await;
                let new = cfg.leader();
                assert!(
                    new.is_some_and(|l| l != leader),
                    "the removed leader {leader} still leads ({new:?})"
                );
            }
        }
        cfg.check(&mut ck, "k", &last).await;
        cfg.check_linearizable();
        cfg.end();
    });
}

/// A membership entry is applied like any other: a ReadIndex Get whose read index is that
/// entry's (nothing was written after the change) is answered in one heartbeat round. A
/// service that does not count the entry as applied waits for a later write that never comes.
/// Bound: no fault, so each Get needs one round of heartbeats; 20 Gets in 2 election
/// timeouts leave room for a leader that first commits its no-op.
#[test]
fn membership_reads_right_after_a_change_4d() {
    kv_test(|sim| async move {
        let options = kvraft::ServerOptions {
            voters: Some(vec![0, 1, 2]),
            ..reads_options(None)
        };
        let cfg = KvConfig::with_options(&sim, 4, false, options);
        cfg.begin("Test: reads right after a membership change (4D)");
        let mut ck = cfg.make_client(&cfg.all());
        cfg.put(&mut ck, "k", "v", true).await;
        cfg.check(&mut ck, "k", "v").await;
        for change_to in [
            ConfChange::AddLearner(NodeId(3)),
            ConfChange::AddVoter(NodeId(3)),
        ] {
            change(&cfg, change_to).await;
            let start = tokio::time::Instant::now();
            for _ in 0..20 {
                cfg.check(&mut ck, "k", "v").await;
            }
            let took = start.elapsed();
            assert!(
                took <= 2 * ELECTION_TIMEOUT,
                "20 Gets after a membership change took {took:?} (bound {:?}): is the membership entry counted as applied?",
                2 * ELECTION_TIMEOUT
            );
        }
        cfg.check_linearizable();
        cfg.end();
    });
}
