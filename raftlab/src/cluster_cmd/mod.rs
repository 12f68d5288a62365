//! `raftlab node`, `raftlab cluster start|stop|status|transfer` and `raftlab kv`: the same Raft
//! and kvraft as the labs, as real processes on TCP with their data on disk, with pre-vote and
//! check-quorum on and Get answered without a log entry (ReadIndex).
//!
//! - `node.rs`: one node process (`raftlab node`) and its narration of events.
//! - `file.rs`: the cluster directory's `cluster.txt`, the feature flags, spawning nodes.
//! - `status.rs`: `cluster status` and `cluster transfer`.
//! - `membership.rs`: `cluster add-node|remove-node|promote` and DIR/membership.txt.
//! - this file: the commands' arguments, `cluster start|stop` and `kv`.

mod file;
mod membership;
mod node;
mod status;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use cluster::client::TcpClerk;
use cluster::rpc::{NodeStatus, TransferFailure};
use cluster::server::{Bootstrap, Features, NodeConfig, start_kv_node_with};
use cluster::transport::{connect, ctx};
use raft::{Event, Subscription};
use tracing::info;

use file::describe;
pub(crate) use file::{ClusterFile, FeatureArgs, node_alive, spawn_node, spawn_node_as, stop_node};
use membership::Roster;
pub use node::{NodeArgs, node};

fn parse_hex(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16)
        .map_err(|e| format!("not a hexadecimal cluster id: {e}"))
}

/// Start, stop or inspect a local cluster of node processes.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Start the nodes in the background, each logging to DIR/node-N.log (restarts the ones
    /// that are not running in an existing cluster).
    Start {
        #[arg(long, default_value_t = 5)]
        nodes: u16,
        #[arg(long, default_value_t = 10080)]
        base_port: u16,
        /// Address the nodes bind to (loopback unless told otherwise).
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        #[arg(long, default_value = "raftlab-cluster")]
        dir: PathBuf,
        /// Raft's extensions for a new cluster (recorded in DIR/cluster.txt; restarts of an
        /// existing cluster's nodes use the recorded ones).
        #[command(flatten)]
        features: FeatureArgs,
        /// Nodes snapshot when their write-ahead log reaches this many bytes (recorded for a
        /// new cluster in DIR/membership.txt; default 4 MiB).
        #[arg(long)]
        maxraftstate: Option<usize>,
    },
    /// Start a new node with an empty data directory and add it to the running cluster: as a
    /// learner, which catches up, then (unless --learner) promoted to voter.
    AddNode {
        /// Leave it a learner (it receives the log, never votes); `promote` makes it a voter.
        #[arg(long)]
        learner: bool,
        #[arg(long, default_value = "raftlab-cluster")]
        dir: PathBuf,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
    /// Remove node N from the configuration, mark its data directory as removed (it never
    /// starts again), and stop its process.
    RemoveNode {
        id: u64,
        #[arg(long, default_value = "raftlab-cluster")]
        dir: PathBuf,
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
    /// Make learner N a voter (retried until it has caught up).
    Promote {
        id: u64,
        #[arg(long, default_value = "raftlab-cluster")]
        dir: PathBuf,
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
    /// Stop every node of the cluster.
    Stop {
        #[arg(long, default_value = "raftlab-cluster")]
        dir: PathBuf,
    },
    /// A table of each node's role, term, leader, commit index, last applied and log size,
    /// and its contact: a follower's last message from its leader, the leader's from each peer.
    Status {
        #[arg(long, default_value = "raftlab-cluster")]
        dir: PathBuf,
    },
    /// Ask the leader to hand its leadership to node N (thesis 3.10); prints the new leader.
    Transfer {
        /// The node to become leader.
        #[arg(long)]
        to: u64,
        #[arg(long, default_value = "raftlab-cluster")]
        dir: PathBuf,
        /// Give up after this many seconds without node N leading.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
    },
}

/// A client: get, put or append against a running cluster.
#[derive(Debug, Args)]
pub struct KvArgs {
    #[command(subcommand)]
    op: KvOp,
    /// The nodes' addresses, comma-separated (default: those of the cluster in --dir).
    #[arg(long, value_delimiter = ',', global = true)]
    cluster: Vec<SocketAddr>,
    #[arg(long, default_value = "raftlab-cluster", global = true)]
    dir: PathBuf,
    /// Give up after this many seconds without an answer.
    #[arg(long, default_value_t = 10.0, global = true)]
    timeout: f64,
}

#[derive(Debug, Subcommand)]
enum KvOp {
    Get { key: String },
    Put { key: String, value: String },
    Append { key: String, value: String },
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn cluster(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ClusterCommand::Start {
            nodes,
            base_port,
            host,
            dir,
            features,
            maxraftstate,
        } => start(nodes, base_port, host, &dir, features, maxraftstate),
        ClusterCommand::AddNode {
            learner,
            dir,
            timeout,
        } => membership::add_node(&dir, learner, timeout),
        ClusterCommand::RemoveNode { id, dir, timeout } => {
            membership::remove_node(&dir, id, timeout)
        }
        ClusterCommand::Promote { id, dir, timeout } => membership::promote(&dir, id, timeout),
        ClusterCommand::Stop { dir } => stop(&dir),
        ClusterCommand::Status { dir } => status::status(&dir),
        ClusterCommand::Transfer { to, dir, timeout } => status::transfer(&dir, to, timeout),
    }
}

fn start(
    nodes: u16,
    base_port: u16,
    host: std::net::IpAddr,
    dir: &Path,
    flags: FeatureArgs,
    maxraftstate: Option<usize>,
) -> anyhow::Result<ExitCode> {
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    flags.features()?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut file = match ClusterFile::read(dir)? {
        Some(f) => {
            if flags != FeatureArgs::default() && flags != f.features {
                bail!(
                    "the cluster in {} runs with {}; feature flags apply when a cluster is \
                     created (stop it and remove {} to start one with other features)",
                    dir.display(),
                    describe(f.features.features()?),
                    dir.display()
                );
            }
            f
        }
        None => {
            if maxraftstate.is_some() {
                Roster {
                    maxraftstate,
                    ..Roster::default()
                }
                .write(dir)?;
            }
            let ports: Vec<u16> = (0..nodes)
                .map(|i| base_port.checked_add(i))
                .collect::<Option<_>>()
                .context("--base-port + --nodes goes past port 65535")?;
            ClusterFile {
                cluster_id: labrpc::sim::fresh_seed(),
                features: flags,
                nodes: ports
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (i as u64, SocketAddr::new(host, *p), None))
                    .collect(),
            }
        }
    };
    let peers = membership::peers_arg(&file);
    let roster = Roster::read(dir)?;
    let n = file.nodes.len();
    let exe = std::env::current_exe().context("cannot find the raftlab executable")?;
    let features = file.features.features()?;
    let mut started = 0;
    for (id, addr, pid) in &mut file.nodes {
        if pid.is_some_and(node_alive) || roster.removed.contains(id) {
            continue;
        }
        let child = spawn_node_as(
            &exe,
            dir,
            *id,
            *addr,
            &peers,
            file.cluster_id,
            file.features,
            &roster.node_flags(*id, n),
        )?;
        *pid = Some(child.id());
        started += 1;
        println!(
            "node {id}: {addr}, pid {}, log {}",
            child.id(),
            dir.join(format!("node-{id}.log")).display()
        );
    }
    file.write(dir)?;
    println!(
        "cluster {:016x} ({}): {} node(s) started, {} running; `raftlab cluster status --dir {}`",
        file.cluster_id,
        describe(features),
        started,
        file.nodes.iter().filter(|(_, _, p)| p.is_some()).count(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn stop(dir: &Path) -> anyhow::Result<ExitCode> {
    let Some(mut file) = ClusterFile::read(dir)? else {
        bail!("no cluster in {} (no cluster.txt)", dir.display());
    };
    for (id, _, pid) in &mut file.nodes {
        if let Some(p) = pid.take() {
            stop_node(*id, p);
        }
    }
    file.write(dir)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn query(addr: SocketAddr, cluster: u64) -> Option<NodeStatus> {
    let client = connect(addr).await?;
    match tokio::time::timeout(Duration::from_secs(1), client.status(ctx(), cluster)).await {
        Ok(Ok(Ok(s))) => Some(s),
        _ => None,
    }
}

pub fn kv(args: KvArgs) -> anyhow::Result<ExitCode> {
    let servers = if args.cluster.is_empty() {
        match ClusterFile::read(&args.dir)? {
            Some(f) => f.addrs(),
            None => bail!(
                "no --cluster addresses and no cluster in {}",
                args.dir.display()
            ),
        }
    } else {
        args.cluster
    };
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        bail!("--timeout must be a positive number of seconds");
    }
    let deadline = Duration::from_secs_f64(args.timeout);
    let rt = runtime()?;
    let mut ck = TcpClerk::new(servers);
    rt.block_on(async {
        match args.op {
            KvOp::Get { key } => {
                let v = ck.get(&key, deadline).await?;
                println!("{v}");
            }
            KvOp::Put { key, value } => ck.put(&key, &value, deadline).await?,
            KvOp::Append { key, value } => ck.append(&key, &value, deadline).await?,
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
