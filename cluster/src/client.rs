//! Clients of a real cluster: the lab clerk's protocol (find the leader, retry with the same
//! session number until some server answers, so each command takes effect exactly once) over
//! TCP, with an overall deadline. [`Client`] submits any state machine's commands and reads
//! without log entries; [`TcpClerk`] is the KV service's clerk on it (Get is such a read).

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

use kvraft::OpKind;
use kvraft::common::KvCommand;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rsm::Session;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tarpc::client::RpcError;

use crate::rpc::{RaftKvClient, SubmitFailure, WrongCluster};
use crate::transport::{connect, ctx};

/// How long one call may take before the clerk gives up on its answer (a leader waits up to
/// half a second for its entry to commit before answering "timeout").
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);
/// Pause after every server refused once (none is the leader yet: an election is under way).
const ROUND_PAUSE: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum ClerkError {
    #[error("no server answered the operation within {0:?} (is a majority of the cluster up?)")]
    Timeout(Duration),
    #[error("none of the servers {0:?} could be reached")]
    Unreachable(Vec<SocketAddr>),
    #[error("the servers belong to different clusters ({0:016x} and {1:016x})")]
    MixedClusters(u64, u64),
    #[error("the cluster refused the command: {0}")]
    BadCommand(String),
    #[error("cannot encode the command or decode the output: {0}")]
    Codec(String),
}

/// How a client moves on from a server that does not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// How long the client waits for one server before it also asks the next one (a hedged
    /// retry: the first answer wins, and the session number keeps a command exactly-once).
    /// The default, 300 ms, is the nodes' shortest election timeout: a leader that has not
    /// answered by then may be paused or cut off, and its followers are about to elect another.
    /// A healthy leader answers in a few milliseconds.
    pub attempt_timeout: Duration,
    /// How long a server that let an attempt time out is asked only when no other server is
    /// free (and its hints ignored): a paused or isolated leader is not waited on again each
    /// round while the others elect a new one.
    pub suspect_for: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            attempt_timeout: Duration::from_millis(300),
            suspect_for: Duration::from_millis(1000),
        }
    }
}

/// A client of a running cluster, for any state machine: commands in, outputs out.
pub struct Client {
    servers: Vec<SocketAddr>,
    conns: Vec<Option<RaftKvClient>>,
    /// Until when each server is suspected of not answering.
    suspect_until: Vec<Option<Instant>>,
    options: ClientOptions,
    cluster: Option<u64>,
    client_id: u64,
    seq: u64,
    leader: usize,
}

impl Client {
    /// A client with a random client id.
    pub fn new(servers: Vec<SocketAddr>) -> Client {
        let client_id = ChaCha8Rng::seed_from_u64(labrpc::sim::fresh_seed()).next_u64();
        Client::with_id(servers, client_id)
    }

    pub fn with_id(servers: Vec<SocketAddr>, client_id: u64) -> Client {
        let n = servers.len();
        Client {
            servers,
            conns: vec![None; n],
            suspect_until: vec![None; n],
            options: ClientOptions::default(),
            cluster: None,
            client_id,
            seq: 0,
            leader: 0,
        }
    }

    /// The same client with other retry settings.
    pub fn with_options(mut self, options: ClientOptions) -> Client {
        self.options = options;
        self
    }

    async fn client(&mut self, i: usize) -> Option<RaftKvClient> {
        if self.conns[i].is_none() {
            self.conns[i] = connect(self.servers[i]).await;
        }
        self.conns[i].clone()
    }

    /// Learns the cluster id from the first server that answers.
    async fn cluster(&mut self) -> Result<u64, ClerkError> {
        if let Some(c) = self.cluster {
            return Ok(c);
        }
        for i in 0..self.servers.len() {
            if let Some(c) = self.client(i).await
                && let Ok(Ok(id)) =
                    tokio::time::timeout(self.options.attempt_timeout, c.cluster_id(ctx())).await
            {
                self.cluster = Some(id);
                return Ok(id);
            }
            self.conns[i] = None;
        }
        Err(ClerkError::Unreachable(self.servers.clone()))
    }

    /// Submits `command` exactly once (a new session number; retried with the same number
    /// until a server answers or `deadline` passes) and returns the machine's output.
    pub async fn submit<C: Serialize, O: DeserializeOwned>(
        &mut self,
        command: &C,
        deadline: Duration,
    ) -> Result<O, ClerkError> {
        let bytes = postcard::to_stdvec(command).map_err(|e| ClerkError::Codec(e.to_string()))?;
        self.seq += 1;
        let session = Session {
            client: self.client_id,
            seq: self.seq,
        };
        let out = self
            .call(deadline, |c, cluster| {
                let bytes = bytes.clone();
                async move { c.submit(ctx(), cluster, Some(session), bytes).await }
            })
            .await?;
        postcard::from_bytes(&out).map_err(|e| ClerkError::Codec(e.to_string()))
    }

    /// Reads with `command` (a command the machine answers without changing its state, e.g.
    /// the KV service's Get) with no log entry: the leader confirms it still leads (ReadIndex)
    /// and answers once it has applied everything committed before. Retried on the next
    /// server until one answers or `deadline` passes (a read needs no session: retrying it is
    /// harmless).
    pub async fn read<C: Serialize, O: DeserializeOwned>(
        &mut self,
        command: &C,
        deadline: Duration,
    ) -> Result<O, ClerkError> {
        let bytes = postcard::to_stdvec(command).map_err(|e| ClerkError::Codec(e.to_string()))?;
        let out = self
            .call(deadline, |c, cluster| {
                let bytes = bytes.clone();
                async move { c.read(ctx(), cluster, bytes).await }
            })
            .await?;
        postcard::from_bytes(&out).map_err(|e| ClerkError::Codec(e.to_string()))
    }

    /// The server to ask next: `hint` (a follower's word for who leads) if it is free and not
    /// suspected, else the first free unsuspected server after `after`, else the first free
    /// one (a suspect, when nobody else is left).
    fn pick(
        &self,
        hint: Option<usize>,
        after: usize,
        busy: &[bool],
        now: Instant,
    ) -> Option<usize> {
        let n = self.servers.len();
        let trusted = |i: usize| !busy[i] && self.suspect_until[i].is_none_or(|t| t <= now);
        if let Some(h) = hint.filter(|&h| trusted(h)) {
            return Some(h);
        }
        let order = (1..=n).map(|k| (after + k) % n);
        order
            .clone()
            .find(|&i| trusted(i))
            .or_else(|| order.into_iter().find(|&i| !busy[i]))
    }

    /// Makes `call` on the server believed to lead; if it refuses, on the one it names or the
    /// next; if it has not answered within the attempt timeout, on the next one as well
    /// (hedged), until one answers or `deadline` passes.
    async fn call<F, Fut>(&mut self, deadline: Duration, call: F) -> Result<Vec<u8>, ClerkError>
    where
        F: Fn(RaftKvClient, u64) -> Fut,
        Fut: Future<Output = Result<Answer, RpcError>>,
    {
        let work = async {
            let cluster = self.cluster().await?;
            let n = self.servers.len().max(1);
            let mut busy = vec![false; n];
            let mut attempts = FuturesUnordered::new();
            // The next server to ask, and when; the last one asked and when to hedge it.
            let mut ask: Option<(usize, Instant)> = Some((self.leader % n, Instant::now()));
            let mut last = self.leader % n;
            let mut hedge_at = Instant::now() + self.options.attempt_timeout;
            let mut refusals = 0usize;
            loop {
                if let Some((i, at)) = ask
                    && at <= Instant::now()
                {
                    ask = None;
                    if let Some(c) = self.client(i).await {
                        busy[i] = true;
                        last = i;
                        hedge_at = Instant::now() + self.options.attempt_timeout;
                        let attempt = call(c, cluster);
                        attempts.push(async move {
                            (i, tokio::time::timeout(CALL_TIMEOUT, attempt).await)
                        });
                    } else {
                        // Unreachable (refused, or no answer to the connect): as a refusal.
                        refusals += 1;
                        ask = self.next_ask(None, i, &busy, refusals);
                        continue;
                    }
                }
                let wake = match ask {
                    Some((_, at)) => at,
                    None if attempts.is_empty() => Instant::now() + ROUND_PAUSE,
                    None => hedge_at,
                };
                tokio::select! {
                    biased;
                    Some((i, answer)) = attempts.next(), if !attempts.is_empty() => {
                        busy[i] = false;
                        let hint = match answer {
                            Ok(Ok(Ok(Ok(out)))) => {
                                self.leader = i;
                                self.suspect_until[i] = None;
                                return Ok(out);
                            }
                            Ok(Ok(Ok(Err(SubmitFailure::BadCommand(why))))) => {
                                return Err(ClerkError::BadCommand(why));
                            }
                            Ok(Ok(Err(wrong))) => {
                                return Err(ClerkError::MixedClusters(wrong.expected, wrong.got));
                            }
                            Ok(Ok(Ok(Err(SubmitFailure::NotLeader { leader })))) => {
                                self.suspect_until[i] = None;
                                leader.and_then(|a| self.servers.iter().position(|&s| s == a))
                            }
                            // Answered, but lost or timed out: its leader may have lost office.
                            Ok(Ok(Ok(Err(SubmitFailure::Retry(_))))) => None,
                            Ok(Err(_)) => {
                                self.conns[i] = None; // the connection broke
                                None
                            }
                            Err(_) => {
                                self.suspect_until[i] = Some(Instant::now() + self.options.suspect_for);
                                None
                            }
                        };
                        if ask.is_none() {
                            refusals += 1;
                            ask = self.next_ask(hint, i, &busy, refusals);
                        }
                    }
                    _ = tokio::time::sleep_until(wake) => {
                        if ask.is_none() {
                            let now = Instant::now();
                            if !attempts.is_empty() {
                                // The last server asked is slow: suspect it, ask another too.
                                self.suspect_until[last] = Some(now + self.options.suspect_for);
                                hedge_at = now + self.options.attempt_timeout;
                            }
                            ask = self.pick(None, last, &busy, now).map(|i| (i, now));
                        }
                    }
                }
            }
        };
        match tokio::time::timeout(deadline, work).await {
            Ok(r) => r,
            Err(_) => Err(ClerkError::Timeout(deadline)),
        }
    }

    /// Whom to ask after server `from` refused or failed: at once, unless every server has
    /// refused since the last pause (no leader yet), then after a short pause.
    fn next_ask(
        &self,
        hint: Option<usize>,
        from: usize,
        busy: &[bool],
        refusals: usize,
    ) -> Option<(usize, Instant)> {
        let now = Instant::now();
        let at = if refusals.is_multiple_of(self.servers.len().max(1)) {
            now + ROUND_PAUSE
        } else {
            now
        };
        self.pick(hint, from, busy, now).map(|i| (i, at))
    }
}

/// What a node answers to `submit` and `read`.
type Answer = Result<Result<Vec<u8>, SubmitFailure>, WrongCluster>;

/// The KV service's clerk over TCP.
pub struct TcpClerk {
    client: Client,
}

impl TcpClerk {
    /// A clerk with a random client id.
    pub fn new(servers: Vec<SocketAddr>) -> TcpClerk {
        TcpClerk {
            client: Client::new(servers),
        }
    }

    pub fn with_id(servers: Vec<SocketAddr>, client_id: u64) -> TcpClerk {
        TcpClerk {
            client: Client::with_id(servers, client_id),
        }
    }

    /// A linearizable Get with no log entry (the node's `read` RPC, ReadIndex).
    pub async fn get(&mut self, key: &str, deadline: Duration) -> Result<String, ClerkError> {
        let command = KvCommand {
            kind: OpKind::Get,
            key: key.to_owned(),
            value: String::new(),
        };
        self.client.read(&command, deadline).await
    }

    /// A Get through the log, as the labs' clerk does it (one log entry per Get).
    pub async fn get_logged(
        &mut self,
        key: &str,
        deadline: Duration,
    ) -> Result<String, ClerkError> {
        self.run(OpKind::Get, key, "", deadline).await
    }

    pub async fn put(
        &mut self,
        key: &str,
        value: &str,
        deadline: Duration,
    ) -> Result<(), ClerkError> {
        self.run(OpKind::Put, key, value, deadline).await.map(drop)
    }

    pub async fn append(
        &mut self,
        key: &str,
        value: &str,
        deadline: Duration,
    ) -> Result<(), ClerkError> {
        self.run(OpKind::Append, key, value, deadline)
            .await
            .map(drop)
    }

    async fn run(
        &mut self,
        kind: OpKind,
        key: &str,
        value: &str,
        deadline: Duration,
    ) -> Result<String, ClerkError> {
        let command = KvCommand {
            kind,
            key: key.to_owned(),
            value: value.to_owned(),
        };
        self.client.submit(&command, deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(n: u16) -> Client {
        let servers = (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 7000 + i)))
            .collect();
        Client::with_id(servers, 1)
    }

    #[test]
    fn a_hinted_leader_is_asked_next_unless_busy_or_suspected() {
        let mut c = client(3);
        let now = Instant::now();
        let idle = [false; 3];
        assert_eq!(c.pick(Some(2), 0, &idle, now), Some(2));
        assert_eq!(c.pick(Some(2), 0, &[false, false, true], now), Some(1));
        c.suspect_until[2] = Some(now + Duration::from_secs(1));
        assert_eq!(c.pick(Some(2), 0, &idle, now), Some(1), "a suspect's hint");
        assert_eq!(
            c.pick(Some(2), 0, &idle, now + Duration::from_secs(2)),
            Some(2),
            "the suspicion ended"
        );
    }

    #[test]
    fn servers_are_tried_in_turn_and_a_suspect_only_when_no_one_else_is_free() {
        let mut c = client(3);
        let now = Instant::now();
        assert_eq!(c.pick(None, 0, &[false; 3], now), Some(1));
        assert_eq!(c.pick(None, 2, &[false; 3], now), Some(0));
        c.suspect_until[1] = Some(now + Duration::from_secs(1));
        assert_eq!(c.pick(None, 0, &[false; 3], now), Some(2), "1 is suspected");
        assert_eq!(
            c.pick(None, 0, &[true, false, true], now),
            Some(1),
            "only the suspect is free"
        );
        assert_eq!(c.pick(None, 0, &[true; 3], now), None, "all busy");
    }
}
