//! The deterministic simulator.
//!
//! A simulated run is a tokio current-thread runtime whose clock is paused: virtual time jumps to
//! the next timer whenever every task is idle, so 60 simulated seconds take milliseconds of wall
//! time. One `u64` seed decides every random choice of the run (through [`Sim::rng`]), so the same
//! seed replays the same run event for event, as long as the code follows the rules in
//! `clippy.toml` (no hash-order iteration, no wall clock, no OS threads, `biased;` selects).
//!
//! ```
//! use labrpc::sim::{self, Sim};
//! use rand::Rng;
//!
//! let (value, digest) = sim::run(sim::Config::new(7).record(true), |sim: Sim| async move {
//!     let mut rng = sim.rng("example", 0);
//!     tokio::time::sleep(std::time::Duration::from_secs(60)).await; // instant in wall time
//!     sim::trace_event(None, "example.done", || serde_json::json!({}));
//!     rng.random_range(0..100u32)
//! });
//! assert!(value < 100);
//! assert_eq!(digest.events, 1);
//! ```

use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{BufWriter, Write};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::PathBuf;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Environment variable that fixes the seed of a simulated run.
pub const SEED_ENV: &str = "RAFTLAB_SEED";
/// Environment variable naming a file to write the run's trace to (JSON lines).
pub const TRACE_ENV: &str = "RAFTLAB_TRACE";

/// Reads the seed from `RAFTLAB_SEED`, or draws a fresh one when it is unset.
///
/// # Panics
/// When `RAFTLAB_SEED` is set but is not an unsigned integer: a test must not silently run with
/// another seed than the one the user asked to replay.
pub fn seed_from_env() -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(s) => match s.trim().parse::<u64>() {
            Ok(seed) => seed,
            Err(_) => panic!("{SEED_ENV} must be an unsigned 64-bit integer, got {s:?}"),
        },
        Err(_) => fresh_seed(),
    }
}

/// A seed drawn from the OS. Only ever used to pick a seed, which is then printed; nothing inside
/// a run reads OS randomness.
#[allow(clippy::disallowed_methods)]
pub fn fresh_seed() -> u64 {
    use rand::RngCore;
    ChaCha8Rng::from_os_rng().next_u64() >> 1 // keep it short (and positive where u64 is not)
}

/// The trace file named by `RAFTLAB_TRACE`, if any.
pub fn trace_path_from_env() -> Option<PathBuf> {
    std::env::var_os(TRACE_ENV)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// FNV-1a, a fixed hash: stable across processes and versions (unlike std's `RandomState`).
pub(crate) fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Derives an independent random generator for one part of a run.
///
/// Every generator uses the run's seed as its key and a stream chosen by `(label, index)`, so
/// adding random draws to one node's code does not reshuffle what any other node or the network
/// draws.
pub fn derive_rng(seed: u64, label: &str, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let stream = fnv1a(fnv1a(FNV_OFFSET, label.as_bytes()), &index.to_le_bytes());
    rng.set_stream(stream);
    rng
}

/// A handle on the running simulation, given to the scenario.
#[derive(Clone, Debug)]
pub struct Sim {
    seed: u64,
}

impl Sim {
    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// An independent generator for `(label, index)`, e.g. `("node", 3)` or `("net", 0)`.
    pub fn rng(&self, label: &str, index: u64) -> ChaCha8Rng {
        derive_rng(self.seed, label, index)
    }
}

/// Virtual time elapsed since the run started, in microseconds (0 outside a run).
pub fn now_micros() -> u64 {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .map(|ctx| {
                u64::try_from(Instant::now().duration_since(ctx.start).as_micros())
                    .unwrap_or(u64::MAX)
            })
            .unwrap_or(0)
    })
}

/// A summary of a run's trace: how many events it had and a hash of all of them in order.
/// Two runs replayed the same way have equal digests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceDigest {
    pub events: u64,
    pub hash: u64,
}

impl fmt::Display for TraceDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} events, hash {:016x}", self.events, self.hash)
    }
}

struct TraceSink {
    writer: Option<BufWriter<File>>,
    path: Option<PathBuf>,
    digest: TraceDigest,
    write_failed: bool,
    /// Set when the scenario has returned: events from task destructors while the runtime shuts
    /// down are not part of the run (and would read the wall clock outside the runtime).
    closed: bool,
}

impl TraceSink {
    fn record(&mut self, line: &str) {
        if self.closed {
            return;
        }
        self.digest.events += 1;
        self.digest.hash = fnv1a(fnv1a(self.digest.hash, line.as_bytes()), b"\n");
        if let Some(w) = &mut self.writer
            && writeln!(w, "{line}").is_err()
            && !self.write_failed
        {
            self.write_failed = true;
            eprintln!("raftlab: cannot write trace file {:?}", self.path);
        }
    }
}

struct Context {
    start: Instant,
    sink: Option<RefCell<TraceSink>>,
    /// The next id [`next_trace_id`] hands out.
    next_id: std::cell::Cell<u64>,
}

thread_local! {
    // A simulated run lives on exactly one thread (current-thread runtime), so its context does too.
    static CURRENT: RefCell<Option<Rc<Context>>> = const { RefCell::new(None) };
}

/// A fresh id for linking trace events (RPC calls), counted per run so that a replay of a seed
/// gives the same ids; 0 outside a run.
pub fn next_trace_id() -> u64 {
    CURRENT.with(|c| {
        c.borrow().as_ref().map_or(0, |ctx| {
            let id = ctx.next_id.get();
            ctx.next_id.set(id + 1);
            id
        })
    })
}

/// True when the current run records a trace, so callers can skip building event fields.
pub fn tracing_enabled() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|ctx| ctx.sink.is_some()))
}

/// Records one event in the run's trace (if it records one). `fields` is only called when it does.
///
/// The line is `{"t_us":..,"node":..,"kind":..,<fields>}`.
pub fn trace_event(node: Option<&str>, kind: &str, fields: impl FnOnce() -> Value) {
    CURRENT.with(|c| {
        let cur = c.borrow();
        let Some(ctx) = cur.as_ref() else { return };
        let Some(sink) = &ctx.sink else { return };
        if sink.borrow().closed {
            return;
        }
        let t = Instant::now().duration_since(ctx.start).as_micros();
        let mut obj = Map::new();
        obj.insert(
            "t_us".into(),
            Value::from(u64::try_from(t).unwrap_or(u64::MAX)),
        );
        obj.insert("node".into(), node.map_or(Value::Null, Value::from));
        obj.insert("kind".into(), Value::from(kind));
        if let Value::Object(extra) = fields() {
            obj.extend(extra);
        }
        let line = Value::Object(obj).to_string();
        sink.borrow_mut().record(&line);
    });
}

/// How to run a simulation.
#[derive(Clone, Debug)]
pub struct Config {
    seed: u64,
    trace_file: Option<PathBuf>,
    record: bool,
}

impl Config {
    /// A run with this seed that records nothing.
    pub fn new(seed: u64) -> Self {
        Config {
            seed,
            trace_file: None,
            record: false,
        }
    }

    /// A run configured from the environment: `RAFTLAB_SEED` and `RAFTLAB_TRACE`.
    pub fn from_env() -> Self {
        let mut c = Config::new(seed_from_env());
        c.trace_file = trace_path_from_env();
        c.record = c.trace_file.is_some();
        c
    }

    /// Hash every trace event (needed for [`TraceDigest`]s that mean something).
    pub fn record(mut self, on: bool) -> Self {
        self.record = on;
        self
    }

    /// Also write the trace to this file.
    pub fn trace_file(mut self, path: Option<PathBuf>) -> Self {
        self.record |= path.is_some();
        self.trace_file = path;
        self
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }
}

/// Runs `scenario` in a fresh simulation and returns its value and its trace digest.
///
/// Panics in the scenario propagate (after the runtime and its tasks are dropped).
pub fn run<T, Fut>(config: Config, scenario: impl FnOnce(Sim) -> Fut) -> (T, TraceDigest)
where
    Fut: Future<Output = T>,
{
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build the simulation runtime: {e}"),
    };
    let sink = if config.record {
        let writer = config.trace_file.as_ref().map(|p| match File::create(p) {
            Ok(f) => BufWriter::new(f),
            Err(e) => panic!("cannot create trace file {}: {e}", p.display()),
        });
        Some(RefCell::new(TraceSink {
            writer,
            path: config.trace_file.clone(),
            digest: TraceDigest {
                events: 0,
                hash: FNV_OFFSET,
            },
            write_failed: false,
            closed: false,
        }))
    } else {
        None
    };
    let recording = sink.is_some();
    // The paused clock starts at the runtime's creation; read it inside the runtime.
    let start = rt.block_on(async { Instant::now() });
    let ctx = Rc::new(Context {
        start,
        sink,
        next_id: std::cell::Cell::new(0),
    });
    let previous = CURRENT.with(|c| c.borrow_mut().replace(ctx.clone()));
    let _log_guard = install_subscriber(recording);
    let sim = Sim { seed: config.seed };
    let result = catch_unwind(AssertUnwindSafe(|| rt.block_on(scenario(sim))));
    if let Err(panic) = &result {
        // The failure is the run's last event: a viewer jumps to it.
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let _enter = rt.enter();
        trace_event(
            None,
            "test.fail",
            || serde_json::json!({ "message": message }),
        );
    }
    if let Some(sink) = &ctx.sink {
        sink.borrow_mut().closed = true;
    }
    // Dropping the runtime drops every task; their destructors may still trace.
    drop(rt);
    CURRENT.with(|c| *c.borrow_mut() = previous);
    let digest = match &ctx.sink {
        Some(sink) => {
            let mut sink = sink.borrow_mut();
            if let Some(w) = &mut sink.writer
                && w.flush().is_err()
            {
                eprintln!("raftlab: cannot write trace file {:?}", sink.path);
            }
            sink.digest
        }
        None => TraceDigest { events: 0, hash: 0 },
    };
    match result {
        Ok(v) => (v, digest),
        Err(panic) => resume_unwind(panic),
    }
}

/// Runs a simulated test: seed and trace from the environment, and on failure one line that
/// replays it, e.g. `RAFTLAB_SEED=42 cargo test -p tests --test raft -- basic_agree_3b --exact`.
///
/// `package` is the caller's `env!("CARGO_PKG_NAME")`.
pub fn run_test<Fut>(package: &str, scenario: impl FnOnce(Sim) -> Fut)
where
    Fut: Future<Output = ()>,
{
    let config = Config::from_env();
    let seed = config.seed();
    let trace = config.trace_file.clone();
    let result = catch_unwind(AssertUnwindSafe(|| run(config, scenario)));
    if let Err(panic) = result {
        let trace_hint = match &trace {
            Some(t) => format!(
                "\nsee the run: cargo run --release -p raftlab -- view {} -o run.html \
                 (or `raftlab log {}`, `raftlab check-trace {}`)",
                t.display(),
                t.display(),
                t.display()
            ),
            None => format!(
                "\nrecord it to study it: RAFTLAB_TRACE=run.trace.jsonl {}",
                replay_command(package, seed)
            ),
        };
        eprintln!(
            "seed {seed} failed; replay with:\n  {}{trace_hint}",
            replay_command(package, seed)
        );
        resume_unwind(panic);
    }
}

/// The shell command that replays the current test with `seed`.
pub fn replay_command(package: &str, seed: u64) -> String {
    let test = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(|n| format!(" -- {n} --exact"))
        .unwrap_or_default();
    let target = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_owned(),
            _ => stem,
        });
    let target = match target {
        Some(t) if t == package.replace('-', "_") => " --lib".to_owned(),
        Some(t) => format!(" --test {t}"),
        None => String::new(),
    };
    format!("{SEED_ENV}={seed} cargo test -p {package}{target}{test}")
}

/// Runs `scenario` twice with the same seed and asserts that both runs traced the same events.
/// Returns the digest. Use it to check that a scenario is replayable.
pub fn assert_deterministic<Fut>(seed: u64, scenario: impl Fn(Sim) -> Fut) -> TraceDigest
where
    Fut: Future<Output = ()>,
{
    let ((), a) = run(Config::new(seed).record(true), &scenario);
    let ((), b) = run(Config::new(seed).record(true), &scenario);
    assert_eq!(
        a, b,
        "seed {seed}: two runs of the same scenario traced different events"
    );
    a
}

/// The tasks of one simulated node. Killing the group aborts every task spawned through it
/// (timers, loops, in-flight RPCs), and any task spawned afterwards is aborted at once, so a
/// killed node can never act again.
#[derive(Clone, Default)]
pub struct TaskGroup {
    inner: Arc<Mutex<TaskGroupInner>>,
}

#[derive(Default)]
struct TaskGroupInner {
    killed: bool,
    tasks: Vec<AbortHandle>,
}

impl TaskGroup {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, TaskGroupInner> {
        // A poisoned lock only means a task panicked while holding it; the Vec is still valid.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spawns a task that belongs to this group.
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut g = self.lock();
        if g.killed {
            return;
        }
        let handle = tokio::spawn(fut);
        if g.tasks.len() >= 64 && g.tasks.len().is_power_of_two() {
            g.tasks.retain(|t| !t.is_finished());
        }
        g.tasks.push(handle.abort_handle());
    }

    /// Aborts every task of the group, now and in the future.
    pub fn kill(&self) {
        let mut g = self.lock();
        g.killed = true;
        for t in g.tasks.drain(..) {
            t.abort();
        }
    }

    pub fn is_killed(&self) -> bool {
        self.lock().killed
    }
}

/// Output of `tracing` events: to stderr (captured by the test harness) when `RUST_LOG` is set,
/// and into the run's trace when it records one. Timestamps are virtual time.
fn install_subscriber(recording: bool) -> Option<tracing::subscriber::DefaultGuard> {
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("RUST_LOG").ok().map(|s| {
        tracing_subscriber::filter::Targets::from_str(&s).unwrap_or_else(|e| {
            eprintln!("raftlab: ignoring RUST_LOG={s:?} ({e}); logging at info");
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing::level_filters::LevelFilter::INFO)
        })
    });
    if filter.is_none() && !recording {
        return None;
    }
    let fmt = filter.map(|f| {
        tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_timer(VirtualTime)
            .with_target(false)
            .with_filter(f)
    });
    let trace = recording.then_some(TraceLayer);
    let subscriber = tracing_subscriber::registry().with(fmt).with(trace);
    Some(tracing::subscriber::set_default(subscriber))
}

/// Prints virtual time (seconds since the run started) in log lines.
struct VirtualTime;

impl tracing_subscriber::fmt::time::FormatTime for VirtualTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> fmt::Result {
        let us = now_micros();
        write!(w, "{:>4}.{:06}s", us / 1_000_000, us % 1_000_000)
    }
}

/// Copies `tracing` events (info and above) into the run's trace as `{"kind":"log",..}` lines.
struct TraceLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TraceLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > tracing::Level::INFO {
            return;
        }
        let mut fields = FieldMap(Map::new());
        event.record(&mut fields);
        let mut map = fields.0;
        let node = map.remove("node").map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        });
        map.insert("target".into(), Value::from(meta.target()));
        map.insert("level".into(), Value::from(meta.level().as_str()));
        trace_event(node.as_deref(), "log", || Value::Object(map));
    }
}

struct FieldMap(Map<String, Value>);

impl tracing::field::Visit for FieldMap {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
}
