//! Part 3G: membership changes (thesis chapter 4). Servers join a running cluster (they start
//! with no configuration), learners catch up and are promoted, the leader removes itself, and a
//! majority is replaced through a joint configuration. The safety monitor checks every step
//! (including that a leader changes the configuration only after an entry of its term committed
//! and the previous change did, and that consecutive configurations' majorities intersect); the
//! tests check what each change must achieve.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use raft::{ConfChange, ConfChangeError, Features, Membership, NodeId};
use tests::raft_harness::{Cmd, Config, ELECTION_TIMEOUT, join_all, raft_test};
use tokio::task::JoinHandle;
use tokio::time::sleep;

fn ids(servers: &[usize]) -> BTreeSet<NodeId> {
    servers.iter().map(|i| NodeId(*i as u64)).collect()
}

fn config(voters: &[usize], learners: &[usize]) -> Membership {
    Membership {
        voters: ids(voters),
        outgoing: BTreeSet::new(),
        learners: ids(learners),
    }
}

fn node(i: usize) -> NodeId {
    NodeId(i as u64)
}

/// A client submitting commands one after another until stopped (each must reach agreement on
/// at least `expected` servers); returns how many it committed.
fn load(cfg: &Arc<Config>, base: i64, expected: usize) -> (Arc<AtomicBool>, JoinHandle<i64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let cfg = cfg.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                cfg.one(base + k, expected, true).await;
                k += 1;
            }
            k
        })
    };
    (stop, handle)
}

async fn stop_load(load: (Arc<AtomicBool>, JoinHandle<i64>)) -> i64 {
    load.0.store(true, Ordering::Relaxed);
    join_all(vec![load.1]).await.into_iter().sum()
}

/// Waits until server i has applied everything the leader `leader` committed.
async fn wait_caught_up(cfg: &Config, i: usize, leader: usize) {
    for _ in 0..100 {
        let commit = cfg.raft(leader).map(|r| r.status().commit);
        if let (Some(c), Some(rf)) = (commit, cfg.raft(i))
            && rf.status().applied >= c
        {
            return;
        }
        sleep(Duration::from_millis(50)).await;
    }
    panic!("server {i} did not catch up with leader {leader} within 5 seconds");
}

/// Two servers join a 3-server cluster while three clients keep committing: each is added as a
/// learner, catches up, and is promoted. Then the new voters count: with two of the original
/// servers cut off, the other three (one original, the two new) still commit.
#[test]
fn add_servers_to_a_loaded_cluster_3g() {
    raft_test(|sim| async move {
        let cfg = Arc::new(Config::with_bootstrap(
            &sim,
            5,
            false,
            false,
            Features::default(),
            &[0, 1, 2],
        ));
        cfg.begin("Test (3G): add servers to a loaded cluster");
        cfg.check_one_leader().await;
        for i in [3, 4] {
            assert_eq!(
                cfg.membership(i),
                Some(Membership::default()),
                "server {i} joins with no configuration"
            );
        }
        let clients: Vec<_> = (0..3).map(|c| load(&cfg, 1000 * (c + 1), 3)).collect();
        sleep(ELECTION_TIMEOUT / 2).await;
        let (m, _) = cfg.change_membership(ConfChange::AddLearner(node(3))).await;
        assert_eq!(m, config(&[0, 1, 2], &[3]));
        let (m, _) = cfg.change_membership(ConfChange::AddVoter(node(3))).await;
        assert_eq!(m, config(&[0, 1, 2, 3], &[]));
        let (m, _) = cfg.change_membership(ConfChange::AddLearner(node(4))).await;
        assert_eq!(m, config(&[0, 1, 2, 3], &[4]));
        let (m, _) = cfg.change_membership(ConfChange::AddVoter(node(4))).await;
        let all = config(&[0, 1, 2, 3, 4], &[]);
        assert_eq!(m, all);
        for (c, client) in clients.into_iter().enumerate() {
            let committed = stop_load(client).await;
            assert!(
                committed > 0,
                "client {c} committed nothing during the changes"
            );
        }
        cfg.one(9999, 5, true).await;
        cfg.wait_membership(&[0, 1, 2, 3, 4], &all, ELECTION_TIMEOUT)
            .await;
        // The new voters make the majority now.
        let leader = cfg.check_one_leader().await;
        let cut: Vec<usize> = [0, 1, 2]
            .into_iter()
            .filter(|i| *i != leader)
            .take(2)
            .collect();
        for &i in &cut {
            cfg.disconnect(i);
        }
        cfg.one(10000, 3, true).await;
        for &i in &cut {
            cfg.connect(i);
        }
        cfg.one(10001, 5, true).await;
        cfg.end();
    });
}

/// The leader removes itself: it keeps leading until its removal commits, then steps down; the
/// others elect a leader among themselves and keep committing; the removed server, still
/// connected, never campaigns and does not disturb them (the term stays put).
#[test]
fn remove_the_leader_3g() {
    raft_test(|sim| async move {
        let servers = 5;
        let cfg = Config::new(&sim, servers, false, false);
        cfg.begin("Test (3G): remove the leader");
        let old = cfg.check_one_leader().await;
        cfg.one(101, servers, false).await;
        let rest: Vec<usize> = (0..servers).filter(|i| *i != old).collect();
        let (m, _) = cfg.change_membership(ConfChange::Remove(node(old))).await;
        assert_eq!(m, config(&rest, &[]));
        sleep(ELECTION_TIMEOUT).await;
        assert!(
            !cfg.state(old).expect("running").1,
            "server {old} still leads after its removal committed"
        );
        let leader = cfg.check_one_leader().await;
        assert_ne!(leader, old);
        for k in 0..5 {
            cfg.one(110 + k, rest.len(), true).await;
        }
        let term = cfg.state(leader).expect("running").0;
        // The removed server stays connected for many election timeouts.
        sleep(5 * ELECTION_TIMEOUT).await;
        let (old_term, old_leads) = cfg.state(old).expect("running");
        assert!(!old_leads, "the removed server leads again");
        assert!(
            old_term <= term,
            "the removed server campaigned (term {old_term}, the cluster's {term})"
        );
        assert_eq!(
            cfg.state(leader),
            Some((term, true)),
            "the cluster's leadership changed while the removed server was around"
        );
        cfg.one(120, rest.len(), true).await;
        cfg.wait_membership(&rest, &config(&rest, &[]), ELECTION_TIMEOUT)
            .await;
        cfg.end();
    });
}

/// A new leader changes nothing before an entry of its own term has committed (a change of the
/// previous leader may still be uncommitted in a log it has not seen: the single-server bug
/// Ongaro reported on raft-dev in 2015). Asked right after its election, it refuses and appends
/// a no-op; once that commits, the change goes through.
#[test]
fn no_change_before_an_entry_of_the_term_commits_3g() {
    raft_test(|sim| async move {
        let servers = 5;
        let cfg = Config::new(&sim, servers, false, false);
        cfg.begin("Test (3G): no change before an entry of the leader's term commits");
        let old = cfg.check_one_leader().await;
        cfg.one(201, servers, false).await;
        cfg.disconnect(old);
        let leader = cfg.check_one_leader().await;
        let refused = cfg
            .raft(leader)
            .expect("running")
            .change_membership(ConfChange::Remove(node(old)))
            .await;
        assert!(
            matches!(refused, Err(ConfChangeError::NotCommittedInTerm)),
            "a leader with no entry of its term committed was asked for a change: {refused:?}"
        );
        let rest: Vec<usize> = (0..servers).filter(|i| *i != old).collect();
        let (m, index) = cfg.change_membership(ConfChange::Remove(node(old))).await;
        assert_eq!(m, config(&rest, &[]));
        assert!(
            (1..index).any(|i| cfg.n_committed(i).1 == Some(Cmd::Noop)),
            "no no-op of the new leader committed before its change at index {index}"
        );
        cfg.one(202, rest.len(), true).await;
        // The old leader, removed while away, is shut down.
        cfg.crash1(old);
        cfg.one(203, rest.len(), true).await;
        cfg.end();
    });
}

/// Replace a majority ({L, a, b} -> {L, 3, 4}) while the old majority's other two servers are
/// cut off: the joint configuration is in force on the leader but cannot commit (it needs a
/// majority of the old configuration too), and neither can anything else. Once they are back
/// it commits, the leader leaves it by itself, and the new configuration alone decides: with
/// the removed servers shut down and the leader cut off, servers 3 and 4 elect a leader and
/// commit on an unreliable network.
#[test]
fn replace_a_majority_while_partitioned_3g() {
    raft_test(|sim| async move {
        let cfg = Arc::new(Config::with_bootstrap(
            &sim,
            5,
            false,
            false,
            Features::default(),
            &[0, 1, 2],
        ));
        cfg.begin("Test (3G): replace a majority through a joint configuration, partitioned");
        let leader = cfg.check_one_leader().await;
        let old: Vec<usize> = [0, 1, 2].into_iter().filter(|i| *i != leader).collect();
        cfg.change_membership(ConfChange::AddLearner(node(3))).await;
        cfg.change_membership(ConfChange::AddLearner(node(4))).await;
        cfg.one(301, 5, false).await;
        for &i in &old {
            cfg.disconnect(i);
        }
        let new = [leader, 3, 4];
        let change = {
            let cfg = cfg.clone();
            tokio::spawn(async move {
                cfg.change_membership(ConfChange::Replace {
                    voters: ids(&new),
                    learners: BTreeSet::new(),
                })
                .await
            })
        };
        sleep(ELECTION_TIMEOUT).await;
        let joint = Membership {
            voters: ids(&new),
            outgoing: ids(&[0, 1, 2]),
            learners: BTreeSet::new(),
        };
        assert_eq!(
            cfg.membership(leader),
            Some(joint.clone()),
            "the leader should act on the joint configuration"
        );
        let (index, _) = cfg
            .start(leader, 302)
            .await
            .expect("the leader accepts commands while joint");
        sleep(2 * ELECTION_TIMEOUT).await;
        assert!(
            !cfg.committed_configs().values().any(|m| m.is_joint()),
            "the joint configuration committed without a majority of the old one"
        );
        assert_eq!(
            cfg.n_committed(index).0,
            0,
            "an entry committed with a majority of the new configuration alone"
        );
        for &i in &old {
            cfg.connect(i);
        }
        let (m, _) = join_all(vec![change]).await.remove(0);
        let target = config(&new, &[]);
        assert_eq!(m, target);
        cfg.wait_membership(&new, &target, ELECTION_TIMEOUT).await;
        // The new configuration decides alone.
        for &i in &old {
            cfg.crash1(i);
        }
        cfg.set_unreliable(true);
        cfg.one(303, 3, true).await;
        cfg.disconnect(leader);
        cfg.one(304, 2, true).await;
        cfg.set_unreliable(false);
        cfg.connect(leader);
        cfg.one(305, 3, true).await;
        cfg.end();
    });
}

/// Replace a majority ({0, 1, 2} -> {0, 3, 4}, whoever leads) on an unreliable network while a
/// client commits and one server at a time is cut off and reconnected, with pre-vote and
/// check-quorum on (removed servers that missed their removal do not depose the leader). Then
/// every member acts on the new configuration, and it alone decides.
#[test]
fn replace_a_majority_unreliable_3g() {
    raft_test(|sim| async move {
        let cfg = Arc::new(Config::with_bootstrap(
            &sim,
            5,
            true,
            false,
            Features::production(),
            &[0, 1, 2],
        ));
        cfg.begin("Test (3G): replace a majority through a joint configuration, unreliable");
        cfg.check_one_leader().await;
        cfg.change_membership(ConfChange::AddLearner(node(3))).await;
        cfg.change_membership(ConfChange::AddLearner(node(4))).await;
        let client = load(&cfg, 4000, 2);
        let stop = Arc::new(AtomicBool::new(false));
        let churn = {
            let (cfg, stop) = (cfg.clone(), stop.clone());
            tokio::spawn(async move {
                let mut cut: Option<usize> = None;
                let mut rounds = 0;
                while !stop.load(Ordering::Relaxed) {
                    match cut.take() {
                        Some(i) => cfg.connect(i),
                        None => {
                            let i = cfg.rand(5) as usize;
                            cfg.disconnect(i);
                            cut = Some(i);
                        }
                    }
                    rounds += 1;
                    sleep(Duration::from_millis(200 + cfg.rand(400))).await;
                }
                if let Some(i) = cut {
                    cfg.connect(i);
                }
                rounds
            })
        };
        sleep(ELECTION_TIMEOUT).await;
        let new = [0, 3, 4];
        let (m, _) = cfg
            .change_membership(ConfChange::Replace {
                voters: ids(&new),
                learners: BTreeSet::new(),
            })
            .await;
        let target = config(&new, &[]);
        assert_eq!(m, target);
        sleep(2 * ELECTION_TIMEOUT).await;
        stop.store(true, Ordering::Relaxed);
        let rounds: i32 = join_all(vec![churn]).await.into_iter().sum();
        assert!(rounds > 2, "the network hardly changed ({rounds} rounds)");
        let committed = stop_load(client).await;
        assert!(committed > 0, "the client committed nothing");
        cfg.set_unreliable(false);
        cfg.one(4999, 3, true).await;
        cfg.wait_membership(&new, &target, 2 * ELECTION_TIMEOUT)
            .await;
        // The removed servers are shut down; the new configuration decides alone, and a
        // majority of it suffices.
        cfg.crash1(1);
        cfg.crash1(2);
        let leader = cfg.check_one_leader().await;
        assert!(
            new.contains(&leader),
            "server {leader} leads but was removed"
        );
        let other = new
            .iter()
            .copied()
            .find(|i| *i != leader)
            .expect("three voters");
        cfg.disconnect(other);
        cfg.one(5000, 2, true).await;
        cfg.connect(other);
        cfg.one(5001, 3, true).await;
        cfg.end();
    });
}

/// A learner far behind cannot be promoted (it would make commits wait for it); it catches up
/// while a client keeps committing and is promoted then, under load, and stays in agreement.
#[test]
fn promote_a_learner_under_load_3g() {
    raft_test(|sim| async move {
        let cfg = Arc::new(Config::with_bootstrap(
            &sim,
            4,
            false,
            false,
            Features::default(),
            &[0, 1, 2],
        ));
        cfg.begin("Test (3G): promote a learner under load");
        cfg.check_one_leader().await;
        cfg.disconnect(3);
        cfg.change_membership(ConfChange::AddLearner(node(3))).await;
        for k in 0..80 {
            cfg.one(600 + k, 3, true).await;
        }
        let leader = cfg.check_one_leader().await;
        let refused = cfg
            .raft(leader)
            .expect("running")
            .change_membership(ConfChange::AddVoter(node(3)))
            .await;
        assert!(
            matches!(refused, Err(ConfChangeError::Behind { node, .. }) if node == NodeId(3)),
            "promoting a learner 80 entries behind: {refused:?}"
        );
        cfg.connect(3);
        let client = load(&cfg, 700, 3);
        let (m, _) = cfg.change_membership(ConfChange::AddVoter(node(3))).await;
        assert_eq!(m, config(&[0, 1, 2, 3], &[]));
        sleep(ELECTION_TIMEOUT).await;
        let committed = stop_load(client).await;
        assert!(committed > 0, "the client committed nothing");
        cfg.one(799, 4, true).await;
        let leader = cfg.check_one_leader().await;
        wait_caught_up(&cfg, 3, leader).await;
        cfg.wait_membership(&[0, 1, 2, 3], &config(&[0, 1, 2, 3], &[]), ELECTION_TIMEOUT)
            .await;
        cfg.end();
    });
}

/// The promotion rule's boundary (thesis 4.2.1): a learner exactly `promotion_lag` entries
/// behind the leader's log may become a voter, one entry more may not. Two learners catch up and
/// are cut off one entry apart; the harness measures how far behind each is from the leader's
/// log and theirs (frozen while cut off), then asks the leader to promote each once.
#[test]
fn promote_a_learner_exactly_at_the_lag_3g() {
    raft_test(|sim| async move {
        let lag = raft::Config::lab(node(0), Vec::new()).promotion_lag;
        let cfg = Config::with_bootstrap(&sim, 5, false, false, Features::default(), &[0, 1, 2]);
        cfg.begin("Test (3G): promote a learner exactly at the promotion lag");
        cfg.check_one_leader().await;
        cfg.change_membership(ConfChange::AddLearner(node(3))).await;
        cfg.change_membership(ConfChange::AddLearner(node(4))).await;
        cfg.one(900, 5, true).await;
        let leader = cfg.check_one_leader().await;
        let last = |i: usize| cfg.raft(i).expect("running").status().last_index.0;
        // Cut off: learner 4 first, then learner 3 once it holds one more entry (and the leader
        // has heard so from a heartbeat's reply).
        sleep(ELECTION_TIMEOUT).await;
        cfg.disconnect(4);
        cfg.one(901, 4, true).await;
        wait_caught_up(&cfg, 3, leader).await;
        sleep(ELECTION_TIMEOUT).await;
        cfg.disconnect(3);
        let mut k = 902;
        while last(leader) < last(3) + lag {
            cfg.one(k, 3, true).await;
            k += 1;
        }
        assert_eq!(cfg.check_one_leader().await, leader, "the leader changed");
        assert_eq!(
            last(leader),
            last(3) + lag,
            "learner 3 is not exactly {lag} behind"
        );
        assert_eq!(
            last(leader),
            last(4) + lag + 1,
            "learner 4 is not {lag} + 1 behind"
        );
        let rf = cfg.raft(leader).expect("running");
        let refused = rf.change_membership(ConfChange::AddVoter(node(4))).await;
        assert!(
            matches!(refused, Err(ConfChangeError::Behind { node, .. }) if node == NodeId(4)),
            "promoting learner 4, {} entries behind (the lag is {lag}): {refused:?}",
            lag + 1
        );
        let promoted = rf.change_membership(ConfChange::AddVoter(node(3))).await;
        assert!(
            promoted.is_ok(),
            "promoting learner 3, exactly {lag} entries behind (the lag is {lag}), was refused: {promoted:?}"
        );
        cfg.connect(3);
        cfg.connect(4);
        cfg.wait_membership(
            &[0, 1, 2, 3, 4],
            &config(&[0, 1, 2, 3], &[4]),
            ELECTION_TIMEOUT,
        )
        .await;
        cfg.one(1999, 5, true).await;
        cfg.end();
    });
}

/// Learners never decide. A voter connected only to the learners (which grant it their votes:
/// their logs are no longer than its own) is never elected; a leader connected only to the
/// learners commits nothing, even once they all store the entry.
#[test]
fn learners_neither_elect_nor_commit_3g() {
    raft_test(|sim| async move {
        let cfg = Config::with_bootstrap(&sim, 5, false, false, Features::default(), &[0, 1, 2]);
        cfg.begin("Test (3G): learners neither elect nor commit");
        cfg.check_one_leader().await;
        cfg.change_membership(ConfChange::AddLearner(node(3))).await;
        cfg.change_membership(ConfChange::AddLearner(node(4))).await;
        cfg.one(801, 5, true).await;
        for i in [3, 4] {
            assert!(cfg.membership(i).expect("running").is_learner(node(i)));
        }
        // Elections: one voter and the two learners.
        let leader = cfg.check_one_leader().await;
        let voters: Vec<usize> = [0, 1, 2].into_iter().filter(|i| *i != leader).collect();
        let (lone, away) = (voters[0], voters[1]);
        cfg.disconnect(leader);
        cfg.disconnect(away);
        for _ in 0..30 {
            sleep(ELECTION_TIMEOUT / 10).await;
            cfg.check_no_leader();
        }
        for i in [3, 4] {
            assert!(!cfg.state(i).expect("running").1);
        }
        cfg.connect(leader);
        cfg.connect(away);
        cfg.one(802, 5, true).await;
        // Commitment: the leader and the two learners.
        let leader = cfg.check_one_leader().await;
        let cut: Vec<usize> = [0, 1, 2].into_iter().filter(|i| *i != leader).collect();
        for &i in &cut {
            cfg.disconnect(i);
        }
        let (index, _) = cfg.start(leader, 803).await.expect("the leader accepts");
        sleep(2 * ELECTION_TIMEOUT).await;
        let stored = [3, 4]
            .into_iter()
            .filter(|i| {
                cfg.raft(*i)
                    .is_some_and(|r| r.status().last_index.0 >= index)
            })
            .count();
        assert_eq!(stored, 2, "the learners should store the leader's entry");
        assert_eq!(
            cfg.n_committed(index).0,
            0,
            "an entry committed on the leader and learners alone (lone voter {lone})"
        );
        for &i in &cut {
            cfg.connect(i);
        }
        cfg.one(804, 5, true).await;
        cfg.end();
    });
}

/// Configuration changes covered by snapshots: every server restarts from a snapshot taken
/// after the cluster grew from {0, 1, 2} to five and lost server 2, and acts on that
/// configuration at once (before hearing from anyone: the two that joined have no bootstrap
/// configuration to fall back on); a server added after that joins by InstallSnapshot and
/// learns the configuration from it, also across its own restart.
#[test]
fn restart_after_a_snapshot_of_a_configuration_3g() {
    raft_test(|sim| async move {
        let cfg = Config::with_bootstrap(&sim, 6, false, true, Features::default(), &[0, 1, 2]);
        cfg.begin("Test (3G): restart from snapshots that cover configuration changes");
        cfg.check_one_leader().await;
        for i in [3, 4] {
            cfg.change_membership(ConfChange::AddLearner(node(i))).await;
            cfg.one(900 + i as i64, 3, true).await;
            cfg.change_membership(ConfChange::AddVoter(node(i))).await;
        }
        cfg.change_membership(ConfChange::Remove(node(2))).await;
        let members = [0, 1, 3, 4];
        let target = config(&members, &[]);
        for k in 0..30 {
            cfg.one(910 + k, members.len(), true).await;
        }
        cfg.crash1(2);
        for &i in &members {
            let s = cfg.raft(i).expect("running").status();
            assert!(
                s.snapshot_index >= s.membership_index && s.membership_index.0 > 0,
                "server {i}'s snapshot (through {}) should cover the configuration entry (at {})",
                s.snapshot_index,
                s.membership_index
            );
        }
        for &i in &members {
            cfg.crash1(i);
        }
        for &i in &members {
            cfg.start1(i);
            assert_eq!(
                cfg.membership(i),
                Some(target.clone()),
                "server {i} restarted from its snapshot with another configuration"
            );
        }
        for &i in &members {
            cfg.connect(i);
        }
        cfg.one(950, members.len(), true).await;
        // Two of the four are not a majority (the bootstrap configuration, whose majority
        // 0 and 1 would be, is gone).
        let leader = cfg.check_one_leader().await;
        let kept = [0, 1, 3, 4]
            .into_iter()
            .find(|i| *i != leader)
            .expect("four members");
        let cut: Vec<usize> = members
            .into_iter()
            .filter(|i| *i != leader && *i != kept)
            .collect();
        for &i in &cut {
            cfg.disconnect(i);
        }
        let (index, _) = cfg.start(leader, 951).await.expect("the leader accepts");
        sleep(2 * ELECTION_TIMEOUT).await;
        assert_eq!(
            cfg.n_committed(index).0,
            0,
            "committed by two of four voters (a server fell back to the bootstrap configuration?)"
        );
        for &i in &cut {
            cfg.connect(i);
        }
        cfg.one(952, members.len(), true).await;
        // A newcomer added while cut off, past whose configuration entry the leader then
        // compacts: the snapshot it installs must bring it the configuration.
        cfg.disconnect(5);
        let (m, at) = cfg.change_membership(ConfChange::AddLearner(node(5))).await;
        let with_learner = config(&members, &[5]);
        assert_eq!(m, with_learner);
        for k in 0..25 {
            cfg.one(960 + k, members.len(), true).await;
        }
        cfg.connect(5);
        cfg.one(990, members.len() + 1, true).await;
        let s = cfg.raft(5).expect("running").status();
        assert!(
            s.snapshot_index.0 > at,
            "server 5 should have caught up by a snapshot past index {at} (its snapshot is through {})",
            s.snapshot_index
        );
        cfg.wait_membership(&[5], &with_learner, ELECTION_TIMEOUT)
            .await;
        cfg.crash1(5);
        cfg.start1(5);
        assert_eq!(
            cfg.membership(5),
            Some(with_learner.clone()),
            "server 5 restarted with another configuration"
        );
        cfg.connect(5);
        cfg.one(999, members.len() + 1, true).await;
        cfg.end();
    });
}

/// Two changes asked at the same moment, under load: a learner added and a voter removed. The
/// leader takes one and refuses the other (`InProgress`) until the first has committed, so
/// the configurations follow one another one change at a time (thesis 4.1; the safety monitor
/// judges every configuration entry appended); both end in force, in one order or the other.
#[test]
fn changes_asked_together_go_one_at_a_time_3g() {
    raft_test(|sim| async move {
        let cfg = Arc::new(Config::with_bootstrap(
            &sim,
            4,
            false,
            false,
            Features::default(),
            &[0, 1, 2],
        ));
        cfg.begin("Test (3G): changes asked together go one at a time");
        let leader = cfg.check_one_leader().await;
        cfg.one(1, 3, true).await;
        let client = load(&cfg, 1000, 2);
        let removed = (leader + 1) % 3;
        let changes = [
            ConfChange::AddLearner(node(3)),
            ConfChange::Remove(node(removed)),
        ];
        let tasks: Vec<_> = changes
            .into_iter()
            .map(|change| {
                let cfg = cfg.clone();
                tokio::spawn(async move { cfg.change_membership(change).await })
            })
            .collect();
        let done = join_all(tasks).await;
        let (a, b) = (done[0].1, done[1].1);
        assert_ne!(a, b, "two changes were committed at the same index");
        let voters: Vec<usize> = (0..3).filter(|i| *i != removed).collect();
        let last = config(&voters, &[3]);
        let (m, _) = if a > b { &done[0] } else { &done[1] };
        assert_eq!(m, &last, "the later change's configuration");
        assert!(
            stop_load(client).await > 0,
            "nothing committed during the changes"
        );
        cfg.one(9999, 2, true).await;
        cfg.end();
    });
}
