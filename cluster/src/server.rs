//! One node process: a state machine replicated by the `rsm` layer on Raft, with a disk
//! write-ahead log, serving Raft peers and clients over TCP. [`run_node`] runs any
//! [`StateMachine`]; [`run_kv_node`] is the KV service's node, which answers Get with no log
//! entry (ReadIndex). [`start_node`] returns the started node before serving, for a caller that
//! wants its [`raft::Node`] (to subscribe to its events).
//!
//! Real nodes run with [`Features::production()`]: pre-vote and check-quorum on, reads
//! confirmed by a round of heartbeats.
//!
//! # Membership
//! A node starts in a [`Bootstrap`] configuration: every peer a voter (a new cluster), the
//! first `k` (the nodes a cluster was created with, when others joined later), or none
//! ([`Bootstrap::Join`]: a new node that waits for the leader to add it). The configuration
//! in its log or snapshot, once there is one, overrides it. The nodes' addresses come from
//! `NodeConfig::peers` (node `i` at `peers[i]`) and, for a node that joins later, from the
//! `add_peer` admin call. Each node narrates its configuration in its log (joined, promoted,
//! removed); once its own removal has committed, or on the `retire` admin call, it writes the
//! `removed` marker ([`storage::write_removed`]) and never starts on that directory again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, future};
use kvraft::common::KvCommand;
use kvraft::{OpKind, Store};
use labrpc::TaskGroup;
use raft::NodeId;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rsm::{Rsm, RsmOptions, Session, StateMachine, SubmitError};
use tarpc::context::Context;
use tarpc::server::BaseChannel;
use tarpc::server::incoming::{Incoming, spawn_incoming};
use tracing::info;

pub use raft::Features;

use crate::faults::{FaultInjectionDisabled, FaultTable, Faults};
use crate::rpc::{
    MembershipFailure, MembershipStatus, NodeStatus, PeerContact, RaftKv, SubmitFailure,
    TransferFailure, WrongCluster,
};
use crate::storage::{self, DiskStorage};
use crate::transport::{AddressBook, MAX_FRAME, TcpTransport};

mod membership;
use crate::wire::ServerCodec;
use membership::{change_and_wait, watch_membership};

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
    /// Raft's extensions; real nodes run with [`Features::production()`] (pre-vote and
    /// check-quorum on, no lease reads).
    pub features: Features,
    /// Serve the `set_faults` admin RPC (chaos testing: `raftlab chaos` cuts and slows links
    /// between nodes through it). Off, the node refuses it.
    pub allow_fault_injection: bool,
}

/// The configuration a node starts in, until its log or snapshot holds one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Bootstrap {
    /// Every node of `NodeConfig::peers` is a voter (a new cluster).
    #[default]
    AllPeers,
    /// Nodes `0..k` are the voters: the nodes the cluster was created with; later ones joined.
    Voters(usize),
    /// No configuration: the node never campaigns and waits for a leader to add it (as a
    /// learner) and send it the log or a snapshot. How a node joins a running cluster.
    Join,
}

/// Answers a command that only reads the machine's state, or `None` if the command writes
/// (then it must go through the log with `submit`).
pub type ReadFn<M> = fn(&M, &<M as StateMachine>::Command) -> Option<<M as StateMachine>::Output>;

/// The KV service's reads: Get.
pub fn kv_read(store: &Store, command: &KvCommand) -> Option<String> {
    (command.kind == OpKind::Get).then(|| store.get(&command.key))
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
    #[error(
        "{dir} belongs to a node removed from the cluster ({why}); it must not rejoin: add a new \
         node with `raftlab cluster add-node`, or delete the directory to reuse its place"
    )]
    Removed { dir: PathBuf, why: String },
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
    start_kv_node(cfg).await?.serve().await;
    Ok(())
}

/// Starts one node of the KV service (Get answered by [`kv_read`], with no log entry).
pub async fn start_kv_node(cfg: NodeConfig) -> Result<StartedNode, NodeError> {
    start_node(cfg, Store::default(), Some(kv_read)).await
}

/// [`start_kv_node`] in the given bootstrap configuration.
pub async fn start_kv_node_with(
    cfg: NodeConfig,
    bootstrap: Bootstrap,
) -> Result<StartedNode, NodeError> {
    start_node_with(cfg, bootstrap, Store::default(), Some(kv_read)).await
}

/// Serves one node of `machine` until the process is killed. The machine starts from the
/// node's last snapshot, if it has one. Every command goes through the log.
pub async fn run_node<M: StateMachine>(cfg: NodeConfig, machine: M) -> Result<(), NodeError> {
    start_node(cfg, machine, None).await?.serve().await;
    Ok(())
}

/// A node that runs and listens, and serves its connections once [`StartedNode::serve`] runs.
pub struct StartedNode {
    raft: raft::Node,
    addr: SocketAddr,
    serving: BoxFuture<'static, ()>,
}

impl StartedNode {
    /// The Raft node under the service (to [`raft::Node::subscribe`] to its events).
    pub fn raft(&self) -> &raft::Node {
        &self.raft
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves peers and clients until the process is killed.
    pub async fn serve(self) {
        self.serving.await
    }
}

/// Starts one node of `machine`: storage, Raft, the replicated machine and the listener.
/// With `reads`, the node answers read-only commands on the `read` RPC with no log entry
/// ([`Rsm::read_linearizable`]); without, `read` refuses every command.
pub async fn start_node<M: StateMachine>(
    cfg: NodeConfig,
    machine: M,
    reads: Option<ReadFn<M>>,
) -> Result<StartedNode, NodeError> {
    start_node_with(cfg, Bootstrap::AllPeers, machine, reads).await
}

/// [`start_node`] in the given bootstrap configuration. Refuses a data directory whose node
/// was removed from the cluster ([`NodeError::Removed`]).
pub async fn start_node_with<M: StateMachine>(
    cfg: NodeConfig,
    bootstrap: Bootstrap,
    machine: M,
    reads: Option<ReadFn<M>>,
) -> Result<StartedNode, NodeError> {
    let n = cfg.peers.len();
    if cfg.id as usize >= n {
        return Err(NodeError::BadId { id: cfg.id, n });
    }
    let voters = match bootstrap {
        Bootstrap::AllPeers => n,
        Bootstrap::Voters(k) => k.min(n),
        Bootstrap::Join => 0,
    };
    if let Some(why) = storage::read_removed(&cfg.data_dir)? {
        return Err(NodeError::Removed {
            dir: cfg.data_dir.clone(),
            why,
        });
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
    let faults = Faults::default();
    let transport = TcpTransport::with_faults(cluster, &cfg.peers, faults.clone());
    let book = transport.addresses();
    let tasks = TaskGroup::new();
    let rsm = Rsm::start_with(
        format!("node-{}", cfg.id),
        transport,
        disk,
        cfg.id as usize,
        voters,
        wal_size.clone(),
        RsmOptions {
            maxraftstate: cfg.maxraftstate,
            raft: raft::Options {
                coalesce: true,
                ..raft::Options::default()
            },
            features: cfg.features,
            ..RsmOptions::default()
        },
        machine,
        ChaCha8Rng::seed_from_u64(labrpc::sim::fresh_seed()),
        &tasks,
    )?;
    let mut listener = tarpc::serde_transport::tcp::listen(cfg.listen, ServerCodec::default)
        .await
        .map_err(|source| NodeError::Listen {
            addr: cfg.listen,
            source,
        })?;
    listener.config_mut().max_frame_length(MAX_FRAME);
    let addr = listener.local_addr();
    let f = cfg.features;
    info!(
        node = cfg.id,
        "node {} of cluster {cluster:016x} listening on {addr} (pre-vote {}, check-quorum {}, lease reads {}{})",
        cfg.id,
        on_off(f.pre_vote),
        on_off(f.check_quorum),
        on_off(f.lease_reads && f.check_quorum),
        if cfg.allow_fault_injection {
            ", FAULT INJECTION ALLOWED"
        } else {
            ""
        },
    );
    if bootstrap == Bootstrap::Join && rsm.raft().status().membership.members().is_empty() {
        info!(
            node = cfg.id,
            "node {}: starting with no configuration: waiting for the leader to add me", cfg.id
        );
    }
    let raft = rsm.raft().clone();
    tokio::spawn(watch_membership(
        cfg.id,
        cluster,
        raft.clone(),
        cfg.data_dir.clone(),
    ));
    let server = NodeServer {
        cluster,
        id: cfg.id,
        rsm,
        reads,
        features: cfg.features,
        book,
        data_dir: cfg.data_dir.clone(),
        wal_size: Arc::new(wal_size),
        faults: cfg.allow_fault_injection.then_some(faults),
    };
    // Connections that send garbage fail to decode and are closed by tarpc; the rest go on.
    let channels = listener
        .filter_map(|conn| future::ready(conn.ok()))
        .inspect(|conn| {
            // Replies go out at once (see `transport::connect`).
            let _ = conn.get_ref().set_nodelay(true);
        })
        .map(BaseChannel::with_defaults);
    let serving = spawn_incoming(channels.execute(server.serve())).boxed();
    Ok(StartedNode {
        raft,
        addr,
        serving,
    })
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

struct NodeServer<M: StateMachine> {
    cluster: u64,
    id: u64,
    rsm: Rsm<M>,
    reads: Option<ReadFn<M>>,
    features: Features,
    /// The peers' addresses (shared with the transport).
    book: AddressBook,
    data_dir: PathBuf,
    wal_size: Arc<dyn Fn() -> usize + Send + Sync>,
    /// The fault table, if fault injection is allowed.
    faults: Option<Faults>,
}

impl<M: StateMachine> Clone for NodeServer<M> {
    fn clone(&self) -> Self {
        NodeServer {
            cluster: self.cluster,
            id: self.id,
            rsm: self.rsm.clone(),
            reads: self.reads,
            features: self.features,
            book: self.book.clone(),
            data_dir: self.data_dir.clone(),
            wal_size: self.wal_size.clone(),
            faults: self.faults.clone(),
        }
    }
}

impl<M: StateMachine> NodeServer<M> {
    /// Why a command or read did not succeed here, with the leader's address when this node
    /// is a follower that knows it (the client's next stop).
    fn refusal(&self, e: SubmitError) -> SubmitFailure {
        match e {
            SubmitError::NotLeader => SubmitFailure::NotLeader {
                leader: self
                    .rsm
                    .raft()
                    .status()
                    .leader
                    .filter(|l| l.0 != self.id)
                    .and_then(|l| self.book.get(l)),
            },
            e => SubmitFailure::Retry(e),
        }
    }

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
        if let Some(f) = &self.faults
            && f.blocks_incoming(env.from.0)
        {
            // Refused: the peer sees no reply, as if the message were lost.
            return Ok(None);
        }
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
            Err(e) => Err(self.refusal(e)),
        })
    }

    async fn read(
        self,
        _: Context,
        cluster: u64,
        command: Vec<u8>,
    ) -> Result<Result<Vec<u8>, SubmitFailure>, WrongCluster> {
        self.check(cluster)?;
        let Some(reads) = self.reads else {
            return Ok(Err(SubmitFailure::BadCommand(
                "this node serves no reads without the log: submit the command".into(),
            )));
        };
        let command: M::Command = match postcard::from_bytes(&command) {
            Ok(c) => c,
            Err(e) => return Ok(Err(SubmitFailure::BadCommand(e.to_string()))),
        };
        Ok(
            match self
                .rsm
                .read_linearizable(move |machine| reads(machine, &command))
                .await
            {
                Ok(Some(output)) => postcard::to_stdvec(&output).map_err(|e| {
                    SubmitFailure::BadCommand(format!("cannot encode the output: {e}"))
                }),
                Ok(None) => Err(SubmitFailure::BadCommand(
                    "not a read-only command: submit it".into(),
                )),
                Err(e) => Err(self.refusal(e)),
            },
        )
    }

    async fn transfer(
        self,
        _: Context,
        cluster: u64,
        to: u64,
    ) -> Result<Result<(), TransferFailure>, WrongCluster> {
        self.check(cluster)?;
        Ok(
            match self.rsm.raft().transfer_leadership(NodeId(to)).await {
                Ok(()) => Ok(()),
                Err(raft::TransferError::NotLeader(e)) => Err(TransferFailure::NotLeader {
                    at: self.id,
                    hint: e.leader.map(|l| l.0),
                }),
                Err(raft::TransferError::UnknownPeer(n)) => Err(TransferFailure::UnknownNode(n.0)),
                Err(raft::TransferError::AlreadyLeader(n)) => {
                    Err(TransferFailure::AlreadyLeader(n.0))
                }
                Err(raft::TransferError::InProgress(n)) => Err(TransferFailure::InProgress(n.0)),
            },
        )
    }

    async fn status(self, _: Context, cluster: u64) -> Result<NodeStatus, WrongCluster> {
        self.check(cluster)?;
        let s = self.rsm.raft().status();
        let contact = self.rsm.raft().contact();
        let now = tokio::time::Instant::now();
        let ms_ago = |t: tokio::time::Instant| now.saturating_duration_since(t).as_millis() as u64;
        // The members of its configuration (a removed node's address stays in the book).
        let ids: Vec<u64> = s.membership.members().iter().map(|n| n.0).collect();
        let peers = ids
            .into_iter()
            .filter(|&p| p != self.id)
            .map(|p| PeerContact {
                id: p,
                heard_ms_ago: contact.last_heard.get(&NodeId(p)).map(|&t| ms_ago(t)),
                unreachable_ms: contact.unreachable.get(&NodeId(p)).map(|&t| ms_ago(t)),
            })
            .collect();
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
            leader_contact: contact.leader.map(|(l, t)| (l.0, ms_ago(t))),
            peers,
            transferring_to: s.transferring_to.map(|n| n.0),
            pre_vote: self.features.pre_vote,
            check_quorum: self.features.check_quorum,
            lease_reads: self.features.lease_reads && self.features.check_quorum,
            membership: MembershipStatus::of(&s.membership, s.membership_index.0),
        })
    }

    async fn add_peer(
        self,
        _: Context,
        cluster: u64,
        id: u64,
        addr: SocketAddr,
    ) -> Result<(), WrongCluster> {
        self.check(cluster)?;
        if self.book.get(NodeId(id)) != Some(addr) {
            info!(node = self.id, "node {}: node {id} is at {addr}", self.id);
            self.book.set(NodeId(id), addr);
        }
        Ok(())
    }

    async fn change_membership(
        self,
        _: Context,
        cluster: u64,
        change: raft::ConfChange,
    ) -> Result<Result<u64, MembershipFailure>, WrongCluster> {
        self.check(cluster)?;
        Ok(change_and_wait(self.rsm.raft(), self.id, change).await)
    }

    async fn retire(self, _: Context, cluster: u64) -> Result<Result<(), String>, WrongCluster> {
        self.check(cluster)?;
        let s = self.rsm.raft().status();
        let why = format!(
            "node {} of cluster {:016x}: retired after its removal (last configuration it knew: {}, index {})",
            self.id, self.cluster, s.membership, s.membership_index
        );
        Ok(match storage::write_removed(&self.data_dir, &why) {
            Ok(()) => {
                info!(
                    node = self.id,
                    "node {}: removed from the cluster; this data directory is marked and will not start again",
                    self.id
                );
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        })
    }

    async fn set_faults(
        self,
        _: Context,
        cluster: u64,
        table: FaultTable,
    ) -> Result<Result<FaultTable, FaultInjectionDisabled>, WrongCluster> {
        self.check(cluster)?;
        let Some(f) = &self.faults else {
            return Ok(Err(FaultInjectionDisabled { node: self.id }));
        };
        let before = f.table();
        f.set(&table);
        info!(
            node = self.id,
            "node {}: fault table set: blocked {:?}, delayed {:?}",
            self.id,
            table.blocked(),
            table
                .links
                .iter()
                .filter(|l| l.delay_ms > 0)
                .map(|l| (l.peer, l.delay_ms))
                .collect::<Vec<_>>()
        );
        Ok(Ok(before))
    }
}
