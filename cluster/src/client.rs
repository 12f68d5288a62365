//! Clients of a real cluster: the lab clerk's protocol (find the leader, retry with the same
//! session number until some server answers, so each command takes effect exactly once) over
//! TCP, with an overall deadline. [`Client`] submits any state machine's commands and reads
//! without log entries; [`TcpClerk`] is the KV service's clerk on it (Get is such a read).

use std::net::SocketAddr;
use std::time::Duration;

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

/// How long one call may take before the clerk tries another server (a leader waits up to
/// half a second for its entry to commit before answering "timeout").
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);
/// Pause after asking every server once without success.
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

/// A client of a running cluster, for any state machine: commands in, outputs out.
pub struct Client {
    servers: Vec<SocketAddr>,
    conns: Vec<Option<RaftKvClient>>,
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
            cluster: None,
            client_id,
            seq: 0,
            leader: 0,
        }
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
                && let Ok(Ok(id)) = tokio::time::timeout(CALL_TIMEOUT, c.cluster_id(ctx())).await
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

    /// Makes `call` on the server believed to lead, then on the next ones in turn, until one
    /// answers or `deadline` passes.
    async fn call<F, Fut>(&mut self, deadline: Duration, call: F) -> Result<Vec<u8>, ClerkError>
    where
        F: Fn(RaftKvClient, u64) -> Fut,
        Fut: Future<Output = Result<Answer, RpcError>>,
    {
        let work = async {
            let cluster = self.cluster().await?;
            let n = self.servers.len().max(1);
            let mut failures = 0usize;
            loop {
                let i = self.leader;
                if let Some(c) = self.client(i).await {
                    match tokio::time::timeout(CALL_TIMEOUT, call(c, cluster)).await {
                        Ok(Ok(Ok(Ok(out)))) => return Ok(out),
                        Ok(Ok(Ok(Err(SubmitFailure::BadCommand(why))))) => {
                            return Err(ClerkError::BadCommand(why));
                        }
                        Ok(Ok(Err(wrong))) => {
                            return Err(ClerkError::MixedClusters(wrong.expected, wrong.got));
                        }
                        Ok(Err(_)) => self.conns[i] = None, // connection broke
                        _ => {}                             // not the leader, lost, timeout
                    }
                }
                self.leader = (self.leader + 1) % n;
                failures += 1;
                if failures.is_multiple_of(n) {
                    tokio::time::sleep(ROUND_PAUSE).await;
                }
            }
        };
        match tokio::time::timeout(deadline, work).await {
            Ok(r) => r,
            Err(_) => Err(ClerkError::Timeout(deadline)),
        }
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
