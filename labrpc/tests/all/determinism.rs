//! One seed replays a whole run event for event; different seeds give different runs.
//!
//! These tests call `sim::run` themselves (a run cannot be nested in `sim::run_test`), so they
//! print the replay line on failure through [`replay_on_failure`]. Their seeds start at
//! `RAFTLAB_SEED` (fresh each run when it is unset).

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::PathBuf;
use std::time::Duration;

use labrpc::{ClientEnd, Network, Server, Service, Sim, sim};
use rand::Rng;
use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

const PKG: &str = env!("CARGO_PKG_NAME");
const NSERVERS: u64 = 4;
const NCLIENTS: u64 = 3;

fn echo_server(id: u64) -> Server {
    let mut server = Server::new();
    server.add_service(
        Service::new("Echo")
            .method("Echo", move |x: u32| async move { u64::from(x) * 10 + id })
            .method("Slow", move |x: u32| async move {
                sleep(Duration::from_millis(u64::from(x % 50))).await;
                u64::from(x) * 10 + id
            }),
    );
    server
}

/// A random workload: clients calling random servers (some slow methods, some unknown ones)
/// while a driver disables and enables ends, toggles the network's faults and replaces servers.
/// Clients trace every outcome, so the digest covers what the callers saw.
async fn workload(sim: Sim) {
    let net = Network::new(sim.rng("net", 0));
    for s in 0..NSERVERS {
        net.add_server(s.to_string(), echo_server(s));
    }
    let mut end_names = Vec::new();
    for c in 0..NCLIENTS {
        let mut ends: Vec<ClientEnd> = Vec::new();
        for s in 0..NSERVERS {
            let name = format!("c{c}-{s}");
            ends.push(net.make_end(name.clone()));
            net.connect(&name, s.to_string());
            net.enable(&name, true);
            end_names.push(name);
        }
        let mut rng = sim.rng("client", c);
        tokio::spawn(async move {
            let node = format!("client{c}");
            loop {
                let s = rng.random_range(0..NSERVERS);
                let x: u32 = rng.random_range(0..1000);
                let method = match rng.random_range(0..20) {
                    0 => "Echo.Nope",
                    1..=5 => "Echo.Slow",
                    _ => "Echo.Echo",
                };
                let call = ends[s as usize].call::<u32, u64>(method, &x);
                let outcome = match tokio::time::timeout(Duration::from_millis(300), call).await {
                    Err(_) => "timeout".to_owned(),
                    Ok(Ok(v)) => {
                        assert_eq!(v, u64::from(x) * 10 + s, "wrong reply");
                        "ok".to_owned()
                    }
                    Ok(Err(e)) => format!("{e:?}"),
                };
                sim::trace_event(
                    Some(&node),
                    "client.result",
                    || json!({ "server": s, "method": method, "x": x, "outcome": outcome }),
                );
                sleep(Duration::from_millis(rng.random_range(0..20))).await;
            }
        });
    }

    let mut rng = sim.rng("driver", 0);
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        sleep(Duration::from_millis(rng.random_range(10..100))).await;
        match rng.random_range(0..6) {
            0 | 1 => {
                let e = &end_names[rng.random_range(0..end_names.len())];
                net.enable(e, rng.random_bool(0.6));
            }
            2 => net.set_reliable(rng.random_bool(0.5)),
            3 => net.set_long_reordering(rng.random_ratio(1, 3)),
            4 => {
                let s = rng.random_range(0..NSERVERS);
                net.add_server(s.to_string(), echo_server(s));
            }
            _ => net.set_long_delays(rng.random_ratio(1, 3)),
        }
    }
    sim::trace_event(
        None,
        "workload.done",
        || json!({ "rpcs": net.total_count(), "bytes": net.total_bytes() }),
    );
}

/// Runs `f`; if it panics, prints the line that replays this test with `seed` first.
fn replay_on_failure(seed: u64, f: impl FnOnce()) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(f)) {
        eprintln!(
            "seed {seed} failed; replay with:\n  {}",
            sim::replay_command(PKG, seed)
        );
        resume_unwind(panic);
    }
}

#[test]
fn same_seed_same_run_different_seeds_different_runs() {
    let base = sim::seed_from_env();
    replay_on_failure(base, || {
        let mut hashes = BTreeSet::new();
        for i in 0..20 {
            let seed = base.wrapping_add(i);
            let digest = sim::assert_deterministic(seed, workload);
            assert!(digest.events > 150, "seed {seed}: only {digest}");
            hashes.insert(digest.hash);
        }
        assert_eq!(hashes.len(), 20, "different seeds gave equal digests");
    });
}

/// A trace file path unique to this process and tag, removed when dropped.
struct TempTrace(PathBuf);

impl TempTrace {
    fn new(tag: &str, seed: u64) -> Self {
        let name = format!(
            "labrpc-test-{}-{tag}-{seed}.trace.jsonl",
            std::process::id()
        );
        TempTrace(std::env::temp_dir().join(name))
    }
}

impl Drop for TempTrace {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn traced_run(seed: u64, file: &TempTrace) -> (Vec<u8>, sim::TraceDigest) {
    let ((), digest) = sim::run(
        sim::Config::new(seed).trace_file(Some(file.0.clone())),
        workload,
    );
    (std::fs::read(&file.0).unwrap(), digest)
}

#[test]
fn trace_files_replay_byte_for_byte() {
    let seed = sim::seed_from_env();
    replay_on_failure(seed, || {
        let (a_file, b_file, c_file) = (
            TempTrace::new("a", seed),
            TempTrace::new("b", seed),
            TempTrace::new("c", seed),
        );
        let (a, a_digest) = traced_run(seed, &a_file);
        let (b, b_digest) = traced_run(seed, &b_file);
        assert!(a == b, "seed {seed}: two trace files differ");
        assert_eq!(a_digest, b_digest);

        let text = String::from_utf8(a).unwrap();
        let mut kinds = BTreeSet::new();
        let mut last_t = 0;
        let mut lines = 0;
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let obj = v
                .as_object()
                .unwrap_or_else(|| panic!("not an object: {line}"));
            let t = obj["t_us"]
                .as_u64()
                .unwrap_or_else(|| panic!("t_us: {line}"));
            assert!(t >= last_t, "time went backwards: {line}");
            last_t = t;
            assert!(
                obj["node"].is_string() || obj["node"].is_null(),
                "node: {line}"
            );
            kinds.insert(obj["kind"].as_str().unwrap().to_owned());
            lines += 1;
        }
        assert_eq!(lines, a_digest.events, "one line per event");
        assert!(last_t >= 3_000_000, "the workload runs 3 virtual seconds");
        for kind in [
            "net.add_server",
            "net.connect",
            "net.enable",
            "rpc.send",
            "rpc.reply",
            "client.result",
            "log",
            "workload.done",
        ] {
            assert!(kinds.contains(kind), "no {kind:?} event in {kinds:?}");
        }

        let (c, c_digest) = traced_run(seed.wrapping_add(1), &c_file);
        assert!(c != text.as_bytes(), "another seed wrote the same trace");
        assert_ne!(c_digest, a_digest);
    });
}
