//! Part 5C: a replica group changes its servers while clients run and shards move (thesis
//! chapter 4 under the sharded service): a new server joins group 100 as a learner, catches
//! up and is promoted; an old one is removed and shut down; meanwhile groups join and leave
//! the shard configuration. Every append must survive and the history must be linearizable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use raft::{ConfChange, NodeId};
use tests::membership::change_membership;
use tests::raft_harness::join_all;
use tests::shardkv_harness::ShardKvConfig;
use tokio::time::sleep;

use super::{check_all, ms, put_keys, shardkv_test, spawn_appenders};

async fn change(cfg: &Arc<ShardKvConfig>, gi: usize, change: ConfChange) -> raft::Membership {
    let c = cfg.clone();
    match change_membership(move || c.group_rafts(gi), &change, Duration::from_secs(30)).await {
        Ok(m) => m,
        Err(e) => panic!("group {gi}: {e}"),
    }
}

#[test]
fn group_servers_join_and_leave_under_load_5c() {
    shardkv_test(|sim| async move {
        // Four servers per group, of which 0, 1 and 2 start as the group's voters.
        let cfg = ShardKvConfig::with_voters(&sim, 4, false, Some(500), Some(vec![0, 1, 2]));
        cfg.begin("Test (5C): a group's servers change under load and shard moves");
        let mut ck = cfg.make_client();
        cfg.join(0).await;
        let (ka, va) = put_keys(&cfg, &mut ck, 10, 5).await;
        let done = Arc::new(AtomicBool::new(false));
        let appenders = spawn_appenders(&cfg, &ka, &va, 5, Some(ms(10)), &done);
        sleep(ms(300)).await;
        cfg.join(1).await;
        change(&cfg, 0, ConfChange::AddLearner(NodeId(3))).await;
        sleep(ms(500)).await;
        let m = change(&cfg, 0, ConfChange::AddVoter(NodeId(3))).await;
        assert_eq!(m.voters.len(), 4, "{m}");
        cfg.join(2).await;
        let m = change(&cfg, 0, ConfChange::Remove(NodeId(0))).await;
        assert!(!m.contains(NodeId(0)), "{m}");
        cfg.shutdown_server(0, 0);
        sleep(ms(500)).await;
        cfg.leave(1).await;
        sleep(Duration::from_secs(1)).await;
        done.store(true, Ordering::Relaxed);
        let va = join_all(appenders).await;
        check_all(&cfg, &mut ck, &ka, &va).await;
        cfg.check_linearizable();
        cfg.end();
    });
}
