//! One node process: a state machine replicated by the `rsm` layer on Raft, with a disk
//! write-ahead log, serving Raft peers and clients over TCP. [`run_node`] runs any
//! [`StateMachine`]; [`run_kv_node`] is the KV service's node.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use futures::{StreamExt, future};
use kvraft::Store;
use labrpc::TaskGroup;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rsm::{Rsm, RsmOptions, Session, StateMachine};
use tarpc::context::Context;
use tarpc::server::BaseChannel;
use tarpc::server::incoming::{Incoming, spawn_incoming};
use tarpc::tokio_serde::formats::Bincode;
use tracing::info;

use crate::rpc::{NodeStatus, RaftKv, SubmitFailure, WrongCluster};
use crate::storage::{self, DiskStorage};
use crate::transport::{MAX_FRAME, TcpTransport};

/// How to run one node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's index in `peers`.
    pub id: u64,
    /// Where to accept connections (peers and clients).
    pub listen: SocketAddr,
    /// Every node's address, this one's included, in id order.
    pub peers: Vec<SocketAddr>,
    pub data_dir: PathBuf,
    /// The cluster id to adopt if the data directory has none yet.
    pub cluster_id: Option<u64>,
    /// Snapshot once the write-ahead log reaches this many bytes.
    pub maxraftstate: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node id {id} is not an index into the {n} peers")]
    BadId { id: u64, n: usize },
    #[error(
        "{dir} has no cluster id: start nodes with `raftlab cluster start`, or pass --cluster-id"
    )]
    NoClusterId { dir: PathBuf },
    #[error("{dir} belongs to cluster {stored:016x}, not {given:016x}")]
    ClusterMismatch {
        dir: PathBuf,
        stored: u64,
        given: u64,
    },
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error("cannot start the service: {0}")]
    Start(#[from] rsm::StartError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The cluster id kept in `dir`, adopting `given` if there is none yet.
pub fn resolve_cluster_id(dir: &Path, given: Option<u64>) -> Result<u64, NodeError> {
    match (storage::read_cluster_id(dir)?, given) {
        (Some(stored), Some(given)) if stored != given => Err(NodeError::ClusterMismatch {
            dir: dir.to_owned(),
            stored,
            given,
        }),
        (Some(stored), _) => Ok(stored),
        (None, Some(given)) => {
            storage::write_cluster_id(dir, given)?;
            Ok(given)
        }
        (None, None) => Err(NodeError::NoClusterId {
            dir: dir.to_owned(),
        }),
    }
}

/// Serves one node of the KV service until the process is killed.
pub async fn run_kv_node(cfg: NodeConfig) -> Result<(), NodeError> {
    run_node(cfg, Store::default()).await
}

/// Serves one node of `machine` until the process is killed. The machine starts from the
/// node's last snapshot, if it has one.
pub async fn run_node<M: StateMachine>(cfg: NodeConfig, machine: M) -> Result<(), NodeError> {
    let n = cfg.peers.len();
    if cfg.id as usize >= n {
        return Err(NodeError::BadId { id: cfg.id, n });
    }
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        NodeError::Storage(storage::StorageError::Io {
            path: cfg.data_dir.clone(),
            source: e,
        })
    })?;
    let cluster = resolve_cluster_id(&cfg.data_dir, cfg.cluster_id)?;
    let disk = DiskStorage::open(&cfg.data_dir)?;
    let wal_path = cfg.data_dir.join("wal");
    let wal_size = move || std::fs::metadata(&wal_path).map_or(0, |m| m.len() as usize);
    let transport = TcpTransport::new(cluster, &cfg.peers);
    let tasks = TaskGroup::new();
    let rsm = Rsm::start_with(
        format!("node-{}", cfg.id),
        transport,
        disk,
        cfg.id as usize,
        n,
        wal_size.clone(),
        RsmOptions {
            maxraftstate: cfg.maxraftstate,
            raft: raft::Options {
                coalesce: true,
                ..raft::Options::default()
            },
            ..RsmOptions::default()
        },
        machine,
        ChaCha8Rng::seed_from_u64(labrpc::sim::fresh_seed()),
        &tasks,
    )?;
    let mut listener = tarpc::serde_transport::tcp::listen(cfg.listen, Bincode::default)
        .await
        .map_err(|source| NodeError::Listen {
            addr: cfg.listen,
            source,
        })?;
    listener.config_mut().max_frame_length(MAX_FRAME);
    info!(
        node = cfg.id,
        "node {} of cluster {cluster:016x} listening on {}",
        cfg.id,
        listener.local_addr()
    );
    let server = NodeServer {
        cluster,
        id: cfg.id,
        rsm,
        wal_size: std::sync::Arc::new(wal_size),
    };
    // Connections that send garbage fail to decode and are closed by tarpc; the rest go on.
    let channels = listener
        .filter_map(|conn| future::ready(conn.ok()))
        .map(BaseChannel::with_defaults);
    spawn_incoming(channels.execute(server.serve())).await;
    Ok(())
}

struct NodeServer<M: StateMachine> {
    cluster: u64,
    id: u64,
    rsm: Rsm<M>,
    wal_size: std::sync::Arc<dyn Fn() -> usize + Send + Sync>,
}

impl<M: StateMachine> Clone for NodeServer<M> {
    fn clone(&self) -> Self {
        NodeServer {
            cluster: self.cluster,
            id: self.id,
            rsm: self.rsm.clone(),
            wal_size: self.wal_size.clone(),
        }
    }
}

impl<M: StateMachine> NodeServer<M> {
    fn check(&self, got: u64) -> Result<(), WrongCluster> {
        if got == self.cluster {
            Ok(())
        } else {
            Err(WrongCluster {
                expected: self.cluster,
                got,
            })
        }
    }
}

impl<M: StateMachine> RaftKv for NodeServer<M> {
    async fn cluster_id(self, _: Context) -> u64 {
        self.cluster
    }

    async fn step(
        self,
        _: Context,
        cluster: u64,
        env: raft::Envelope,
    ) -> Result<Option<raft::Envelope>, WrongCluster> {
        self.check(cluster)?;
        Ok(self.rsm.raft().step_request(env).await)
    }

    async fn submit(
        self,
        _: Context,
        cluster: u64,
        session: Option<Session>,
        command: Vec<u8>,
    ) -> Result<Result<Vec<u8>, SubmitFailure>, WrongCluster> {
        self.check(cluster)?;
        let command: M::Command = match postcard::from_bytes(&command) {
            Ok(c) => c,
            Err(e) => return Ok(Err(SubmitFailure::BadCommand(e.to_string()))),
        };
        let outcome = match session {
            Some(s) => self.rsm.submit_as(s, command).await,
            None => self.rsm.submit(command).await,
        };
        Ok(match outcome {
            Ok(output) => postcard::to_stdvec(&output)
                .map_err(|e| SubmitFailure::BadCommand(format!("cannot encode the output: {e}"))),
            Err(e) => Err(SubmitFailure::Retry(e)),
        })
    }

    async fn status(self, _: Context, cluster: u64) -> Result<NodeStatus, WrongCluster> {
        self.check(cluster)?;
        let s = self.rsm.raft().status();
        Ok(NodeStatus {
            id: self.id,
            pid: std::process::id(),
            role: format!("{:?}", s.role).to_lowercase(),
            term: s.term.0,
            leader: s.leader.map(|l| l.0),
            commit: s.commit.0,
            applied: s.applied.0,
            last_index: s.last_index.0,
            snapshot_index: s.snapshot_index.0,
            log_bytes: (self.wal_size)() as u64,
        })
    }
}
