//! The graded suites' shared code: the harness each lab's tests run on.
//!
//! - [`raft_harness`]: the Raft lab's tester (6.5840's `config.go`), used by `tests/raft.rs`.
//! - [`rsm_harness`]: the rsm layer's tester (part 4R), used by `tests/rsm.rs`.
//! - [`kv_harness`]: the kvraft lab's tester, with history recording and the linearizability
//!   check, used by `tests/kvraft.rs`.
//! - [`shardctrler_harness`] and [`shardkv_harness`]: the sharded lab's testers (the shard
//!   controller, and replica groups with shard migration), used by `tests/shardctrler.rs` and
//!   `tests/shardkv.rs`.
//!
//! - [`membership`]: membership changes as the testers make them (retrying through the leader).
//! - [`cargo_json`]: the test binaries named in cargo's JSON output (for the suites' own checks).
//!
//! Every suite is one test binary (`cargo test -p tests --test raft`); test names end with the
//! lab part, so `cargo test -p tests --test raft 3b` runs part 3B. Each test takes its seed from
//! `RAFTLAB_SEED` and prints the command that replays it when it fails.

pub mod cargo_json;
pub mod kv_harness;
pub mod membership;
pub mod raft_harness;
pub mod rsm_harness;
pub mod safety;
pub mod search;
pub mod shardctrler_harness;
pub mod shardkv_harness;
mod verdict;

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use labrpc::{Network, Sim};
use lincheck::models::kv::{KvInput, KvModel, KvOp, KvOutput};
use lincheck::{CheckResult, Operation};

/// Runs one simulated test: seed and trace from the environment, the replay line on failure,
/// a limit on simulated time, and the safety monitors of every Raft group the test builds
/// ([`safety`]): the first violation fails the test at once.
///
/// `RAFTLAB_PLANT=<bug>` switches one planted bug on for the run (see `labrpc::planted`; only
/// the suites' own checks use it).
pub fn sim_test<F, Fut>(limit: Duration, body: F)
where
    F: FnOnce(Sim) -> Fut,
    Fut: Future<Output = ()>,
{
    verdict::arm();
    let _plant = plant_from_env();
    let run = safety::RunSafety::new(labrpc::sim::seed_from_env());
    let _installed = safety::install(run.clone());
    let watched = run.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        labrpc::sim::run_test(env!("CARGO_PKG_NAME"), |sim| async move {
            tokio::select! {
                biased;
                v = watched.violated() => {
                    test_event("test.violation", serde_json::json!({ "message": v.to_string() }));
                    panic!("{v}")
                }
                r = tokio::time::timeout(limit, body(sim)) => if r.is_err() {
                    panic!("test took longer than {limit:?} of simulated time");
                },
            }
            if let Some(v) = watched.violation() {
                panic!("{v}");
            }
        });
    }));
    if let Err(panic) = outcome {
        // A violation is the root cause of whatever failed after it.
        let wrapped = run
            .violation()
            .filter(|v| !panic_text(panic.as_ref()).contains(v))
            .map(|v| {
                format!(
                    "{v}\n(the test then failed with: {})",
                    panic_text(panic.as_ref())
                )
            });
        if exit_at_first_failure() {
            report_and_exit(&wrapped.unwrap_or_else(|| panic_text(panic.as_ref())));
        }
        match wrapped {
            Some(message) => panic!("{message}"),
            None => std::panic::resume_unwind(panic),
        }
    }
    verdict::passed();
}

/// `RAFTLAB_EXIT_AT_FIRST_FAILURE=1`: the first simulated test that fails ends the whole test
/// process, after printing its failure as libtest would at the end of the run. The planted-bug
/// check (`tests/suite_checks.rs`) sets it: it needs a bug's first failure, not the rest of the
/// suite's run.
fn exit_at_first_failure() -> bool {
    std::env::var_os("RAFTLAB_EXIT_AT_FIRST_FAILURE").is_some_and(|v| v == "1")
}

/// Prints a failed test's block (`---- <test> stdout ----`, then where it panicked and why) to
/// the process's real standard output, past libtest's capture, and exits as a failed run.
fn report_and_exit(message: &str) -> ! {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("main").to_owned();
    let mut out = std::io::stdout().lock();
    let _ = write!(
        out,
        "\nfailures:\n\n---- {test} stdout ----\n\nthread '{test}' panicked at the harness:\n{message}\n\ntest result: FAILED (stopped at the first failure)\n"
    );
    let _ = out.flush();
    std::process::exit(101)
}

/// Records one of the tester's actions or checks in the run's trace (`test.*` events).
pub fn test_event(kind: &str, fields: serde_json::Value) {
    labrpc::sim::trace_event(None, kind, || fields);
}

/// The text of a panic's payload.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Switches on the planted bug named by `RAFTLAB_PLANT` until the guard is dropped.
pub(crate) fn plant_from_env() -> impl Drop {
    struct Guard(Option<labrpc::planted::Bug>);
    impl Drop for Guard {
        fn drop(&mut self) {
            labrpc::planted::set(self.0.take());
        }
    }
    let bug = std::env::var("RAFTLAB_PLANT")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|name| match labrpc::planted::Bug::from_name(&name) {
            Some(bug) if labrpc::planted::COMPILED_IN => bug,
            Some(_) => panic!("RAFTLAB_PLANT={name}: planted bugs are not compiled in"),
            None => panic!("RAFTLAB_PLANT={name}: no such planted bug"),
        });
    Guard(labrpc::planted::set(bug))
}

/// Wall-clock budget of the linearizability check at the end of a test. A correct service's
/// histories are decided in milliseconds; running out of budget fails the test (it is never
/// counted as a pass), and is reported as such.
pub const LINEARIZABILITY_BUDGET: Duration = Duration::from_secs(30);

/// Checks a key/value history for linearizability; when it is not, writes the HTML page that
/// shows why (named after the test and seed) and panics with its path.
pub fn check_kv_history(history: &[Operation<KvInput, KvOutput>], seed: u64) {
    let info = lincheck::check_with_info(&KvModel, history, Some(LINEARIZABILITY_BUDGET));
    test_event(
        "kv.check",
        serde_json::json!({
            "operations": history.len(),
            "result": format!("{:?}", info.result).to_lowercase(),
        }),
    );
    match info.result {
        CheckResult::Linearizable => {}
        CheckResult::NotLinearizable => {
            let test = std::thread::current()
                .name()
                .unwrap_or("test")
                .replace("::", "-");
            let path = std::env::temp_dir().join(format!("raftlab-{test}-seed{seed}.html"));
            match std::fs::File::create(&path).and_then(|f| lincheck::visualize(&KvModel, &info, f))
            {
                Ok(()) => {
                    test_event(
                        "kv.visualization",
                        serde_json::json!({ "path": path.display().to_string() }),
                    );
                    println!("info: wrote history visualization to {}", path.display())
                }
                Err(e) => println!("info: failed to write history visualization: {e}"),
            }
            panic!("history is not linearizable ({} operations)", history.len());
        }
        CheckResult::Unknown => {
            println!(
                "info: linearizability check timed out ({} operations)",
                history.len()
            );
            panic!(
                "linearizability check could not decide within {LINEARIZABILITY_BUDGET:?}: \
                 not counted as a pass"
            );
        }
    }
}

/// The history of a key/value test's client operations, for the linearizability check.
#[derive(Default)]
pub struct KvHistory {
    /// Orders every call and return. A simulation runs on one thread, so this counter is the
    /// exact real-time order (virtual time alone has ties).
    clock: AtomicU64,
    /// Operations completed, recorded or not (for the summary line).
    ops: AtomicU64,
    ops_recorded: Mutex<Vec<Operation<KvInput, KvOutput>>>,
}

impl KvHistory {
    /// Runs one client operation; with `client` it goes into the history.
    pub async fn record<F>(&self, client: Option<u64>, input: KvInput, op: F) -> String
    where
        F: Future<Output = String>,
    {
        let call = self.clock.fetch_add(1, Ordering::Relaxed);
        let started_us = labrpc::sim::now_micros();
        let out = op.await;
        let ret = self.clock.fetch_add(1, Ordering::Relaxed);
        self.ops.fetch_add(1, Ordering::Relaxed);
        test_event(
            "kv.op",
            serde_json::json!({
                "client": client,
                "op": format!("{:?}", input.op).to_lowercase(),
                "key": input.key,
                "value": input.value,
                "output": out,
                "call": call,
                "ret": ret,
                "start_us": started_us,
            }),
        );
        if let Some(client_id) = client {
            let output = match input.op {
                KvOp::Get => KvOutput::Value(out.clone()),
                KvOp::Put | KvOp::Append => KvOutput::Done,
            };
            self.ops_recorded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Operation {
                    client_id,
                    input,
                    call,
                    output,
                    ret,
                });
        }
        out
    }

    /// Operations completed so far.
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    /// Checks the recorded operations (see [`check_kv_history`]).
    pub fn check(&self, seed: u64) {
        let history = self
            .ops_recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        check_kv_history(&history, seed);
    }
}

/// What a test used, for the line each test prints when it passes (the original's
/// `begin`/`end`): simulated seconds, servers, RPCs, bytes and, where the lab counts them,
/// commands or client operations, with the seed.
pub struct Summary {
    start: Mutex<(tokio::time::Instant, u64, u64, u64)>,
}

impl Summary {
    pub fn new() -> Self {
        Summary {
            start: Mutex::new((tokio::time::Instant::now(), 0, 0, 0)),
        }
    }

    /// Prints the test's description and remembers the counters.
    pub fn begin(&self, description: &str, net: &Network, count: u64) {
        println!("{description} ...");
        *self.start.lock().unwrap_or_else(|p| p.into_inner()) = (
            tokio::time::Instant::now(),
            net.total_count(),
            net.total_bytes(),
            count,
        );
    }

    /// Prints the summary line; `count` is `None` for labs that count neither.
    pub fn end(&self, servers: usize, net: &Network, count: Option<u64>, seed: u64) {
        let (t0, rpcs0, bytes0, count0) = *self.start.lock().unwrap_or_else(|p| p.into_inner());
        let secs = tokio::time::Instant::now().duration_since(t0).as_secs_f64();
        let count = count.map_or(String::new(), |c| format!(" {:5}", c - count0));
        println!(
            "  ... Passed --  {secs:5.1}s {servers} {:6} {:9}{count}  (seed {seed})",
            net.total_count() - rpcs0,
            net.total_bytes() - bytes0,
        );
    }
}

impl Default for Summary {
    fn default() -> Self {
        Self::new()
    }
}
