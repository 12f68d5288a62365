//! `raftlab grade`: run the graded suites many times with derived seeds and score them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::points::Points;
use crate::{seeds, workspace, xml};

/// The labs and the test target (`tests/tests/<target>.rs`) holding each one's suite.
pub const LABS: [(&str, &str); 4] = [
    ("raft", "raft"),
    ("kvraft", "kvraft"),
    ("shardctrler", "shardctrler"),
    ("shardkv", "shardkv"),
];

/// How many failing seeds of one test the table's failure list shows (the JSON has them all).
const FAILURES_SHOWN_PER_TEST: usize = 5;

#[derive(Debug, clap::Args)]
pub struct GradeArgs {
    /// Labs to grade (comma-separated or repeated).
    #[arg(long = "lab", value_name = "LAB", value_delimiter = ',', default_value = "all",
          value_parser = ["raft", "kvraft", "shardctrler", "shardkv", "all"])]
    labs: Vec<String>,
    /// Only the tests of these lab parts, e.g. `--part 3A 3B` (a test's part is its name's
    /// suffix: `basic_agree_3b` is 3B).
    #[arg(long = "part", value_name = "PART", value_delimiter = ',', num_args = 1..)]
    parts: Vec<String>,
    /// Runs of each test, each with its own seed.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: u32,
    /// Tests run at once [default: number of CPUs].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    jobs: Option<u32>,
    /// Grading seed: every run's seed is derived from it, so the same seed repeats the whole
    /// grading run [default: a fresh one, printed].
    #[arg(long)]
    seed: Option<u64>,
    /// Write a JSON report to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a JUnit XML report to FILE (one testsuite per lab part).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Grade the implementation in this workspace instead of the current one.
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// Keep the output (stdout and stderr) of every failed run in DIR.
    #[arg(long, value_name = "DIR")]
    keep_logs: Option<PathBuf>,
    /// Also record each run's trace (RAFTLAB_TRACE); kept for failed runs in --keep-logs DIR.
    #[arg(long, requires = "keep_logs")]
    trace: bool,
    /// Wall-clock limit of one run, in seconds; a run past it is killed and fails.
    #[arg(long, value_name = "SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: u64,
    /// The points file [default: grading/points.txt of the current workspace].
    #[arg(long, value_name = "FILE")]
    points: Option<PathBuf>,
}

/// A built suite: the test binary and the directory its tests run in.
#[derive(Clone, Debug)]
struct SuiteBinary {
    exe: PathBuf,
    cwd: PathBuf,
}

#[derive(Debug)]
struct Suite {
    lab: &'static str,
    target: &'static str,
    binary: Option<SuiteBinary>,
    tests: Vec<TestCase>,
}

#[derive(Clone, Debug)]
struct TestCase {
    name: String,
    part: String,
}

#[derive(Clone, Debug)]
struct Job {
    suite: usize,
    test: usize,
    run: u32,
    seed: u64,
}

#[derive(Clone, Debug)]
struct Outcome {
    passed: bool,
    /// Why it failed: the panic message, "timed out", ...
    reason: Option<String>,
    secs: f64,
    log: Option<PathBuf>,
    trace: Option<PathBuf>,
}

pub fn run(args: GradeArgs) -> Result<ExitCode> {
    let root = workspace::resolve(args.path.as_deref())?;
    let graded_elsewhere = args.path.is_some();
    let points = load_points(&args, &root)?;
    let master = args.seed.unwrap_or_else(seeds::fresh_master_seed);
    let jobs = args.jobs.map(|j| j as usize).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let keep_logs = match &args.keep_logs {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Some(std::path::absolute(dir)?)
        }
        None => None,
    };
    let timeout = Duration::from_secs(args.timeout);
    let wanted_parts: Vec<String> = args.parts.iter().map(|p| p.to_uppercase()).collect();

    let selected: Vec<(&'static str, &'static str)> = LABS
        .iter()
        .copied()
        .filter(|(lab, _)| args.labs.iter().any(|l| l == "all" || l == lab))
        .collect();

    eprintln!(
        "raftlab grade: {} | labs {} | {} run(s) per test | {jobs} job(s) | seed {master}",
        root.display(),
        selected
            .iter()
            .map(|(l, _)| *l)
            .collect::<Vec<_>>()
            .join(","),
        args.runs,
    );
    eprintln!("building the suites (cargo test --release -p tests --no-run) ...");
    let binaries = build_suites(&root)?;

    let mut suites = Vec::new();
    for (lab, target) in selected {
        let binary = binaries.get(target).cloned();
        let tests = match &binary {
            Some(b) => list_tests(b)?
                .into_iter()
                .filter(|t| wanted_parts.is_empty() || wanted_parts.contains(&t.part))
                .collect(),
            None => Vec::new(),
        };
        suites.push(Suite {
            lab,
            target,
            binary,
            tests,
        });
    }
    for s in suites.iter().filter(|s| s.binary.is_none()) {
        eprintln!(
            "{}: not available yet (the tests package has no `{}` test target in this tree)",
            s.lab, s.target
        );
    }
    let total_tests: usize = suites.iter().map(|s| s.tests.len()).sum();
    if total_tests == 0 {
        if suites.iter().all(|s| s.binary.is_none()) {
            bail!("nothing to grade: none of the selected labs has a suite yet");
        }
        bail!(
            "no test matches --part {} in the selected labs",
            wanted_parts.join(" ")
        );
    }

    // Run-major order: every test's first run comes before any test's second, so failures show
    // up early and the estimate is about the whole mix.
    let mut job_list = Vec::new();
    for run in 0..args.runs {
        for (si, suite) in suites.iter().enumerate() {
            for (ti, test) in suite.tests.iter().enumerate() {
                job_list.push(Job {
                    suite: si,
                    test: ti,
                    run,
                    seed: seeds::run_seed(master, suite.lab, &test.name, run),
                });
            }
        }
    }

    let scratch = match &keep_logs {
        Some(dir) => dir.clone(),
        None => {
            let dir = std::env::temp_dir().join(format!("raftlab-grade-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir
        }
    };
    let ctx = RunContext {
        suites: &suites,
        scratch: &scratch,
        keep: keep_logs.is_some(),
        trace: args.trace,
        timeout,
    };
    let clock = now();
    let outcomes = run_all(&ctx, &job_list, jobs.min(job_list.len()).max(1), clock);
    let elapsed = clock.elapsed();
    if keep_logs.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }

    let report = Report::build(
        &suites,
        &job_list,
        &outcomes,
        &points,
        ReportMeta {
            root: &root,
            graded_elsewhere,
            seed: master,
            runs: args.runs,
            elapsed,
        },
    );
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.json())?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report.junit())
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn load_points(args: &GradeArgs, graded_root: &Path) -> Result<Points> {
    if let Some(path) = &args.points {
        return Points::load(path);
    }
    // The grader's own points file comes first: grading a student's tree with --path must not
    // take the points from that tree.
    let mut candidates = Vec::new();
    if let Ok(own) = workspace::resolve(None) {
        candidates.push(own.join("grading/points.txt"));
    }
    candidates.push(graded_root.join("grading/points.txt"));
    for path in candidates {
        if path.is_file() {
            return Points::load(&path);
        }
    }
    eprintln!("note: no grading/points.txt found: parts are scored without points");
    Ok(Points::default())
}

/// The wall clock, for elapsed times, estimates and run timeouts.
#[allow(clippy::disallowed_methods)] // reason: grading runs real processes; nothing here is simulated
fn now() -> Instant {
    Instant::now()
}

/// Builds the `tests` package's test binaries once and returns them by target name.
///
/// Compiler diagnostics come as JSON: warnings (a handout has many) are only counted, errors are
/// shown when the build fails.
fn build_suites(root: &Path) -> Result<BTreeMap<String, SuiteBinary>> {
    let manifest = root.join("Cargo.toml");
    let mut child = Command::new("cargo")
        .args(["test", "--release", "-p", "tests", "--no-run"])
        .arg("--message-format=json")
        .arg("--manifest-path")
        .arg(&manifest)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run cargo (is it on PATH?)")?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    let mut binaries = BTreeMap::new();
    let mut errors = Vec::new();
    let mut warnings = 0usize;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some((name, binary)) = test_artifact(&msg) {
            binaries.insert(name, binary);
        } else if msg.get("reason").and_then(Value::as_str) == Some("compiler-message") {
            let message = &msg["message"];
            match message.get("level").and_then(Value::as_str) {
                Some("warning") => warnings += 1,
                Some("error") => errors.push(
                    message
                        .get("rendered")
                        .and_then(Value::as_str)
                        .unwrap_or("error")
                        .to_owned(),
                ),
                _ => {}
            }
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if warnings > 0 {
        eprintln!("({warnings} compiler warning(s) in {})", root.display());
    }
    if !status.success() {
        for e in &errors {
            eprint!("{e}");
        }
        bail!(
            "building the suites failed ({status}): cargo test --release -p tests --no-run \
             --manifest-path {}",
            manifest.display()
        );
    }
    Ok(binaries)
}

/// A test executable from one line of `cargo --message-format=json`: its target name and path.
fn test_artifact(msg: &Value) -> Option<(String, SuiteBinary)> {
    if msg.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    let target = msg.get("target")?;
    let is_test = target
        .get("kind")?
        .as_array()?
        .iter()
        .any(|k| k.as_str() == Some("test"));
    if !is_test {
        return None;
    }
    let exe = PathBuf::from(msg.get("executable")?.as_str()?);
    let name = target.get("name")?.as_str()?.to_owned();
    // cargo runs a package's tests in the package's directory.
    let cwd = msg
        .get("manifest_path")
        .and_then(Value::as_str)
        .and_then(|p| Path::new(p).parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Some((name, SuiteBinary { exe, cwd }))
}

/// The tests of a suite, from `<bin> --list`.
fn list_tests(binary: &SuiteBinary) -> Result<Vec<TestCase>> {
    let out = Command::new(&binary.exe)
        .arg("--list")
        .current_dir(&binary.cwd)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} --list", binary.exe.display()))?;
    if !out.status.success() {
        bail!(
            "{} --list failed ({}): {}",
            binary.exe.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(parse_test_list(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_test_list(text: &str) -> Vec<TestCase> {
    text.lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(|name| TestCase {
            name: name.to_owned(),
            part: part_of(name),
        })
        .collect()
}

/// A test's lab part: its name's last `_`-separated word, upper case (`basic_agree_3b` -> 3B).
fn part_of(name: &str) -> String {
    let last = name.rsplit(['_', ':']).next().unwrap_or(name);
    if last.starts_with(|c: char| c.is_ascii_digit()) {
        last.to_uppercase()
    } else {
        "?".to_owned()
    }
}

struct RunContext<'a> {
    suites: &'a [Suite],
    scratch: &'a Path,
    keep: bool,
    trace: bool,
    timeout: Duration,
}

/// Runs every job on `jobs` worker threads, showing progress; returns the outcomes in job order.
fn run_all(ctx: &RunContext, job_list: &[Job], jobs: usize, clock: Instant) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; job_list.len()];
    let mut progress = Progress::new(job_list.len(), clock);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = job_list.get(i) else { break };
                    let outcome = run_one(ctx, job);
                    if tx.send((i, outcome)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok((i, outcome)) => {
                    let job = &job_list[i];
                    let suite = &ctx.suites[job.suite];
                    if !outcome.passed {
                        progress.failure(&format!(
                            "FAILED {} {} (run {}, seed {}): {}",
                            suite.lab,
                            suite.tests[job.test].name,
                            job.run + 1,
                            job.seed,
                            outcome.reason.as_deref().unwrap_or("failed")
                        ));
                    }
                    progress.done(outcome.passed);
                    outcomes[i] = Some(outcome);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => progress.redraw(),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    });
    progress.finish();
    outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or(Outcome {
                passed: false,
                reason: Some("not run".into()),
                secs: 0.0,
                log: None,
                trace: None,
            })
        })
        .collect()
}

/// Runs one test once as `<bin> <name> --exact --nocapture` with its seed.
fn run_one(ctx: &RunContext, job: &Job) -> Outcome {
    let suite = &ctx.suites[job.suite];
    let test = &suite.tests[job.test];
    let binary = suite.binary.as_ref().expect("jobs only for built suites");
    let stem = format!(
        "{}-{}-run{}-seed{}",
        suite.lab,
        test.name,
        job.run + 1,
        job.seed
    );
    let log = ctx.scratch.join(format!("{stem}.log"));
    let trace = ctx
        .trace
        .then(|| ctx.scratch.join(format!("{stem}.trace.jsonl")));
    let fail = |reason: String| Outcome {
        passed: false,
        reason: Some(reason),
        secs: 0.0,
        log: None,
        trace: None,
    };
    let (out, err) = match File::create(&log).and_then(|f| Ok((f.try_clone()?, f))) {
        Ok(pair) => pair,
        Err(e) => return fail(format!("cannot create {}: {e}", log.display())),
    };
    let mut cmd = Command::new(&binary.exe);
    cmd.arg(&test.name)
        .args(["--exact", "--nocapture"])
        .current_dir(&binary.cwd)
        .env("RAFTLAB_SEED", job.seed.to_string())
        .env_remove("RAFTLAB_TRACE")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some(t) = &trace {
        cmd.env("RAFTLAB_TRACE", t);
    }
    let start = now();
    let status = match cmd.spawn() {
        Ok(child) => wait_with_timeout(child, ctx.timeout),
        Err(e) => Err(e),
    };
    let secs = start.elapsed().as_secs_f64();
    let text = std::fs::read(&log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let (passed, reason) = match status {
        Err(e) => (false, Some(format!("cannot run the test binary: {e}"))),
        Ok(None) => (
            false,
            Some(format!("timed out after {} s", ctx.timeout.as_secs())),
        ),
        Ok(Some(status)) => judge(status, &text),
    };
    let (log, trace) = if passed || !ctx.keep {
        let _ = std::fs::remove_file(&log);
        if let Some(t) = &trace {
            let _ = std::fs::remove_file(t);
        }
        (None, None)
    } else {
        (Some(log), trace.filter(|t| t.exists()))
    };
    Outcome {
        passed,
        reason,
        secs,
        log,
        trace,
    }
}

/// Waits for the child; kills it past `timeout` (then `Ok(None)`).
fn wait_with_timeout(
    mut child: std::process::Child,
    timeout: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let start = now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if start.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Whether a finished run passed, and if not, why (from its output).
fn judge(status: ExitStatus, output: &str) -> (bool, Option<String>) {
    if status.success() {
        if output.contains("test result: ok. 1 passed") {
            return (true, None);
        }
        return (false, Some("the test did not run (no such test?)".into()));
    }
    if let Some(panic) = panic_message(output) {
        return (false, Some(panic));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return (false, Some(format!("killed by signal {sig}")));
        }
    }
    (false, Some(format!("failed ({status})")))
}

/// The first panic in a test's output: `<message> (at <file:line:col>)`.
fn panic_message(output: &str) -> Option<String> {
    let mut lines = output.lines();
    while let Some(line) = lines.next() {
        let Some(pos) = line.find("panicked at ") else {
            continue;
        };
        let rest = line[pos + "panicked at ".len()..].trim_end();
        // Since Rust 1.73: `thread 'x' panicked at file:line:col:` then the message on the
        // next line(s).
        let (location, message) = match rest.strip_suffix(':') {
            Some(location) => (location.to_owned(), lines.next().unwrap_or("").to_owned()),
            None => (String::new(), rest.to_owned()),
        };
        let mut m = message.trim().to_owned();
        if m.chars().count() > 300 {
            m = m.chars().take(300).collect::<String>() + "...";
        }
        return Some(if location.is_empty() {
            m
        } else {
            format!("{m} (at {location})")
        });
    }
    None
}

/// The live progress line on stderr.
struct Progress {
    total: usize,
    done: usize,
    failed: usize,
    clock: Instant,
    tty: bool,
    /// Non-terminal output: the last tenth reported.
    last_tenth: usize,
}

impl Progress {
    fn new(total: usize, clock: Instant) -> Progress {
        Progress {
            total,
            done: 0,
            failed: 0,
            clock,
            tty: std::io::stderr().is_terminal(),
            last_tenth: 0,
        }
    }

    fn line(&self) -> String {
        let elapsed = self.clock.elapsed();
        let eta = if self.done == 0 {
            "?".to_owned()
        } else {
            let left = elapsed.as_secs_f64() * (self.total - self.done) as f64 / self.done as f64;
            fmt_duration(Duration::from_secs_f64(left))
        };
        format!(
            "[{:>w$}/{}] {} failed | elapsed {} | eta {}",
            self.done,
            self.total,
            self.failed,
            fmt_duration(elapsed),
            eta,
            w = self.total.to_string().len()
        )
    }

    fn redraw(&self) {
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", self.line());
            let _ = err.flush();
        }
    }

    fn failure(&self, msg: &str) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!("{msg}");
        self.redraw();
    }

    fn done(&mut self, passed: bool) {
        self.done += 1;
        if !passed {
            self.failed += 1;
        }
        if self.tty {
            self.redraw();
        } else {
            let tenth = self.done * 10 / self.total.max(1);
            if tenth > self.last_tenth {
                self.last_tenth = tenth;
                eprintln!("{}", self.line());
            }
        }
    }

    fn finish(&self) {
        if self.tty {
            eprintln!("\r\x1b[2K{}", self.line());
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, s % 3600 / 60, s % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Quotes a path for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

struct ReportMeta<'a> {
    root: &'a Path,
    graded_elsewhere: bool,
    seed: u64,
    runs: u32,
    elapsed: Duration,
}

#[derive(Debug)]
struct FailureReport {
    run: u32,
    seed: u64,
    reason: String,
    replay: String,
    secs: f64,
    log: Option<PathBuf>,
    trace: Option<PathBuf>,
}

#[derive(Debug)]
struct TestReport {
    name: String,
    runs: u32,
    passed: u32,
    secs: f64,
    failures: Vec<FailureReport>,
}

#[derive(Debug)]
struct PartReport {
    lab: String,
    part: String,
    tests: Vec<TestReport>,
    points: Option<u32>,
}

impl PartReport {
    fn runs(&self) -> u32 {
        self.tests.iter().map(|t| t.runs).sum()
    }
    fn passed(&self) -> u32 {
        self.tests.iter().map(|t| t.passed).sum()
    }
    fn failed(&self) -> u32 {
        self.runs() - self.passed()
    }
    fn all_passed(&self) -> bool {
        self.runs() > 0 && self.failed() == 0
    }
    fn awarded(&self) -> u32 {
        if self.all_passed() {
            self.points.unwrap_or(0)
        } else {
            0
        }
    }
    fn secs(&self) -> f64 {
        self.tests.iter().map(|t| t.secs).sum()
    }
}

#[derive(Debug)]
struct Report {
    root: PathBuf,
    seed: u64,
    runs: u32,
    elapsed: Duration,
    unavailable: Vec<String>,
    parts: Vec<PartReport>,
}

impl Report {
    fn build(
        suites: &[Suite],
        jobs: &[Job],
        outcomes: &[Outcome],
        points: &Points,
        meta: ReportMeta,
    ) -> Report {
        let cd = if meta.graded_elsewhere {
            format!("cd {} && ", shell_quote(&meta.root.to_string_lossy()))
        } else {
            String::new()
        };
        // (suite, test) -> report, filled in job order.
        let mut tests: BTreeMap<(usize, usize), TestReport> = BTreeMap::new();
        for (si, suite) in suites.iter().enumerate() {
            for (ti, test) in suite.tests.iter().enumerate() {
                tests.insert(
                    (si, ti),
                    TestReport {
                        name: test.name.clone(),
                        runs: 0,
                        passed: 0,
                        secs: 0.0,
                        failures: Vec::new(),
                    },
                );
            }
        }
        for (job, outcome) in jobs.iter().zip(outcomes) {
            let suite = &suites[job.suite];
            let Some(t) = tests.get_mut(&(job.suite, job.test)) else {
                continue;
            };
            t.runs += 1;
            t.secs += outcome.secs;
            if outcome.passed {
                t.passed += 1;
            } else {
                t.failures.push(FailureReport {
                    run: job.run + 1,
                    seed: job.seed,
                    reason: outcome.reason.clone().unwrap_or_else(|| "failed".into()),
                    replay: format!(
                        "{cd}RAFTLAB_SEED={} cargo test --release -p tests --test {} -- {} --exact",
                        job.seed, suite.target, t.name
                    ),
                    secs: outcome.secs,
                    log: outcome.log.clone(),
                    trace: outcome.trace.clone(),
                });
            }
        }
        let mut by_part: BTreeMap<(usize, String), PartReport> = BTreeMap::new();
        for ((si, ti), report) in tests {
            let suite = &suites[si];
            let part = suite.tests[ti].part.clone();
            by_part
                .entry((si, part.clone()))
                .or_insert_with(|| PartReport {
                    lab: suite.lab.to_owned(),
                    points: points.get(suite.lab, &part),
                    part,
                    tests: Vec::new(),
                })
                .tests
                .push(report);
        }
        Report {
            root: meta.root.to_path_buf(),
            seed: meta.seed,
            runs: meta.runs,
            elapsed: meta.elapsed,
            unavailable: suites
                .iter()
                .filter(|s| s.binary.is_none())
                .map(|s| s.lab.to_owned())
                .collect(),
            parts: by_part.into_values().collect(),
        }
    }

    fn all_passed(&self) -> bool {
        !self.parts.is_empty() && self.parts.iter().all(PartReport::all_passed)
    }

    fn total_points(&self) -> (u32, u32) {
        let awarded = self.parts.iter().map(PartReport::awarded).sum();
        let max = self.parts.iter().filter_map(|p| p.points).sum();
        (awarded, max)
    }

    /// The score table and the failures, for the terminal.
    fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n{:<12} {:<5} {:>5} {:>6} {:>6} {:>6} {:>9} {:>8}",
            "lab", "part", "tests", "runs", "passed", "failed", "pass rate", "points"
        );
        let rate = |passed: u32, runs: u32| {
            if runs == 0 {
                "-".to_owned()
            } else {
                format!("{:.1}%", 100.0 * f64::from(passed) / f64::from(runs))
            }
        };
        let (mut tests, mut runs, mut passed) = (0, 0, 0);
        for p in &self.parts {
            let pts = match p.points {
                Some(max) => format!("{}/{max}", p.awarded()),
                None => "-".to_owned(),
            };
            let _ = writeln!(
                s,
                "{:<12} {:<5} {:>5} {:>6} {:>6} {:>6} {:>9} {:>8}",
                p.lab,
                p.part,
                p.tests.len(),
                p.runs(),
                p.passed(),
                p.failed(),
                rate(p.passed(), p.runs()),
                pts
            );
            tests += p.tests.len();
            runs += p.runs();
            passed += p.passed();
        }
        let (awarded, max) = self.total_points();
        let _ = writeln!(
            s,
            "{:<12} {:<5} {:>5} {:>6} {:>6} {:>6} {:>9} {:>8}",
            "total",
            "",
            tests,
            runs,
            passed,
            runs - passed,
            rate(passed, runs),
            format!("{awarded}/{max}")
        );
        for lab in &self.unavailable {
            let _ = writeln!(s, "{lab:<12} not available yet");
        }
        let _ = writeln!(
            s,
            "\n{} run(s) in {} (grading seed {}: `--seed {}` repeats this grading run)",
            runs,
            fmt_duration(self.elapsed),
            self.seed,
            self.seed
        );
        let failed: Vec<&TestReport> = self
            .parts
            .iter()
            .flat_map(|p| &p.tests)
            .filter(|t| !t.failures.is_empty())
            .collect();
        if failed.is_empty() {
            if runs > 0 {
                let _ = writeln!(s, "All runs passed.");
            }
            return s;
        }
        let _ = writeln!(s, "\nFailures:");
        for t in failed {
            let _ = writeln!(
                s,
                "  {}: {} of {} run(s) failed",
                t.name,
                t.failures.len(),
                t.runs
            );
            for f in t.failures.iter().take(FAILURES_SHOWN_PER_TEST) {
                let _ = writeln!(s, "    run {} seed {}: {}", f.run, f.seed, f.reason);
                let _ = writeln!(s, "      replay: {}", f.replay);
                if let Some(log) = &f.log {
                    let _ = writeln!(s, "      log: {}", log.display());
                }
                if let Some(trace) = &f.trace {
                    let _ = writeln!(s, "      trace: {}", trace.display());
                }
            }
            if t.failures.len() > FAILURES_SHOWN_PER_TEST {
                let _ = writeln!(
                    s,
                    "    ... and {} more (every seed is in the --json / --junit reports)",
                    t.failures.len() - FAILURES_SHOWN_PER_TEST
                );
            }
        }
        s
    }

    fn json(&self) -> Value {
        let (awarded, max) = self.total_points();
        let parts: Vec<Value> = self
            .parts
            .iter()
            .map(|p| {
                json!({
                    "lab": p.lab,
                    "part": p.part,
                    "tests": p.tests.len(),
                    "runs": p.runs(),
                    "passed": p.passed(),
                    "failed": p.failed(),
                    "points": p.points,
                    "awarded": p.awarded(),
                    "results": p.tests.iter().map(|t| json!({
                        "name": t.name,
                        "runs": t.runs,
                        "passed": t.passed,
                        "failed": t.failures.len(),
                        "seconds": t.secs,
                        "failures": t.failures.iter().map(|f| json!({
                            "run": f.run,
                            "seed": f.seed,
                            "reason": f.reason,
                            "replay": f.replay,
                            "seconds": f.secs,
                            "log": f.log.as_ref().map(|p| p.display().to_string()),
                            "trace": f.trace.as_ref().map(|p| p.display().to_string()),
                        })).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "root": self.root.display().to_string(),
            "seed": self.seed,
            "runs_per_test": self.runs,
            "elapsed_seconds": self.elapsed.as_secs_f64(),
            "passed": self.all_passed(),
            "points": awarded,
            "max_points": max,
            "unavailable_labs": self.unavailable,
            "parts": parts,
        })
    }

    /// JUnit XML: one testsuite per lab part, one testcase per test; a test with failed runs has
    /// one `<failure>` listing every failing seed and its replay command.
    fn junit(&self) -> String {
        let e = xml::escape;
        let total_tests: usize = self.parts.iter().map(|p| p.tests.len()).sum();
        let total_failed = self
            .parts
            .iter()
            .flat_map(|p| &p.tests)
            .filter(|t| !t.failures.is_empty())
            .count();
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            s,
            "<testsuites name=\"raftlab grade\" tests=\"{total_tests}\" failures=\"{total_failed}\" \
             errors=\"0\" time=\"{:.3}\">",
            self.elapsed.as_secs_f64()
        );
        for p in &self.parts {
            let failed = p.tests.iter().filter(|t| !t.failures.is_empty()).count();
            let _ = writeln!(
                s,
                "  <testsuite name=\"{} {}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" \
                 skipped=\"0\" time=\"{:.3}\">",
                e(&p.lab),
                e(&p.part),
                p.tests.len(),
                p.secs()
            );
            let _ = writeln!(s, "    <properties>");
            for (name, value) in [
                ("seed", self.seed.to_string()),
                ("runs", self.runs.to_string()),
                (
                    "points",
                    p.points.map_or_else(|| "-".to_owned(), |v| v.to_string()),
                ),
                ("awarded", p.awarded().to_string()),
            ] {
                let _ = writeln!(
                    s,
                    "      <property name=\"{name}\" value=\"{}\"/>",
                    e(&value)
                );
            }
            let _ = writeln!(s, "    </properties>");
            for t in &p.tests {
                let _ = write!(
                    s,
                    "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\"",
                    e(&p.lab),
                    e(&p.part),
                    e(&t.name),
                    t.secs
                );
                if t.failures.is_empty() {
                    let _ = writeln!(s, "/>");
                    continue;
                }
                let _ = writeln!(s, ">");
                let seeds: Vec<String> = t.failures.iter().map(|f| f.seed.to_string()).collect();
                let mut body = String::new();
                for f in &t.failures {
                    let _ = writeln!(body, "run {} seed {}: {}", f.run, f.seed, f.reason);
                    let _ = writeln!(body, "  replay: {}", f.replay);
                }
                let _ = writeln!(
                    s,
                    "      <failure type=\"failure\" message=\"{} of {} runs failed; seeds {}\">{}</failure>",
                    t.failures.len(),
                    t.runs,
                    e(&seeds.join(" ")),
                    e(&body)
                );
                let _ = writeln!(s, "    </testcase>");
            }
            let _ = writeln!(s, "  </testsuite>");
        }
        let _ = writeln!(s, "</testsuites>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_from_names() {
        assert_eq!(part_of("basic_agree_3b"), "3B");
        assert_eq!(part_of("snapshot_init_3d"), "3D");
        assert_eq!(part_of("no_part_here"), "?");
    }

    #[test]
    fn parses_the_list_output() {
        let text = "initial_election_3a: test\nbasic_agree_3b: test\n\n2 tests, 0 benchmarks\n";
        let tests = parse_test_list(text);
        assert_eq!(tests.len(), 2);
        assert_eq!(tests[1].name, "basic_agree_3b");
        assert_eq!(tests[1].part, "3B");
    }

    #[test]
    fn finds_the_panic_message() {
        let out = "basic ...\nthread 'basic_agree_3b' panicked at tests/tests/raft.rs:110:9:\n\
                   one(100) failed to reach agreement\nnote: run with RUST_BACKTRACE=1\n";
        assert_eq!(
            panic_message(out).as_deref(),
            Some("one(100) failed to reach agreement (at tests/tests/raft.rs:110:9)")
        );
        assert_eq!(panic_message("all good"), None);
    }

    #[cfg(unix)]
    #[test]
    fn kills_a_run_past_its_timeout() {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let clock = now();
        let status = wait_with_timeout(child, Duration::from_millis(200)).unwrap();
        assert!(status.is_none());
        assert!(clock.elapsed() < Duration::from_secs(10));
        let child = Command::new("true").spawn().unwrap();
        let status = wait_with_timeout(child, Duration::from_secs(30)).unwrap();
        assert!(status.is_some_and(|s| s.success()));
    }

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(shell_quote("/tmp/a-b"), "/tmp/a-b");
        assert_eq!(shell_quote("/tmp/it's here"), r"'/tmp/it'\''s here'");
    }

    fn sample_report() -> Report {
        let suites = vec![Suite {
            lab: "raft",
            target: "raft",
            binary: Some(SuiteBinary {
                exe: "/bin/true".into(),
                cwd: "/".into(),
            }),
            tests: vec![
                TestCase {
                    name: "initial_election_3a".into(),
                    part: "3A".into(),
                },
                TestCase {
                    name: "basic_agree_3b".into(),
                    part: "3B".into(),
                },
            ],
        }];
        let jobs: Vec<Job> = (0..2)
            .flat_map(|run| {
                (0..2).map(move |test| Job {
                    suite: 0,
                    test,
                    run,
                    seed: 100 + u64::from(run) * 10 + test as u64,
                })
            })
            .collect();
        let outcomes: Vec<Outcome> = jobs
            .iter()
            .map(|j| Outcome {
                passed: !(j.test == 1 && j.run == 1),
                reason: Some("apply error <&> \"x\"".into()),
                secs: 1.0,
                log: None,
                trace: None,
            })
            .collect();
        let points = Points::parse("raft 3A 5\nraft 3B 10\n").unwrap();
        Report::build(
            &suites,
            &jobs,
            &outcomes,
            &points,
            ReportMeta {
                root: Path::new("/w"),
                graded_elsewhere: false,
                seed: 7,
                runs: 2,
                elapsed: Duration::from_secs(3),
            },
        )
    }

    #[test]
    fn report_scores_parts() {
        let r = sample_report();
        assert!(!r.all_passed());
        assert_eq!(r.total_points(), (5, 15));
        let table = r.table();
        assert!(table.contains("RAFTLAB_SEED=111 cargo test --release -p tests --test raft -- basic_agree_3b --exact"), "{table}");
        let json = r.json();
        assert_eq!(json["points"], 5);
        assert_eq!(json["parts"][1]["results"][0]["failures"][0]["seed"], 111);
        let junit = r.junit();
        assert!(junit.contains("<testsuite name=\"raft 3B\" tests=\"1\" failures=\"1\""));
        assert!(junit.contains("apply error &lt;&amp;&gt; &quot;x&quot;"));
        assert!(junit.contains("seeds 111"));
    }
}
