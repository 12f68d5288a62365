//! `raftlab node`, `raftlab cluster start|stop|status` and `raftlab kv`: the same Raft and
//! kvraft as the labs, as real processes on TCP with their data on disk.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use cluster::client::TcpClerk;
use cluster::rpc::NodeStatus;
use cluster::server::{NodeConfig, run_kv_node};
use cluster::transport::{connect, ctx};

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
    },
    /// Stop every node of the cluster.
    Stop {
        #[arg(long, default_value = "raftlab-cluster")]
        dir: PathBuf,
    },
    /// A table of each node's role, term, leader, commit index, last applied and log size.
    Status {
        #[arg(long, default_value = "raftlab-cluster")]
        dir: PathBuf,
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

pub fn node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let cfg = NodeConfig {
        id: args.id,
        listen: args.listen,
        peers: args.peers,
        data_dir: args.data_dir,
        cluster_id: args.cluster_id,
        maxraftstate: Some(args.maxraftstate),
    };
    runtime()?.block_on(run_kv_node(cfg))?;
    Ok(ExitCode::SUCCESS)
}

/// What `cluster start` records in DIR/cluster.txt: one line per node, `id addr pid`, after a
/// first line `cluster <hex id>`.
struct ClusterFile {
    cluster_id: u64,
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
        for (n, line) in lines {
            let f: Vec<&str> = line.split_whitespace().collect();
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
        Ok(Some(ClusterFile { cluster_id, nodes }))
    }

    fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let mut text = format!("cluster {:016x}\n", self.cluster_id);
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
        } => start(nodes, base_port, host, &dir),
        ClusterCommand::Stop { dir } => stop(&dir),
        ClusterCommand::Status { dir } => status(&dir),
    }
}

fn start(
    nodes: u16,
    base_port: u16,
    host: std::net::IpAddr,
    dir: &Path,
) -> anyhow::Result<ExitCode> {
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut file = match ClusterFile::read(dir)? {
        Some(f) => f,
        None => {
            let ports: Vec<u16> = (0..nodes)
                .map(|i| base_port.checked_add(i))
                .collect::<Option<_>>()
                .context("--base-port + --nodes goes past port 65535")?;
            ClusterFile {
                cluster_id: labrpc::sim::fresh_seed(),
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
    let mut started = 0;
    for (id, addr, pid) in &mut file.nodes {
        if pid.is_some_and(node_alive) {
            continue;
        }
        let child = spawn_node(&exe, dir, *id, *addr, &peers, file.cluster_id)?;
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
        "cluster {:016x}: {} node(s) started, {} running; `raftlab cluster status --dir {}`",
        file.cluster_id,
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

fn status(dir: &Path) -> anyhow::Result<ExitCode> {
    let Some(file) = ClusterFile::read(dir)? else {
        bail!("no cluster in {} (no cluster.txt)", dir.display());
    };
    let rt = runtime()?;
    let statuses: Vec<Option<NodeStatus>> = rt.block_on(async {
        let mut out = Vec::new();
        for (_, addr, _) in &file.nodes {
            out.push(query(*addr, file.cluster_id).await);
        }
        out
    });
    println!("cluster {:016x}", file.cluster_id);
    println!(
        "{:>4}  {:<21} {:>8}  {:<9} {:>5} {:>6} {:>8} {:>8} {:>8} {:>10}",
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
                    "{:>4}  {:<21} {:>8}  {:<9} {:>5} {:>6} {:>8} {:>8} {:>8} {:>10}",
                    id,
                    addr.to_string(),
                    s.pid,
                    s.role,
                    s.term,
                    s.leader.map_or("-".to_owned(), |l| l.to_string()),
                    s.commit,
                    s.applied,
                    s.last_index - s.snapshot_index,
                    s.log_bytes
                );
            }
            None => println!(
                "{:>4}  {:<21} {:>8}  {:<9}",
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
