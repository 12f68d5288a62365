//! How fast the simulated network runs: `cargo bench -p labrpc`.
//!
//! 1. Simulated RPCs per wall-clock second: 10 clients making back-to-back calls to 5 servers
//!    for 60 simulated seconds, with the network's default latency (a delivered call takes 1 ms
//!    of virtual time: 100 us-1 ms, rounded up to tokio's 1 ms timer resolution), reliable and
//!    unreliable (which adds 0-26 ms per call and drops 19% of calls).
//! 2. A Raft-like heartbeat load: 5 nodes, each sending a heartbeat RPC to each other node every
//!    50 ms for 60 simulated seconds. Reports wall time, simulated time and their ratio.
//!
//! Each figure is the median of a few runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use labrpc::{ClientEnd, Network, Server, Service, sim};
use tokio::time::{Instant, sleep_until};

const SERVERS: usize = 5;
const CLIENTS: usize = 10;
const RUNS: usize = 5;

/// Wall-clock time, to time the benchmark itself. The simulation's rules forbid the wall clock
/// (clippy.toml); this is read only outside simulated runs, before and after `sim::run`, so it
/// cannot leak into one.
#[allow(clippy::disallowed_methods)]
fn wall_now() -> std::time::Instant {
    std::time::Instant::now()
}

fn echo_server() -> Server {
    let mut server = Server::new();
    server.add_service(Service::new("Echo").method("Echo", |x: u64| async move { x + 1 }));
    server
}

fn heartbeat_server() -> Server {
    let mut server = Server::new();
    server.add_service(
        Service::new("Raft").method("Heartbeat", |(term, _leader): (u64, u64)| async move {
            (term, true)
        }),
    );
    server
}

struct Sample {
    wall: Duration,
    simulated: Duration,
    calls: u64,
    ok: u64,
}

/// Runs `scenario` `RUNS` times (seeds 1..) and returns the run with the median wall time.
/// The scenario returns (calls made, calls answered).
fn median<Fut>(record: bool, scenario: impl Fn(sim::Sim) -> Fut) -> Sample
where
    Fut: Future<Output = (u64, u64)>,
{
    let mut samples: Vec<Sample> = (1..=RUNS as u64)
        .map(|seed| {
            let start = wall_now();
            let (((calls, ok), simulated), _digest) =
                sim::run(sim::Config::new(seed).record(record), |sim| {
                    let fut = scenario(sim);
                    async move {
                        let t0 = Instant::now();
                        let counts = fut.await;
                        (counts, t0.elapsed())
                    }
                });
            Sample {
                wall: start.elapsed(),
                simulated,
                calls,
                ok,
            }
        })
        .collect();
    samples.sort_by_key(|s| s.wall);
    samples.swap_remove(RUNS / 2)
}

/// Clients making back-to-back calls, round robin over the servers.
async fn back_to_back(
    sim: sim::Sim,
    reliable: bool,
    calls_per_client: u64,
    for_secs: u64,
) -> (u64, u64) {
    let net = Network::new(sim.rng("net", 0));
    for s in 0..SERVERS {
        net.add_server(s.to_string(), echo_server());
    }
    net.set_reliable(reliable);
    let ok = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(for_secs);
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let ends: Vec<ClientEnd> = (0..SERVERS)
            .map(|s| {
                let name = format!("c{c}-{s}");
                let end = net.make_end(name.clone());
                net.connect(&name, s.to_string());
                net.enable(&name, true);
                end
            })
            .collect();
        let ok = ok.clone();
        clients.push(tokio::spawn(async move {
            let mut i = 0;
            while i < calls_per_client && Instant::now() < deadline {
                if let Ok(r) = ends[i as usize % SERVERS]
                    .call::<u64, u64>("Echo.Echo", &i)
                    .await
                {
                    assert_eq!(r, i + 1);
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    (net.total_count(), ok.load(Ordering::Relaxed))
}

/// Every node sends a heartbeat to every other node every 50 ms, each RPC in its own task (as a
/// Raft leader does), for `secs` simulated seconds.
async fn heartbeats(sim: sim::Sim, reliable: bool, secs: u64) -> (u64, u64) {
    let net = Network::new(sim.rng("net", 0));
    for s in 0..SERVERS {
        net.add_server(s.to_string(), heartbeat_server());
    }
    net.set_reliable(reliable);
    let ok = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut nodes = Vec::new();
    for from in 0..SERVERS {
        let peers: Vec<ClientEnd> = (0..SERVERS)
            .filter(|to| *to != from)
            .map(|to| {
                let name = format!("{from}->{to}");
                let e = net.make_end(name.clone());
                net.connect(&name, to.to_string());
                net.enable(&name, true);
                e
            })
            .collect();
        let ok = ok.clone();
        nodes.push(tokio::spawn(async move {
            let mut tick = start;
            while tick < end {
                for peer in &peers {
                    let peer = peer.clone();
                    let ok = ok.clone();
                    tokio::spawn(async move {
                        let args = (1u64, from as u64);
                        let r = peer.call::<_, (u64, bool)>("Raft.Heartbeat", &args);
                        if r.await.is_ok() {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                tick += Duration::from_millis(50);
                sleep_until(tick).await;
            }
        }));
    }
    for n in nodes {
        n.await.unwrap();
    }
    (net.total_count(), ok.load(Ordering::Relaxed))
}

fn main() {
    println!("labrpc benchmark: median of {RUNS} runs, {SERVERS} servers");
    println!();
    println!("1. back-to-back calls, {CLIENTS} clients, 60 s simulated");
    let rows: [(&str, bool, bool, u64, u64); 3] = [
        ("reliable", true, false, u64::MAX, 60),
        ("reliable, trace digest on", true, true, u64::MAX, 60),
        ("unreliable", false, false, u64::MAX, 60),
    ];
    for (label, reliable, record, calls, secs) in rows {
        let s = median(record, |sim| back_to_back(sim, reliable, calls, secs));
        println!(
            "   {label:<28} {:>8} calls ({:>5.1}% ok) in {:>7.1} ms wall, {:>6.1} s simulated: {:>9.0} RPC/s wall",
            s.calls,
            100.0 * s.ok as f64 / s.calls as f64,
            s.wall.as_secs_f64() * 1e3,
            s.simulated.as_secs_f64(),
            s.calls as f64 / s.wall.as_secs_f64(),
        );
    }
    println!();
    println!("2. heartbeats: {SERVERS} nodes, each to each other every 50 ms, 60 s simulated");
    for (label, reliable, record) in [
        ("reliable", true, false),
        ("reliable, trace digest on", true, true),
        ("unreliable", false, false),
    ] {
        let s = median(record, |sim| heartbeats(sim, reliable, 60));
        println!(
            "   {label:<28} {:>6} RPCs ({:>5.1}% ok): {:>7.1} ms wall, {:>5.1} s simulated, {:>6.0}x faster than real time ({:>8.0} RPC/s wall)",
            s.calls,
            100.0 * s.ok as f64 / s.calls as f64,
            s.wall.as_secs_f64() * 1e3,
            s.simulated.as_secs_f64(),
            s.simulated.as_secs_f64() / s.wall.as_secs_f64(),
            s.calls as f64 / s.wall.as_secs_f64(),
        );
    }
}
