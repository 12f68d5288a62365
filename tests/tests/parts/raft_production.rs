//! Parts 3E (pre-vote and check-quorum) and 3F (leadership transfer): what a production Raft
//! adds to the lab's (thesis sections 9.6, 6.2 and 3.10). The servers run with the features
//! switched on; the safety monitor and the tester's checks are the same as in 3A-3D.

use std::time::Duration;

use raft::{Features, NodeId};
use tests::raft_harness::{Config, ELECTION_TIMEOUT, raft_test};
use tokio::time::sleep;

/// The core's minimum election timeout in the labs (30 ticks of 10 ms).
const MIN_ELECTION_TIMEOUT: Duration = Duration::from_millis(300);

fn production() -> Features {
    Features::production()
}

// ---------------------------------------------------------------------------------------------
// 3E: pre-vote and check-quorum

/// A follower cut off for many election timeouts keeps its term (its pre-votes fail), and when
/// it rejoins the leader and the term are unchanged.
#[test]
fn prevote_partitioned_follower_rejoins_without_raising_the_term_3e() {
    raft_test(|sim| async move {
        let servers = 3;
        let cfg = Config::with_features(&sim, servers, false, false, production());
        cfg.begin("Test (3E): a partitioned follower rejoins without raising the term");
        let leader = cfg.check_one_leader().await;
        cfg.one(101, servers, false).await;
        let term = cfg.check_terms();
        let follower = (leader + 1) % servers;
        cfg.disconnect(follower);
        sleep(5 * ELECTION_TIMEOUT).await;
        let (alone, _) = cfg.state(follower).expect("running");
        assert_eq!(
            alone, term,
            "the isolated server's term went from {term} to {alone}: it campaigned without a pre-vote"
        );
        cfg.connect(follower);
        sleep(ELECTION_TIMEOUT).await;
        assert_eq!(
            cfg.check_one_leader().await,
            leader,
            "the rejoining server deposed the leader"
        );
        assert_eq!(cfg.check_terms(), term, "the term changed");
        cfg.one(102, servers, false).await;
        cfg.end();
    });
}

/// A leader that can reach only a minority steps down within two election timeouts (and the
/// majority elects another); when it returns it follows.
#[test]
fn checkquorum_leader_in_minority_steps_down_3e() {
    raft_test(|sim| async move {
        let servers = 5;
        let cfg = Config::with_features(&sim, servers, false, false, production());
        cfg.begin("Test (3E): a leader in a minority steps down");
        let leader = cfg.check_one_leader().await;
        cfg.one(201, servers, false).await;
        // The leader keeps one follower; the other three form the majority.
        let kept = (leader + 1) % servers;
        let majority: Vec<usize> = (0..servers)
            .filter(|i| *i != leader && *i != kept)
            .collect();
        for &i in &majority {
            cfg.disconnect(i);
        }
        sleep(2 * MIN_ELECTION_TIMEOUT + Duration::from_millis(50)).await;
        let (_, still) = cfg.state(leader).expect("running");
        assert!(
            !still,
            "server {leader} still believes it leads two election timeouts after losing its majority"
        );
        // Reconnect the majority without the old leader's side: they elect a leader and commit.
        for &i in &majority {
            cfg.connect(i);
        }
        cfg.disconnect(leader);
        cfg.disconnect(kept);
        let new = cfg.check_one_leader().await;
        assert!(majority.contains(&new));
        cfg.one(202, 3, true).await;
        cfg.connect(leader);
        cfg.connect(kept);
        cfg.one(203, servers, true).await;
        cfg.end();
    });
}

/// With pre-vote and check-quorum, the lab's hardest agreement scenario (3C's unreliable
/// Figure 8: leaders cut off at random while the network loses, delays and reorders) still
/// commits, and so does 3C's unreliable churn.
#[test]
fn prevote_checkquorum_figure8_unreliable_3e() {
    raft_test(|sim| async move {
        let cfg = Config::with_features(&sim, 5, true, false, production());
        cfg.begin("Test (3E): Figure 8 (unreliable) with pre-vote and check-quorum");
        super::figure8_unreliable(&cfg).await;
        cfg.end();
    });
}

#[test]
fn prevote_checkquorum_unreliable_churn_3e() {
    raft_test(|sim| async move {
        let cfg = std::sync::Arc::new(Config::with_features(&sim, 5, true, false, production()));
        cfg.begin("Test (3E): unreliable churn with pre-vote and check-quorum");
        super::internal_churn(cfg.clone(), true).await;
        cfg.end();
    });
}

// ---------------------------------------------------------------------------------------------
// 3F: leadership transfer

/// The target of a transfer lags behind (it missed many entries): the leader brings it up to
/// date, then it takes over, and everything committed before stays committed.
#[test]
fn transfer_to_a_lagging_follower_completes_3f() {
    raft_test(|sim| async move {
        let servers = 3;
        let cfg = Config::with_features(&sim, servers, false, false, production());
        cfg.begin("Test (3F): transfer to a lagging follower");
        let leader = cfg.check_one_leader().await;
        let target = (leader + 1) % servers;
        cfg.disconnect(target);
        for k in 0..30 {
            cfg.one(300 + k, servers - 1, true).await;
        }
        cfg.connect(target);
        let (term, _) = cfg.state(leader).expect("running");
        cfg.raft(leader)
            .expect("running")
            .transfer_leadership(NodeId(target as u64))
            .await
            .expect("the leader starts the transfer");
        sleep(MIN_ELECTION_TIMEOUT).await;
        let (t, is_leader) = cfg.state(target).expect("running");
        assert!(is_leader, "the target {target} did not take over");
        assert!(t > term);
        assert_eq!(cfg.check_one_leader().await, target);
        cfg.one(399, servers, false).await;
        cfg.end();
    });
}

/// A transfer to an unreachable target is aborted after an election timeout: the leader keeps
/// its office and accepts commands again. While the transfer lasts it accepts none.
#[test]
fn transfer_to_an_unreachable_follower_aborts_3f() {
    raft_test(|sim| async move {
        let servers = 3;
        let cfg = Config::with_features(&sim, servers, false, false, production());
        cfg.begin("Test (3F): transfer to an unreachable follower aborts");
        let leader = cfg.check_one_leader().await;
        let target = (leader + 2) % servers;
        cfg.disconnect(target);
        let node = cfg.raft(leader).expect("running");
        node.transfer_leadership(NodeId(target as u64))
            .await
            .expect("the leader starts the transfer");
        assert!(
            cfg.start(leader, 401).await.is_none(),
            "a leader accepted a command while handing over"
        );
        sleep(2 * MIN_ELECTION_TIMEOUT + Duration::from_millis(50)).await;
        assert_eq!(node.status().transferring_to, None, "not aborted");
        assert_eq!(cfg.check_one_leader().await, leader);
        cfg.one(402, servers - 1, true).await;
        cfg.connect(target);
        cfg.one(403, servers, true).await;
        cfg.end();
    });
}

/// Leadership goes around the cluster by transfers while the network is unreliable; every
/// command is still agreed on by all.
#[test]
fn transfers_around_the_cluster_unreliable_3f() {
    raft_test(|sim| async move {
        let servers = 5;
        let cfg = Config::with_features(&sim, servers, true, false, production());
        cfg.begin("Test (3F): transfers around the cluster, unreliable network");
        let mut moved = 0;
        for round in 0..10 {
            let leader = cfg.check_one_leader().await;
            let target = (leader + 1 + cfg.rand(servers as u64 - 1) as usize) % servers;
            cfg.one(500 + round, servers, true).await;
            if let Some(node) = cfg.raft(leader)
                && node
                    .transfer_leadership(NodeId(target as u64))
                    .await
                    .is_ok()
            {
                sleep(MIN_ELECTION_TIMEOUT).await;
                if cfg.state(target).is_some_and(|(_, l)| l) {
                    moved += 1;
                }
            }
        }
        cfg.one(599, servers, true).await;
        assert!(moved >= 5, "only {moved} of 10 transfers took effect");
        cfg.end();
    });
}
