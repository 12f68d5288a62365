//! Targeted fault rules: holding, releasing, duplicating and dropping chosen messages.
//!
//! Every test but the determinism ones runs in `sim::run_test`: it takes its seed from
//! `RAFTLAB_SEED` and prints a replay line when it fails.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use labrpc::{Action, CallInfo, ClientEnd, Network, Phase, RpcError, Server, Service, Sim, sim};
use rand::Rng;
use serde_json::json;
use tokio::time::{Instant, sleep};

const PKG: &str = env!("CARGO_PKG_NAME");

/// What the counter service's handler saw: (virtual ms when it ran, argument), in order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(u64, u64)>>>);

impl Log {
    fn calls(&self) -> Vec<(u64, u64)> {
        self.0.lock().unwrap().clone()
    }
    fn args(&self) -> Vec<u64> {
        self.calls().into_iter().map(|(_, x)| x).collect()
    }
}

/// `C.Inc(x)` logs the call and returns `x * 10`; `C.Other(x)` does the same with `x * 100`.
fn counter_server(log: &Log) -> Server {
    let (a, b) = (log.clone(), log.clone());
    let mut server = Server::new();
    server.add_service(
        Service::new("C")
            .method("Inc", move |x: u64| {
                a.0.lock().unwrap().push((labrpc::network::now_ms(), x));
                async move { x * 10 }
            })
            .method("Other", move |x: u64| {
                b.0.lock().unwrap().push((labrpc::network::now_ms(), x));
                async move { x * 100 }
            }),
    );
    server
}

fn zero_latency_net(sim: &Sim) -> Network {
    let net = Network::new(sim.rng("net", 0));
    net.set_latency(Duration::ZERO, Duration::ZERO);
    net
}

fn connected_end(net: &Network, end: &str, server: &str) -> ClientEnd {
    let e = net.make_end(end);
    net.connect(end, server);
    net.enable(end, true);
    e
}

/// A network with server "s" (logging into the returned log) and an end "e" to it.
fn setup(sim: &Sim) -> (Network, ClientEnd, Log) {
    let net = zero_latency_net(sim);
    let log = Log::default();
    net.add_server("s", counter_server(&log));
    let e = connected_end(&net, "e", "s");
    (net, e, log)
}

fn is_inc(c: &CallInfo<'_>) -> bool {
    c.method == "C.Inc"
}

/// Calls `method(x)`, failing with `RpcError::Timeout` after 10 virtual seconds rather than
/// hanging the test when a message is held that should not be.
async fn rpc(e: &ClientEnd, method: &str, x: u64) -> Result<u64, RpcError> {
    tokio::time::timeout(Duration::from_secs(10), e.call::<u64, u64>(method, &x))
        .await
        .unwrap_or(Err(RpcError::Timeout))
}

/// Starts `call(method, x)` in a task; the task returns the result and the virtual ms it ended.
fn spawn_call(
    e: &ClientEnd,
    method: &'static str,
    x: u64,
) -> tokio::task::JoinHandle<(Result<u64, RpcError>, u64)> {
    let e = e.clone();
    tokio::spawn(async move {
        let r = rpc(&e, method, x).await;
        (r, labrpc::network::now_ms())
    })
}

#[test]
fn held_request_reaches_the_handler_only_when_released() {
    sim::run_test(PKG, |sim| async move {
        let (net, e, log) = setup(&sim);
        net.set_latency(Duration::from_millis(5), Duration::from_millis(5));
        let rule = net.add_rule(Phase::Request, is_inc, Action::Hold, Some(1));
        let call = spawn_call(&e, "C.Inc", 7);
        sleep(Duration::from_millis(100)).await;
        assert!(log.calls().is_empty(), "a held request reached the handler");
        assert_eq!(net.count("s"), 0);
        assert!(!call.is_finished());
        let held = net.held();
        assert_eq!(held.len(), 1);
        let h = &held[0];
        assert_eq!(
            (h.rule, h.phase, h.end.as_str(), h.server.as_str()),
            (rule, Phase::Request, "e", "s")
        );
        assert_eq!(h.method, "C.Inc");
        assert_eq!(h.request, postcard::to_stdvec(&7u64).unwrap());
        assert_eq!(h.reply, None);
        assert_eq!(h.info().request_as::<u64>(), Ok(7));

        assert!(net.release(h.id));
        assert!(!net.release(h.id), "released twice");
        assert!(net.held().is_empty());
        let (r, at) = call.await.unwrap();
        assert_eq!(r, Ok(70));
        assert_eq!(
            at, 105,
            "the reply comes after the release, plus the latency"
        );
        assert_eq!(
            log.calls(),
            vec![(105, 7)],
            "the handler ran after the release (and the latency)"
        );
        assert_eq!(net.count("s"), 1);

        // The rule was for one call: the next one goes through after the latency alone.
        let (r, at) = spawn_call(&e, "C.Inc", 8).await.unwrap();
        assert_eq!((r, at), (Ok(80), 110));
    });
}

#[test]
fn held_requests_are_listed_in_order_and_delivered_in_release_order() {
    sim::run_test(PKG, |sim| async move {
        let (net, e, log) = setup(&sim);
        net.add_rule(Phase::Request, is_inc, Action::Hold, None);
        let calls: Vec<_> = (1..=3).map(|x| spawn_call(&e, "C.Inc", x)).collect();
        sleep(Duration::from_millis(1)).await;
        let held = net.held();
        let args: Vec<u64> = held
            .iter()
            .map(|h| h.info().request_as::<u64>().unwrap())
            .collect();
        assert_eq!(args, vec![1, 2, 3]);
        assert!(held.windows(2).all(|w| w[0].id < w[1].id));
        for h in held.iter().rev() {
            assert!(net.release(h.id));
            sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(log.calls(), vec![(1, 3), (11, 2), (21, 1)]);
        let ends: Vec<_> = {
            let mut v = Vec::new();
            for call in calls {
                v.push(call.await.unwrap());
            }
            v
        };
        assert_eq!(ends, vec![(Ok(10), 21), (Ok(20), 11), (Ok(30), 1)]);
    });
}

#[test]
fn held_reply_reaches_the_caller_only_when_released() {
    sim::run_test(PKG, |sim| async move {
        let (net, e, log) = setup(&sim);
        let rule = net.add_rule(Phase::Reply, is_inc, Action::Hold, None);
        let call = spawn_call(&e, "C.Inc", 4);
        sleep(Duration::from_millis(250)).await;
        assert_eq!(
            log.calls(),
            vec![(0, 4)],
            "the handler ran before the release"
        );
        assert!(!call.is_finished(), "the caller got a held reply");
        let held = net.held();
        assert_eq!(held.len(), 1);
        assert_eq!((held[0].rule, held[0].phase), (rule, Phase::Reply));
        assert_eq!(held[0].request, postcard::to_stdvec(&4u64).unwrap());
        assert_eq!(held[0].reply, Some(postcard::to_stdvec(&40u64).unwrap()));
        assert_eq!(held[0].info().reply_as::<u64>(), Some(40));

        assert_eq!(net.release_all(), 1);
        let (r, at) = call.await.unwrap();
        assert_eq!((r, at), (Ok(40), 250));
        assert_eq!(log.calls().len(), 1, "releasing a reply runs nothing again");
    });
}

#[test]
fn duplicate_runs_the_handler_twice_and_the_caller_gets_one_reply() {
    sim::run_test(PKG, |sim| async move {
        let net = zero_latency_net(&sim);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut server = Server::new();
        let s2 = seen.clone();
        // Each invocation answers with its own serial number, so the reply names one of them.
        server.add_service(Service::new("C").method("Inc", move |x: u64| {
            let mut seen = s2.lock().unwrap();
            seen.push(x);
            let serial = seen.len() as u64;
            async move { serial }
        }));
        net.add_server("s", server);
        let e = connected_end(&net, "e", "s");
        net.add_rule(Phase::Request, is_inc, Action::Duplicate, Some(1));

        let r = rpc(&e, "C.Inc", 5).await;
        sleep(Duration::from_millis(1)).await;
        assert_eq!(*seen.lock().unwrap(), vec![5, 5], "the handler runs twice");
        assert!(matches!(r, Ok(1 | 2)), "{r:?}");
        assert_eq!(net.count("s"), 2, "both copies reached the server");
        assert_eq!(net.total_count(), 1, "one call entered the network");
        assert!(net.held().is_empty());

        // Used up: the next call runs once.
        assert_eq!(rpc(&e, "C.Inc", 6).await, Ok(3));
        sleep(Duration::from_millis(1)).await;
        assert_eq!(*seen.lock().unwrap(), vec![5, 5, 6]);
    });
}

#[test]
#[should_panic(expected = "a reply cannot be duplicated")]
fn reply_duplicate_is_refused() {
    let net = Network::new(sim::derive_rng(1, "net", 0));
    net.add_rule(Phase::Reply, |_| true, Action::Duplicate, None);
}

#[test]
fn drop_rule_gives_dropped() {
    sim::run_test(PKG, |sim| async move {
        let (net, e, log) = setup(&sim);
        net.set_latency(Duration::from_millis(5), Duration::from_millis(5));
        let rule = net.add_rule(Phase::Request, is_inc, Action::Drop, None);
        let t0 = Instant::now();
        assert_eq!(rpc(&e, "C.Inc", 1).await, Err(RpcError::Dropped));
        assert_eq!(
            t0.elapsed(),
            Duration::from_millis(5),
            "lost after the latency"
        );
        assert!(
            log.calls().is_empty(),
            "a dropped request reached the handler"
        );
        assert_eq!(net.count("s"), 0);
        // Other methods are not matched.
        assert_eq!(rpc(&e, "C.Other", 1).await, Ok(100));
        assert!(net.remove_rule(rule));

        // A dropped reply: the handler ran, the caller gets Dropped.
        net.add_rule(Phase::Reply, is_inc, Action::Drop, None);
        assert_eq!(rpc(&e, "C.Inc", 2).await, Err(RpcError::Dropped));
        assert_eq!(log.args(), vec![1, 2]);
        assert!(net.held().is_empty());
    });
}

#[test]
fn dropped_held_message_fails_with_dropped() {
    sim::run_test(PKG, |sim| async move {
        let (net, e, log) = setup(&sim);
        net.add_rule(Phase::Request, is_inc, Action::Hold, Some(1));
        net.add_rule(Phase::Reply, is_inc, Action::Hold, Some(1));
        let held_request = spawn_call(&e, "C.Inc", 1);
        sleep(Duration::from_millis(10)).await;
        let held_reply = spawn_call(&e, "C.Inc", 2);
        sleep(Duration::from_millis(10)).await;
        let held = net.held();
        assert_eq!(held.len(), 2);
        assert_eq!(held[0].phase, Phase::Request);
        assert_eq!(held[1].phase, Phase::Reply);
        assert!(net.drop_held(held[0].id));
        assert!(net.drop_held(held[1].id));
        assert!(!net.drop_held(held[1].id));
        assert_eq!(held_request.await.unwrap(), (Err(RpcError::Dropped), 20));
        assert_eq!(held_reply.await.unwrap(), (Err(RpcError::Dropped), 20));
        assert_eq!(log.args(), vec![2], "only the reply's handler ran");
        assert_eq!(net.release_all(), 0);
    });
}

#[test]
fn times_limits_the_rule() {
    sim::run_test(PKG, |sim| async move {
        let (net, e, log) = setup(&sim);
        let never = net.add_rule(Phase::Request, is_inc, Action::Drop, Some(0));
        let rule = net.add_rule(Phase::Request, is_inc, Action::Drop, Some(2));
        let mut results = Vec::new();
        for x in 0..4 {
            results.push(rpc(&e, "C.Inc", x).await);
        }
        assert_eq!(
            results,
            vec![
                Err(RpcError::Dropped),
                Err(RpcError::Dropped),
                Ok(20),
                Ok(30)
            ]
        );
        assert_eq!(log.args(), vec![2, 3]);
        assert!(!net.remove_rule(rule), "a used-up rule is gone");
        assert!(!net.remove_rule(never), "times = Some(0) never applies");
    });
}

#[test]
fn held_request_fails_on_release_when_its_server_was_deleted_or_replaced() {
    sim::run_test(PKG, |sim| async move {
        let (net, e, log) = setup(&sim);
        net.add_rule(Phase::Request, is_inc, Action::Hold, None);

        // Deleted while held, added back before the release: still a different server.
        let call = spawn_call(&e, "C.Inc", 1);
        sleep(Duration::from_millis(10)).await;
        net.delete_server("s");
        sleep(Duration::from_millis(10)).await;
        let log2 = Log::default();
        net.add_server("s", counter_server(&log2));
        assert_eq!(net.release_all(), 1);
        assert_eq!(call.await.unwrap(), (Err(RpcError::ServerKilled), 20));

        // Replaced while held.
        let call = spawn_call(&e, "C.Inc", 2);
        sleep(Duration::from_millis(10)).await;
        let log3 = Log::default();
        net.add_server("s", counter_server(&log3));
        assert_eq!(net.release_all(), 1);
        assert_eq!(call.await.unwrap(), (Err(RpcError::ServerKilled), 30));

        // The end disabled and enabled again while held: the cut killed the call.
        let call = spawn_call(&e, "C.Inc", 3);
        sleep(Duration::from_millis(10)).await;
        net.enable("e", false);
        net.enable("e", true);
        assert_eq!(net.release_all(), 1);
        assert_eq!(call.await.unwrap(), (Err(RpcError::ServerKilled), 40));

        // The end deleted while held.
        let call = spawn_call(&e, "C.Inc", 4);
        sleep(Duration::from_millis(10)).await;
        net.delete_end("e");
        assert_eq!(net.release_all(), 1);
        assert_eq!(call.await.unwrap(), (Err(RpcError::ServerKilled), 50));

        for l in [&log, &log2, &log3] {
            assert!(
                l.calls().is_empty(),
                "a killed held request reached a handler"
            );
        }
        assert_eq!(net.count("s"), 0);
    });
}

#[test]
fn held_request_whose_caller_is_gone_is_still_delivered() {
    sim::run_test(PKG, |sim| async move {
        let (net, e, log) = setup(&sim);
        net.add_rule(Phase::Request, is_inc, Action::Hold, None);
        net.add_rule(Phase::Reply, |c| c.method == "C.Other", Action::Hold, None);
        let deadline = Duration::from_millis(50);
        let r = tokio::time::timeout(deadline, e.call::<u64, u64>("C.Inc", &9)).await;
        assert!(r.is_err(), "the caller's deadline passes");
        let r = tokio::time::timeout(deadline, e.call::<u64, u64>("C.Other", &8)).await;
        assert!(r.is_err());
        assert_eq!(log.args(), vec![8]);
        assert_eq!(net.held().len(), 2);
        // Neither release panics; the late request reaches the server, the late reply nobody.
        assert_eq!(net.release_all(), 2);
        sleep(Duration::from_millis(1)).await;
        assert_eq!(log.calls(), vec![(50, 8), (100, 9)]);
        assert!(net.held().is_empty());
    });
}

#[test]
fn predicate_sees_request_and_reply_bytes() {
    sim::run_test(PKG, |sim| async move {
        let (net, e, log) = setup(&sim);
        net.add_rule(
            Phase::Request,
            |c| c.reply.is_none() && c.request_as::<u64>() == Ok(7),
            Action::Drop,
            None,
        );
        net.add_rule(
            Phase::Reply,
            |c| c.request_as::<u64>() == Ok(3) && c.reply_as::<u64>() == Some(30),
            Action::Drop,
            None,
        );
        let mut results = Vec::new();
        for x in 1..=8 {
            results.push(rpc(&e, "C.Inc", x).await.ok());
        }
        assert_eq!(
            results,
            vec![
                Some(10),
                Some(20),
                None,
                Some(40),
                Some(50),
                Some(60),
                None,
                Some(80)
            ]
        );
        assert_eq!(log.args(), vec![1, 2, 3, 4, 5, 6, 8]);
    });
}

#[test]
fn rules_are_checked_in_order_and_the_first_match_applies() {
    sim::run_test(PKG, |sim| async move {
        let (net, e, log) = setup(&sim);
        let drop_inc = net.add_rule(Phase::Request, is_inc, Action::Drop, None);
        let hold_all = net.add_rule(Phase::Request, |_| true, Action::Hold, Some(1));
        // Both match C.Inc: the first added wins, and the second is not used up by it.
        assert_eq!(rpc(&e, "C.Inc", 1).await, Err(RpcError::Dropped));
        assert!(net.held().is_empty());
        // Only the second matches C.Other.
        let call = spawn_call(&e, "C.Other", 2);
        sleep(Duration::from_millis(1)).await;
        let held = net.held();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].rule, hold_all);
        assert!(net.release(held[0].id));
        assert_eq!(call.await.unwrap().0, Ok(200));
        // A rule added later is checked after the earlier ones.
        let dup_all = net.add_rule(Phase::Request, |_| true, Action::Duplicate, None);
        assert_eq!(rpc(&e, "C.Inc", 3).await, Err(RpcError::Dropped));
        assert!(net.remove_rule(drop_inc));
        assert_eq!(rpc(&e, "C.Inc", 4).await, Ok(40));
        sleep(Duration::from_millis(1)).await;
        assert_eq!(log.args(), vec![2, 4, 4]);
        assert!(net.remove_rule(dup_all));
    });
}

#[test]
fn removed_rule_no_longer_applies() {
    sim::run_test(PKG, |sim| async move {
        let (net, e, log) = setup(&sim);
        let rule = net.add_rule(Phase::Request, is_inc, Action::Drop, None);
        assert_eq!(rpc(&e, "C.Inc", 1).await, Err(RpcError::Dropped));
        assert_eq!(rpc(&e, "C.Inc", 2).await, Err(RpcError::Dropped));
        assert!(net.remove_rule(rule));
        assert!(!net.remove_rule(rule));
        assert_eq!(rpc(&e, "C.Inc", 3).await, Ok(30));
        assert_eq!(log.args(), vec![3]);

        // A removed hold rule leaves its held message held.
        let rule = net.add_rule(Phase::Request, is_inc, Action::Hold, None);
        let call = spawn_call(&e, "C.Inc", 4);
        sleep(Duration::from_millis(1)).await;
        assert!(net.remove_rule(rule));
        assert_eq!(net.held().len(), 1);
        assert_eq!(rpc(&e, "C.Inc", 5).await, Ok(50));
        assert_eq!(net.release_all(), 1);
        assert_eq!(call.await.unwrap().0, Ok(40));
        assert_eq!(log.args(), vec![3, 5, 4]);
    });
}

// ----- determinism -----

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

#[derive(Clone, Copy, PartialEq)]
enum Rules {
    None,
    /// Rules in both phases whose predicates never match.
    NeverMatching,
    /// Rules that hold, duplicate and drop, and a driver that releases and drops held messages.
    Active,
}

/// A random workload: clients calling three servers on a network whose faults flip on and off
/// while servers are replaced, with the given rules. Clients trace every outcome.
async fn workload(sim: Sim, rules: Rules) {
    let net = Network::new(sim.rng("net", 0));
    let logs: Vec<Log> = (0..3).map(|_| Log::default()).collect();
    for (s, log) in logs.iter().enumerate() {
        net.add_server(s.to_string(), counter_server(log));
    }
    match rules {
        Rules::None => {}
        Rules::NeverMatching => {
            net.add_rule(Phase::Request, |c| c.method == "C.Nope", Action::Hold, None);
            net.add_rule(Phase::Request, |_| false, Action::Duplicate, None);
            net.add_rule(Phase::Reply, |c| c.reply.is_none(), Action::Drop, None);
        }
        Rules::Active => {
            let arg = |c: &CallInfo<'_>| c.request_as::<u64>().unwrap_or(0);
            net.add_rule(Phase::Request, move |c| arg(c) % 7 == 0, Action::Hold, None);
            net.add_rule(
                Phase::Request,
                move |c| arg(c) % 11 == 0,
                Action::Duplicate,
                None,
            );
            net.add_rule(
                Phase::Request,
                move |c| arg(c) % 13 == 0,
                Action::Drop,
                None,
            );
            net.add_rule(Phase::Reply, move |c| arg(c) % 5 == 0, Action::Hold, None);
            net.add_rule(Phase::Reply, move |c| arg(c) % 17 == 0, Action::Drop, None);
        }
    }
    for c in 0..3u64 {
        let ends: Vec<ClientEnd> = (0..3)
            .map(|s| connected_end(&net, &format!("c{c}-{s}"), &s.to_string()))
            .collect();
        let mut rng = sim.rng("client", c);
        tokio::spawn(async move {
            let node = format!("client{c}");
            loop {
                let s = rng.random_range(0..ends.len());
                let x: u64 = rng.random_range(0..1000);
                let method = if rng.random_bool(0.8) {
                    "C.Inc"
                } else {
                    "C.Other"
                };
                let call = ends[s].call::<u64, u64>(method, &x);
                let outcome = match tokio::time::timeout(Duration::from_millis(300), call).await {
                    Err(_) => "timeout".to_owned(),
                    Ok(Ok(v)) => format!("ok {v}"),
                    Ok(Err(e)) => format!("{e:?}"),
                };
                sim::trace_event(
                    Some(&node),
                    "client.result",
                    || json!({ "server": s, "x": x, "outcome": outcome }),
                );
                sleep(Duration::from_millis(rng.random_range(0..20))).await;
            }
        });
    }
    let mut rng = sim.rng("driver", 0);
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        sleep(Duration::from_millis(rng.random_range(10..100))).await;
        match rng.random_range(0..8) {
            0 => net.set_reliable(rng.random_bool(0.5)),
            1 => net.set_long_reordering(rng.random_ratio(1, 3)),
            2 => {
                let s = rng.random_range(0..3usize);
                net.add_server(s.to_string(), counter_server(&logs[s]));
            }
            _ => {
                // Only the active rules hold messages; the draws happen in every variant.
                let held = net.held();
                let pick = rng.random_range(0..4u32);
                if let Some(h) = held.first() {
                    if pick == 0 {
                        net.drop_held(h.id);
                    } else {
                        net.release(h.id);
                    }
                }
            }
        }
    }
    let calls: usize = logs.iter().map(|l| l.calls().len()).sum();
    sim::trace_event(
        None,
        "workload.done",
        || json!({ "rpcs": net.total_count(), "bytes": net.total_bytes(), "calls": calls }),
    );
}

#[test]
fn a_rule_that_matches_nothing_leaves_the_run_unchanged() {
    let base = sim::seed_from_env();
    replay_on_failure(base, || {
        for i in 0..5 {
            let seed = base.wrapping_add(i);
            let without = sim::assert_deterministic(seed, |sim| workload(sim, Rules::None));
            let never = sim::assert_deterministic(seed, |sim| workload(sim, Rules::NeverMatching));
            assert!(without.events > 150, "seed {seed}: only {without}");
            assert_eq!(
                without, never,
                "seed {seed}: a never-matching rule changed the run"
            );
        }
    });
}

#[test]
fn runs_with_active_rules_replay_exactly() {
    let base = sim::seed_from_env();
    replay_on_failure(base, || {
        for i in 0..5 {
            let seed = base.wrapping_add(i);
            let active = sim::assert_deterministic(seed, |sim| workload(sim, Rules::Active));
            let without = sim::assert_deterministic(seed, |sim| workload(sim, Rules::None));
            assert_ne!(active, without, "seed {seed}: the active rules did nothing");
        }
    });
}

/// The rule actions appear in the trace, with the kinds the README lists. One call per action,
/// each with the argument its rule matches (the random workload may, for some seeds, make no
/// call that a given rule matches: seed 7810270041759885950 made no duplicate).
#[test]
fn rule_actions_are_traced() {
    let seed = sim::seed_from_env();
    replay_on_failure(seed, || {
        let path = std::env::temp_dir().join(format!(
            "labrpc-rules-{}-{seed}.trace.jsonl",
            std::process::id()
        ));
        sim::run(
            sim::Config::new(seed).trace_file(Some(path.clone())),
            |sim| async move {
                let net = Network::new(sim.rng("net", 0));
                let log = Log::default();
                net.add_server("0", counter_server(&log));
                let end = connected_end(&net, "c-0", "0");
                let arg = |c: &CallInfo<'_>| c.request_as::<u64>().unwrap_or(0);
                net.add_rule(Phase::Request, move |c| arg(c) == 7, Action::Hold, None);
                net.add_rule(
                    Phase::Request,
                    move |c| arg(c) == 11,
                    Action::Duplicate,
                    None,
                );
                net.add_rule(Phase::Request, move |c| arg(c) == 13, Action::Drop, None);
                net.add_rule(Phase::Reply, move |c| arg(c) == 5, Action::Hold, None);
                let _ = end.call::<u64, u64>("C.Inc", &11).await;
                let _ = end.call::<u64, u64>("C.Inc", &13).await;
                for (x, release) in [(7u64, true), (5u64, false)] {
                    let e = end.clone();
                    let call = tokio::spawn(async move { e.call::<u64, u64>("C.Inc", &x).await });
                    let held = loop {
                        if let Some(h) = net.held().first() {
                            break h.id;
                        }
                        sleep(Duration::from_millis(1)).await;
                    };
                    if release {
                        net.release(held);
                    } else {
                        net.drop_held(held);
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(1), call).await;
                }
            },
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        for kind in [
            "rpc.hold",
            "rpc.release",
            "rpc.drop_held",
            "rpc.duplicate",
            "rpc.rule_drop",
        ] {
            assert!(
                text.contains(&format!("\"kind\":\"{kind}\"")),
                "no {kind} event"
            );
        }
    });
}
