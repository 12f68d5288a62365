//! `raftlab bench`: a real 3-node cluster on loopback, with fsync on: puts per second and
//! latency percentiles for 1, 16 and 64 concurrent clients, the same for linearizable gets
//! (ReadIndex: no log entry, no fsync), the raw fsync rate of the data disk, and the time from
//! kill -9 of the leader to the first write a new leader accepts, and the clients' outage when
//! the leader is SIGSTOPped or cut off (`chaos::outage`).

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use cluster::client::TcpClerk;
use cluster::server::Features;

use crate::chaos::nodes::Nodes as ChaosNodes;
use crate::chaos::outage::{self, LeaderFault};
use crate::cluster_cmd::{FeatureArgs, query, runtime, spawn_node};

/// Benchmark a real 3-node loopback cluster (fsync on).
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Seconds of load per client count.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Client counts to measure puts with.
    #[arg(long, value_parser = counts, default_value = "1,16,64")]
    clients: Counts,
    /// Client counts to measure linearizable gets (ReadIndex) with (empty: none).
    #[arg(long, value_parser = counts, default_value = "1,16,64")]
    read_clients: Counts,
    /// Kill the leader this many times to measure failover.
    #[arg(long, default_value_t = 10)]
    failovers: usize,
    /// Trials of each leader fault (SIGSTOP, isolation) to measure the clients' outage with
    /// (0: none). Each trial pauses or cuts off the leader of a fresh 3-node cluster's current
    /// term while clients put, and measures until every client completed a put again.
    #[arg(long, default_value_t = 20)]
    outage_trials: usize,
    /// Clients putting during an outage trial.
    #[arg(long, default_value_t = 4)]
    outage_clients: usize,
    /// Run the nodes with `--lease-reads`: gets are answered from the leader's lease (no
    /// round of heartbeats; assumes bounded clock drift).
    #[arg(long)]
    lease_reads: bool,
    /// Where the nodes keep their data (default: a fresh directory under the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// A comma-separated list of client counts; empty for none.
#[derive(Clone, Debug)]
struct Counts(Vec<usize>);

fn counts(s: &str) -> Result<Counts, String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<usize>()
                .map_err(|e| format!("{t:?} is not a client count: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Counts)
}

const CLUSTER: u64 = 0xbe9c_0000_0000_0001;

// The benchmark measures real time, outside any simulation.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

struct Nodes {
    features: Features,
    exe: PathBuf,
    dir: PathBuf,
    addrs: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
}

impl Nodes {
    fn peers(&self) -> String {
        self.addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let child = spawn_node(
            &self.exe,
            &self.dir,
            i as u64,
            self.addrs[i],
            &self.peers(),
            CLUSTER,
            FeatureArgs::of(self.features),
        )?;
        self.children[i] = Some(child);
        Ok(())
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().flatten().map(Child::id).collect()
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn leader(&self, within: Duration) -> Option<usize> {
        let deadline = now() + within;
        while now() < deadline {
            for (i, a) in self.addrs.iter().enumerate() {
                if self.children[i].is_some()
                    && query(*a, CLUSTER).await.is_some_and(|s| s.role == "leader")
                {
                    return Some(i);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

/// Writes 4 KiB and syncs, as fast as it can, for a second: the disk's physical limit.
fn fsync_rate(dir: &Path) -> anyhow::Result<f64> {
    let path = dir.join("fsync-probe");
    let mut f = fs::File::create(&path).context("cannot create the fsync probe")?;
    let block = vec![7u8; 4096];
    let start = now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        f.write_all(&block)?;
        f.sync_data()?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = fs::remove_file(&path);
    Ok(rate)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let k = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        anyhow::bail!("--seconds must be positive");
    }
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("raftlab-bench-{}", std::process::id()))
    });
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .context("cannot find free ports")?;
    let addrs = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<Vec<_>, _>>()?;
    drop(listeners);
    let mut nodes = Nodes {
        features: Features {
            lease_reads: args.lease_reads,
            ..Features::production()
        },
        exe: std::env::current_exe().context("cannot find the raftlab executable")?,
        dir: dir.clone(),
        addrs: addrs.clone(),
        children: (0..3).map(|_| None).collect(),
    };
    for i in 0..3 {
        nodes.start(i)?;
    }
    let rt = runtime()?;
    let fsyncs = fsync_rate(&dir)?;
    println!("data dir {} | raw fsync rate: {fsyncs:.0}/s", dir.display());
    rt.block_on(async {
        nodes
            .leader(Duration::from_secs(10))
            .await
            .context("no leader within 10 s")?;
        let dur = Duration::from_secs_f64(args.seconds);
        println!(
            "{:<34} {:>8} {:>10} {:>10} {:>10} {:>12}",
            "operation", "clients", "ops/s", "p50", "p99", "node CPU/op"
        );
        if !args.read_clients.0.is_empty() {
            // Every key the readers ask for exists.
            let mut ck = TcpClerk::new(addrs.clone());
            for k in 0..KEYS {
                ck.put(&format!("key-{k}"), "v", Duration::from_secs(10))
                    .await?;
            }
        }
        let pids = nodes.pids();
        rows(&addrs, &pids, &args, dur, "").await?;
        let mut failovers = Vec::new();
        for _ in 0..args.failovers {
            let Some(leader) = nodes.leader(Duration::from_secs(10)).await else {
                anyhow::bail!("no leader before a failover");
            };
            let mut ck = TcpClerk::new(addrs.clone());
            ck.put("failover", "before", Duration::from_secs(10)).await?;
            let t0 = now();
            nodes.kill(leader);
            ck.put("failover", "after", Duration::from_secs(30)).await?;
            failovers.push(t0.elapsed());
            nodes.start(leader)?;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if !failovers.is_empty() {
            // The same load again, after the leader changes: the tail must come back down.
            nodes
                .leader(Duration::from_secs(10))
                .await
                .context("no leader after the failovers")?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = format!(" after {} failovers", failovers.len());
            let pids = nodes.pids();
            rows(&addrs, &pids, &args, dur, &after).await?;
        }
        failovers.sort();
        if !failovers.is_empty() {
            println!(
                "failover (kill -9 leader -> first accepted write), {} runs: median {:.0?}, max {:.0?}",
                failovers.len(),
                percentile(&failovers, 0.5),
                failovers[failovers.len() - 1]
            );
        }
        anyhow::Ok(())
    })?;
    drop(nodes);
    if args.outage_trials > 0 {
        rt.block_on(outages(&dir, args.outage_trials, args.outage_clients))?;
    }
    let _ = fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}

/// The outage rows: a 3-node cluster with fault injection, `trials` trials of each leader
/// fault, the percentiles of the time until every client is back.
async fn outages(dir: &Path, trials: usize, clients: usize) -> anyhow::Result<()> {
    let mut nodes = ChaosNodes::start(&dir.join("outage"), 3, CLUSTER + 1)?;
    for fault in [LeaderFault::Pause, LeaderFault::Isolate] {
        let mut all = Vec::new();
        for _ in 0..trials {
            all.push(outage::trial(&mut nodes, fault, clients.max(1)).await?);
        }
        all.sort();
        println!(
            "outage ({}, {} clients: until every client completed a put again), {} runs: median {:.0?}, p99 {:.0?}, max {:.0?}",
            fault.name(),
            clients.max(1),
            all.len(),
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            all[all.len() - 1]
        );
    }
    Ok(())
}

/// The put rows, then the get rows, for the client counts asked; `after` ends each label.
async fn rows(
    addrs: &[SocketAddr],
    pids: &[u32],
    args: &BenchArgs,
    dur: Duration,
    after: &str,
) -> anyhow::Result<()> {
    let get = if args.lease_reads {
        "get (lease)"
    } else {
        "get (ReadIndex)"
    };
    let puts = args.clients.0.iter().map(|&n| (Op::Put, "put", n));
    let gets = args.read_clients.0.iter().map(|&n| (Op::Get, get, n));
    for (op, name, n) in puts.chain(gets) {
        let cpu_before = cpu_ticks(pids);
        let (rate, p50, p99) = load(addrs, n, op, dur).await?;
        // The nodes' CPU time (user + system, all three processes) per operation.
        let cpu = match (cpu_before, cpu_ticks(pids)) {
            (Some(a), Some(b)) if rate > 0.0 => format!(
                "{:.0}µs",
                (b - a) as f64 * 1e6 / clock_ticks_per_sec() / (rate * dur.as_secs_f64())
            ),
            _ => "-".to_owned(),
        };
        println!(
            "{:<34} {n:>8} {rate:>10.0} {p50:>10.2?} {p99:>10.2?} {cpu:>12}",
            format!("{name}{after}")
        );
    }
    Ok(())
}

/// The CPU time (user + system, in clock ticks) the processes `pids` used so far, from
/// `/proc/<pid>/stat`; `None` where that cannot be read (not Linux, a process gone).
fn cpu_ticks(pids: &[u32]) -> Option<u64> {
    let mut total = 0;
    for pid in pids {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) is in parentheses and may hold spaces: count after it.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 of the line (utime, stime) are the 12th and 13th after the name.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        total += utime + stime;
    }
    Some(total)
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf reads a configuration value; no memory is shared.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Keys the load spreads over.
const KEYS: u64 = 100;

#[derive(Clone, Copy)]
enum Op {
    Put,
    /// A linearizable get (the node's read RPC: ReadIndex, no log entry).
    Get,
}

/// `clients` clerks doing `op` as fast as they can for `dur`: (operations/s, p50, p99).
async fn load(
    addrs: &[SocketAddr],
    clients: usize,
    op: Op,
    dur: Duration,
) -> anyhow::Result<(f64, Duration, Duration)> {
    let start = now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let addrs = addrs.to_vec();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut ck = TcpClerk::new(addrs);
            let mut lat = Vec::new();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = now();
                let deadline = Duration::from_secs(10);
                let ok = match op {
                    Op::Put => ck
                        .put(&format!("c{c}-{}", i % KEYS), "v", deadline)
                        .await
                        .is_ok(),
                    Op::Get => ck
                        .get(&format!("key-{}", (c as u64 + i) % KEYS), deadline)
                        .await
                        .is_ok(),
                };
                if ok {
                    lat.push(t.elapsed());
                }
                i += 1;
            }
            lat
        }));
    }
    tokio::time::sleep(dur).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.context("a client task failed")?);
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    Ok((
        all.len() as f64 / secs,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
    ))
}
