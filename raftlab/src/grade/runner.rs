//! Running the planned test runs on worker threads, each in its sandbox, and judging them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::now;
use super::progress::Progress;
use super::report::Row;
use super::sandbox::{End, Sandbox, Spawn};
use super::suites::{SuiteBinary, TestCase};

/// A suite to run: its lab, test target, binary and tests.
#[derive(Debug)]
pub struct Suite {
    pub lab: &'static str,
    pub target: &'static str,
    pub binary: Option<SuiteBinary>,
    pub tests: Vec<TestCase>,
}

/// Which runs a grading run makes: every `(suite, test)` entry `runs` times, run-major, and
/// of those the share `k` of `n` (job indices `i` with `i % n == k - 1`).
#[derive(Clone, Debug)]
pub struct Plan {
    pub entries: Vec<(usize, usize)>,
    pub runs: u32,
    pub share: (u32, u32),
}

/// One run to make.
#[derive(Clone, Copy, Debug)]
pub struct Job {
    pub index: usize,
    pub entry: (usize, usize),
    pub run: u32,
}

impl Plan {
    fn total(&self) -> usize {
        self.entries.len() * self.runs as usize
    }

    /// How many runs this share makes.
    pub fn len(&self) -> usize {
        let (k, n) = (self.share.0 as usize, self.share.1 as usize);
        let total = self.total();
        if total < k { 0 } else { (total - k) / n + 1 }
    }

    /// The share's `i`-th run.
    pub fn job(&self, i: usize) -> Option<Job> {
        if i >= self.len() {
            return None;
        }
        let index = self.share.0 as usize - 1 + i * self.share.1 as usize;
        let per_run = self.entries.len();
        Some(Job {
            index,
            entry: self.entries[index % per_run],
            run: (index / per_run) as u32,
        })
    }

    /// Runs planned per `(lab, part)` in this share.
    pub fn planned(&self, suites: &[Suite]) -> BTreeMap<(String, String), u32> {
        let mut out: BTreeMap<(String, String), u32> = BTreeMap::new();
        for i in 0..self.len() {
            let Some(job) = self.job(i) else { break };
            let (s, t) = job.entry;
            let key = (suites[s].lab.to_owned(), suites[s].tests[t].part.clone());
            *out.entry(key).or_default() += 1;
        }
        out
    }
}

pub struct RunContext<'a> {
    pub suites: &'a [Suite],
    pub sandbox: &'a Sandbox,
    pub scratch: &'a Path,
    pub keep: bool,
    pub trace: bool,
    pub master: u64,
    /// Stop starting runs after this many failures.
    pub max_failures: Option<u32>,
}

/// Runs the plan on `jobs` worker threads, showing progress; returns the rows of the runs made
/// and whether it stopped early.
pub fn run_all(ctx: &RunContext, plan: &Plan, jobs: usize, clock: Instant) -> (Vec<Row>, bool) {
    let next = AtomicUsize::new(0);
    let failures = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Row>();
    let mut rows = Vec::new();
    let mut progress = Progress::new(plan.len(), clock);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            let tx = tx.clone();
            let (next, failures, stop) = (&next, &failures, &stop);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = plan.job(i) else { break };
                    let row = run_one(ctx, &job);
                    if !row.passed {
                        let f = failures.fetch_add(1, Ordering::Relaxed) + 1;
                        if ctx.max_failures.is_some_and(|m| f >= m) {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    if tx.send(row).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(row) => {
                    if !row.passed {
                        progress.failure(&format!(
                            "FAILED {} {} (run {}, seed {}): {}",
                            row.lab,
                            row.test,
                            row.run + 1,
                            row.seed,
                            row.reason.as_deref().unwrap_or("failed")
                        ));
                    }
                    progress.done(row.passed);
                    rows.push(row);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => progress.redraw(),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    });
    progress.finish();
    let stopped = stop.load(Ordering::Relaxed) && rows.len() < plan.len();
    (rows, stopped)
}

/// A fresh secret for one run's verdict: 128 bits from the OS.
fn token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs one test once, in its sandbox, as `<bin> <name> --exact --nocapture` with its seed.
fn run_one(ctx: &RunContext, job: &Job) -> Row {
    let (si, ti) = job.entry;
    let suite = &ctx.suites[si];
    let test = &suite.tests[ti];
    let seed = crate::seeds::run_seed(ctx.master, suite.lab, &test.name, job.run);
    let mut row = Row {
        index: job.index,
        lab: suite.lab.to_owned(),
        target: suite.target.to_owned(),
        test: test.name.clone(),
        part: test.part.clone(),
        run: job.run,
        seed,
        passed: false,
        reason: None,
        secs: 0.0,
        log: None,
        trace: None,
        page: None,
    };
    let Some(binary) = suite.binary.as_ref() else {
        row.reason = Some("the suite was not built".into());
        return row;
    };
    let stem = format!("{}-{}-run{}-seed{seed}", suite.lab, test.name, job.run + 1);
    let log = ctx.scratch.join(format!("{stem}.log"));
    let trace = ctx
        .trace
        .then(|| ctx.scratch.join(format!("{stem}.trace.jsonl")));
    let run_dir = ctx.scratch.join(format!("run-{}", job.index));
    let verdict = ctx.scratch.join(format!("run-{}.verdict", job.index));
    let _ = std::fs::remove_dir_all(&run_dir);
    if let Err(e) = std::fs::create_dir_all(&run_dir) {
        row.reason = Some(format!("cannot create {}: {e}", run_dir.display()));
        return row;
    }
    let _ = std::fs::remove_file(&verdict);
    let secret = match token() {
        Ok(t) => t,
        Err(e) => {
            row.reason = Some(format!("cannot make the run's verdict token: {e}"));
            return row;
        }
    };
    let mut env: Vec<(&'static str, OsString)> = vec![
        ("RAFTLAB_SEED", seed.to_string().into()),
        ("RAFTLAB_VERDICT", verdict.clone().into_os_string()),
        ("RUST_BACKTRACE", "1".into()),
    ];
    if let Some(t) = &trace {
        env.push(("RAFTLAB_TRACE", t.clone().into_os_string()));
    }
    let spawn = Spawn {
        exe: &binary.exe,
        args: vec![
            test.name.clone().into(),
            "--exact".into(),
            "--nocapture".into(),
        ],
        env,
        stdin: format!("{secret}\n").into_bytes(),
        scratch: &run_dir,
        log: &log,
    };
    let start = now();
    let end = ctx.sandbox.run(spawn);
    row.secs = start.elapsed().as_secs_f64();
    let text = std::fs::read(&log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let certified = std::fs::read_to_string(&verdict).is_ok_and(|v| {
        v.lines().any(|l| {
            let mut w = l.split(' ');
            w.next() == Some("passed") && w.next_back() == Some(secret.as_str())
        })
    });
    let _ = std::fs::remove_dir_all(&run_dir);
    let _ = std::fs::remove_file(&verdict);
    let (passed, reason) = match end {
        Err(e) => (false, Some(format!("cannot run the test binary: {e}"))),
        Ok(end) => judge(&end, &text, certified, ctx.sandbox),
    };
    row.passed = passed;
    row.reason = reason;
    if passed || !ctx.keep {
        let _ = std::fs::remove_file(&log);
        if let Some(t) = &trace {
            let _ = std::fs::remove_file(t);
        }
    } else {
        row.log = Some(log);
        row.trace = trace.filter(|t| t.exists());
        // Beside a failed run's trace, its page.
        if let Some(t) = &row.trace {
            let page = t.with_extension("html");
            if crate::trace::view::write_page(t, &page).is_ok() {
                row.page = Some(page);
            }
        }
    }
    row
}

/// Whether a run passed, and if not, why. A run passes only with the harness's verdict.
pub fn judge(
    end: &End,
    output: &str,
    certified: bool,
    sandbox: &Sandbox,
) -> (bool, Option<String>) {
    let limits = &sandbox.limits;
    let status = match end {
        End::TimedOut => {
            return (
                false,
                Some(format!("timed out after {} s", limits.timeout.as_secs())),
            );
        }
        End::OutputCapped => {
            return (
                false,
                Some(format!(
                    "printed more than {} bytes of output (the run was stopped)",
                    limits.max_output_bytes
                )),
            );
        }
        End::LeftProcesses => {
            return (
                false,
                Some("left processes running after it exited (they were killed)".into()),
            );
        }
        End::Exited(status) => status,
    };
    if status.success() {
        if certified {
            return (true, None);
        }
        if !output.contains("running 1 test") {
            return (false, Some("the test did not run (no such test?)".into()));
        }
        return (false, Some("exited before the tester finished".into()));
    }
    if output.contains("memory allocation of") {
        return (
            false,
            Some(format!(
                "ran out of memory (the limit is {} MB)",
                limits.memory_mb
            )),
        );
    }
    if let Some(panic) = panic_message(output) {
        return (false, Some(panic));
    }
    if let Some(line) = output
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("raftlab sandbox: "))
    {
        return (false, Some(line.to_owned()));
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
pub fn panic_message(output: &str) -> Option<String> {
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

/// The scratch directory of a grading run: kept (`--keep-logs`) or removed at the end.
pub fn scratch_dir(keep: Option<&PathBuf>) -> std::io::Result<PathBuf> {
    match keep {
        Some(dir) => Ok(dir.clone()),
        None => {
            let dir = std::env::temp_dir().join(format!("raftlab-grade-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            Ok(dir)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn shares_partition_the_runs() {
        let entries: Vec<(usize, usize)> = (0..5).map(|t| (0, t)).collect();
        let whole = Plan {
            entries: entries.clone(),
            runs: 3,
            share: (1, 1),
        };
        assert_eq!(whole.len(), 15);
        let mut seen: Vec<usize> = Vec::new();
        for k in 1..=4 {
            let p = Plan {
                entries: entries.clone(),
                runs: 3,
                share: (k, 4),
            };
            for i in 0..p.len() {
                let j = p.job(i).unwrap();
                let w = whole.job(j.index).unwrap();
                assert_eq!((j.entry, j.run), (w.entry, w.run));
                seen.push(j.index);
            }
            assert!(p.job(p.len()).is_none());
        }
        seen.sort();
        assert_eq!(seen, (0..15).collect::<Vec<_>>());
    }
}
