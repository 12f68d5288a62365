//! `raftlab grade`: run the graded suites many times with derived seeds and score them.
//!
//! - [`stage`]: only the student's files come from a student's tree (`--path`, `--class`).
//! - [`suites`]: building the suites, with a lab whose code does not compile scored zero.
//! - [`sandbox`]: every run without network, under memory/output/time limits, in its own
//!   process tree and scratch directory; a run passes only on the harness's verdict.
//! - [`runner`]: the runs on worker threads, `--partition`, `--max-failures`.
//! - [`report`]: the table, JSON, JUnit, Gradescope, and `grade merge`.
//! - [`class`]: `--class`, a gradebook for a directory of submissions.

mod class;
mod progress;
pub mod report;
mod runner;
pub mod sandbox;
pub mod stage;
mod suites;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::points::Points;
use crate::{seeds, workspace};
use report::{Meta, Report};
use runner::{Plan, RunContext, Suite};
use sandbox::{Isolation, Limits, Sandbox};

/// The labs and the test target (`tests/tests/<target>.rs`) holding each one's suite.
pub const LABS: [(&str, &str); 5] = [
    ("raft", "raft"),
    ("rsm", "rsm"),
    ("kvraft", "kvraft"),
    ("shardctrler", "shardctrler"),
    ("shardkv", "shardkv"),
];

/// `--until-failure` without `--runs`: this many runs of each test at most.
const UNTIL_FAILURE_RUNS: u32 = 100_000;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GradeCli {
    #[command(subcommand)]
    command: Option<GradeCommand>,
    #[command(flatten)]
    args: GradeArgs,
}

#[derive(Debug, clap::Subcommand)]
enum GradeCommand {
    /// Combine the JSON reports of the shares of one grading run (`--partition K/N --json`)
    /// into one report.
    Merge(MergeArgs),
}

#[derive(Debug, clap::Args)]
struct MergeArgs {
    /// The shares' JSON reports.
    #[arg(required = true, value_name = "PART.json")]
    parts: Vec<PathBuf>,
    /// Write the merged JSON report to FILE.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Also write the merged report as JUnit XML.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write the merged report as Gradescope's results.json.
    #[arg(long, value_name = "FILE")]
    gradescope: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct GradeArgs {
    /// Labs to grade (comma-separated or repeated).
    #[arg(long = "lab", value_name = "LAB", value_delimiter = ',', default_value = "all",
          value_parser = ["raft", "rsm", "kvraft", "shardctrler", "shardkv", "all"])]
    labs: Vec<String>,
    /// Only the tests of these lab parts, e.g. `--part 3A 3B` (a test's part is its name's
    /// suffix: `basic_agree_3b` is 3B).
    #[arg(long = "part", value_name = "PART", value_delimiter = ',', num_args = 1..)]
    parts: Vec<String>,
    /// Runs of each test, each with its own seed [default: 1; with --until-failure: 100000].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: Option<u32>,
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
    /// Write Gradescope's autograder results.json to FILE (one test per lab part).
    #[arg(long, value_name = "FILE")]
    gradescope: Option<PathBuf>,
    /// Grade the student tree DIR: the grader's own workspace with only the student's files
    /// (grading/student-files.txt) taken from DIR.
    #[arg(long, value_name = "DIR", conflicts_with = "class")]
    path: Option<PathBuf>,
    /// Grade every submission under DIR (directories, git checkouts, .tar/.tar.gz/.tgz files)
    /// with the same seed and write a gradebook to --out.
    #[arg(long, value_name = "DIR")]
    class: Option<PathBuf>,
    /// Where --class writes the gradebook and each student's reports.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "gradebook",
        requires = "class"
    )]
    out: PathBuf,
    /// Where student trees are staged and built [default: target/grade of the grader's
    /// workspace].
    #[arg(long, value_name = "DIR")]
    work: Option<PathBuf>,
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
    /// Memory (address space) limit of one run, in MiB; an allocation past it fails the run.
    #[arg(long, value_name = "MB", default_value_t = 2048,
          value_parser = clap::value_parser!(u64).range(64..=1_048_576))]
    memory_mb: u64,
    /// Output limit of one run, in MiB; a run printing more is stopped and fails.
    #[arg(long, value_name = "MB", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    max_output_mb: u64,
    /// Run only the K-th of N deterministic shares of the runs (e.g. `--partition 2/4`); merge
    /// the shares' --json reports with `raftlab grade merge`.
    #[arg(long, value_name = "K/N", value_parser = parse_partition)]
    partition: Option<(u32, u32)>,
    /// Stop starting runs after N failed runs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_failures: Option<u32>,
    /// Keep running (run after run of every selected test) until a run fails.
    #[arg(long, conflicts_with = "max_failures")]
    until_failure: bool,
    /// Extra `cargo --config KEY=VALUE` for building the suites (repeatable), e.g.
    /// `profile.release.debug=0` for faster builds of a class.
    #[arg(long = "cargo-config", value_name = "KEY=VALUE")]
    cargo_config: Vec<String>,
    /// The points file [default: grading/points.txt of the grader's workspace].
    #[arg(long, value_name = "FILE")]
    points: Option<PathBuf>,
}

fn parse_partition(s: &str) -> std::result::Result<(u32, u32), String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected K/N, e.g. 2/4"))?;
    let k: u32 = k
        .trim()
        .parse()
        .map_err(|_| format!("{k:?} is not a number"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("{n:?} is not a number"))?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("{s}: need 1 <= K <= N"));
    }
    Ok((k, n))
}

/// The wall clock, for elapsed times, estimates and run timeouts.
#[allow(clippy::disallowed_methods)] // reason: grading runs real processes; nothing here is simulated
fn now() -> Instant {
    Instant::now()
}

pub fn run(cli: GradeCli) -> Result<ExitCode> {
    if let Some(GradeCommand::Merge(m)) = cli.command {
        return merge_cmd(m);
    }
    let args = cli.args;
    let official = workspace::resolve(None)?;
    let master = args.seed.unwrap_or_else(seeds::fresh_master_seed);
    let points = load_points(&args, &official)?;
    let sandbox = make_sandbox(&args)?;
    if let Some(n) = sandbox.isolation.notice() {
        eprintln!("{n}");
    }
    if let Some(class_dir) = &args.class {
        return class::run(&args, &official, class_dir, master, &points, &sandbox);
    }
    let report = grade_tree(
        &args,
        &official,
        args.path.as_deref(),
        master,
        &points,
        &sandbox,
    )?;
    print!("{}", report.table());
    write_reports(&args, &report)?;
    Ok(if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn make_sandbox(args: &GradeArgs) -> Result<Sandbox> {
    Ok(Sandbox {
        isolation: Isolation::probe(),
        limits: Limits {
            memory_mb: args.memory_mb,
            max_output_bytes: args.max_output_mb << 20,
            timeout: Duration::from_secs(args.timeout),
        },
        init: std::env::current_exe().context("cannot find the raftlab binary for sandbox-init")?,
    })
}

fn write_reports(args: &GradeArgs, report: &Report) -> Result<()> {
    write_outputs(
        report,
        args.json.as_deref(),
        args.junit.as_deref(),
        args.gradescope.as_deref(),
    )
}

/// Writes the report's JSON, JUnit and Gradescope forms to the paths given.
fn write_outputs(
    report: &Report,
    json: Option<&Path>,
    junit: Option<&Path>,
    gradescope: Option<&Path>,
) -> Result<()> {
    let write = |path: &Path, text: String| -> Result<()> {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
        Ok(())
    };
    if let Some(path) = json {
        write(path, serde_json::to_string_pretty(&report.json())? + "\n")?;
    }
    if let Some(path) = junit {
        write(path, report.junit())?;
    }
    if let Some(path) = gradescope {
        write(
            path,
            serde_json::to_string_pretty(&report.gradescope())? + "\n",
        )?;
    }
    Ok(())
}

fn load_points(args: &GradeArgs, official: &Path) -> Result<Points> {
    if let Some(path) = &args.points {
        return Points::load(path);
    }
    // The grader's own points file: grading a student's tree never takes the points from it.
    let path = official.join("grading/points.txt");
    if path.is_file() {
        return Points::load(&path);
    }
    eprintln!("note: no grading/points.txt found: parts are scored without points");
    Ok(Points::default())
}

/// Grades one tree: the grader's workspace itself (`student` = None) or a student's tree staged
/// into a copy of it.
fn grade_tree(
    args: &GradeArgs,
    official: &Path,
    student: Option<&Path>,
    master: u64,
    points: &Points,
    sandbox: &Sandbox,
) -> Result<Report> {
    let jobs = args.jobs.map(|j| j as usize).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let runs = args.runs.unwrap_or(if args.until_failure {
        UNTIL_FAILURE_RUNS
    } else {
        1
    });
    let max_failures = if args.until_failure {
        Some(1)
    } else {
        args.max_failures
    };
    let keep_logs = match &args.keep_logs {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Some(std::path::absolute(dir)?)
        }
        None => None,
    };
    let wanted_parts: Vec<String> = args.parts.iter().map(|p| p.to_uppercase()).collect();
    let selected: Vec<(&'static str, &'static str)> = LABS
        .iter()
        .copied()
        .filter(|(lab, _)| args.labs.iter().any(|l| l == "all" || l == lab))
        .collect();
    let mut meta = Meta {
        seed: master,
        runs,
        partition: args.partition.filter(|p| p.1 > 1),
        ..Meta::default()
    };
    if let Some(n) = sandbox.isolation.notice() {
        meta.notices.push(n);
    }

    let binaries = match student {
        None => {
            let root = official.to_path_buf();
            eprintln!("raftlab grade: {} | seed {master}", root.display());
            let targets: Vec<&str> = selected.iter().map(|(_, t)| *t).collect();
            let binaries = match suites::build(&root, None, &targets, &args.cargo_config)? {
                Ok(b) => b,
                Err(f) => {
                    for e in &f.errors {
                        eprint!("{e}");
                    }
                    bail!(
                        "building the suites failed ({}): cargo test --release -p tests --no-run \
                         --manifest-path {}",
                        f.status,
                        root.join("Cargo.toml").display()
                    );
                }
            };
            meta.root = root;
            binaries
        }
        Some(student) => {
            let student = std::path::absolute(student)
                .with_context(|| format!("cannot resolve {}", student.display()))?;
            if !student.is_dir() {
                bail!("{} is not a directory", student.display());
            }
            let work = match &args.work {
                Some(w) => std::path::absolute(w)?,
                None => official.join("target/grade"),
            };
            eprintln!(
                "raftlab grade: {} (staged in {}) | seed {master}",
                student.display(),
                work.display()
            );
            let (staged, binaries, not_built) =
                build_student(official, &student, &work, &selected, &args.cargo_config)?;
            meta.ignored = staged
                .ignored
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            meta.missing = staged
                .missing
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            meta.not_built = not_built;
            meta.root = student.clone();
            meta.replay_dir = Some(student);
            binaries
        }
    };
    // Every run executes a sealed copy of its suite, which no earlier run can have changed.
    let mut sealed = Vec::new();
    let mut binaries = binaries;
    for b in binaries.values_mut() {
        match sandbox::seal(&b.exe) {
            Ok(s) => {
                b.exe = s.path.clone();
                sealed.push(s);
            }
            Err(e) => {
                let n = format!(
                    "notice: cannot seal {} ({e}): runs execute the build directory's copy",
                    b.exe.display()
                );
                eprintln!("{n}");
                meta.notices.push(n);
            }
        }
    }

    let mut suites = Vec::new();
    for (lab, target) in selected {
        let binary = if meta.not_built.contains_key(lab) {
            None
        } else {
            binaries.get(target).cloned()
        };
        let tests = match &binary {
            Some(b) => suites::list_tests(b)?
                .into_iter()
                .filter(|t| wanted_parts.is_empty() || wanted_parts.contains(&t.part))
                .collect(),
            None => Vec::new(),
        };
        if binary.is_none() && !meta.not_built.contains_key(lab) {
            meta.unavailable.push(lab.to_owned());
        }
        suites.push(Suite {
            lab,
            target,
            binary,
            tests,
        });
    }
    for lab in &meta.unavailable {
        eprintln!("{lab}: not available yet (the tests package has no `{lab}` test target)");
    }
    let entries: Vec<(usize, usize)> = suites
        .iter()
        .enumerate()
        .flat_map(|(si, s)| (0..s.tests.len()).map(move |ti| (si, ti)))
        .collect();
    if entries.is_empty() && meta.not_built.is_empty() {
        if suites.iter().all(|s| s.binary.is_none()) {
            bail!("nothing to grade: none of the selected labs has a suite yet");
        }
        bail!(
            "no test matches --part {} in the selected labs",
            wanted_parts.join(" ")
        );
    }
    let plan = Plan {
        entries,
        runs,
        share: args.partition.unwrap_or((1, 1)),
    };
    let planned = plan.planned(&suites);
    eprintln!(
        "{} run(s) of {} test(s){} | {jobs} job(s)",
        plan.len(),
        plan.entries.len(),
        match args.partition {
            Some((k, n)) => format!(" (share {k}/{n})"),
            None => String::new(),
        }
    );
    let scratch =
        runner::scratch_dir(keep_logs.as_ref()).context("cannot create the scratch directory")?;
    let ctx = RunContext {
        suites: &suites,
        sandbox,
        scratch: &scratch,
        keep: keep_logs.is_some(),
        trace: args.trace,
        master,
        max_failures,
    };
    let clock = now();
    let (rows, stopped) = runner::run_all(&ctx, &plan, jobs.min(plan.len()).max(1), clock);
    meta.elapsed = clock.elapsed();
    if keep_logs.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    if stopped {
        meta.stopped = Some(format!(
            "after {} failed run(s), {} of {} run(s) done",
            rows.iter().filter(|r| !r.passed).count(),
            rows.len(),
            plan.len()
        ));
    }
    Ok(Report::build(rows, planned, points, meta))
}

/// A student's tree, staged and built: the suites, and the labs that did not compile (why).
type StudentBuild = (
    stage::Staged,
    BTreeMap<String, suites::SuiteBinary>,
    BTreeMap<String, String>,
);

/// Stages and builds a student's tree. A student crate that does not compile is replaced by
/// its handout stubs so that the labs which do not need it are still graded; the labs that do
/// score zero with the compiler's first error as the reason.
fn build_student(
    official: &Path,
    student: &Path,
    work: &Path,
    selected: &[(&'static str, &'static str)],
    config: &[String],
) -> Result<StudentBuild> {
    let tree = work.join("tree");
    let target_dir = work.join("target");
    let mut staged = stage::stage(official, student, &tree)?;
    let targets: Vec<&str> = selected.iter().map(|(_, t)| *t).collect();
    eprintln!("building the suites with the student's code ...");
    let failure = match suites::build(&tree, Some(&target_dir), &targets, config)? {
        Ok(binaries) => return Ok((staged, binaries, BTreeMap::new())),
        Err(f) => f,
    };
    eprintln!(
        "the student's code does not compile: {}\nfinding which labs can still be graded ...",
        failure.summary()
    );
    // One student crate at a time, in dependency order.
    let mut good: BTreeSet<&str> = BTreeSet::new();
    let mut broken: BTreeMap<&str, String> = BTreeMap::new();
    for c in stage::STUDENT_CRATES {
        let mut trial = good.clone();
        trial.insert(c);
        staged.use_student_crates(&trial)?;
        match suites::build(&tree, Some(&target_dir), &targets, config)? {
            Ok(_) => good = trial,
            Err(f) => {
                for e in f.errors.iter().take(3) {
                    eprint!("{e}");
                }
                broken.insert(c, f.summary());
            }
        }
    }
    staged.use_student_crates(&good)?;
    let binaries = match suites::build(&tree, Some(&target_dir), &targets, config)? {
        Ok(b) => b,
        Err(f) => bail!(
            "the grader's own handout stubs do not build ({}): {}",
            f.status,
            f.summary()
        ),
    };
    let mut not_built = BTreeMap::new();
    for (lab, _) in selected {
        if let Some((c, why)) = stage::crates_of_lab(lab)
            .iter()
            .find_map(|c| broken.get(c).map(|w| (c, w)))
        {
            not_built.insert(
                (*lab).to_owned(),
                format!("the student's {c} crate does not compile: {why}"),
            );
        }
    }
    Ok((staged, binaries, not_built))
}

fn merge_cmd(m: MergeArgs) -> Result<ExitCode> {
    let mut shares = Vec::new();
    for p in &m.parts {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))?;
        shares.push(Report::from_json(&v).with_context(|| format!("in {}", p.display()))?);
    }
    let report = report::merge(shares)?;
    print!("{}", report.table());
    write_outputs(
        &report,
        m.output.as_deref(),
        m.junit.as_deref(),
        m.gradescope.as_deref(),
    )?;
    Ok(if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_parse() {
        assert_eq!(parse_partition("2/4"), Ok((2, 4)));
        assert!(parse_partition("0/4").is_err());
        assert!(parse_partition("5/4").is_err());
        assert!(parse_partition("x").is_err());
    }
}
