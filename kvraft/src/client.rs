//! The clerk: a client of the KV service with exactly-once semantics.

use std::time::Duration;

use labrpc::ClientEnd;
use rsm::Retry;

use crate::common::{COMMAND_METHOD, Op, OpKind, Reply};

/// Give up on one call after this long and try another server.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// A KV client: the `rsm` layer's clerk, with the service's three operations.
pub struct Clerk {
    clerk: rsm::Clerk,
}

impl Clerk {
    /// A clerk talking to these servers. `client_id` must be unique among clerks.
    pub fn new(servers: Vec<ClientEnd>, client_id: u64) -> Clerk {
        Clerk {
            clerk: rsm::Clerk::new(servers, client_id, CALL_TIMEOUT),
        }
    }

    pub fn client_id(&self) -> u64 {
        self.clerk.client_id()
    }

    /// The value of `key` ("" if none).
    pub async fn get(&mut self, key: &str) -> String {
        self.run(OpKind::Get, key, "").await
    }

    /// Sets `key` to `value`.
    pub async fn put(&mut self, key: &str, value: &str) {
        self.run(OpKind::Put, key, value).await;
    }

    /// Appends `value` to `key`'s value.
    pub async fn append(&mut self, key: &str, value: &str) {
        self.run(OpKind::Append, key, value).await;
    }

    async fn run(&mut self, kind: OpKind, key: &str, value: &str) -> String {
        let session = self.clerk.next_session();
        let op = Op {
            client_id: session.client,
            seq: session.seq,
            kind,
            key: key.to_owned(),
            value: value.to_owned(),
        };
        self.clerk
            .call(COMMAND_METHOD, &op, |reply: Reply| match reply {
                Ok(value) => Retry::Done(value),
                Err(_) => Retry::Again,
            })
            .await
    }
}
