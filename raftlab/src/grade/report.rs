//! The grading report: built from one row per run, printed as a table, written as JSON, JUnit
//! XML and Gradescope's `results.json`, and read back from JSON to merge partitions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::LABS;
use super::progress::fmt_duration;
use crate::points::Points;
use crate::xml;

/// How many failing seeds of one test the table's failure list shows (the JSON has them all).
const FAILURES_SHOWN_PER_TEST: usize = 5;

/// One run of one test.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The run's index in the whole grading run (the same in every partition).
    pub index: usize,
    pub lab: String,
    pub target: String,
    pub test: String,
    pub part: String,
    pub run: u32,
    pub seed: u64,
    pub passed: bool,
    pub reason: Option<String>,
    pub secs: f64,
    pub log: Option<PathBuf>,
    pub trace: Option<PathBuf>,
    /// The web page of the failed run's trace (`raftlab view`).
    pub page: Option<PathBuf>,
}

/// What the report says about the grading run as a whole.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    /// Shown in the replay commands (`cd <dir> && ...`) when grading another tree.
    pub replay_dir: Option<PathBuf>,
    pub root: PathBuf,
    pub seed: u64,
    pub runs: u32,
    pub elapsed: Duration,
    /// `(k, n)`: this report holds the k-th of n shares of the runs.
    pub partition: Option<(u32, u32)>,
    /// Labs without a suite in the tree.
    pub unavailable: Vec<String>,
    /// Labs whose code does not compile, and why: they score zero.
    pub not_built: BTreeMap<String, String>,
    /// Files the student changed that are not theirs (not used).
    pub ignored: Vec<String>,
    /// Student files the tree does not have (the handout stubs were used).
    pub missing: Vec<String>,
    /// Why the grading run stopped before every planned run was done.
    pub stopped: Option<String>,
    /// Notices to repeat in the report (e.g. runs were not network-isolated).
    pub notices: Vec<String>,
}

#[derive(Debug)]
pub struct FailureReport {
    pub run: u32,
    pub seed: u64,
    pub reason: String,
    pub replay: String,
    pub secs: f64,
    pub log: Option<PathBuf>,
    pub trace: Option<PathBuf>,
    pub page: Option<PathBuf>,
}

#[derive(Debug)]
pub struct TestReport {
    pub name: String,
    pub runs: u32,
    pub passed: u32,
    pub secs: f64,
    pub failures: Vec<FailureReport>,
}

#[derive(Debug)]
pub struct PartReport {
    pub lab: String,
    pub part: String,
    pub tests: Vec<TestReport>,
    pub points: Option<u32>,
    /// Runs planned for this part (in this share); fewer done means the run stopped early.
    pub planned: u32,
    /// Why the part could not run at all (its code does not compile).
    pub error: Option<String>,
}

impl PartReport {
    pub fn runs(&self) -> u32 {
        self.tests.iter().map(|t| t.runs).sum()
    }
    pub fn passed(&self) -> u32 {
        self.tests.iter().map(|t| t.passed).sum()
    }
    pub fn failed(&self) -> u32 {
        self.runs() - self.passed()
    }
    /// Every planned run ran and passed.
    pub fn all_passed(&self) -> bool {
        self.error.is_none() && self.runs() > 0 && self.failed() == 0 && self.runs() >= self.planned
    }
    pub fn awarded(&self) -> u32 {
        if self.all_passed() {
            self.points.unwrap_or(0)
        } else {
            0
        }
    }
    fn secs(&self) -> f64 {
        self.tests.iter().map(|t| t.secs).sum()
    }
    pub fn key(&self) -> String {
        format!("{} {}", self.lab, self.part)
    }
}

#[derive(Debug)]
pub struct Report {
    pub meta: Meta,
    pub parts: Vec<PartReport>,
    pub rows: Vec<Row>,
    pub points: Points,
    /// Planned runs per (lab, part).
    pub planned: BTreeMap<(String, String), u32>,
}

fn lab_rank(lab: &str) -> usize {
    LABS.iter()
        .position(|(l, _)| *l == lab)
        .unwrap_or(LABS.len())
}

impl Report {
    pub fn build(
        mut rows: Vec<Row>,
        planned: BTreeMap<(String, String), u32>,
        points: &Points,
        meta: Meta,
    ) -> Report {
        rows.sort_by_key(|r| r.index);
        let cd = match &meta.replay_dir {
            Some(dir) => format!("cd {} && ", shell_quote(&dir.to_string_lossy())),
            None => String::new(),
        };
        // (lab rank, part) -> tests in order of their first run.
        let mut parts: BTreeMap<(usize, String, String), Vec<TestReport>> = BTreeMap::new();
        for ((lab, part), _) in planned.iter() {
            parts
                .entry((lab_rank(lab), lab.clone(), part.clone()))
                .or_default();
        }
        for r in &rows {
            let tests = parts
                .entry((lab_rank(&r.lab), r.lab.clone(), r.part.clone()))
                .or_default();
            let t = match tests.iter_mut().position(|t| t.name == r.test) {
                Some(i) => &mut tests[i],
                None => {
                    tests.push(TestReport {
                        name: r.test.clone(),
                        runs: 0,
                        passed: 0,
                        secs: 0.0,
                        failures: Vec::new(),
                    });
                    tests.last_mut().expect("just pushed")
                }
            };
            t.runs += 1;
            t.secs += r.secs;
            if r.passed {
                t.passed += 1;
            } else {
                t.failures.push(FailureReport {
                    run: r.run + 1,
                    seed: r.seed,
                    reason: r.reason.clone().unwrap_or_else(|| "failed".into()),
                    replay: format!(
                        "{cd}RAFTLAB_SEED={} cargo test --release -p tests --test {} -- {} --exact",
                        r.seed, r.target, r.test
                    ),
                    secs: r.secs,
                    log: r.log.clone(),
                    trace: r.trace.clone(),
                    page: r.page.clone(),
                });
            }
        }
        // A lab that does not compile has all of its listed parts at zero.
        for lab in meta.not_built.keys() {
            for (l, part) in points.0.keys() {
                if l == lab {
                    parts
                        .entry((lab_rank(lab), lab.clone(), part.clone()))
                        .or_default();
                }
            }
        }
        let parts = parts
            .into_iter()
            .map(|((_, lab, part), tests)| PartReport {
                points: points.get(&lab, &part),
                planned: planned
                    .get(&(lab.clone(), part.clone()))
                    .copied()
                    .unwrap_or(0),
                error: meta.not_built.get(&lab).cloned(),
                lab,
                part,
                tests,
            })
            .collect();
        Report {
            meta,
            parts,
            rows,
            points: points.clone(),
            planned,
        }
    }

    pub fn all_passed(&self) -> bool {
        !self.parts.is_empty() && self.parts.iter().all(PartReport::all_passed)
    }

    pub fn total_points(&self) -> (u32, u32) {
        let awarded = self.parts.iter().map(PartReport::awarded).sum();
        let max = self.parts.iter().filter_map(|p| p.points).sum();
        (awarded, max)
    }

    /// What the grader did with the tree, before the table: ignored files, stubs, build errors.
    pub fn preamble(&self) -> String {
        let mut s = String::new();
        let m = &self.meta;
        if !m.ignored.is_empty() {
            let _ = writeln!(
                s,
                "ignored (not student files; the grader's own copies were used):"
            );
            for f in &m.ignored {
                let _ = writeln!(s, "  {f}");
            }
        }
        if !m.missing.is_empty() {
            let _ = writeln!(s, "missing student files (the handout stubs were used):");
            for f in &m.missing {
                let _ = writeln!(s, "  {f}");
            }
        }
        for (lab, why) in &m.not_built {
            let _ = writeln!(s, "{lab}: 0 points: {why}");
        }
        for n in &m.notices {
            let _ = writeln!(s, "{n}");
        }
        s
    }

    /// The score table and the failures, for the terminal.
    pub fn table(&self) -> String {
        let mut s = self.preamble();
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
            let shown_rate = if p.error.is_some() {
                "no build".to_owned()
            } else {
                rate(p.passed(), p.runs())
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
                shown_rate,
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
        for lab in &self.meta.unavailable {
            let _ = writeln!(s, "{lab:<12} not available yet");
        }
        let share = match self.meta.partition {
            Some((k, n)) => {
                format!(" (share {k}/{n}: merge the shares with `raftlab grade merge`)")
            }
            None => String::new(),
        };
        let _ = writeln!(
            s,
            "\n{} run(s) in {}{share} (grading seed {}: `--seed {}` repeats this grading run)",
            runs,
            fmt_duration(self.meta.elapsed),
            self.meta.seed,
            self.meta.seed
        );
        if let Some(why) = &self.meta.stopped {
            let _ = writeln!(s, "Stopped early: {why}.");
        }
        let failed: Vec<&TestReport> = self
            .parts
            .iter()
            .flat_map(|p| &p.tests)
            .filter(|t| !t.failures.is_empty())
            .collect();
        if failed.is_empty() {
            if runs > 0 && self.meta.not_built.is_empty() {
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
                if let Some(page) = &f.page {
                    let _ = writeln!(s, "      page: {}", page.display());
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

    pub fn json(&self) -> Value {
        let (awarded, max) = self.total_points();
        let m = &self.meta;
        let parts: Vec<Value> = self
            .parts
            .iter()
            .map(|p| {
                json!({
                    "lab": p.lab,
                    "part": p.part,
                    "tests": p.tests.len(),
                    "planned_runs": p.planned,
                    "runs": p.runs(),
                    "passed": p.passed(),
                    "failed": p.failed(),
                    "points": p.points,
                    "awarded": p.awarded(),
                    "error": p.error,
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
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "index": r.index, "lab": r.lab, "target": r.target, "test": r.test,
                    "part": r.part, "run": r.run, "seed": r.seed, "passed": r.passed,
                    "reason": r.reason, "seconds": r.secs,
                    "log": r.log.as_ref().map(|p| p.display().to_string()),
                    "trace": r.trace.as_ref().map(|p| p.display().to_string()),
                    "page": r.page.as_ref().map(|p| p.display().to_string()),
                })
            })
            .collect();
        json!({
            "root": m.root.display().to_string(),
            "replay_dir": m.replay_dir.as_ref().map(|p| p.display().to_string()),
            "seed": m.seed,
            "runs_per_test": m.runs,
            "partition": m.partition.map(|(k, n)| json!({"share": k, "of": n})),
            "elapsed_seconds": m.elapsed.as_secs_f64(),
            "passed": self.all_passed(),
            "points": awarded,
            "max_points": max,
            "stopped_early": m.stopped,
            "unavailable_labs": m.unavailable,
            "not_built": m.not_built,
            "ignored_files": m.ignored,
            "missing_files": m.missing,
            "notices": m.notices,
            "points_table": self.points.0.iter().map(|((l, p), v)| json!([l, p, v])).collect::<Vec<_>>(),
            "planned": self.planned.iter().map(|((l, p), v)| json!([l, p, v])).collect::<Vec<_>>(),
            "parts": parts,
            "rows": rows,
        })
    }

    /// Reads back what [`Report::json`] wrote (for `raftlab grade merge`).
    pub fn from_json(v: &Value) -> Result<Report> {
        let str_of = |v: &Value| v.as_str().map(str::to_owned);
        let path_of = |v: &Value| v.as_str().map(PathBuf::from);
        let triples = |key: &str| -> Result<Vec<(String, String, u32)>> {
            v[key]
                .as_array()
                .with_context(|| format!("no {key:?} list: not a report of this raftlab"))?
                .iter()
                .map(|t| {
                    Ok((
                        str_of(&t[0]).context("lab")?,
                        str_of(&t[1]).context("part")?,
                        u32::try_from(t[2].as_u64().context("count")?)?,
                    ))
                })
                .collect()
        };
        let mut points = Points::default();
        for (l, p, n) in triples("points_table")? {
            points.0.insert((l, p), n);
        }
        let mut planned = BTreeMap::new();
        for (l, p, n) in triples("planned")? {
            planned.insert((l, p), n);
        }
        let mut rows = Vec::new();
        for r in v["rows"].as_array().context("no \"rows\" list")? {
            rows.push(Row {
                index: r["index"].as_u64().context("row index")? as usize,
                lab: str_of(&r["lab"]).context("row lab")?,
                target: str_of(&r["target"]).context("row target")?,
                test: str_of(&r["test"]).context("row test")?,
                part: str_of(&r["part"]).context("row part")?,
                run: u32::try_from(r["run"].as_u64().context("row run")?)?,
                seed: r["seed"].as_u64().context("row seed")?,
                passed: r["passed"].as_bool().context("row passed")?,
                reason: str_of(&r["reason"]),
                secs: r["seconds"].as_f64().unwrap_or(0.0),
                log: path_of(&r["log"]),
                trace: path_of(&r["trace"]),
                page: path_of(&r["page"]),
            });
        }
        let strings = |key: &str| -> Vec<String> {
            v[key]
                .as_array()
                .map(|a| a.iter().filter_map(str_of).collect())
                .unwrap_or_default()
        };
        let not_built = v["not_built"]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), str_of(v)?)))
                    .collect()
            })
            .unwrap_or_default();
        let partition = match &v["partition"] {
            Value::Null => None,
            p => Some((
                u32::try_from(p["share"].as_u64().context("partition share")?)?,
                u32::try_from(p["of"].as_u64().context("partition count")?)?,
            )),
        };
        let meta = Meta {
            replay_dir: path_of(&v["replay_dir"]),
            root: path_of(&v["root"]).unwrap_or_default(),
            seed: v["seed"].as_u64().context("no seed")?,
            runs: u32::try_from(v["runs_per_test"].as_u64().context("no runs_per_test")?)?,
            elapsed: Duration::from_secs_f64(v["elapsed_seconds"].as_f64().unwrap_or(0.0).max(0.0)),
            partition,
            unavailable: strings("unavailable_labs"),
            not_built,
            ignored: strings("ignored_files"),
            missing: strings("missing_files"),
            stopped: str_of(&v["stopped_early"]),
            notices: strings("notices"),
        };
        if meta.stopped.is_some() {
            bail!(
                "this share stopped early ({}): it cannot be merged",
                meta.stopped.as_deref().unwrap_or("")
            );
        }
        Ok(Report::build(rows, planned, &points, meta))
    }

    /// Gradescope's autograder `results.json`: one test per lab part.
    pub fn gradescope(&self) -> Value {
        let (awarded, _) = self.total_points();
        let tests: Vec<Value> = self
            .parts
            .iter()
            .map(|p| {
                let mut output = String::new();
                if let Some(e) = &p.error {
                    let _ = writeln!(output, "{e}");
                } else {
                    let _ = writeln!(
                        output,
                        "{} test(s), {} of {} run(s) passed",
                        p.tests.len(),
                        p.passed(),
                        p.runs()
                    );
                }
                for t in &p.tests {
                    for f in t.failures.iter().take(FAILURES_SHOWN_PER_TEST) {
                        let _ = writeln!(output, "{} (seed {}): {}", t.name, f.seed, f.reason);
                        let _ = writeln!(output, "  replay: {}", f.replay);
                    }
                }
                json!({
                    "name": p.key(),
                    "score": p.awarded(),
                    "max_score": p.points.unwrap_or(0),
                    "status": if p.all_passed() { "passed" } else { "failed" },
                    "output": output,
                    "visibility": "visible",
                })
            })
            .collect();
        json!({
            "score": awarded,
            "execution_time": self.meta.elapsed.as_secs(),
            "output": self.preamble() + &format!("grading seed {}", self.meta.seed),
            "stdout_visibility": "visible",
            "tests": tests,
        })
    }

    /// JUnit XML: one testsuite per lab part, one testcase per test; a test with failed runs has
    /// one `<failure>` listing every failing seed and its replay command.
    pub fn junit(&self) -> String {
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
             errors=\"{}\" time=\"{:.3}\">",
            self.meta.not_built.len(),
            self.meta.elapsed.as_secs_f64()
        );
        for p in &self.parts {
            let failed = p.tests.iter().filter(|t| !t.failures.is_empty()).count();
            let _ = writeln!(
                s,
                "  <testsuite name=\"{} {}\" tests=\"{}\" failures=\"{failed}\" errors=\"{}\" \
                 skipped=\"0\" time=\"{:.3}\">",
                e(&p.lab),
                e(&p.part),
                p.tests.len(),
                usize::from(p.error.is_some()),
                p.secs()
            );
            let _ = writeln!(s, "    <properties>");
            for (name, value) in [
                ("seed", self.meta.seed.to_string()),
                ("runs", self.meta.runs.to_string()),
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
            if let Some(err) = &p.error {
                let _ = writeln!(
                    s,
                    "    <testcase classname=\"{}.{}\" name=\"build\"><error message=\"{}\"/></testcase>",
                    e(&p.lab),
                    e(&p.part),
                    e(err)
                );
            }
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

    /// The report without wall-clock times and file paths: what two gradings of the same tree
    /// with the same seed must agree on.
    #[cfg(test)]
    pub fn outcome_json(&self) -> Value {
        let mut v = self.json();
        strip_times(&mut v);
        if let Some(o) = v.as_object_mut() {
            o.remove("partition");
        }
        v
    }
}

#[cfg(test)]
fn strip_times(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for k in ["seconds", "elapsed_seconds", "log", "trace"] {
                o.remove(k);
            }
            o.values_mut().for_each(strip_times);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// Combines the shares of one grading run into one report.
pub fn merge(shares: Vec<Report>) -> Result<Report> {
    let Some(first) = shares.first() else {
        bail!("nothing to merge");
    };
    let n = match first.meta.partition {
        Some((_, n)) => n,
        None => bail!("the first report is not a share (--partition K/N)"),
    };
    let mut seen = vec![false; n as usize];
    for s in &shares {
        let Some((k, sn)) = s.meta.partition else {
            bail!("a report is not a share (--partition K/N)");
        };
        if sn != n || s.meta.seed != first.meta.seed || s.meta.runs != first.meta.runs {
            bail!(
                "the shares are of different grading runs (seed, runs or share count differ: \
                 {}/{} seed {} runs {} vs {}/{n} seed {} runs {})",
                k,
                sn,
                s.meta.seed,
                s.meta.runs,
                first.meta.partition.map_or(0, |p| p.0),
                first.meta.seed,
                first.meta.runs
            );
        }
        if s.points != first.points {
            bail!("the shares were graded with different points files");
        }
        let slot = &mut seen[(k - 1) as usize];
        if *slot {
            bail!("share {k}/{n} is given twice");
        }
        *slot = true;
    }
    if let Some(k) = seen.iter().position(|s| !s) {
        bail!("share {}/{n} is missing", k + 1);
    }
    let mut rows = Vec::new();
    let mut planned: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut meta = first.meta.clone();
    let points = first.points.clone();
    meta.partition = None;
    meta.elapsed = Duration::ZERO;
    for s in shares {
        meta.elapsed = meta.elapsed.max(s.meta.elapsed);
        for (k, v) in s.planned {
            *planned.entry(k).or_default() += v;
        }
        for (lab, why) in s.meta.not_built {
            meta.not_built.entry(lab).or_insert(why);
        }
        rows.extend(s.rows);
    }
    Ok(Report::build(rows, planned, &points, meta))
}

/// Quotes a path for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(shell_quote("/tmp/a-b"), "/tmp/a-b");
        assert_eq!(shell_quote("/tmp/it's here"), r"'/tmp/it'\''s here'");
    }

    fn rows() -> Vec<Row> {
        let mut rows = Vec::new();
        for run in 0..2u32 {
            for (test, name, part) in [
                (0, "initial_election_3a", "3A"),
                (1, "basic_agree_3b", "3B"),
            ] {
                rows.push(Row {
                    index: run as usize * 2 + test,
                    lab: "raft".into(),
                    target: "raft".into(),
                    test: name.into(),
                    part: part.into(),
                    run,
                    seed: 100 + u64::from(run) * 10 + test as u64,
                    passed: !(test == 1 && run == 1),
                    reason: Some("apply error <&> \"x\"".into()),
                    secs: 1.0,
                    log: None,
                    trace: None,
                    page: None,
                });
            }
        }
        rows
    }

    fn planned() -> BTreeMap<(String, String), u32> {
        [
            (("raft".into(), "3A".into()), 2),
            (("raft".into(), "3B".into()), 2),
        ]
        .into_iter()
        .collect()
    }

    fn sample_report() -> Report {
        let points = Points::parse("raft 3A 5\nraft 3B 10\n").unwrap();
        let meta = Meta {
            root: "/w".into(),
            seed: 7,
            runs: 2,
            elapsed: Duration::from_secs(3),
            ..Meta::default()
        };
        Report::build(rows(), planned(), &points, meta)
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

    #[test]
    fn a_part_with_runs_left_undone_scores_nothing() {
        let points = Points::parse("raft 3A 5\nraft 3B 10\n").unwrap();
        let mut planned = planned();
        planned.insert(("raft".into(), "3A".into()), 3);
        let r = Report::build(rows(), planned, &points, Meta::default());
        assert_eq!(r.total_points(), (0, 15));
    }

    #[test]
    fn a_lab_that_does_not_build_scores_zero_in_every_part() {
        let points = Points::parse("raft 3A 5\nkvraft 4A 50\nkvraft 4B 50\n").unwrap();
        let meta = Meta {
            not_built: [("kvraft".to_owned(), "kvraft does not compile".to_owned())].into(),
            ..Meta::default()
        };
        let r = Report::build(rows(), planned(), &points, meta);
        let kv: Vec<&PartReport> = r.parts.iter().filter(|p| p.lab == "kvraft").collect();
        assert_eq!(kv.len(), 2);
        assert!(kv.iter().all(|p| p.awarded() == 0 && p.error.is_some()));
        assert!(
            r.table()
                .contains("kvraft: 0 points: kvraft does not compile")
        );
    }

    #[test]
    fn gradescope_results_have_the_documented_fields() {
        let g = sample_report().gradescope();
        assert_eq!(g["score"], 5);
        assert!(g["execution_time"].is_u64());
        let tests = g["tests"].as_array().unwrap();
        assert_eq!(tests.len(), 2);
        for t in tests {
            assert!(t["name"].is_string() && t["output"].is_string());
            assert!(t["score"].is_u64() && t["max_score"].is_u64());
        }
        assert_eq!(tests[1]["name"], "raft 3B");
        assert_eq!(tests[1]["status"], "failed");
    }

    #[test]
    fn shares_merge_to_the_whole() {
        let points = Points::parse("raft 3A 5\nraft 3B 10\n").unwrap();
        let whole = sample_report();
        let shares: Vec<Report> = (1..=3u32)
            .map(|k| {
                let rows: Vec<Row> = rows()
                    .into_iter()
                    .filter(|r| r.index % 3 == (k - 1) as usize)
                    .collect();
                let mut planned = BTreeMap::new();
                for r in &rows {
                    *planned.entry((r.lab.clone(), r.part.clone())).or_default() += 1;
                }
                let meta = Meta {
                    root: "/w".into(),
                    seed: 7,
                    runs: 2,
                    partition: Some((k, 3)),
                    ..Meta::default()
                };
                let r = Report::build(rows, planned, &points, meta);
                // Through JSON, as `merge` reads them.
                Report::from_json(&r.json()).unwrap()
            })
            .collect();
        let merged = merge(shares).unwrap();
        assert_eq!(whole.outcome_json(), merged.outcome_json());
        assert!(merge(Vec::new()).is_err());
    }
}
