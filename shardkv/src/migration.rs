//! Following the controller and moving shards between groups.
//!
//! Shards are pulled: the group that gains a shard fetches it from the group that had it, and
//! then tells that group to delete its copy (garbage collection, so a group's persisted state
//! holds only what it serves). Every step that changes state goes through the log
//! ([`crate::state`]); the tasks here only run on the leader and only propose:
//!
//! - the configuration poller, every [`POLL_INTERVAL`]: once every shard is settled, it asks the
//!   controller for the next configuration (configurations are taken one at a time, in order)
//!   and proposes it;
//! - the migrator, every [`MIGRATE_INTERVAL`]: for each group it still needs shards from, it
//!   pulls them ([`PULL_METHOD`]) and proposes their insertion; for each group whose copy it may
//!   now delete, it asks that group to delete it ([`DELETE_METHOD`]) and, once done, proposes
//!   that the shards are plainly served. Each group is handled by its own task, so a group that
//!   is down delays only the shards it holds.
//!
//! A shard is served from the moment it arrives, whatever other shards of the same change are
//! still on their way, and shards the change does not touch are served throughout.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::sleep;

use crate::common::{
    DELETE_METHOD, DeleteArgs, DeleteReply, MigrationError, PULL_METHOD, PullArgs, PullReply,
};
use crate::ctrler;
use crate::server::{Errand, Inner};
use crate::shard::ShardStatus;
use crate::state::{Command, Transfer};
use rsm::SubmitError;

/// How often the leader asks the controller for the next configuration (the lab's ~100 ms).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often the leader looks for shards to pull or copies to delete.
pub const MIGRATE_INTERVAL: Duration = Duration::from_millis(50);
/// Give up on one call to another group after this long.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

pub(crate) fn start(inner: Arc<Inner>, ctrler: ctrler::Clerk) {
    inner.tasks.spawn(poll_configs(inner.clone(), ctrler));
    inner.tasks.spawn(migrate(inner.clone()));
}

/// Proposes `command` without waiting for it (it is re-proposed if it does not commit).
fn propose(inner: &Arc<Inner>, command: Command) {
    let rsm = inner.rsm.clone();
    inner.tasks.spawn(async move {
        let _ = rsm.submit(command).await;
    });
}

async fn poll_configs(inner: Arc<Inner>, mut ctrler: ctrler::Clerk) {
    loop {
        sleep(POLL_INTERVAL).await;
        if !inner.rsm.is_leader() {
            continue;
        }
        if !inner.rsm.leader_caught_up() {
            // Until an entry of its own term commits, a new leader cannot tell what is committed.
            propose(&inner, Command::Noop);
            continue;
        }
        let Some(num) = inner.rsm.read(|s| s.settled().then(|| s.config().num + 1)) else {
            continue;
        };
        let config = ctrler.query(Some(num)).await;
        if config.num == num {
            propose(&inner, Command::Config(config));
        }
    }
}

async fn migrate(inner: Arc<Inner>) {
    loop {
        sleep(MIGRATE_INTERVAL).await;
        if !inner.rsm.leader_caught_up() {
            continue;
        }
        let (pulls, collections) = inner.rsm.read(|s| (s.pulls(), s.collections()));
        for t in pulls {
            if let Some(guard) = inner.claim(Errand::Pull, t.gid) {
                let inner2 = inner.clone();
                inner.tasks.spawn(async move {
                    pull(&inner2, t).await;
                    drop(guard);
                });
            }
        }
        for t in collections {
            if let Some(guard) = inner.claim(Errand::Collect, t.gid) {
                let inner2 = inner.clone();
                inner.tasks.spawn(async move {
                    collect(&inner2, t).await;
                    drop(guard);
                });
            }
        }
    }
}

/// Fetches shards from their previous owner (any of its servers at the configuration will do)
/// and proposes their insertion.
async fn pull(inner: &Arc<Inner>, t: Transfer) {
    let args = PullArgs {
        config_num: t.config_num,
        shards: t.shards,
    };
    for name in &t.servers {
        let end = inner.end(name);
        let call = end.call::<PullArgs, PullReply>(PULL_METHOD, &args);
        if let Ok(Ok(Ok(shards))) = tokio::time::timeout(CALL_TIMEOUT, call).await {
            let _ = inner
                .rsm
                .submit(Command::Insert {
                    config_num: t.config_num,
                    shards,
                })
                .await;
            return;
        }
    }
}

/// Asks the previous owner to delete shards this group has installed; once it has, proposes
/// that they are plainly served.
async fn collect(inner: &Arc<Inner>, t: Transfer) {
    let args = DeleteArgs {
        config_num: t.config_num,
        shards: t.shards,
    };
    for name in &t.servers {
        let end = inner.end(name);
        let call = end.call::<DeleteArgs, DeleteReply>(DELETE_METHOD, &args);
        if let Ok(Ok(Ok(()))) = tokio::time::timeout(CALL_TIMEOUT, call).await {
            let _ = inner
                .rsm
                .submit(Command::Collected {
                    config_num: t.config_num,
                    shards: args.shards,
                })
                .await;
            return;
        }
    }
}

/// Answers a new owner's pull (see [`crate::state::GroupState::pull_reply`]).
pub(crate) fn pull_shards(inner: &Inner, args: &PullArgs) -> PullReply {
    inner
        .rsm
        .read(|s| s.pull_reply(args.config_num, &args.shards))
}

/// Deletes shards the new owner has installed, through the log.
pub(crate) async fn delete_shards(inner: &Inner, args: DeleteArgs) -> DeleteReply {
    let (num, gone) = inner.rsm.read(|s| {
        let gone = args
            .shards
            .iter()
            .all(|&sh| s.status(sh) == ShardStatus::Absent);
        (s.config().num, gone)
    });
    if num > args.config_num || (num == args.config_num && gone) {
        return Ok(()); // already deleted (a group moves on only after deleting)
    }
    if num < args.config_num {
        return Err(MigrationError::NotReady);
    }
    let command = Command::Delete {
        config_num: args.config_num,
        shards: args.shards,
    };
    match inner.rsm.submit(command).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(MigrationError::NotReady),
        Err(SubmitError::Timeout) => Err(MigrationError::Timeout),
        Err(SubmitError::NotLeader | SubmitError::Lost) => Err(MigrationError::WrongLeader),
    }
}
