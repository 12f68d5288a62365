//! Traces end to end: a simulated Raft run with a partition and a restart records every event
//! kind of the schema; `check-trace` finds it clean and flags a forged second leader;
//! `raftlab log` prints it in columns; `raftlab view` makes a page that a real browser
//! (headless Chromium) draws as the trace says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tests::raft_harness::Config;

fn work_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("raftlab-trace-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("work dir");
    d
}

/// A run of a 3-node cluster: agreement, the leader cut off and back, a follower restarted.
fn record(path: &Path) {
    let config = labrpc::sim::Config::new(7).trace_file(Some(path.to_path_buf()));
    labrpc::sim::run(config, |sim| async move {
        let cfg = Config::new(&sim, 3, false, false);
        cfg.begin("trace test: partition and restart");
        cfg.one(101, 3, false).await;
        let leader = cfg.check_one_leader().await;
        cfg.disconnect(leader);
        cfg.one(102, 2, true).await;
        cfg.connect(leader);
        cfg.one(103, 3, true).await;
        let other = (leader + 1) % 3;
        cfg.crash1(other);
        cfg.one(104, 2, true).await;
        cfg.start1(other);
        cfg.connect(other);
        cfg.one(105, 3, true).await;
        cfg.end();
    });
}

fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read the trace")
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

fn raftlab(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_raftlab"))
        .args(args)
        .output()
        .expect("run raftlab");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// What the replay says at an event: the leader, each node's log terms and commit index.
type Seen = (Option<u64>, BTreeMap<u64, Vec<u64>>, BTreeMap<u64, u64>);

/// An independent replay of the trace (the test's oracle) after event `n`.
fn replay(evs: &[Value], n: usize) -> Seen {
    let mut role: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    let mut logs: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut commit: BTreeMap<u64, u64> = BTreeMap::new();
    let mut up: BTreeMap<u64, bool> = BTreeMap::new();
    for e in &evs[..=n] {
        let id = e["id"].as_u64();
        match e["kind"].as_str() {
            Some("node.state") => {
                let id = id.expect("id");
                role.insert(
                    id,
                    (
                        e["role"].as_str().unwrap_or("").into(),
                        e["term"].as_u64().unwrap_or(0),
                    ),
                );
                commit.insert(id, e["commit"].as_u64().unwrap_or(0));
                up.insert(id, true);
            }
            Some("node.log") => {
                let log = logs.entry(id.expect("id")).or_default();
                log.resize(e["from"].as_u64().unwrap_or(1) as usize - 1, 0);
                log.extend(
                    e["terms"]
                        .as_array()
                        .expect("terms")
                        .iter()
                        .filter_map(Value::as_u64),
                );
            }
            Some("test.crash") => {
                let s = e["server"].as_u64().expect("server");
                up.insert(s, false);
            }
            Some("node.boot") => {
                let id = id.expect("id");
                let snap = e["snap"].as_u64().unwrap_or(0);
                let log = logs.entry(id).or_default();
                log.truncate(snap as usize);
                log.extend(
                    e["terms"]
                        .as_array()
                        .expect("terms")
                        .iter()
                        .filter_map(Value::as_u64),
                );
                commit.insert(id, snap);
                role.insert(id, ("follower".into(), e["term"].as_u64().unwrap_or(0)));
                up.insert(id, true);
            }
            _ => {}
        }
    }
    let leader = role
        .iter()
        .filter(|(id, (r, _))| r == "leader" && up.get(id) == Some(&true))
        .max_by_key(|(_, (_, t))| *t)
        .map(|(id, _)| *id);
    (leader, logs, commit)
}

fn chromium() -> Option<PathBuf> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// What the page wrote into `#selfcheck` at event `n`.
fn page_selfcheck(browser: &Path, page: &Path, n: usize, profile: &Path) -> Value {
    let url = format!("file://{}#ev={n}", page.display());
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url)
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom.find("<pre id=\"selfcheck\">").unwrap_or_else(|| {
        panic!(
            "no selfcheck in the page's DOM: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    }) + "<pre id=\"selfcheck\">".len();
    let end = start + dom[start..].find("</pre>").expect("end of selfcheck");
    let text = dom[start..end]
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("selfcheck is not JSON ({e}): {text}"))
}

#[test]
fn a_traced_run_is_checked_logged_and_drawn() {
    let dir = work_dir();
    let trace = dir.join("run.trace.jsonl");
    record(&trace);
    let evs = events(&trace);

    // The schema: every kind of event is there, and RPC ids link a call to its reply.
    let kinds: std::collections::BTreeSet<&str> =
        evs.iter().filter_map(|e| e["kind"].as_str()).collect();
    for k in [
        "node.state",
        "node.log",
        "rpc.call",
        "rpc.send",
        "rpc.deliver",
        "rpc.reply",
        "rpc.return",
        "test.begin",
        "test.one",
        "test.agreed",
        "test.crash",
        "test.start",
        "test.connect",
        "test.disconnect",
        "net.enable",
    ] {
        assert!(kinds.contains(k), "no {k} event in the trace ({kinds:?})");
    }
    let mut calls = std::collections::BTreeSet::new();
    for e in &evs {
        match e["kind"].as_str() {
            Some("rpc.call") => {
                calls.insert(e["id"].as_u64().expect("call id"));
                assert!(
                    e["msg"]["type"].is_string() && e["msg"]["term"].is_u64(),
                    "{e}"
                );
            }
            Some("rpc.return") => {
                let id = e["id"].as_u64().expect("return id");
                assert!(calls.contains(&id), "rpc.return {id} before its rpc.call");
            }
            _ => {}
        }
    }
    // Deterministic: the same seed records the same bytes.
    let again = dir.join("again.trace.jsonl");
    record(&again);
    assert_eq!(
        std::fs::read(&trace).expect("trace"),
        std::fs::read(&again).expect("again"),
        "two runs of one seed traced differently"
    );

    // check-trace: clean.
    let t = trace.to_str().expect("utf-8");
    let (code, out) = raftlab(&["check-trace", t]);
    assert_eq!(code, 0, "{out}");
    // A forged second leader in the first leader's term is flagged.
    let first_leader = evs
        .iter()
        .position(|e| e["kind"] == "node.state" && e["role"] == "leader")
        .expect("a leader");
    let mut forged = evs[first_leader].clone();
    let other = (forged["id"].as_u64().expect("id") + 1) % 3;
    forged["id"] = Value::from(other);
    forged["node"] = Value::from(other.to_string());
    let broken = dir.join("broken.trace.jsonl");
    let mut lines: Vec<String> = evs.iter().map(Value::to_string).collect();
    lines.insert(first_leader + 1, forged.to_string());
    std::fs::write(&broken, lines.join("\n") + "\n").expect("write the broken trace");
    let b = broken.to_str().expect("utf-8");
    let (code, out) = raftlab(&["check-trace", b]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "Election Safety violated at event #{}",
            first_leader + 1
        )),
        "{out}"
    );

    // diff: the same seed twice is the same run; the forged trace diverges at the forgery.
    let a = again.to_str().expect("utf-8");
    let (code, out) = raftlab(&["diff", t, a]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = raftlab(&["diff", t, b]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("diverge at event #{}", first_leader + 1)),
        "{out}"
    );

    // The terminal log: one column per node, events in order, filters.
    let (code, out) = raftlab(&["log", t, "--color", "never"]);
    assert_eq!(code, 0);
    let header = out.lines().next().expect("a header");
    for n in 0..3 {
        assert!(header.contains(&format!("node {n}")), "{header}");
    }
    let numbers: Vec<usize> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(numbers.len() > 20 && numbers.windows(2).all(|w| w[0] < w[1]));
    let (_, only) = raftlab(&["log", t, "--color", "never", "--kind", "test."]);
    assert!(only.lines().skip(1).all(|l| l.contains("test.")), "{only}");

    // The page, in a real browser.
    let page = dir.join("run.html");
    let (code, out) = raftlab(&["view", t, "-o", page.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}");
    let Some(browser) = chromium() else {
        println!(
            "notice: no Chromium installed (apt-get install chromium): the page was not checked in a browser"
        );
        return;
    };
    let profile = dir.join("chromium-profile");
    for n in [evs.len() / 3, evs.len() * 2 / 3, evs.len() - 1] {
        let seen = page_selfcheck(&browser, &page, n, &profile);
        let (leader, logs, commit) = replay(&evs, n);
        assert_eq!(seen["event"], n, "{seen}");
        assert_eq!(seen["nodes"], serde_json::json!([0, 1, 2]), "{seen}");
        assert_eq!(
            seen["leader"].as_u64(),
            leader,
            "leader at event {n}: {seen}"
        );
        for (id, log) in &logs {
            assert_eq!(
                seen["logs"][id.to_string()],
                serde_json::json!(log),
                "log of {id} at {n}"
            );
        }
        for (id, c) in &commit {
            assert_eq!(
                seen["commit"][id.to_string()],
                serde_json::json!(c),
                "commit of {id} at {n}"
            );
        }
        assert_eq!(seen["violation"], Value::Null);
    }
    // On the broken trace the page knows the first violation.
    let broken_page = dir.join("broken.html");
    raftlab(&["view", b, "-o", broken_page.to_str().expect("utf-8")]);
    let seen = page_selfcheck(&browser, &broken_page, 0, &profile);
    assert_eq!(seen["violation"], first_leader + 1, "{seen}");
    // A textbook scenario as a page: Figure 8, five nodes, no violation.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../raft/testdata/figure8.txt");
    let scenario_page = dir.join("figure8.html");
    let (code, out) = raftlab(&[
        "scenario",
        script.to_str().expect("utf-8"),
        "--html",
        scenario_page.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{out}");
    let seen = page_selfcheck(&browser, &scenario_page, 100_000, &profile);
    assert_eq!(seen["nodes"], serde_json::json!([1, 2, 3, 4, 5]), "{seen}");
    assert_eq!(seen["violation"], Value::Null, "{seen}");
    let _ = std::fs::remove_dir_all(&dir);
}
