//! Determinism is a product feature: the same seed must replay the same run, event for event,
//! through every layer (network, Raft, tester). These tests run real scenarios twice per seed
//! and compare the hashes of their full traces, and check the source for the rules in
//! `clippy.toml` that clippy cannot see.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use labrpc::sim::{self, Sim};
use tests::raft_harness::{Config, ELECTION_TIMEOUT};
use tokio::time::sleep;

/// Elections, agreement, a crash and restart, and an unreliable network with long reordering.
async fn raft_workload(sim: Sim) {
    let cfg = Arc::new(Config::new(&sim, 5, true, false));
    cfg.set_long_reordering(true);
    cfg.one(1, 5, true).await;
    let leader = cfg.check_one_leader().await;
    cfg.crash1(leader);
    cfg.one(2, 4, true).await;
    cfg.start1(leader);
    cfg.connect(leader);
    let other = (leader + 1) % 5;
    cfg.disconnect(other);
    for i in 0..5 {
        cfg.one(10 + i, 4, true).await;
    }
    cfg.connect(other);
    sleep(ELECTION_TIMEOUT).await;
    cfg.one(100, 5, true).await;
}

#[test]
fn same_seed_same_trace_through_raft() {
    let base = sim::seed_from_env();
    let mut digests = Vec::new();
    for k in 0..5 {
        let seed = base.wrapping_add(k);
        let d = sim::assert_deterministic(seed, raft_workload);
        assert!(
            d.events > 300,
            "a Raft run should trace many events, got {d}"
        );
        digests.push(d);
    }
    digests.sort_by_key(|d| d.hash);
    digests.dedup();
    assert_eq!(digests.len(), 5, "different seeds must give different runs");
}

#[test]
fn trace_file_is_identical_for_the_same_seed() {
    let dir = std::env::temp_dir().join(format!("raftlab-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let run = |seed: u64, name: &str| -> Vec<u8> {
        let path = dir.join(name);
        sim::run(
            sim::Config::new(seed).trace_file(Some(path.clone())),
            raft_workload,
        );
        std::fs::read(&path).expect("trace written")
    };
    let a = run(7, "a.jsonl");
    let b = run(7, "b.jsonl");
    let c = run(8, "c.jsonl");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(a == b, "same seed, different trace files");
    assert!(a != c, "different seeds, same trace file");
    let text = String::from_utf8(a).expect("utf-8");
    for line in text.lines().take(200) {
        let v: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert!(v.get("t_us").is_some() && v.get("kind").is_some(), "{line}");
    }
    assert!(
        text.contains("starts an election"),
        "Raft's own events are in the trace"
    );
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if !name.starts_with('.') && !name.starts_with("target") {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

/// clippy can forbid `futures::select!` but not an unbiased `tokio::select!`, whose branch
/// order is random per process: every `select!` in the workspace must start with `biased;`.
#[test]
fn every_select_is_biased() {
    let mut files = Vec::new();
    rust_files(&workspace_root(), &mut files);
    assert!(files.len() > 10, "found the workspace's sources");
    let mut bad = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let code: String = text
            .lines()
            .map(|l| match l.find("//") {
                Some(k) => &l[..k],
                None => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let needle = ["select", "!"].concat();
        let mut rest = code.as_str();
        while let Some(k) = rest.find(&needle) {
            let after = rest[k + needle.len()..].trim_start();
            let body = after.strip_prefix('{').unwrap_or("").trim_start();
            if !body.starts_with("biased;") {
                let line = code[..code.len() - rest.len() + k].lines().count();
                bad.push(format!("{}:{line}", f.display()));
            }
            rest = &rest[k + needle.len()..];
        }
    }
    assert!(
        bad.is_empty(),
        "unbiased selects (add `biased;`) at {bad:?}"
    );
}
