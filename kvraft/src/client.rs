//! The clerk: a client of the KV service with exactly-once semantics.

use std::time::Duration;

use labrpc::ClientEnd;

use crate::common::{COMMAND_METHOD, Op, OpKind, Reply};

/// Give up on one call after this long and try another server. The network reports lost
/// requests itself; this only bounds a call to a server that stopped answering.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// After asking every server once without success, wait this long before the next round
/// (an election is probably in progress).
const ROUND_PAUSE: Duration = Duration::from_millis(20);

/// A client. It remembers the last leader, and retries an operation (with the same sequence
/// number) across servers, leader changes and lost replies until one answers.
pub struct Clerk {
    servers: Vec<ClientEnd>,
    client_id: u64,
    seq: u64,
    leader: usize,
}

impl Clerk {
    /// A clerk talking to these servers. `client_id` must be unique among all clerks of the
    /// service (the tester hands them out; a real client would draw a random one).
    pub fn new(servers: Vec<ClientEnd>, client_id: u64) -> Clerk {
        Clerk {
            servers,
            client_id,
            seq: 0,
            leader: 0,
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

    async fn run(&mut self, kind: OpKind, key: &str, value: &str) -> String {
        // SOLUTION BEGIN: run: number the operation, then try servers (starting with the last leader) until one answers it; pause after a full round of failures
        self.seq += 1;
        let op = Op {
            client_id: self.client_id,
            seq: self.seq,
            kind,
            key: key.to_owned(),
            value: value.to_owned(),
        };
        let n = self.servers.len().max(1);
        let mut failures = 0usize;
        loop {
            if let Some(end) = self.servers.get(self.leader) {
                let call = end.call::<Op, Reply>(COMMAND_METHOD, &op);
                if let Ok(Ok(Ok(value))) = tokio::time::timeout(CALL_TIMEOUT, call).await {
                    return value;
                }
            }
            self.leader = (self.leader + 1) % n;
            failures += 1;
            if failures.is_multiple_of(n) {
                tokio::time::sleep(ROUND_PAUSE).await;
            }
        }
        // SOLUTION END
    }
}
