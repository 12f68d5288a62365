//! The clerk: routes each operation to the group that serves its key's shard.

use std::collections::BTreeMap;
use std::time::Duration;

use labrpc::ClientEnd;

use crate::common::{COMMAND_METHOD, KvError, Op, OpKind, Reply, key2shard};
use crate::ctrler::{self, Config, Gid};
use crate::server::MakeEnd;

/// Give up on one call after this long and try another server of the group.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// After a wrong-group answer, or a round of the group's servers without an answer, wait this
/// long and ask the controller for the latest configuration (the original's 100 ms).
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// A client of the sharded service. It caches the configuration, refreshes it when a group says
/// it does not serve a key, and numbers its operations so that each takes effect exactly once,
/// even when retried at another group after its shard moved.
pub struct Clerk {
    ctrler: ctrler::Clerk,
    make_end: MakeEnd,
    ends: BTreeMap<String, ClientEnd>,
    config: Config,
    /// The server that last answered, per group.
    leaders: BTreeMap<Gid, usize>,
    client_id: u64,
    seq: u64,
}

impl Clerk {
    /// The lab's `MakeClerk`: a clerk that reads configurations from the controller replicas
    /// `ctrlers` and reaches group servers through `make_end`. `client_id` must be unique among
    /// all clerks of the service (the tester hands them out).
    pub fn new(ctrlers: Vec<ClientEnd>, make_end: MakeEnd, client_id: u64) -> Clerk {
        Clerk {
            ctrler: ctrler::Clerk::new(ctrlers, client_id),
            make_end,
            ends: BTreeMap::new(),
            config: Config::default(),
            leaders: BTreeMap::new(),
            client_id,
            seq: 0,
        }
    }

    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// The current value of `key` ("" if it has none).
    pub async fn get(&mut self, key: &str) -> String {
        self.run(OpKind::Get, key, "").await
    }

    pub async fn put(&mut self, key: &str, value: &str) {
        self.run(OpKind::Put, key, value).await;
    }

    pub async fn append(&mut self, key: &str, value: &str) {
        self.run(OpKind::Append, key, value).await;
    }

    fn end(&mut self, name: &str) -> ClientEnd {
        let make_end = &self.make_end;
        self.ends
            .entry(name.to_owned())
            .or_insert_with(|| make_end(name))
            .clone()
    }

    async fn run(&mut self, kind: OpKind, key: &str, value: &str) -> String {
        self.seq += 1;
        let op = Op {
            client_id: self.client_id,
            seq: self.seq,
            kind,
            key: key.to_owned(),
            value: value.to_owned(),
        };
        let shard = key2shard(key);
        if self.config.num == 0 {
            self.config = self.ctrler.query(None).await;
        }
        loop {
            let gid = self.config.shards[shard];
            let servers = self.config.groups.get(&gid).cloned().unwrap_or_default();
            let first = self.leaders.get(&gid).copied().unwrap_or(0);
            for k in 0..servers.len() {
                let si = (first + k) % servers.len();
                let end = self.end(&servers[si]);
                let call = end.call::<Op, Reply>(COMMAND_METHOD, &op);
                match tokio::time::timeout(CALL_TIMEOUT, call).await {
                    Ok(Ok(Ok(value))) => {
                        self.leaders.insert(gid, si);
                        return value;
                    }
                    Ok(Ok(Err(KvError::WrongGroup))) => break,
                    _ => {}
                }
            }
            tokio::time::sleep(RETRY_PAUSE).await;
            self.config = self.ctrler.query(None).await;
        }
    }
}
