//! The controller's clerk: Join, Leave, Move and Query, each carried out exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use labrpc::ClientEnd;

use super::common::{
    CTRLER_METHOD, Config, CtrlerError, CtrlerOp, CtrlerReply, Gid, NSHARDS, Request,
};

/// Give up on one call after this long and try another server.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// After asking every server once without success, wait this long before the next round.
const ROUND_PAUSE: Duration = Duration::from_millis(20);

/// A controller client. It remembers the last leader and retries a request (with the same
/// number) across servers until one answers.
pub struct Clerk {
    servers: Vec<ClientEnd>,
    client_id: u64,
    seq: u64,
    leader: usize,
}

impl Clerk {
    /// A clerk talking to these controller replicas. `client_id` must be unique among the
    /// clerks that Join, Leave or Move (queries change nothing, so any id will do for them).
    pub fn new(servers: Vec<ClientEnd>, client_id: u64) -> Clerk {
        Clerk {
            servers,
            client_id,
            seq: 0,
            leader: 0,
        }
    }

    /// Configuration `num`, or the latest one for `None` (or a number past the latest).
    pub async fn query(&mut self, num: Option<u64>) -> Config {
        self.run(Request::Query(num)).await.unwrap_or_default()
    }

    /// Adds groups (gid -> server names) and rebalances.
    pub async fn join(&mut self, groups: BTreeMap<Gid, Vec<String>>) {
        self.run(Request::Join(groups)).await;
    }

    /// Removes groups and rebalances their shards over the others.
    pub async fn leave(&mut self, gids: Vec<Gid>) {
        self.run(Request::Leave(gids)).await;
    }

    /// Assigns `shard` to `gid`. Fails only for a shard that does not exist.
    pub async fn move_shard(&mut self, shard: usize, gid: Gid) -> Result<(), CtrlerError> {
        if shard >= NSHARDS {
            return Err(CtrlerError::BadShard);
        }
        self.run(Request::Move { shard, gid }).await;
        Ok(())
    }

    async fn run(&mut self, request: Request) -> Option<Config> {
        self.seq += 1;
        let op = CtrlerOp {
            client_id: self.client_id,
            seq: self.seq,
            request,
        };
        let n = self.servers.len().max(1);
        let mut failures = 0usize;
        loop {
            if let Some(end) = self.servers.get(self.leader) {
                let call = end.call::<CtrlerOp, CtrlerReply>(CTRLER_METHOD, &op);
                match tokio::time::timeout(CALL_TIMEOUT, call).await {
                    Ok(Ok(Ok(config))) => return config,
                    // The request was valid but could not be carried out: retrying is useless.
                    Ok(Ok(Err(CtrlerError::BadShard))) => return None,
                    _ => {}
                }
            }
            self.leader = (self.leader + 1) % n;
            failures += 1;
            if failures.is_multiple_of(n) {
                tokio::time::sleep(ROUND_PAUSE).await;
            }
        }
    }
}
