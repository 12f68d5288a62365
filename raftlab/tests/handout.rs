//! The handout check: `raftlab handout` makes a tree with no solution regions left, that builds,
//! whose test suites build, and whose Raft suite fails.
//!
//! The generated tree is built with its own `CARGO_TARGET_DIR` under this workspace's target
//! directory (`<target>/handout-check-<profile>/target`), kept between runs so that only the
//! workspace's own crates are rebuilt. The build is unoptimized and without debug info (through
//! `--config`): only whether it compiles matters here, and it keeps a cold run around a minute.

mod common;

use std::path::{Path, PathBuf};

use common::workspace_root;
use std::process::{Command, Output};

/// `--config` overrides for the builds in the handout: fast to compile.
const FAST_PROFILE: [&str; 12] = [
    "--config",
    "profile.dev.debug=0",
    "--config",
    "profile.dev.opt-level=0",
    "--config",
    "profile.dev.package.\"*\".opt-level=0",
    "--config",
    "profile.test.debug=0",
    "--config",
    "profile.test.opt-level=0",
    "--config",
    "profile.test.package.\"*\".opt-level=0",
];

fn work_dir() -> PathBuf {
    common::work_dir("handout-check")
}

fn cargo(tree: &Path, target_dir: &Path, args: &[&str]) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .args(FAST_PROFILE)
        .current_dir(tree)
        .env("CARGO_TARGET_DIR", target_dir)
        .env("RAFTLAB_SEED", "1")
        .env_remove("RAFTLAB_TRACE")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo");
    eprintln!("cargo {} -> {}", args.join(" "), out.status);
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("dir entry");
        let path = entry.path();
        if entry.file_type().expect("file type").is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn handout_builds_and_its_raft_suite_fails() {
    let work = work_dir();
    let tree = work.join("tree");
    let target_dir = work.join("target");
    if tree.exists() {
        std::fs::remove_dir_all(&tree).expect("remove the previous handout");
    }
    std::fs::create_dir_all(&work).expect("create the work dir");

    // Make the handout.
    let out = Command::new(env!("CARGO_BIN_EXE_raftlab"))
        .args(["handout", "--out"])
        .arg(&tree)
        .arg("--from")
        .arg(workspace_root())
        .output()
        .expect("run raftlab handout");
    assert!(
        out.status.success(),
        "raftlab handout failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tree.join("README_STUDENT.md").is_file());
    assert!(tree.join("grading/points.txt").is_file());
    assert!(tree.join("tests/tests/raft.rs").is_file());

    // No solution region is left, and the Raft rules are stubs.
    let mut files = Vec::new();
    rust_files(&tree, &mut files);
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a handout file");
        for (n, line) in text.lines().enumerate() {
            let t = line.trim_start();
            assert!(
                !t.starts_with("// SOLUTION BEGIN") && !t.starts_with("// SOLUTION END"),
                "{}:{}: a solution marker is left: {line}",
                file.display(),
                n + 1
            );
            // Planted bugs live inside solution regions: none may reach students.
            let lab_code = ["raft/src", "rsm/src", "kvraft/src", "shardkv/src"]
                .iter()
                .any(|d| file.starts_with(tree.join(d)));
            assert!(
                !(lab_code && line.contains("planted!(")),
                "{}:{}: a planted-bug hook is left: {line}",
                file.display(),
                n + 1
            );
        }
    }
    let election = std::fs::read_to_string(tree.join("raft/src/election.rs")).expect("election.rs");
    assert!(
        election.contains("todo!(\"become_candidate:"),
        "become_candidate is not stubbed"
    );
    let original =
        std::fs::read_to_string(workspace_root().join("raft/src/election.rs")).expect("original");
    assert!(
        election.len() < original.len(),
        "the stubbed file is not shorter"
    );

    // It builds, and so do its test suites: `cargo test --no-run` compiles every library, binary,
    // example and test of the workspace (a separate `cargo build` would only add the binaries'
    // non-test builds).
    let no_run = cargo(
        &tree,
        &target_dir,
        &["test", "--offline", "--no-run", "--message-format=json"],
    );
    assert!(
        no_run.status.success(),
        "cargo test --no-run failed in the handout:\n{}",
        String::from_utf8_lossy(&no_run.stderr)
    );

    // One Raft test runs and fails (the test fails; nothing fails to build). The suite's binary
    // is run directly: `cargo test -p tests` would resolve features for that package alone and
    // rebuild dependencies.
    let raft_suite = tests::cargo_json::test_binaries(&String::from_utf8_lossy(&no_run.stdout))
        .into_iter()
        .find(|b| b.name == "raft" && b.src_path.ends_with("tests/tests/raft.rs"))
        .map(|b| b.executable)
        .expect("the Raft suite's test binary in cargo's output");
    let run = Command::new(&raft_suite)
        .args(["initial_election_3a", "--exact"])
        .current_dir(tree.join("tests"))
        .env("RAFTLAB_SEED", "1")
        .env_remove("RAFTLAB_TRACE")
        .output()
        .expect("run the Raft suite");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        !run.status.success(),
        "the Raft test passed in the handout:\n{stdout}"
    );
    assert!(
        stdout.contains("test result: FAILED. 0 passed; 1 failed"),
        "the Raft test did not run and fail:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
}
