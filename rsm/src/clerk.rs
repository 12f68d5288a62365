//! The one client of every replicated service: numbers requests, finds the leader, retries.

use std::time::Duration;

use labrpc::ClientEnd;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::session::Session;

/// After asking every server once without an answer, wait this long before the next round.
const ROUND_PAUSE: Duration = Duration::from_millis(20);

/// What a reply means to the clerk.
pub enum Retry<T> {
    /// The request is carried out (or can never be): this is the answer.
    Done(T),
    /// Not here (not the leader, timed out, lost its place): ask the next server.
    Again,
}

/// A client of one replicated service. It remembers the last leader, and retries a request
/// (with the same number, so the service applies it once) across servers until one answers.
pub struct Clerk {
    servers: Vec<ClientEnd>,
    client_id: u64,
    seq: u64,
    leader: usize,
    call_timeout: Duration,
}

impl Clerk {
    /// A clerk of these replicas. `client_id` must be unique among the service's clients;
    /// one call that takes longer than `call_timeout` is given up and tried elsewhere.
    pub fn new(servers: Vec<ClientEnd>, client_id: u64, call_timeout: Duration) -> Clerk {
        Clerk {
            servers,
            client_id,
            seq: 0,
            leader: 0,
            call_timeout,
        }
    }

    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// The session of the next request: this client, the next number.
    pub fn next_session(&mut self) -> Session {
        self.seq += 1;
        Session {
            client: self.client_id,
            seq: self.seq,
        }
    }

    /// Sends `request` to `method`, starting with the last known leader and going round the
    /// servers, until `judge` takes a reply as the answer.
    pub async fn call<Req, Rep, T>(
        &mut self,
        method: &str,
        request: &Req,
        judge: impl Fn(Rep) -> Retry<T>,
    ) -> T
    where
        Req: Serialize,
        Rep: DeserializeOwned,
    {
        // SOLUTION BEGIN: call: send the request to the last known leader; on no answer (a failed or timed-out call, or a reply judged Again) try the next server, pausing after each full round; remember the server that answered
        let n = self.servers.len().max(1);
        let mut failures = 0usize;
        loop {
            if let Some(end) = self.servers.get(self.leader) {
                let call = end.call::<Req, Rep>(method, request);
                if let Ok(Ok(reply)) = tokio::time::timeout(self.call_timeout, call).await
                    && let Retry::Done(answer) = judge(reply)
                {
                    return answer;
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
