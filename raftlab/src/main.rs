//! `raftlab`: the course's command line.
//!
//! - `raftlab grade` builds the graded suites (the test binaries of the `tests` package) once,
//!   runs every selected test `--runs` times with seeds derived from one grading seed, `--jobs`
//!   at a time, and prints a score table per lab part with the command that replays each failure.
//!   Points per part come from `grading/points.txt`. `--json` and `--junit` write reports for CI.
//! - `raftlab handout` writes the student starter tree: the workspace with every
//!   `// SOLUTION BEGIN: <hint>` ... `// SOLUTION END` region of the selected labs replaced by
//!   `todo!("<hint>")`, and a `README_STUDENT.md`.
//! - `raftlab lincheck` checks history files for linearizability with the `lincheck` library.
//! - `raftlab view`, `log`, `check-trace`, `diff` and `scenario` study a run's trace (`trace`).
//! - `raftlab node`, `raftlab cluster start|stop|status` and `raftlab kv get|put|append` run
//!   the same Raft and kvraft as separate processes on TCP, with their data on disk.
//!
//! The common entry point is `cargo run --release -p raftlab -- grade`. See the crate's
//! `README.md` for examples.
//!
//! Unlike the simulated labs, this crate deals with real processes and the real clock: the few
//! functions that read the wall clock say so with an `allow` and a reason.

mod bench_cmd;
mod chaos;
mod cluster_cmd;
mod grade;
mod handout;
mod lincheck_cmd;
mod points;
mod seeds;
mod trace;
mod workspace;
mod xml;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The course's command line: grade the labs, make the student handout, check histories.
#[derive(Debug, Parser)]
#[command(name = "raftlab", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // reason: parsed once per process
enum Command {
    /// Run the graded suites many times with derived seeds and print the score table.
    Grade(grade::GradeCli),
    /// Write (or --check) grading/student-files.txt: the files a student owns.
    Manifest(grade::stage::ManifestArgs),
    /// Internal: the parent of a graded test inside its sandbox.
    #[command(hide = true)]
    SandboxInit(grade::sandbox::InitArgs),
    /// Write the student starter tree (solution regions replaced by `todo!()`).
    Handout(handout::HandoutArgs),
    /// Check history files for linearizability.
    Lincheck(lincheck_cmd::LincheckArgs),
    /// Run one Raft + KV node over TCP with its data on disk.
    Node(cluster_cmd::NodeArgs),
    /// Start, stop or inspect a local cluster of node processes.
    Cluster(cluster_cmd::ClusterArgs),
    /// Get, put or append against a running cluster.
    Kv(cluster_cmd::KvArgs),
    /// Benchmark a real 3-node loopback cluster: throughput, latency, fsync rate, failover.
    Bench(bench_cmd::BenchArgs),
    /// Jepsen-style chaos on a real cluster: a workload, a nemesis (kill -9, SIGSTOP,
    /// partitions) and a checker (linearizability, no acknowledged write lost).
    Chaos(chaos::ChaosArgs),
    /// Make a web page that replays a run's trace (RAFTLAB_TRACE).
    View(trace::view::ViewArgs),
    /// Print a run's trace in the terminal, one column per node.
    Log(trace::log::LogArgs),
    /// Check Raft's safety properties from a run's trace alone.
    CheckTrace(trace::check::CheckArgs),
    /// The first event where two runs' traces diverge, with every node's state there.
    Diff(trace::diff::DiffArgs),
    /// Run a scenario script of raft/testdata; print its output or render it as a page.
    Scenario(trace::scenario::ScenarioArgs),
}

/// Output commands end quietly when their reader goes away (`| head`), as Unix tools do.
/// (Not for the node processes: a peer closing a socket must not kill a node.)
fn die_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: resets one signal's disposition before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Log(_) | Command::CheckTrace(_) | Command::Diff(_) | Command::Scenario(_)
    ) {
        die_quietly_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Grade(args) => grade::run(args),
        Command::Manifest(args) => grade::stage::manifest_cmd(args),
        Command::SandboxInit(args) => grade::sandbox::init(args),
        Command::Handout(args) => handout::run(args),
        Command::Lincheck(args) => lincheck_cmd::run(args),
        Command::Node(args) => cluster_cmd::node(args),
        Command::Cluster(args) => cluster_cmd::cluster(args),
        Command::Kv(args) => cluster_cmd::kv(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Chaos(args) => chaos::run(args),
        Command::View(args) => trace::view::run(args),
        Command::Log(args) => trace::log::run(args),
        Command::CheckTrace(args) => trace::check::run(args),
        Command::Diff(args) => trace::diff::run(args),
        Command::Scenario(args) => trace::scenario::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("raftlab: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
