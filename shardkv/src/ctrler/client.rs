//! The controller's clerk: Join, Leave, Move and Query, each carried out exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use labrpc::ClientEnd;
use rsm::Retry;

use super::common::{
    CTRLER_METHOD, Config, CtrlerError, CtrlerOp, CtrlerReply, Gid, NSHARDS, Request,
};

/// Give up on one call after this long and try another server.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// A controller client: the `rsm` layer's clerk with the controller's four requests.
pub struct Clerk {
    clerk: rsm::Clerk,
}

impl Clerk {
    /// A clerk talking to these controller replicas. `client_id` must be unique among the
    /// clerks that Join, Leave or Move (queries change nothing, so any id will do for them).
    pub fn new(servers: Vec<ClientEnd>, client_id: u64) -> Clerk {
        Clerk {
            clerk: rsm::Clerk::new(servers, client_id, CALL_TIMEOUT),
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
        let session = self.clerk.next_session();
        let op = CtrlerOp {
            client_id: session.client,
            seq: session.seq,
            request,
        };
        self.clerk
            .call(CTRLER_METHOD, &op, |reply: CtrlerReply| match reply {
                Ok(config) => Retry::Done(config),
                // The request was valid but could not be carried out: retrying is useless.
                Err(CtrlerError::BadShard) => Retry::Done(None),
                Err(_) => Retry::Again,
            })
            .await
    }
}
