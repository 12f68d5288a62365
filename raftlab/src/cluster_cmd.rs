//! `raftlab node`, `raftlab cluster start|stop|status|transfer` and `raftlab kv`: the same Raft
//! and kvraft as the labs, as real processes on TCP with their data on disk, with pre-vote and
//! check-quorum on and Get answered without a log entry (ReadIndex).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use cluster::client::TcpClerk;
use cluster::rpc::{NodeStatus, TransferFailure};
use cluster::server::{Features, NodeConfig, start_kv_node};
use cluster::transport::{connect, ctx};
use raft::{Event, Subscription};
use tracing::info;

/// Run one node (usually started for you by `raftlab cluster start`).
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// This node's index in --peers.
    #[arg(long)]
    id: u64,
    /// Address to accept connections on (peers and clients).
    #[arg(long)]
    listen: SocketAddr,
    /// Every node's address, this one's included, comma-separated, in id order.
    #[arg(long, value_delimiter = ',', required = true)]
    peers: Vec<SocketAddr>,
    /// Where the node keeps its log, snapshot and cluster id.
    #[arg(long)]
    data_dir: PathBuf,
    /// Cluster id (hex) to adopt if the data directory has none yet.
    #[arg(long, value_parser = parse_hex)]
    cluster_id: Option<u64>,
    /// Snapshot when the write-ahead log reaches this many bytes.
    #[arg(long, default_value_t = 4 << 20)]
    maxraftstate: usize,
    #[command(flatten)]
    features: FeatureArgs,
}

/// Raft's extensions: pre-vote and check-quorum are on unless switched off, lease reads off
/// unless switched on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Args)]
pub(crate) struct FeatureArgs {
    /// Switch pre-vote off (thesis 9.6). Without it a node that cannot reach a majority raises
    /// its term at every election timeout, and can depose the leader when it comes back.
    #[arg(long)]
    no_pre_vote: bool,
    /// Switch check-quorum off (thesis 6.2). Without it a leader cut off from a majority stays
    /// leader, and voters grant votes while they still hear from a live leader.
    #[arg(long)]
    no_check_quorum: bool,
    #[arg(long, help = lease_help())]
    lease_reads: bool,
}

fn lease_help() -> String {
    format!(
        "Serve Gets from the leader's lease, without a round of heartbeats per read (thesis \
         6.4.1; needs check-quorum). Assumes bounded clock drift: the nodes' clocks run at \
         rates within {:.0}% of each other (raft::core::LEASE_DRIFT), so a lease lasts {:.0}% of \
         the minimum election timeout. Off by default: ReadIndex needs no clock assumption",
        raft::core::LEASE_DRIFT * 100.0,
        (1.0 - raft::core::LEASE_DRIFT) * 100.0
    )
}

impl FeatureArgs {
    fn features(self) -> anyhow::Result<Features> {
        if self.lease_reads && self.no_check_quorum {
            bail!("--lease-reads needs check-quorum: drop --no-check-quorum");
        }
        Ok(Features {
            pre_vote: !self.no_pre_vote,
            check_quorum: !self.no_check_quorum,
            lease_reads: self.lease_reads,
        })
    }

    fn of(f: Features) -> FeatureArgs {
        FeatureArgs {
            no_pre_vote: !f.pre_vote,
            no_check_quorum: !f.check_quorum,
            lease_reads: f.lease_reads,
        }
    }

    /// The `raftlab node` flags that give these features.
    fn flags(self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.no_pre_vote {
            out.push("--no-pre-vote");
        }
        if self.no_check_quorum {
            out.push("--no-check-quorum");
        }
        if self.lease_reads {
            out.push("--lease-reads");
        }
        out
    }
}

/// The features in words, e.g. `pre-vote, check-quorum`.
fn describe(f: Features) -> String {
    let on: Vec<&str> = [
        (f.pre_vote, "pre-vote"),
        (f.check_quorum, "check-quorum"),
        (f.lease_reads, "lease reads"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect();
    if on.is_empty() {
        "no extensions".to_owned()
    } else {
        on.join(", ")
    }
}

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

/// Logs go to stderr; `RUST_LOG` picks the level (info by default: the election story).
fn init_logging() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing::level_filters::LevelFilter::INFO)
        });
    use tracing_subscriber::prelude::*;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .try_init();
}

/// How many events wait for the node's narrator before the node drops (and counts) them.
const EVENTS: usize = 1024;

pub fn node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let features = args.features.features()?;
    let id = args.id;
    let cfg = NodeConfig {
        id,
        listen: args.listen,
        peers: args.peers,
        data_dir: args.data_dir,
        cluster_id: args.cluster_id,
        maxraftstate: Some(args.maxraftstate),
        features,
    };
    runtime()?.block_on(async move {
        let node = start_kv_node(cfg).await?;
        tokio::spawn(narrate(id, node.raft().subscribe(EVENTS)));
        node.serve().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The node's observer: tells the log, in words, about leaders and peers lost and regained.
async fn narrate(id: u64, mut events: Subscription) {
    let mut dropped = 0;
    while let Some(event) = events.recv().await {
        let now_dropped = events.dropped();
        if now_dropped > dropped {
            info!(
                node = id,
                "node {id}: the observer fell behind, {} events dropped ({now_dropped} in all)",
                now_dropped - dropped
            );
            dropped = now_dropped;
        }
        match event {
            Event::LeaderChanged {
                term,
                leader: Some(l),
            } if l.0 == id => info!(node = id, "node {id}: I am leader of term {term}"),
            Event::LeaderChanged {
                term,
                leader: Some(l),
            } => info!(node = id, "node {id}: node {l} is leader of term {term}"),
            Event::LeaderChanged { term, leader: None } => {
                info!(node = id, "node {id}: no known leader in term {term}")
            }
            Event::PeerUnreachable { peer } => {
                info!(node = id, "node {id}: lost contact with node {peer}")
            }
            Event::PeerReachable { peer } => {
                info!(node = id, "node {id}: regained contact with node {peer}")
            }
            Event::Transfer { to: Some(to) } => {
                info!(node = id, "node {id}: handing leadership to node {to}")
            }
            Event::Transfer { to: None } => {
                info!(node = id, "node {id}: leadership transfer over")
            }
            Event::RoleChanged { .. }
            | Event::Voted { .. }
            | Event::Committed { .. }
            | Event::Snapshot { .. } => {}
        }
    }
}

/// What `cluster start` records in DIR/cluster.txt: one line per node, `id addr pid`, after a
/// first line `cluster <hex id>` and a line `features <raftlab node flags>` (none: the
/// defaults; a file without the line is read as having the defaults).
struct ClusterFile {
    cluster_id: u64,
    features: FeatureArgs,
    nodes: Vec<(u64, SocketAddr, Option<u32>)>,
}

impl ClusterFile {
    fn path(dir: &Path) -> PathBuf {
        dir.join("cluster.txt")
    }

    fn read(dir: &Path) -> anyhow::Result<Option<ClusterFile>> {
        let path = Self::path(dir);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut lines = text.lines().enumerate();
        let bad = |n: usize, why: &str| anyhow::anyhow!("{}:{}: {why}", path.display(), n + 1);
        let cluster_id = match lines.next() {
            Some((n, l)) => {
                let hex = l
                    .strip_prefix("cluster ")
                    .ok_or_else(|| bad(n, "expected `cluster <id>`"))?;
                parse_hex(hex).map_err(|e| bad(n, &e))?
            }
            None => bail!("{} is empty", path.display()),
        };
        let mut nodes = Vec::new();
        let mut features = FeatureArgs::default();
        for (n, line) in lines {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() == Some(&"features") {
                for flag in &f[1..] {
                    match *flag {
                        "--no-pre-vote" => features.no_pre_vote = true,
                        "--no-check-quorum" => features.no_check_quorum = true,
                        "--lease-reads" => features.lease_reads = true,
                        other => return Err(bad(n, &format!("unknown feature flag {other}"))),
                    }
                }
                continue;
            }
            if f.len() != 3 {
                return Err(bad(n, "expected `<id> <addr> <pid>`"));
            }
            let id = f[0].parse().map_err(|_| bad(n, "bad node id"))?;
            let addr = f[1].parse().map_err(|_| bad(n, "bad address"))?;
            let pid = if f[2] == "-" {
                None
            } else {
                Some(f[2].parse().map_err(|_| bad(n, "bad pid"))?)
            };
            nodes.push((id, addr, pid));
        }
        Ok(Some(ClusterFile {
            cluster_id,
            features,
            nodes,
        }))
    }

    fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let mut text = format!("cluster {:016x}\n", self.cluster_id);
        text += "features";
        for flag in self.features.flags() {
            text += " ";
            text += flag;
        }
        text += "\n";
        for (id, addr, pid) in &self.nodes {
            let pid = pid.map_or("-".to_owned(), |p| p.to_string());
            text += &format!("{id} {addr} {pid}\n");
        }
        let path = Self::path(dir);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|(_, a, _)| *a).collect()
    }
}

/// Starts `raftlab node` for node `id` in the background, logging to DIR/node-ID.log.
pub(crate) fn spawn_node(
    exe: &Path,
    dir: &Path,
    id: u64,
    addr: SocketAddr,
    peers: &str,
    cluster_id: u64,
    features: Features,
) -> anyhow::Result<std::process::Child> {
    let node_dir = dir.join(format!("node-{id}"));
    let log_path = dir.join(format!("node-{id}.log"));
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    Command::new(exe)
        .arg("node")
        .args(["--id", &id.to_string()])
        .args(["--listen", &addr.to_string()])
        .args(["--peers", peers])
        .arg("--data-dir")
        .arg(&node_dir)
        .args(["--cluster-id", &format!("{cluster_id:016x}")])
        .args(FeatureArgs::of(features).flags())
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("cannot share the log file")?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start node {id}"))
}

/// True if `pid` is a running `raftlab node` process.
fn node_alive(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
            args.iter().any(|a| *a == b"node")
        })
        .unwrap_or(false)
}

pub fn cluster(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ClusterCommand::Start {
            nodes,
            base_port,
            host,
            dir,
            features,
        } => start(nodes, base_port, host, &dir, features),
        ClusterCommand::Stop { dir } => stop(&dir),
        ClusterCommand::Status { dir } => status(&dir),
        ClusterCommand::Transfer { to, dir, timeout } => transfer(&dir, to, timeout),
    }
}

fn start(
    nodes: u16,
    base_port: u16,
    host: std::net::IpAddr,
    dir: &Path,
    flags: FeatureArgs,
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
    let peers = file
        .addrs()
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let exe = std::env::current_exe().context("cannot find the raftlab executable")?;
    let features = file.features.features()?;
    let mut started = 0;
    for (id, addr, pid) in &mut file.nodes {
        if pid.is_some_and(node_alive) {
            continue;
        }
        let child = spawn_node(&exe, dir, *id, *addr, &peers, file.cluster_id, features)?;
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
        file.nodes.len(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn stop(dir: &Path) -> anyhow::Result<ExitCode> {
    let Some(mut file) = ClusterFile::read(dir)? else {
        bail!("no cluster in {} (no cluster.txt)", dir.display());
    };
    for (id, _, pid) in &mut file.nodes {
        if let Some(p) = pid.take()
            && node_alive(p)
        {
            let ok = Command::new("kill")
                .arg(p.to_string())
                .status()
                .is_ok_and(|s| s.success());
            println!(
                "node {id}: pid {p} {}",
                if ok {
                    "stopped"
                } else {
                    "could not be stopped"
                }
            );
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

/// Every node's status (`None`: no answer).
async fn statuses(file: &ClusterFile) -> Vec<Option<NodeStatus>> {
    let mut out = Vec::new();
    for (_, addr, _) in &file.nodes {
        out.push(query(*addr, file.cluster_id).await);
    }
    out
}

fn secs(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

/// A node's contact, in words: a leader's with each peer, anyone else's with its leader.
fn contact(s: &NodeStatus) -> String {
    if s.role == "leader" {
        let peers: Vec<String> = s
            .peers
            .iter()
            .map(|p| match (p.unreachable_ms, p.heard_ms_ago) {
                (Some(u), Some(h)) => format!(
                    "{}: UNREACHABLE for {} (heard {} ago)",
                    p.id,
                    secs(u),
                    secs(h)
                ),
                (Some(u), None) => format!("{}: UNREACHABLE for {}", p.id, secs(u)),
                (None, Some(h)) => format!("{}: heard {} ago", p.id, secs(h)),
                (None, None) => format!("{}: never heard", p.id),
            })
            .collect();
        let transfer = s
            .transferring_to
            .map_or(String::new(), |t| format!("; transferring to node {t}"));
        format!("peers {}{transfer}", peers.join(", "))
    } else {
        match s.leader_contact {
            Some((l, ms)) => format!("leader {l}, heard {} ago", secs(ms)),
            None => "no leader heard from since start".to_owned(),
        }
    }
}

fn status(dir: &Path) -> anyhow::Result<ExitCode> {
    let Some(file) = ClusterFile::read(dir)? else {
        bail!("no cluster in {} (no cluster.txt)", dir.display());
    };
    let rt = runtime()?;
    let statuses = rt.block_on(statuses(&file));
    let features = match statuses.iter().flatten().next() {
        Some(s) => Features {
            pre_vote: s.pre_vote,
            check_quorum: s.check_quorum,
            lease_reads: s.lease_reads,
        },
        None => file.features.features()?,
    };
    println!("cluster {:016x} ({})", file.cluster_id, describe(features));
    println!(
        "{:>4}  {:<21} {:>8}  {:<12} {:>5} {:>6} {:>8} {:>8} {:>8} {:>10}  contact",
        "node",
        "address",
        "pid",
        "role",
        "term",
        "leader",
        "commit",
        "applied",
        "entries",
        "log bytes"
    );
    let mut up = 0;
    for ((id, addr, pid), s) in file.nodes.iter().zip(&statuses) {
        match s {
            Some(s) => {
                up += 1;
                println!(
                    "{:>4}  {:<21} {:>8}  {:<12} {:>5} {:>6} {:>8} {:>8} {:>8} {:>10}  {}",
                    id,
                    addr.to_string(),
                    s.pid,
                    s.role,
                    s.term,
                    s.leader.map_or("-".to_owned(), |l| l.to_string()),
                    s.commit,
                    s.applied,
                    s.last_index - s.snapshot_index,
                    s.log_bytes,
                    contact(s)
                );
            }
            None => println!(
                "{:>4}  {:<21} {:>8}  {:<12}",
                id,
                addr.to_string(),
                pid.map_or("-".to_owned(), |p| p.to_string()),
                "DOWN (no answer)"
            ),
        }
    }
    println!("{up} of {} nodes answered", file.nodes.len());
    Ok(ExitCode::SUCCESS)
}

/// The node that leads the highest term among those that answered: (node, term).
fn current_leader(file: &ClusterFile, statuses: &[Option<NodeStatus>]) -> Option<(usize, u64)> {
    file.nodes
        .iter()
        .zip(statuses)
        .enumerate()
        .filter_map(|(i, (_, s))| s.as_ref().map(|s| (i, s)))
        .filter(|(_, s)| s.role == "leader")
        .max_by_key(|(_, s)| s.term)
        .map(|(i, s)| (i, s.term))
}

fn transfer(dir: &Path, to: u64, timeout: f64) -> anyhow::Result<ExitCode> {
    let Some(file) = ClusterFile::read(dir)? else {
        bail!("no cluster in {} (no cluster.txt)", dir.display());
    };
    if !(timeout.is_finite() && timeout > 0.0) {
        bail!("--timeout must be a positive number of seconds");
    }
    let Some(target) = file.nodes.iter().position(|(id, _, _)| *id == to) else {
        let ids: Vec<String> = file.nodes.iter().map(|(id, _, _)| id.to_string()).collect();
        bail!(
            "unknown node {to}: the cluster in {} has nodes {}",
            dir.display(),
            ids.join(", ")
        );
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(timeout);
    let rt = runtime()?;
    rt.block_on(async {
        // Ask the leader (retrying while there is none, or it just changed).
        let (from, term) = loop {
            let st = statuses(&file).await;
            match current_leader(&file, &st) {
                Some((l, term)) if l == target => {
                    println!("node {to} already leads term {term}");
                    return Ok(ExitCode::SUCCESS);
                }
                Some((l, term)) => {
                    let (id, addr, _) = file.nodes[l];
                    let answer = match connect(addr).await {
                        Some(c) => tokio::time::timeout(
                            Duration::from_secs(1),
                            c.transfer(ctx(), file.cluster_id, to),
                        )
                        .await
                        .ok()
                        .and_then(|r| r.ok()),
                        None => None,
                    };
                    match answer {
                        Some(Ok(Ok(()))) => break (id, term),
                        Some(Ok(Err(TransferFailure::AlreadyLeader(n)))) => {
                            println!("node {n} already leads term {term}");
                            return Ok(ExitCode::SUCCESS);
                        }
                        Some(Ok(Err(TransferFailure::NotLeader { .. }))) | None => {}
                        Some(Ok(Err(e))) => bail!("node {id} refused the transfer: {e}"),
                        Some(Err(wrong)) => bail!("{wrong}"),
                    }
                }
                None => {}
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("timed out after {timeout} s: no leader to ask for the transfer");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        println!("node {from} (leader of term {term}) is handing its leadership to node {to}");
        loop {
            let st = statuses(&file).await;
            match current_leader(&file, &st) {
                Some((l, t)) if l == target && t > term => {
                    println!("node {to} is now the leader (term {t})");
                    return Ok(ExitCode::SUCCESS);
                }
                Some((l, t))
                    if file.nodes[l].0 == from
                        && t == term
                        && st[l].as_ref().is_some_and(|s| s.transferring_to.is_none()) =>
                {
                    bail!(
                        "node {from} gave the transfer up: node {to} did not take over within \
                         an election timeout (is it up and caught up?); node {from} still leads \
                         term {term}"
                    );
                }
                now => {
                    if tokio::time::Instant::now() >= deadline {
                        let now = match now {
                            Some((l, t)) => {
                                format!("node {} leads term {t}", file.nodes[l].0)
                            }
                            None => "no node leads".to_owned(),
                        };
                        bail!(
                            "timed out after {timeout} s: leadership did not move to node {to} \
                             ({now}; is node {to} up and caught up?)"
                        );
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("raftlab-clusterfile-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn cluster_file_keeps_the_features() {
        let d = dir("features");
        let features = FeatureArgs {
            no_pre_vote: true,
            no_check_quorum: false,
            lease_reads: true,
        };
        let file = ClusterFile {
            cluster_id: 0xabc,
            features,
            nodes: vec![
                (0, "127.0.0.1:1".parse().expect("addr"), Some(7)),
                (1, "127.0.0.1:2".parse().expect("addr"), None),
            ],
        };
        file.write(&d).expect("write");
        let back = ClusterFile::read(&d).expect("read").expect("a file");
        assert_eq!(back.features, features);
        assert_eq!(back.nodes, file.nodes);
        let f = back.features.features().expect("valid");
        assert!(!f.pre_vote && f.check_quorum && f.lease_reads);
        assert_eq!(describe(f), "check-quorum, lease reads");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn an_old_cluster_file_gets_the_production_features() {
        let d = dir("old");
        fs::write(
            ClusterFile::path(&d),
            "cluster 00000000000000ab\n0 127.0.0.1:1 -\n",
        )
        .expect("write");
        let file = ClusterFile::read(&d).expect("read").expect("a file");
        assert_eq!(
            file.features.features().expect("valid"),
            Features::production()
        );
        assert_eq!(file.nodes.len(), 1);
        fs::write(ClusterFile::path(&d), "cluster ab\nfeatures --fast\n").expect("write");
        let err = ClusterFile::read(&d).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("unknown feature flag --fast")));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn lease_reads_need_check_quorum() {
        let args = FeatureArgs {
            no_pre_vote: false,
            no_check_quorum: true,
            lease_reads: true,
        };
        assert!(args.features().is_err());
    }
}
