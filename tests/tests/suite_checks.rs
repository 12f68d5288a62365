//! Tests of the tests: a suite is only as good as what it catches. These run deliberately
//! broken services through the graded harnesses and assert that the suites fail them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use kvraft::ServerOptions;
use labrpc::Sim;
use labrpc::sim::{self, seed_from_env};
use tests::kv_harness::KvConfig;
use tokio::time::sleep;

/// A write completes in the majority; then a clerk that can only reach the old leader (now in
/// the minority) reads. A correct service makes that read wait for the partition to heal and
/// returns the new value; a service that answers reads from local state returns the old one.
async fn stale_read_scenario(sim: Sim, broken: bool) {
    let options = ServerOptions {
        unsafe_local_reads: broken,
        ..ServerOptions::default()
    };
    let cfg = KvConfig::with_options(&sim, 5, false, options);
    let mut ck = cfg.make_client(&cfg.all());
    cfg.put(&mut ck, "k", "v1", true).await;
    cfg.check(&mut ck, "k", "v1").await;
    let (majority, minority) = cfg.make_partition(); // the leader is in `minority`
    cfg.partition(&majority, &minority);
    let mut writer = cfg.make_client(&majority);
    cfg.put(&mut writer, "k", "v2", true).await;
    let mut reader = cfg.make_client(&minority);
    let reader_id = reader.id();
    let read = {
        let cfg = cfg.clone();
        tokio::spawn(async move { cfg.get(&mut reader, "k", true).await })
    };
    sleep(Duration::from_secs(1)).await;
    cfg.connect_all();
    cfg.connect_client_id(reader_id, &cfg.all());
    let value = match read.await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    println!("the minority reader got {value:?}");
    cfg.check_linearizable();
}

#[test]
fn correct_service_passes_the_stale_read_scenario() {
    sim::run_test(env!("CARGO_PKG_NAME"), |sim| {
        stale_read_scenario(sim, false)
    });
}

#[test]
fn local_reads_are_caught_as_not_linearizable() {
    let seed = seed_from_env();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        sim::run(sim::Config::new(seed), |sim| stale_read_scenario(sim, true))
    }));
    match outcome {
        Ok(_) => panic!(
            "seed {seed}: a service that serves stale reads passed the linearizability check"
        ),
        Err(p) => {
            let msg = tests::panic_text(p.as_ref());
            assert!(
                msg.contains("not linearizable"),
                "seed {seed}: failed for another reason: {msg}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Planted Raft bugs: each classic mistake of `labrpc::planted`, switched on in the reference
// core, must fail the Raft suite within 20 seeds or in its search tests. Each suite's own test
// binary (`tests/raft.rs`, ...) is run in a child process per bug and seed, so each run has the
// bug and seed in its environment exactly as a student's run would. The binaries are the ones
// cargo builds for `cargo test --workspace`: asked of cargo (a no-op when they are fresh), not
// compiled a second time into this one.

use labrpc::planted::Bug;

const RAFT_BUGS: &[Bug] = &[
    Bug::VoteIgnoresLog,
    Bug::VoteComparesLengthOnly,
    Bug::VoteTwice,
    Bug::VoteNotPersisted,
    Bug::TermNotPersisted,
    Bug::StaleVoteCounted,
    Bug::EntriesNotPersisted,
    Bug::AppendAcceptsStaleTerm,
    Bug::TruncateMatchingSuffix,
    Bug::MatchIndexFromOwnLog,
    Bug::StaleAppendReplyCounted,
    Bug::CommitOldTerm,
    Bug::CommitWithoutMajority,
    Bug::SnapshotRollsBack,
    Bug::SnapshotNotPersisted,
    Bug::SnapshotWrongTerm,
    // Rules no invariant sees in the suites' runs (caught by the rule monitor).
    Bug::GrantKeepsTimer,
    Bug::StaleAppendResetsTimer,
    Bug::ReplyTermIgnored,
    Bug::CommitOneAtATime,
    Bug::HeartbeatTooSlow,
    Bug::NoHeartbeatOnElection,
    Bug::RetryWaitsForHeartbeat,
    Bug::VoteRefusedToSameCandidate,
    Bug::ApplyOneAtATime,
    Bug::PreVoteGrantResetsTimer,
    Bug::CheckQuorumStepsDownEarly,
    Bug::AppendKeepsTimer,
    Bug::ElectionTooEarly,
    Bug::VoteLeaseIgnored,
    Bug::RemovedLeaderKeepsLeading,
    Bug::CandidateForgetsOwnVote,
    Bug::VoteRequestCarriesTerm,
    Bug::AppendPrevTermIsCurrentTerm,
    // The extensions (parts 3E and 3F).
    Bug::PreVoteBumpsTerm,
    Bug::CheckQuorumNeverStepsDown,
    Bug::TransferBeforeCaughtUp,
    Bug::TransferWaitsForHeartbeat,
    Bug::InflightNeverCleared,
    // Membership changes (part 3G).
    Bug::ConfChangeBeforeOwnTermCommit,
    Bug::ConfChangeWhileUncommitted,
    Bug::ConfChangeWithoutJoint,
    Bug::LearnerVoteCounted,
    Bug::JointNeverLeft,
    Bug::JointLeftBeforeCommit,
    Bug::SnapshotForgetsMembership,
];

/// Seeds of the random suite tried per bug before the search tests.
const SEEDS: u64 = 20;

/// A failed test of a child run, and its failure message.
struct Failure {
    test: String,
    message: String,
}

/// The path of the test binary `tests/<suite>.rs`, built by cargo with this binary's profile and
/// target directory and the whole workspace's features (those of `cargo test --workspace`, so
/// that in CI the build is a no-op; under `-p tests` the first call builds it once).
fn suite_exe(suite: &str) -> std::path::PathBuf {
    static CACHE: std::sync::Mutex<Vec<(String, std::path::PathBuf)>> =
        std::sync::Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, exe)) = cache.iter().find(|(s, _)| s == suite) {
        return exe.clone();
    }
    let me = std::env::current_exe().expect("the test binary's path");
    // <target dir>/<profile dir>/deps/suite_checks-<hash>
    let profile_dir = me
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps");
    let target_dir = profile_dir.parent().expect("the target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(p) => p.to_string(),
        None => panic!("no profile directory above {}", me.display()),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "test",
            "--workspace",
            "--no-run",
            "--message-format=json",
            "--test",
            suite,
        ])
        .arg("--profile")
        .arg(&profile)
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo could not build tests/{suite}.rs:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = tests::cargo_json::test_binaries(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .find(|b| b.name == suite)
        .map(|b| b.executable)
        .unwrap_or_else(|| panic!("cargo named no executable for tests/{suite}.rs"));
    cache.push((suite.to_string(), exe.clone()));
    exe
}

/// Runs the tests of `tests/<suite>.rs` matching `filter` (minus `skip`) with `bug` planted and
/// `seed`. The child stops at its first failed simulated test (`RAFTLAB_EXIT_AT_FIRST_FAILURE`): the check
/// needs only that one, and the rest of the suite's run would cost as much as a passing run.
fn run_child(suite: &str, filter: &str, skip: Option<&str>, bug: Bug, seed: u64) -> Vec<Failure> {
    let mut cmd = std::process::Command::new(suite_exe(suite));
    cmd.arg(filter).arg("--test-threads=2");
    if let Some(s) = skip {
        cmd.arg("--skip").arg(s);
    }
    let out = cmd
        .env("RAFTLAB_PLANT", bug.name())
        .env("RAFTLAB_EXIT_AT_FIRST_FAILURE", "1")
        .env("RAFTLAB_SEED", seed.to_string())
        .env_remove("RAFTLAB_TRACE")
        .output()
        .expect("run the suite");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // libtest prints each failure as a `---- <name> stdout ----` line, then its output and
    // panic; the failure is its first `safety violation` line, or else its panic message.
    let mut failures = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (k, line) in lines.iter().enumerate() {
        let Some(test) = line
            .strip_prefix("---- ")
            .and_then(|l| l.strip_suffix(" stdout ----"))
        else {
            continue;
        };
        let block = lines[k + 1..]
            .iter()
            .take_while(|l| !(l.starts_with("---- ") && l.ends_with(" stdout ----")));
        let mut violation = None;
        let mut panic = None;
        let mut after_panic = false;
        for l in block {
            if after_panic && panic.is_none() {
                panic = Some(l.trim().to_string());
            }
            after_panic = l.contains("panicked at");
            if violation.is_none()
                && (l.contains("safety violation:") || l.contains("rule violation:"))
            {
                violation = Some(l.trim().trim_start_matches("# ").to_string());
            }
        }
        failures.push(Failure {
            test: test.trim().to_string(),
            message: violation.or(panic).unwrap_or_default(),
        });
    }
    if failures.is_empty() {
        assert!(
            out.status.success(),
            "{bug:?}: the suite failed without a test failure:\n{text}"
        );
    }
    failures
}

/// Which mechanism a failure came from.
fn mechanism(f: &Failure) -> &'static str {
    if f.test.contains("search_") {
        "search"
    } else if f.message.contains("rule violation") {
        "rules"
    } else if f.message.contains("safety violation") {
        "monitor"
    } else {
        "tester"
    }
}

/// Each bug must fail the suite `tests/<suite>.rs` within [`SEEDS`] seeds, or its search tests.
fn check_planted(suite: &str, bugs: &[Bug]) {
    let mut missed = Vec::new();
    println!(
        "{:<28} {:<8} {:<5} {:<50} first failure",
        "planted bug", "by", "seed", "test"
    );
    for &bug in bugs {
        let mut caught = None;
        for seed in 1..=SEEDS {
            let failures = run_child(suite, "", Some("search_"), bug, seed);
            if let Some(f) = failures.into_iter().next() {
                caught = Some((seed.to_string(), f));
                break;
            }
        }
        if caught.is_none() {
            let failures = run_child(suite, "search_", None, bug, 1);
            caught = failures.into_iter().next().map(|f| ("-".to_string(), f));
        }
        match caught {
            Some((seed, f)) => println!(
                "{:<28} {:<8} {:<5} {:<50} {}",
                bug.name(),
                mechanism(&f),
                seed,
                f.test,
                f.message.chars().take(160).collect::<String>()
            ),
            None => {
                println!("{:<28} NOT CAUGHT", bug.name());
                missed.push(bug.name());
            }
        }
    }
    assert!(
        missed.is_empty(),
        "planted bugs that passed tests/{suite}.rs: {missed:?}"
    );
}

#[test]
fn every_planted_raft_bug_is_caught() {
    check_planted("raft", RAFT_BUGS);
}

#[test]
fn every_planted_rsm_bug_is_caught() {
    check_planted("rsm", &[Bug::RsmLocalRead]);
}

#[test]
fn every_planted_kvraft_bug_is_caught() {
    check_planted(
        "kvraft",
        &[
            Bug::KvNoDuplicateDetection,
            Bug::KvWrongLeaderAnswer,
            Bug::KvSnapshotWithoutDedup,
            Bug::KvStaleLocalRead,
            // Part 4C (ReadIndex in the core).
            Bug::ReadWithoutConfirmation,
            Bug::ReadBeforeOwnTermCommit,
            // Lease reads (part 4C, thesis 6.4.1).
            Bug::LeaseTooLong,
            Bug::LeaseFromAck,
            Bug::LeaseNeverHeld,
        ],
    );
}

#[test]
fn every_planted_shardkv_bug_is_caught() {
    check_planted(
        "shardkv",
        &[
            Bug::ShardServesUnownedShard,
            Bug::ShardMigrationWithoutDedup,
            Bug::ShardConfigSkipsMigration,
            Bug::ShardAppliesStaleConfig,
        ],
    );
}
