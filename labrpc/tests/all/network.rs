//! The simulated network's tests: the intent of MIT 6.5840's `labrpc/test_test.go`, ported to
//! virtual time (so timing facts are asserted exactly), plus the Rust API's own guarantees.
//!
//! Every test runs in `sim::run_test`: it takes its seed from `RAFTLAB_SEED` and prints a replay
//! line when it fails.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use labrpc::network::DEFAULT_LATENCY_MICROS;
use labrpc::{ClientEnd, Network, RpcError, Server, Service, Sim, sim};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, sleep};

const PKG: &str = env!("CARGO_PKG_NAME");

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct JunkArgs {
    x: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct JunkReply {
    x: String,
}

/// What the junk server's handlers saw (the original's `log1` and `log2`).
#[derive(Clone, Default)]
struct JunkLog {
    strings: Arc<Mutex<Vec<String>>>,
    ints: Arc<Mutex<Vec<i64>>>,
}

impl JunkLog {
    fn ints(&self) -> Vec<i64> {
        self.ints.lock().unwrap().clone()
    }
    fn strings(&self) -> Vec<String> {
        self.strings.lock().unwrap().clone()
    }
}

/// The original's `JunkServer`.
fn junk_service(log: &JunkLog) -> Service {
    let strings = log.strings.clone();
    let ints = log.ints.clone();
    Service::new("JunkServer")
        .method("Handler1", move |args: String| {
            strings.lock().unwrap().push(args.clone());
            async move { args.parse::<i64>().unwrap_or(-1) }
        })
        .method("Handler2", move |args: i64| {
            ints.lock().unwrap().push(args);
            async move { format!("handler2-{args}") }
        })
        .method("Handler3", |args: i64| async move {
            sleep(Duration::from_secs(20)).await;
            -args
        })
        .method("Handler4", |_: JunkArgs| async {
            JunkReply {
                x: "pointer".into(),
            }
        })
        .method("Handler5", |_: JunkArgs| async {
            JunkReply {
                x: "no pointer".into(),
            }
        })
        .method("Handler6", |args: String| async move { args.len() as i64 })
        .method("Handler7", |n: i64| async move { "y".repeat(n as usize) })
}

fn junk_server(log: &JunkLog) -> Server {
    let mut server = Server::new();
    server.add_service(junk_service(log));
    server
}

/// A service whose handler sleeps `ms` virtual milliseconds, then sets `finished` and echoes `ms`.
fn slow_server(finished: &Arc<AtomicBool>) -> Server {
    let finished = finished.clone();
    let mut server = Server::new();
    server.add_service(Service::new("Slow").method("Sleep", move |ms: u64| {
        let finished = finished.clone();
        async move {
            sleep(Duration::from_millis(ms)).await;
            finished.store(true, Ordering::SeqCst);
            ms
        }
    }));
    server
}

/// A network without the default per-call latency, as in the original labrpc: the exact
/// virtual-time assertions below (a reliable call takes 0 ms, ...) rely on it.
fn zero_latency_net(sim: &Sim) -> Network {
    let net = Network::new(sim.rng("net", 0));
    net.set_latency(Duration::ZERO, Duration::ZERO);
    net
}

/// An end connected to `server` and enabled.
fn connected_end(net: &Network, end: &str, server: &str) -> ClientEnd {
    let e = net.make_end(end);
    net.connect(end, server);
    net.enable(end, true);
    e
}

fn encoded_len<T: Serialize>(v: &T) -> u64 {
    postcard::to_stdvec(v).unwrap().len() as u64
}

/// Calls `method` and returns the result with the virtual time the call took.
async fn timed_call<A: Serialize, R: serde::de::DeserializeOwned>(
    end: &ClientEnd,
    method: &str,
    args: &A,
) -> (Result<R, RpcError>, Duration) {
    let t0 = Instant::now();
    let r = end.call(method, args).await;
    (r, t0.elapsed())
}

#[test]
fn basic() {
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        let log = JunkLog::default();
        net.add_server("server99", junk_server(&log));
        let e = connected_end(&net, "end1-99", "server99");

        let (reply, took) = timed_call::<_, String>(&e, "JunkServer.Handler2", &111i64).await;
        assert_eq!(reply.unwrap(), "handler2-111");
        assert_eq!(
            took,
            Duration::ZERO,
            "a reliable call takes no virtual time"
        );

        let reply: i64 = e
            .call("JunkServer.Handler1", &"9099".to_string())
            .await
            .unwrap();
        assert_eq!(reply, 9099);
        assert_eq!(log.ints(), vec![111]);
        assert_eq!(log.strings(), vec!["9099".to_string()]);
        assert_eq!(e.name(), "end1-99");
    });
}

#[test]
fn types() {
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        net.add_server("server99", junk_server(&JunkLog::default()));
        let e = connected_end(&net, "end1-99", "server99");

        let reply: JunkReply = e
            .call("JunkServer.Handler4", &JunkArgs { x: 1 })
            .await
            .unwrap();
        assert_eq!(reply.x, "pointer");
        let reply: JunkReply = e
            .call("JunkServer.Handler5", &JunkArgs { x: 2 })
            .await
            .unwrap();
        assert_eq!(reply.x, "no pointer");
        // Different argument and reply types on the same end.
        let reply: i64 = e
            .call("JunkServer.Handler6", &"abc".to_string())
            .await
            .unwrap();
        assert_eq!(reply, 3);
        let reply: String = e.call("JunkServer.Handler7", &4i64).await.unwrap();
        assert_eq!(reply, "yyyy");

        // Arguments of the wrong type are rejected by the server's decoder...
        let r = e.call::<(), String>("JunkServer.Handler2", &()).await;
        assert!(matches!(r, Err(RpcError::Codec(_))), "{r:?}");
        // ...and a reply of the wrong type by the caller's (a 10-byte string is not a bool).
        let r = e.call::<i64, bool>("JunkServer.Handler2", &1).await;
        assert!(matches!(r, Err(RpcError::Codec(_))), "{r:?}");
    });
}

#[test]
fn disconnect() {
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        net.add_server("server99", junk_server(&JunkLog::default()));
        let e = net.make_end("end1-99");

        // Not connected (and not enabled): fails like a timeout, within [0, 100) ms.
        let (r, took) = timed_call::<_, String>(&e, "JunkServer.Handler2", &1i64).await;
        assert_eq!(r, Err(RpcError::Disconnected));
        assert!(took < Duration::from_millis(100), "{took:?}");

        // Connected but still disabled.
        net.connect("end1-99", "server99");
        let (r, took) = timed_call::<_, String>(&e, "JunkServer.Handler2", &2i64).await;
        assert_eq!(r, Err(RpcError::Disconnected));
        assert!(took < Duration::from_millis(100), "{took:?}");
        assert_eq!(
            net.count("server99"),
            0,
            "a disabled end's call reaches no server"
        );

        net.enable("end1-99", true);
        let reply: String = e.call("JunkServer.Handler2", &3i64).await.unwrap();
        assert_eq!(reply, "handler2-3");
        assert_eq!(net.count("server99"), 1);

        // Disabled again: fails again.
        net.enable("end1-99", false);
        let r = e.call::<_, String>("JunkServer.Handler2", &4i64).await;
        assert_eq!(r, Err(RpcError::Disconnected));

        // Enabled, but connected to a server that does not exist.
        let e2 = connected_end(&net, "end2-nobody", "nobody");
        let r = e2.call::<_, String>("JunkServer.Handler2", &5i64).await;
        assert_eq!(r, Err(RpcError::Disconnected));

        // A deleted end.
        net.enable("end1-99", true);
        net.delete_end("end1-99");
        let r = e.call::<_, String>("JunkServer.Handler2", &6i64).await;
        assert_eq!(r, Err(RpcError::Disconnected));
        assert_eq!(net.count("server99"), 1);
    });
}

#[test]
fn counts() {
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        net.add_server("server99", junk_server(&JunkLog::default()));
        net.add_server("server98", junk_server(&JunkLog::default()));
        let e = connected_end(&net, "end1-99", "server99");
        let e98 = connected_end(&net, "end1-98", "server98");

        for i in 0..17i64 {
            let reply: String = e.call("JunkServer.Handler2", &(113 + i)).await.unwrap();
            assert_eq!(reply, format!("handler2-{}", 113 + i));
        }
        for _ in 0..3 {
            let _: String = e98.call("JunkServer.Handler2", &0i64).await.unwrap();
        }
        assert_eq!(net.count("server99"), 17);
        assert_eq!(net.count("server98"), 3);
        assert_eq!(net.count("nobody"), 0);
        assert_eq!(net.total_count(), 20);

        // A replacement is a new server: its count starts again.
        net.add_server("server99", junk_server(&JunkLog::default()));
        assert_eq!(net.count("server99"), 0);
        let _: String = e.call("JunkServer.Handler2", &0i64).await.unwrap();
        assert_eq!(net.count("server99"), 1);
        net.delete_server("server99");
        assert_eq!(net.count("server99"), 0);
    });
}

#[test]
fn bytes() {
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        net.add_server("server99", junk_server(&JunkLog::default()));
        let e = connected_end(&net, "end1-99", "server99");
        assert_eq!(net.total_bytes(), 0);

        // A big request: request bytes plus reply bytes.
        let args = "x".repeat(5000);
        for _ in 0..17 {
            let before = net.total_bytes();
            let reply: i64 = e.call("JunkServer.Handler6", &args).await.unwrap();
            assert_eq!(reply, 5000);
            let grew = net.total_bytes() - before;
            assert_eq!(grew, encoded_len(&args) + encoded_len(&reply));
            assert!((5000..5010).contains(&grew), "{grew}");
        }

        // A big reply.
        let before = net.total_bytes();
        let reply: String = e.call("JunkServer.Handler7", &5000i64).await.unwrap();
        assert_eq!(reply.len(), 5000);
        let grew = net.total_bytes() - before;
        assert_eq!(grew, encoded_len(&5000i64) + encoded_len(&reply));

        // A call that reaches no server still sent its request, but got no reply.
        net.enable("end1-99", false);
        let before = net.total_bytes();
        let r = e.call::<_, i64>("JunkServer.Handler6", &args).await;
        assert_eq!(r, Err(RpcError::Disconnected));
        assert_eq!(net.total_bytes() - before, encoded_len(&args));
    });
}

#[test]
fn concurrent_many() {
    const NSERVERS: usize = 5;
    const NCLIENTS: usize = 20;
    const NRPCS: usize = 10;
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        for s in 0..NSERVERS {
            net.add_server(format!("s{s}"), junk_server(&JunkLog::default()));
        }
        let mut clients = Vec::new();
        for c in 0..NCLIENTS {
            let ends: Vec<ClientEnd> = (0..NSERVERS)
                .map(|s| connected_end(&net, &format!("c{c}-s{s}"), &format!("s{s}")))
                .collect();
            let mut rng = sim.rng("client", c as u64);
            clients.push(tokio::spawn(async move {
                let mut per_server = [0u64; NSERVERS];
                for i in 0..NRPCS {
                    sleep(Duration::from_millis(rng.random_range(0..3))).await;
                    let s = rng.random_range(0..NSERVERS);
                    let arg = (c * 1000 + i) as i64;
                    let reply: String = ends[s].call("JunkServer.Handler2", &arg).await.unwrap();
                    assert_eq!(reply, format!("handler2-{arg}"));
                    per_server[s] += 1;
                }
                per_server
            }));
        }
        let mut per_server = [0u64; NSERVERS];
        for client in clients {
            let counts = client.await.unwrap();
            for (total, n) in per_server.iter_mut().zip(counts) {
                *total += n;
            }
        }
        for (s, n) in per_server.iter().enumerate() {
            assert_eq!(net.count(&format!("s{s}")), *n, "server s{s}");
        }
        assert_eq!(per_server.iter().sum::<u64>(), (NCLIENTS * NRPCS) as u64);
        assert_eq!(net.total_count(), (NCLIENTS * NRPCS) as u64);
    });
}

#[test]
fn unreliable() {
    const NCLIENTS: usize = 30;
    const NRPCS: usize = 10;
    const CALLS: u64 = (NCLIENTS * NRPCS) as u64;
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        net.add_server("server99", junk_server(&JunkLog::default()));
        net.set_reliable(false);
        let mut clients = Vec::new();
        for c in 0..NCLIENTS {
            let e = connected_end(&net, &format!("end{c}"), "server99");
            clients.push(tokio::spawn(async move {
                let mut results = Vec::new();
                for i in 0..NRPCS {
                    let arg = (c * 100 + i) as i64;
                    let (r, took) = timed_call::<_, String>(&e, "JunkServer.Handler2", &arg).await;
                    // 0-26 ms of delay, never more (no long delays, no reordering).
                    assert!(took < Duration::from_millis(27), "{took:?}");
                    match &r {
                        Ok(reply) => assert_eq!(*reply, format!("handler2-{arg}")),
                        Err(e) => assert_eq!(*e, RpcError::Dropped),
                    }
                    results.push(r.is_ok());
                }
                results
            }));
        }
        let mut ok = 0u64;
        for client in clients {
            ok += client.await.unwrap().iter().filter(|ok| **ok).count() as u64;
        }
        let failed = CALLS - ok;
        // p(fail) = 1 - 0.9 * 0.9 = 0.19: 57 expected, sd 6.8.
        assert!(
            (20..=110).contains(&failed),
            "{failed} of {CALLS} calls failed"
        );
        // Requests dropped never reach the server (p = 0.1: 30 expected, sd 5.2).
        let reached = net.count("server99");
        assert!(
            reached >= ok && reached <= CALLS,
            "{reached} reached, {ok} ok"
        );
        assert!(
            (5..=70).contains(&(CALLS - reached)),
            "{} requests dropped",
            CALLS - reached
        );
        assert_eq!(net.total_count(), CALLS);

        // Reliable again: every call succeeds at once.
        net.set_reliable(true);
        let e = connected_end(&net, "again", "server99");
        for i in 0..20i64 {
            let (r, took) = timed_call::<_, String>(&e, "JunkServer.Handler2", &i).await;
            assert_eq!(r.unwrap(), format!("handler2-{i}"));
            assert_eq!(took, Duration::ZERO);
        }
    });
}

#[test]
fn concurrent_one() {
    const NCLIENTS: usize = 20;
    const NRPCS: usize = 10;
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        let log = JunkLog::default();
        net.add_server("server99", junk_server(&log));
        // One end shared by every task.
        let e = connected_end(&net, "end1-99", "server99");
        let mut tasks = Vec::new();
        for c in 0..NCLIENTS {
            let e = e.clone();
            let mut rng = sim.rng("client", c as u64);
            tasks.push(tokio::spawn(async move {
                for i in 0..NRPCS {
                    sleep(Duration::from_millis(rng.random_range(0..2))).await;
                    let arg = (100 + c * NRPCS + i) as i64;
                    let reply: String = e.call("JunkServer.Handler2", &arg).await.unwrap();
                    assert_eq!(reply, format!("handler2-{arg}"));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(net.count("server99"), (NCLIENTS * NRPCS) as u64);
        let mut seen = log.ints();
        seen.sort_unstable();
        let want: Vec<i64> = (100..100 + (NCLIENTS * NRPCS) as i64).collect();
        assert_eq!(seen, want, "every call ran its handler exactly once");
    });
}

/// A server replaced (`add_server` with the same name) while a call is in its handler: the call
/// fails as soon as the server is replaced, and the handler still runs to its end, as the
/// original's handler goroutine does, but its reply is never delivered.
#[test]
fn regression_server_replaced_mid_call() {
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        let finished = Arc::new(AtomicBool::new(false));
        net.add_server("s", slow_server(&finished));
        let e = connected_end(&net, "e", "s");

        let call = tokio::spawn({
            let e = e.clone();
            async move { timed_call::<_, u64>(&e, "Slow.Sleep", &500u64).await }
        });
        sleep(Duration::from_millis(100)).await;
        assert!(!call.is_finished(), "the handler sleeps 500 ms");
        assert_eq!(net.count("s"), 1);

        let finished2 = Arc::new(AtomicBool::new(false));
        net.add_server("s", slow_server(&finished2));
        let (r, took) = call.await.unwrap();
        assert_eq!(r, Err(RpcError::ServerKilled));
        assert_eq!(
            took,
            Duration::from_millis(100),
            "fails as soon as replaced"
        );

        // The old handler goes on, like the original's goroutine, and finishes at 500 ms.
        sleep(Duration::from_millis(399)).await;
        assert!(!finished.load(Ordering::SeqCst));
        sleep(Duration::from_millis(2)).await;
        assert!(
            finished.load(Ordering::SeqCst),
            "the handler runs to its end"
        );

        // The replacement answers.
        let (r, took) = timed_call::<_, u64>(&e, "Slow.Sleep", &10u64).await;
        assert_eq!(r, Ok(10));
        assert_eq!(took, Duration::from_millis(10));
        assert!(finished2.load(Ordering::SeqCst));
        assert_eq!(net.count("s"), 1, "the replacement counts its own calls");
    });
}

/// The handler finishes, but its server was replaced before the reply left: the reply must not be
/// delivered (its effects went to a superseded server).
#[test]
fn regression_handler_finishes_on_replaced_server() {
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        let handled = Arc::new(AtomicU64::new(0));
        let mut server = Server::new();
        server.add_service(Service::new("Self").method("Replace", {
            let net = net.clone();
            let handled = handled.clone();
            move |x: u64| {
                // Replace this very server, then reply at once.
                net.add_server("s", junk_server(&JunkLog::default()));
                handled.fetch_add(1, Ordering::SeqCst);
                async move { x + 1 }
            }
        }));
        net.add_server("s", server);
        let e = connected_end(&net, "e", "s");
        let r = e.call::<_, u64>("Self.Replace", &1u64).await;
        assert_eq!(r, Err(RpcError::ServerKilled));
        assert_eq!(handled.load(Ordering::SeqCst), 1, "the handler did run");
        let reply: String = e.call("JunkServer.Handler2", &7i64).await.unwrap();
        assert_eq!(reply, "handler2-7");
    });
}

/// The original's `TestRegression1`: calls delayed while an end is disabled must not delay calls
/// made after it is enabled again.
#[test]
fn regression_disabled_calls_do_not_delay_later_ones() {
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        net.add_server("server99", junk_server(&JunkLog::default()));
        let e = connected_end(&net, "end1-99", "server99");
        net.enable("end1-99", false);
        let mut early = Vec::new();
        for i in 0..20i64 {
            let e = e.clone();
            early.push(tokio::spawn(async move {
                e.call::<_, String>("JunkServer.Handler2", &(100 + i)).await
            }));
        }
        sleep(Duration::from_millis(100)).await;
        net.enable("end1-99", true);
        let (r, took) = timed_call::<_, String>(&e, "JunkServer.Handler2", &99i64).await;
        assert_eq!(r.unwrap(), "handler2-99");
        assert_eq!(took, Duration::ZERO);
        for call in early {
            assert_eq!(call.await.unwrap(), Err(RpcError::Disconnected));
        }
        assert_eq!(net.count("server99"), 1);
    });
}

/// The original's `TestKilled`, plus the other ways a call in a handler is killed.
#[test]
fn killed() {
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        let log = JunkLog::default();

        // delete_server while the call is in Handler3 (which sleeps 20 s).
        net.add_server("server99", junk_server(&log));
        let e = connected_end(&net, "end1-99", "server99");
        let call = tokio::spawn({
            let e = e.clone();
            async move { timed_call::<_, i64>(&e, "JunkServer.Handler3", &99i64).await }
        });
        sleep(Duration::from_secs(1)).await;
        assert!(!call.is_finished(), "Handler3 should not have returned yet");
        net.delete_server("server99");
        let (r, took) = call.await.unwrap();
        assert_eq!(r, Err(RpcError::ServerKilled));
        assert_eq!(took, Duration::from_secs(1));

        // Disable the end while the call is in the handler.
        net.add_server("server99", junk_server(&log));
        let call = tokio::spawn({
            let e = e.clone();
            async move { timed_call::<_, i64>(&e, "JunkServer.Handler3", &98i64).await }
        });
        sleep(Duration::from_millis(300)).await;
        assert!(!call.is_finished());
        net.enable("end1-99", false);
        let (r, took) = call.await.unwrap();
        assert_eq!(r, Err(RpcError::ServerKilled));
        assert_eq!(took, Duration::from_millis(300));

        // Delete the end while the call is in the handler.
        net.enable("end1-99", true);
        let call = tokio::spawn({
            let e = e.clone();
            async move { timed_call::<_, i64>(&e, "JunkServer.Handler3", &97i64).await }
        });
        sleep(Duration::from_millis(50)).await;
        net.delete_end("end1-99");
        let (r, took) = call.await.unwrap();
        assert_eq!(r, Err(RpcError::ServerKilled));
        assert_eq!(took, Duration::from_millis(50));

        // Undisturbed, Handler3 answers after its 20 s.
        let e2 = connected_end(&net, "end2-99", "server99");
        let (r, took) = timed_call::<_, i64>(&e2, "JunkServer.Handler3", &5i64).await;
        assert_eq!(r, Ok(-5));
        assert_eq!(took, Duration::from_secs(20));
    });
}

/// A caller that gives up (its own deadline) does not cancel the handler on the server: the
/// server keeps processing, as a real server (and the original's goroutine) would.
#[test]
fn caller_deadline_does_not_cancel_handler() {
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        let finished = Arc::new(AtomicBool::new(false));
        net.add_server("s", slow_server(&finished));
        let e = connected_end(&net, "e", "s");
        let r = tokio::time::timeout(
            Duration::from_millis(50),
            e.call::<_, u64>("Slow.Sleep", &200u64),
        )
        .await;
        assert!(r.is_err(), "the caller's deadline passed");
        sleep(Duration::from_millis(200)).await;
        assert!(
            finished.load(Ordering::SeqCst),
            "the handler ran to its end although the caller gave up"
        );
    });
}

/// With long delays, a call on a disabled end fails after up to 7 s of virtual time (instead of
/// under 100 ms), and enabling the end meanwhile does not rescue it; calls made after the enable
/// go through at once.
#[test]
fn long_delay_race() {
    const CALLS: usize = 50;
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        net.add_server("server99", junk_server(&JunkLog::default()));
        let e = connected_end(&net, "end1-99", "server99");
        net.enable("end1-99", false);

        let spawn_calls = |e: &ClientEnd| {
            (0..CALLS)
                .map(|i| {
                    let e = e.clone();
                    tokio::spawn(async move {
                        timed_call::<_, String>(&e, "JunkServer.Handler2", &(i as i64)).await
                    })
                })
                .collect::<Vec<_>>()
        };

        // Short delays: all fail within [0, 100) ms.
        for call in spawn_calls(&e) {
            let (r, took) = call.await.unwrap();
            assert_eq!(r, Err(RpcError::Disconnected));
            assert!(took < Duration::from_millis(100), "{took:?}");
        }

        // Long delays: all fail within [0, 7000) ms, and most take far longer than 100 ms.
        net.set_long_delays(true);
        let calls = spawn_calls(&e);
        sleep(Duration::from_millis(100)).await;
        net.enable("end1-99", true);
        let (r, took) = timed_call::<_, String>(&e, "JunkServer.Handler2", &777i64).await;
        assert_eq!(r.unwrap(), "handler2-777");
        assert_eq!(
            took,
            Duration::ZERO,
            "long delays only affect unreachable calls"
        );
        let mut longest = Duration::ZERO;
        let mut over_a_second = 0;
        for call in calls {
            let (r, took) = call.await.unwrap();
            assert_eq!(
                r,
                Err(RpcError::Disconnected),
                "decided when the call began"
            );
            assert!(took < Duration::from_millis(7000), "{took:?}");
            longest = longest.max(took);
            over_a_second += usize::from(took >= Duration::from_secs(1));
        }
        // p(took < 1 s) = 1/7 per call: 43 of 50 expected over a second.
        assert!(
            over_a_second >= 25,
            "only {over_a_second} calls took over 1 s"
        );
        assert!(longest >= Duration::from_secs(3), "{longest:?}");
        assert_eq!(net.count("server99"), 1);
    });
}

/// With long reordering, about 2/3 of replies are held back 200-2199 ms, so replies arrive out of
/// the order their calls were made in.
#[test]
fn long_reordering() {
    const CALLS: i64 = 100;
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        net.add_server("server99", junk_server(&JunkLog::default()));
        let e = connected_end(&net, "end1-99", "server99");
        net.set_long_reordering(true);
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let mut calls = Vec::new();
        for i in 0..CALLS {
            let e = e.clone();
            let arrivals = arrivals.clone();
            calls.push(tokio::spawn(async move {
                // One call per virtual millisecond, in order of i.
                sleep(Duration::from_millis(i as u64)).await;
                let (r, took) = timed_call::<_, String>(&e, "JunkServer.Handler2", &i).await;
                assert_eq!(
                    r.unwrap(),
                    format!("handler2-{i}"),
                    "reordering never drops"
                );
                arrivals.lock().unwrap().push(i);
                took
            }));
        }
        let mut delayed = 0;
        for call in calls {
            let took = call.await.unwrap();
            if took != Duration::ZERO {
                assert!(
                    took >= Duration::from_millis(200) && took < Duration::from_millis(2200),
                    "{took:?}"
                );
                delayed += 1;
            }
        }
        // p = 2/3: 67 of 100 expected, sd 4.7.
        assert!((40..=90).contains(&delayed), "{delayed} delayed");
        let arrivals = arrivals.lock().unwrap().clone();
        assert_eq!(arrivals.len(), CALLS as usize);
        assert!(
            arrivals.windows(2).any(|w| w[0] > w[1]),
            "replies arrived in call order"
        );
        assert_eq!(net.count("server99"), CALLS as u64);
    });
}

#[test]
fn unknown_method() {
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        net.add_server("server99", junk_server(&JunkLog::default()));
        let e = connected_end(&net, "end1-99", "server99");
        let bad = [
            "JunkServer.Nope",
            "Nope.Handler2",
            "Handler2",
            "",
            "JunkServer.",
        ];
        for m in bad {
            let r = e.call::<_, String>(m, &1i64).await;
            assert_eq!(r, Err(RpcError::UnknownMethod(m.to_owned())));
            let msg = r.unwrap_err().to_string();
            assert!(msg.contains(&format!("{m:?}")), "{msg}");
        }
        assert_eq!(
            net.count("server99"),
            bad.len() as u64,
            "they reached the server"
        );
        let reply: String = e.call("JunkServer.Handler2", &1i64).await.unwrap();
        assert_eq!(reply, "handler2-1");
    });
}

#[test]
fn malformed_bytes() {
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        let log = JunkLog::default();
        net.add_server("server99", junk_server(&log));
        let e = connected_end(&net, "end1-99", "server99");

        for junk in [vec![], vec![0xff; 12], vec![0x80]] {
            let r = e.call_bytes("JunkServer.Handler2", junk).await;
            assert!(matches!(r, Err(RpcError::Codec(_))), "{r:?}");
        }
        // A string whose length runs past the end of the message.
        let r = e.call_bytes("JunkServer.Handler1", vec![50, b'1']).await;
        assert!(matches!(r, Err(RpcError::Codec(_))), "{r:?}");
        assert!(
            log.ints().is_empty() && log.strings().is_empty(),
            "no handler ran"
        );

        // The server keeps serving, through both APIs.
        let reply = e
            .call_bytes("JunkServer.Handler2", postcard::to_stdvec(&42i64).unwrap())
            .await
            .unwrap();
        assert_eq!(
            postcard::from_bytes::<String>(&reply).unwrap(),
            "handler2-42"
        );
        let reply: String = e.call("JunkServer.Handler2", &43i64).await.unwrap();
        assert_eq!(reply, "handler2-43");
        assert_eq!(log.ints(), vec![42, 43]);
        assert_eq!(net.count("server99"), 6);
    });
}

#[test]
fn total_count_includes_calls_that_reach_no_server() {
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        net.add_server("s", junk_server(&JunkLog::default()));
        let disabled = net.make_end("disabled");
        net.connect("disabled", "s");
        let unconnected = net.make_end("unconnected");
        net.enable("unconnected", true);
        let nowhere = connected_end(&net, "nowhere", "nobody");
        for end in [
            &disabled,
            &disabled,
            &disabled,
            &unconnected,
            &unconnected,
            &nowhere,
        ] {
            let r = end.call::<_, String>("JunkServer.Handler2", &1i64).await;
            assert_eq!(r, Err(RpcError::Disconnected));
        }
        assert_eq!(net.total_count(), 6);
        assert_eq!(net.count("s"), 0);
        assert_eq!(net.total_bytes(), 6 * encoded_len(&1i64));

        let ok = connected_end(&net, "ok", "s");
        let _: String = ok.call("JunkServer.Handler2", &1i64).await.unwrap();
        assert_eq!(net.total_count(), 7);
        assert_eq!(net.count("s"), 1);
    });
}

/// The unreliable network's choices come from the network's generator only: the same seed gives
/// the same outcomes, call for call.
#[test]
fn unreliable_outcomes_follow_the_seed() {
    sim::run_test(PKG, |sim| async move {
        async fn outcomes(net: Network) -> Vec<(bool, Duration)> {
            net.add_server("s", junk_server(&JunkLog::default()));
            net.set_reliable(false);
            let e = connected_end(&net, "e", "s");
            let mut v = Vec::new();
            for i in 0..50i64 {
                let (r, took) = timed_call::<_, String>(&e, "JunkServer.Handler2", &i).await;
                v.push((r.is_ok(), took));
            }
            v
        }
        let a = outcomes(Network::new(sim.rng("net", 0))).await;
        let b = outcomes(Network::new(sim.rng("net", 0))).await;
        let c = outcomes(Network::new(sim.rng("net", 1))).await;
        assert_eq!(a.len(), 50);
        assert_eq!(a, b);
        assert_ne!(a, c);
    });
}

/// A handler that panics makes its caller panic (a bug in a handler must not pass unnoticed).
#[test]
fn handler_panic_reaches_the_caller() {
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        let mut server = Server::new();
        server.add_service(Service::new("Bad").method("Panic", |x: u64| async move {
            assert!(x < 10, "handler bug: x = {x}");
            x
        }));
        net.add_server("s", server);
        let e = connected_end(&net, "e", "s");
        assert_eq!(e.call::<_, u64>("Bad.Panic", &1u64).await, Ok(1));
        let caller = tokio::spawn(async move { e.call::<_, u64>("Bad.Panic", &99u64).await });
        let err = caller.await.unwrap_err();
        assert!(err.is_panic());
        let msg = err.into_panic();
        let msg = msg.downcast_ref::<String>().unwrap();
        assert!(msg.contains("handler bug: x = 99"), "{msg}");
    });
}

/// Every delivered call first takes the network's latency (by default 100 us to 1 ms); calls
/// that reach no server do not.
#[test]
fn latency() {
    sim::run_test(PKG, |sim| async move {
        let net = Network::new(sim.rng("net", 0));
        net.add_server("server99", junk_server(&JunkLog::default()));
        let e = connected_end(&net, "end1-99", "server99");
        let (lo, hi) = DEFAULT_LATENCY_MICROS;
        assert!(lo > 0 && lo <= hi);
        // The default is a nonzero latency in [lo, hi): every delivered call takes some time.
        let mut seen_default = std::collections::BTreeSet::new();
        for i in 0..40i64 {
            let (r, took) = timed_call::<_, String>(&e, "JunkServer.Handler2", &i).await;
            assert_eq!(r.unwrap(), format!("handler2-{i}"));
            assert!(took >= Duration::from_micros(lo), "{took:?}");
            assert!(took <= Duration::from_micros(hi), "{took:?}");
            seen_default.insert(took);
        }
        assert!(
            seen_default.len() > 1,
            "the default latency varies: {seen_default:?}"
        );

        net.set_latency(Duration::from_millis(5), Duration::from_millis(5));
        let (r, took) = timed_call::<_, String>(&e, "JunkServer.Handler2", &1i64).await;
        assert_eq!(r.unwrap(), "handler2-1");
        assert_eq!(took, Duration::from_millis(5));

        net.set_latency(Duration::from_millis(2), Duration::from_millis(10));
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..50i64 {
            let (r, took) = timed_call::<_, String>(&e, "JunkServer.Handler2", &i).await;
            assert!(r.is_ok());
            assert!(took >= Duration::from_millis(2) && took <= Duration::from_millis(10));
            seen.insert(took);
        }
        assert!(seen.len() >= 4, "latency is drawn at random: {seen:?}");

        // A maximum below the minimum means a fixed latency.
        net.set_latency(Duration::from_millis(3), Duration::ZERO);
        let (_, took) = timed_call::<_, String>(&e, "JunkServer.Handler2", &1i64).await;
        assert_eq!(took, Duration::from_millis(3));

        // The latency is paid before the handler: a server killed meanwhile gets no call.
        net.set_latency(Duration::from_millis(50), Duration::from_millis(50));
        let call = tokio::spawn({
            let e = e.clone();
            async move { timed_call::<_, String>(&e, "JunkServer.Handler2", &1i64).await }
        });
        let before = net.count("server99");
        sleep(Duration::from_millis(10)).await;
        assert_eq!(net.count("server99"), before, "still on the wire");
        let (r, took) = call.await.unwrap();
        assert!(r.is_ok());
        assert_eq!(took, Duration::from_millis(50));
        assert_eq!(net.count("server99"), before + 1);

        // Calls that reach no server fail within [0, 100) ms as before.
        net.enable("end1-99", false);
        let (r, took) = timed_call::<_, String>(&e, "JunkServer.Handler2", &1i64).await;
        assert_eq!(r, Err(RpcError::Disconnected));
        assert!(took < Duration::from_millis(100));
    });
}
