//! `raftlab chaos`: Jepsen-style testing of the real cluster. A client workload (puts,
//! appends, linearizable gets over a few keys) runs against node processes while a nemesis
//! kills, pauses and partitions them on a seeded schedule; at the end everything is healed,
//! the nodes must converge, and the history is checked: linearizable (lincheck's KV model,
//! unknown outcomes as Jepsen's `:info`) and no acknowledged write lost.
//!
//! - `nodes.rs`: the node processes (started here, or attached to), signals, fault tables.
//! - `nemesis.rs`: the seeded fault schedule.
//! - `workload.rs`: the clients and the history they record.
//! - `check.rs`: linearizability and durability.
//! - `outage.rs`: how long clients wait when the leader is paused or cut off (also `raftlab bench`).
//! - `report.rs`: the report and the HTML timeline.

mod check;
mod nemesis;
pub(crate) mod nodes;
pub(crate) mod outage;
mod report;
mod workload;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;

use anyhow::{Context, bail};
use clap::Args;
use cluster::client::TcpClerk;
use cluster::faults::FaultTable;
use lincheck::CheckResult;
use lincheck::models::kv::KvModel;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use crate::cluster_cmd::runtime;
use nemesis::{FaultKind, Nemesis};
use nodes::Nodes;
use workload::{Op, OpRecord, Workload, key_name, lock};

/// Jepsen-style chaos: a workload, a nemesis (kill -9, SIGSTOP, partitions) and a checker.
#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// Nodes of the cluster to start (ignored with --attach).
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// How long the workload and the nemesis run (e.g. 30s, 10m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    time: Duration,
    /// Concurrent clients.
    #[arg(long, default_value_t = 5)]
    clients: usize,
    /// Keys the clients use.
    #[arg(long, default_value_t = 8)]
    keys: usize,
    /// Faults for the nemesis: kill, pause, partition (comma-separated), all, or none.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Seed of the nemesis's schedule and the clients' choices (default: a fresh one, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Where the report, the history, the timeline and (without --attach) the nodes' data
    /// and logs go.
    #[arg(long, default_value = "raftlab-chaos")]
    out: PathBuf,
    /// Test the cluster `raftlab cluster start --allow-fault-injection --dir DIR` runs
    /// instead of starting one (it is left running, healed).
    #[arg(long)]
    attach: Option<PathBuf>,
    /// Operations per second, all clients together (0: as fast as they go).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Stop the workload after this many operations.
    #[arg(long, default_value_t = 300_000)]
    max_ops: u64,
    /// Deadline of one operation in seconds; past it the outcome is unknown.
    #[arg(long, default_value_t = 5.0)]
    op_timeout: f64,
    /// Budget of the linearizability check in seconds (past it the verdict is unknown, which
    /// fails the run).
    #[arg(long, default_value_t = 300.0)]
    check_timeout: f64,
    /// Only check the history a previous run wrote to DIR/history.jsonl (no cluster).
    #[arg(long, value_name = "DIR", conflicts_with = "attach")]
    recheck: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 10m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (ms, s, m, h)")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("{s:?} is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn positive(name: &str, v: f64) -> anyhow::Result<Duration> {
    if !(v.is_finite() && v > 0.0) {
        bail!("--{name} must be a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(v))
}

pub fn run(args: ChaosArgs) -> anyhow::Result<ExitCode> {
    let op_timeout = positive("op-timeout", args.op_timeout)?;
    let budget = positive("check-timeout", args.check_timeout)?;
    if let Some(dir) = &args.recheck {
        return recheck(dir, budget);
    }
    let faults = nemesis::parse_faults(&args.faults).map_err(anyhow::Error::msg)?;
    if args.clients == 0 || args.keys == 0 {
        bail!("--clients and --keys must be at least 1");
    }
    if args.attach.is_none() && args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        bail!("--rate must be a non-negative number");
    }
    let seed = args.seed.unwrap_or_else(labrpc::sim::fresh_seed);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let nodes = match &args.attach {
        Some(dir) => Nodes::attach(dir)?,
        None => {
            let dir = args.out.join("cluster");
            let _ = std::fs::remove_dir_all(&dir);
            Nodes::start(&dir, args.nodes, labrpc::sim::fresh_seed())?
        }
    };
    if faults.contains(&FaultKind::Partition) && nodes.len() < 3 {
        bail!("partitions need at least 3 nodes");
    }
    println!(
        "raftlab chaos: seed {seed}, {} nodes in {}, faults {}, {} clients, {} keys, {:?}",
        nodes.len(),
        nodes.dir.display(),
        names(&faults),
        args.clients,
        args.keys,
        args.time
    );
    let rt = runtime()?;
    let shared = Arc::new(AsyncMutex::new(nodes));
    let outcome = rt.block_on(async {
        tokio::select! {
            biased;
            r = chaos(&args, &faults, shared.clone(), seed, op_timeout) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    // Everything this run started stops before the check (or the error): paused nodes get
    // SIGCONT, fault tables are cleared, then the nodes this run started are killed.
    rt.block_on(async {
        let mut nodes = shared.lock().await;
        for i in 0..nodes.len() {
            if nodes.is_paused(i) {
                nodes.resume(i);
            }
        }
        nodes.clear_faults().await;
        nodes.stop();
    });
    drop(rt);
    match outcome {
        Some(r) => finish(&args, &faults, seed, r?, budget),
        None => {
            eprintln!("raftlab chaos: interrupted: nodes resumed, healed and stopped");
            bail!("interrupted (Ctrl-C)")
        }
    }
}

fn names(kinds: &[FaultKind]) -> String {
    if kinds.is_empty() {
        return "none".to_owned();
    }
    kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
}

/// What a run leaves for the checker.
struct Run {
    history: Vec<OpRecord>,
    nemesis: Vec<nemesis::NemesisEvent>,
    seconds: f64,
    converged: Option<u64>,
    nodes: usize,
}

async fn chaos(
    args: &ChaosArgs,
    faults: &[FaultKind],
    shared: Arc<AsyncMutex<Nodes>>,
    seed: u64,
    op_timeout: Duration,
) -> anyhow::Result<Run> {
    let nodes = shared.lock().await;
    // The cluster must be up, and take fault tables if the nemesis partitions.
    let setup = Instant::now() + Duration::from_secs(20);
    while nodes.leader().await.is_none() {
        if Instant::now() > setup {
            bail!("no leader within 20 s: is the cluster up?");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if faults.contains(&FaultKind::Partition) {
        for i in 0..nodes.len() {
            if nodes.is_up(i)
                && let Err(e) = nodes.set_faults(i, FaultTable::default()).await
            {
                bail!(
                    "{e}{}",
                    if nodes.attached() {
                        " (start the cluster with `raftlab cluster start --allow-fault-injection`)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    let start = Instant::now();
    let until = start + args.time;
    let history = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let events = Arc::new(Mutex::new(Vec::new()));
    let workload = Workload {
        addrs: nodes.addrs.clone(),
        clients: args.clients,
        keys: args.keys,
        rate: args.rate,
        max_ops: args.max_ops,
        op_timeout,
        seed,
        start,
    };
    drop(nodes);
    let nemesis = Nemesis {
        rng: ChaCha8Rng::seed_from_u64(seed),
        kinds: faults.to_vec(),
        start,
        events: events.clone(),
    };
    {
        let w = workload.run(history.clone(), stop.clone());
        let n = async {
            nemesis.run(shared.clone(), until).await;
            stop.store(true, Ordering::Relaxed);
        };
        tokio::join!(w, n);
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut nodes = shared.lock().await;
    println!("{seconds:>7.2}s healing: SIGCONT, fault tables cleared, dead nodes restarted");
    nodes.heal().await?;
    let converged = nodes.converge(Duration::from_secs(60)).await;
    match converged {
        Some(i) => println!("converged: every node committed and applied index {i}"),
        None => println!("NOT converged within 60 s"),
    }
    // Final reads: one linearizable get per key, after everything healed.
    let mut clerk = TcpClerk::new(nodes.addrs.clone());
    let mut history = std::mem::take(&mut *lock(&history));
    for k in 0..args.keys {
        let mut r = workload::run_op(
            &mut clerk,
            1_000_000 + k as u64,
            args.clients,
            Op::Get,
            key_name(k),
            String::new(),
            Duration::from_secs(20),
            start,
        )
        .await;
        r.final_read = true;
        history.push(r);
    }
    let nemesis = std::mem::take(&mut *lock(&events));
    Ok(Run {
        history,
        nemesis,
        seconds,
        converged,
        nodes: nodes.len(),
    })
}

fn finish(
    args: &ChaosArgs,
    faults: &[FaultKind],
    seed: u64,
    run: Run,
    budget: Duration,
) -> anyhow::Result<ExitCode> {
    let mut jsonl = String::new();
    for r in &run.history {
        jsonl += &serde_json::to_string(r).context("cannot encode the history")?;
        jsonl.push('\n');
    }
    report::write(&args.out, "history.jsonl", jsonl.as_bytes())?;
    report::write(
        &args.out,
        "history.edn",
        check::to_edn(&run.history).as_bytes(),
    )?;
    let meta = serde_json::json!({
        "seed": seed, "nodes": run.nodes, "faults": faults.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "clients": args.clients, "keys": args.keys, "seconds": run.seconds,
        "converged_at_index": run.converged, "nemesis": run.nemesis,
    });
    report::write(&args.out, "run.json", meta.to_string().as_bytes())?;
    verdict(
        &args.out,
        run,
        seed,
        faults.iter().map(|k| k.name().to_owned()).collect(),
        args.clients,
        args.keys,
        budget,
    )
}

/// Checks a run's history and writes the report; exit 0 if it passed, 1 if not.
#[allow(clippy::too_many_arguments)]
fn verdict(
    out: &Path,
    run: Run,
    seed: u64,
    faults: Vec<String>,
    clients: usize,
    keys: usize,
    budget: Duration,
) -> anyhow::Result<ExitCode> {
    let ops = check::operations(&run.history)?;
    let t0 = tokio::time::Instant::now();
    let info = check::linearizability(&ops, Some(budget));
    let check_seconds = t0.elapsed().as_secs_f64();
    let mut html = Vec::new();
    lincheck::visualize(&KvModel, &info, &mut html).context("cannot render lincheck's page")?;
    report::write(out, "linearizability.html", &html)?;
    let durability = check::durability(&run.history);
    let linearizable = info.result == CheckResult::Linearizable;
    let passed = linearizable && durability.ok() && run.converged.is_some();
    let workload_ops = run.history.iter().filter(|r| !r.final_read).count();
    let acked = run.history.iter().filter(|r| !r.final_read && r.ok).count();
    let summary = report::Summary {
        verdict: if passed {
            "PASS: linearizable, no acknowledged write lost".to_owned()
        } else {
            let mut why = Vec::new();
            if !linearizable {
                why.push(format!("history {}", info.result));
            }
            if !durability.lost.is_empty() {
                why.push(format!(
                    "{} acknowledged writes lost",
                    durability.lost.len()
                ));
            }
            if !durability.phantom.is_empty() {
                why.push(format!("{} phantom writes", durability.phantom.len()));
            }
            if !durability.unread.is_empty() {
                why.push(format!("{} keys not read back", durability.unread.len()));
            }
            if run.converged.is_none() {
                why.push("the nodes did not converge".to_owned());
            }
            format!("FAIL: {}", why.join(", "))
        },
        passed,
        seed,
        nodes: run.nodes,
        faults,
        clients,
        keys,
        seconds: run.seconds,
        operations: workload_ops,
        ops_per_sec: acked as f64 / run.seconds.max(1e-9),
        gets: report::counts(&run.history, Op::Get),
        puts: report::counts(&run.history, Op::Put),
        appends: report::counts(&run.history, Op::Append),
        linearizability: info.result.to_string(),
        check_seconds,
        acknowledged_writes: durability.acknowledged_writes,
        lost_writes: durability.lost,
        phantom_writes: durability.phantom,
        unread_keys: durability.unread,
        converged_at_index: run.converged,
        leader_outages: outage::leader_outages(&run.history, &run.nemesis),
        tail: outage::tail(&run.history, &run.nemesis),
        nemesis: run.nemesis,
        per_second: report::per_second(&run.history),
    };
    let text = report::text(&summary);
    report::write(out, "report.txt", text.as_bytes())?;
    report::write(
        out,
        "report.json",
        serde_json::to_string_pretty(&summary)
            .context("cannot encode the report")?
            .as_bytes(),
    )?;
    report::write(
        out,
        "timeline.html",
        report::timeline_html(&summary, &run.history).as_bytes(),
    )?;
    // The per-second table is in report.txt; the terminal gets the rest.
    for line in text
        .lines()
        .take_while(|l| !l.starts_with("latency per second"))
    {
        println!("{line}");
    }
    println!(
        "report: {}, timeline: {}",
        out.join("report.txt").display(),
        out.join("timeline.html").display()
    );
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `--recheck DIR`: the checks again, on DIR/history.jsonl (and DIR/run.json if present).
fn recheck(dir: &Path, budget: Duration) -> anyhow::Result<ExitCode> {
    let path = dir.join("history.jsonl");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut history = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        history.push(
            serde_json::from_str::<OpRecord>(line)
                .with_context(|| format!("{}:{}: not an operation", path.display(), n + 1))?,
        );
    }
    let meta: serde_json::Value = std::fs::read_to_string(dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    let nemesis = meta
        .get("nemesis")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let seconds = meta
        .get("seconds")
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| history.iter().map(|r| r.complete).fold(0.0, f64::max));
    let clients = history
        .iter()
        .filter(|r| !r.final_read)
        .map(|r| r.client + 1)
        .max()
        .unwrap_or(0);
    let keys = history
        .iter()
        .map(|r| r.key.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let run = Run {
        converged: match meta.get("converged_at_index") {
            Some(v) => v.as_u64(),
            None => Some(0),
        },
        nodes: meta.get("nodes").and_then(|v| v.as_u64()).unwrap_or(0) as usize,
        history,
        nemesis,
        seconds,
    };
    let seed = meta.get("seed").and_then(|v| v.as_u64()).unwrap_or(0);
    let faults = meta
        .get("faults")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    verdict(dir, run, seed, faults, clients, keys, budget)
}
