//! Scenario scripts with golden output (`raft/testdata/*.txt`).
//!
//! Each script drives a cluster of protocol cores over an in-memory network in which nothing
//! moves unless the script says so: messages wait in one queue until `deliver`ed. A script is a
//! sequence of commands, each followed by `----` and the output it must produce (like etcd's
//! datadriven tests). Run with `UPDATE_GOLDEN=1` to rewrite the expected output after a change;
//! review the diff before keeping it. The language is described in `raft/README.md`.
//!
//! The runner is `raftcheck::scenario`: the safety monitor watches every run, and prints the
//! first broken invariant as a `safety violation: ...` line, which no script here expects.

use std::path::PathBuf;

use raftcheck::scenario::{run_script as run_file, run_text};

// ---------------------------------------------------------------------------------------------
// The scripts

const SCRIPTS: &[&str] = &[
    "election.txt",
    "split_vote.txt",
    "figure7.txt",
    "figure8.txt",
    "snapshot.txt",
    "prevote.txt",
    "checkquorum.txt",
    "prevote_checkquorum.txt",
    "transfer.txt",
    "read_index.txt",
    "confchange_single.txt",
    "confchange_joint.txt",
];

#[test]
fn election() {
    run_script("election.txt");
}

#[test]
fn split_vote() {
    run_script("split_vote.txt");
}

#[test]
fn figure7() {
    run_script("figure7.txt");
}

#[test]
fn figure8() {
    run_script("figure8.txt");
}

#[test]
fn snapshot() {
    run_script("snapshot.txt");
}

#[test]
fn prevote() {
    run_script("prevote.txt");
}

#[test]
fn checkquorum() {
    run_script("checkquorum.txt");
}

#[test]
fn prevote_checkquorum() {
    run_script("prevote_checkquorum.txt");
}

#[test]
fn transfer() {
    run_script("transfer.txt");
}

#[test]
fn read_index() {
    run_script("read_index.txt");
}

#[test]
fn confchange_single() {
    run_script("confchange_single.txt");
}

#[test]
fn confchange_joint() {
    run_script("confchange_joint.txt");
}

#[test]
fn every_script_in_testdata_is_run() {
    let mut found: Vec<String> = std::fs::read_dir(testdata())
        .expect("testdata")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    found.sort();
    let mut listed: Vec<String> = SCRIPTS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed, "add a #[test] for every script in testdata/");
}

#[test]
fn harness_detects_a_wrong_golden_output() {
    let script = "nodes 1\n----\n1: follower term=0 commit=0 applied=0 log=[]\n\n\
                  campaign 1\n----\nthis is not what happens\n";
    let failure = run_text(script, false).expect_err("a mismatch must fail");
    assert!(failure.contains("this is not what happens"), "{failure}");
}

#[test]
fn no_script_in_testdata_breaks_an_invariant() {
    for name in SCRIPTS {
        let text = std::fs::read_to_string(testdata().join(name)).expect("script");
        assert!(
            !text.contains("safety violation"),
            "{name} expects a safety violation: the textbook scenarios are all safe"
        );
    }
}

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn run_script(name: &str) {
    run_file(&testdata().join(name));
}
