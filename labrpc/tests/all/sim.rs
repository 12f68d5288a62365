//! Tests of the simulator's pieces: virtual time, generators, task groups, the persister and the
//! replay line.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use labrpc::network::now_ms;
use labrpc::{Network, Persister, RpcError, Server, Service, TaskGroup, sim};
use rand::{Rng, RngCore};
use tokio::time::{Instant, sleep};

const PKG: &str = env!("CARGO_PKG_NAME");

#[test]
fn virtual_time_is_instant() {
    sim::run_test(PKG, |_sim| async move {
        let t0 = Instant::now();
        assert_eq!(sim::now_micros(), 0);
        sleep(Duration::from_secs(3600)).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(3600));
        assert_eq!(sim::now_micros(), 3_600_000_000);
        assert_eq!(now_ms(), 3_600_000);
    });
    assert_eq!(sim::now_micros(), 0, "0 outside a run");
}

#[test]
fn generators_follow_seed_label_and_index() {
    sim::run_test(PKG, |sim| async move {
        let draw =
            |mut r: rand_chacha::ChaCha8Rng| (0..4).map(|_| r.next_u64()).collect::<Vec<_>>();
        let seed = sim.seed();
        assert_eq!(
            draw(sim.rng("node", 3)),
            draw(sim::derive_rng(seed, "node", 3))
        );
        assert_eq!(draw(sim.rng("node", 3)), draw(sim.rng("node", 3)));
        assert_ne!(draw(sim.rng("node", 3)), draw(sim.rng("node", 4)));
        assert_ne!(draw(sim.rng("node", 3)), draw(sim.rng("net", 3)));
        assert_ne!(
            draw(sim::derive_rng(seed, "node", 3)),
            draw(sim::derive_rng(seed ^ 1, "node", 3))
        );
        // Streams are independent: drawing from one does not move another.
        let mut a = sim.rng("a", 0);
        let _: u64 = a.random();
        assert_eq!(draw(sim.rng("b", 0)), draw(sim::derive_rng(seed, "b", 0)));
    });
}

#[test]
fn task_group_kill_aborts_tasks_and_later_spawns() {
    sim::run_test(PKG, |_sim| async move {
        let group = TaskGroup::new();
        let other = TaskGroup::new();
        let ticks = Arc::new(AtomicU64::new(0));
        let other_ticks = Arc::new(AtomicU64::new(0));
        for (g, t) in [(&group, &ticks), (&other, &other_ticks)] {
            let t = t.clone();
            g.spawn(async move {
                loop {
                    sleep(Duration::from_millis(10)).await;
                    t.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        sleep(Duration::from_millis(105)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 10);

        let clone = group.clone();
        assert!(!clone.is_killed());
        clone.kill();
        assert!(group.is_killed(), "clones are the same group");
        assert!(!other.is_killed());
        sleep(Duration::from_millis(100)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 10, "killed tasks stop");
        assert_eq!(other_ticks.load(Ordering::SeqCst), 20, "other groups go on");

        // Spawning into a killed group never runs the task.
        let ran = Arc::new(AtomicBool::new(false));
        group.spawn({
            let ran = ran.clone();
            async move { ran.store(true, Ordering::SeqCst) }
        });
        sleep(Duration::from_millis(10)).await;
        assert!(!ran.load(Ordering::SeqCst));
        group.kill(); // idempotent
        assert!(group.is_killed());
    });
}

#[test]
fn task_group_kill_aborts_in_flight_calls() {
    sim::run_test(PKG, |sim| async move {
        let net = Network::new(sim.rng("net", 0));
        let mut server = Server::new();
        server.add_service(Service::new("Slow").method("Sleep", |ms: u64| async move {
            sleep(Duration::from_millis(ms)).await;
            ms
        }));
        net.add_server("s", server);
        let e = net.make_end("e");
        net.connect("e", "s");
        net.enable("e", true);

        let group = TaskGroup::new();
        let result: Arc<Mutex<Option<Result<u64, RpcError>>>> = Arc::default();
        group.spawn({
            let result = result.clone();
            async move {
                let r = e.call("Slow.Sleep", &1000u64).await;
                *result.lock().unwrap() = Some(r);
            }
        });
        sleep(Duration::from_millis(100)).await;
        assert_eq!(net.count("s"), 1, "the call is in its handler");
        group.kill();
        sleep(Duration::from_secs(2)).await;
        assert_eq!(*result.lock().unwrap(), None, "a killed node sees no reply");
    });
}

#[test]
fn many_spawns_in_a_group() {
    // Exercises the group's bookkeeping of finished tasks.
    sim::run_test(PKG, |_sim| async move {
        let group = TaskGroup::new();
        let done = Arc::new(AtomicU64::new(0));
        for i in 0..1000u64 {
            let done = done.clone();
            group.spawn(async move {
                sleep(Duration::from_millis(i % 7)).await;
                done.fetch_add(1, Ordering::SeqCst);
            });
            if i % 100 == 0 {
                sleep(Duration::from_millis(1)).await;
            }
        }
        sleep(Duration::from_millis(10)).await;
        assert_eq!(done.load(Ordering::SeqCst), 1000);
        // A long-lived task spawned after many short ones is still killed.
        let alive = Arc::new(AtomicU64::new(0));
        group.spawn({
            let alive = alive.clone();
            async move {
                loop {
                    sleep(Duration::from_millis(1)).await;
                    alive.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        sleep(Duration::from_millis(5)).await;
        group.kill();
        let n = alive.load(Ordering::SeqCst);
        sleep(Duration::from_millis(5)).await;
        assert_eq!(alive.load(Ordering::SeqCst), n);
    });
}

#[test]
fn persister_copy_is_independent() {
    sim::run_test(PKG, |_sim| async move {
        let p = Persister::new();
        assert_eq!((p.raft_state_size(), p.snapshot_size()), (0, 0));
        assert!(p.read_raft_state().is_empty() && p.read_snapshot().is_empty());

        p.save(vec![1, 2, 3], vec![9; 10]);
        assert_eq!(p.read_raft_state(), vec![1, 2, 3]);
        assert_eq!(p.read_snapshot(), vec![9; 10]);
        assert_eq!((p.raft_state_size(), p.snapshot_size()), (3, 10));

        // A copy keeps what was saved, and neither side sees the other's later saves.
        let q = p.copy();
        p.save(vec![4], vec![]);
        assert_eq!(q.read_raft_state(), vec![1, 2, 3]);
        assert_eq!(q.read_snapshot(), vec![9; 10]);
        q.save_raft_state(vec![8, 8]);
        assert_eq!(p.read_raft_state(), vec![4]);
        assert_eq!(
            q.read_snapshot(),
            vec![9; 10],
            "save_raft_state keeps the snapshot"
        );
        assert_eq!(p.snapshot_size(), 0);

        // Clones share storage.
        let shared = p.clone();
        shared.save(vec![7], vec![7, 7]);
        assert_eq!(p.read_raft_state(), vec![7]);
        assert_eq!(p.read_snapshot(), vec![7, 7]);
        assert_eq!(q.read_raft_state(), vec![8, 8]);

        // What a reader got is its own.
        let mut read = p.read_raft_state();
        read.push(0);
        assert_eq!(p.read_raft_state(), vec![7]);
    });
}

#[test]
fn replay_command_names_the_test() {
    sim::run_test(PKG, |sim| async move {
        let cmd = sim::replay_command(PKG, sim.seed());
        let prefix = format!(
            "RAFTLAB_SEED={} cargo test -p labrpc --test all",
            sim.seed()
        );
        assert!(cmd.starts_with(&prefix), "{cmd}");
        if std::thread::current().name() != Some("main") {
            assert!(
                cmd.ends_with(" -- sim::replay_command_names_the_test --exact"),
                "{cmd}"
            );
        }
    });
}

/// Not wrapped in `run_test`: it checks `run` itself (a run cannot be nested in another).
#[test]
fn run_returns_the_value_and_propagates_panics() {
    let (v, digest) = sim::run(sim::Config::new(3), |sim| async move { sim.seed() * 2 });
    assert_eq!(v, 6);
    assert_eq!(
        digest,
        sim::TraceDigest { events: 0, hash: 0 },
        "not recording"
    );

    let r = catch_unwind(AssertUnwindSafe(|| {
        sim::run(sim::Config::new(3), |_sim| async move {
            sleep(Duration::from_secs(1)).await;
            panic!("scenario failed");
        })
    }));
    let msg = r.unwrap_err();
    assert_eq!(msg.downcast_ref::<&str>(), Some(&"scenario failed"));
    assert_eq!(sim::now_micros(), 0, "the run's context is gone");
    assert!(!sim::tracing_enabled());

    // The simulator is usable again after a panic.
    let (v, _) = sim::run(sim::Config::new(4).record(true), |_sim| async move {
        assert!(sim::tracing_enabled());
        sim::trace_event(None, "x", || serde_json::json!({}));
        sleep(Duration::from_millis(5)).await;
        sim::now_micros()
    });
    assert_eq!(v, 5000);
}
