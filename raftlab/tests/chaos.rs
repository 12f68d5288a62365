//! `raftlab chaos` on real node processes: a 20-second run per fault kind must pass; a node
//! started without `--allow-fault-injection` refuses the admin RPC; and the checker fails a
//! history with a lost acknowledged write and one with a stale read (so the check can fail).
//!
//! The runs measure real time on real processes, so they run one at a time.

mod real_cluster;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use cluster::faults::FaultTable;
use cluster::transport::{connect, ctx};
use real_cluster::{CLUSTER_ID, TestCluster};

/// One chaos run at a time (each runs five node processes and five clients).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("raftlab-chaos-out-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

fn raftlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftlab"))
        .args(args)
        .output()
        .expect("run raftlab")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// No `raftlab node` process of this run's cluster is left.
fn assert_nodes_stopped(out: &Path) {
    let cluster = out.join("cluster");
    let needle = cluster.to_string_lossy().into_owned();
    for entry in fs::read_dir("/proc").expect("read /proc").flatten() {
        if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            assert!(
                !(cmdline.contains(" node ") && cmdline.contains(&needle)),
                "a node of the run is still running: {cmdline}"
            );
        }
    }
}

fn chaos_run(kind: &str, seed: &str) {
    let _serial = serial();
    let out = out_dir(kind);
    let o = raftlab(&[
        "chaos",
        "--time",
        "20s",
        "--faults",
        kind,
        "--seed",
        seed,
        "--out",
        out.to_str().expect("utf-8 temp dir"),
    ]);
    let t = text(&o);
    eprintln!("{t}");
    assert_eq!(
        o.status.code(),
        Some(0),
        "the {kind} chaos run failed:\n{t}"
    );
    assert!(
        t.contains("PASS: linearizable, no acknowledged write lost"),
        "{t}"
    );
    let report = fs::read_to_string(out.join("report.txt")).expect("report.txt");
    assert!(report.contains("lost: 0"), "{report}");
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("report.json")).expect("report.json"))
            .expect("report.json is JSON");
    let faults = json["nemesis"].as_array().map_or(0, Vec::len);
    assert!(
        faults >= 3,
        "the nemesis struck {faults} times in 20 s: {report}"
    );
    assert!(
        json["nemesis"]
            .as_array()
            .is_some_and(|a| a.iter().all(|e| e["trouble"].is_null())),
        "every fault went as planned: {report}"
    );
    assert!(json["operations"].as_u64().unwrap_or(0) > 1000, "{report}");
    // Every fault that hit the leader is reported with the time service came back.
    let leader_faults = json["nemesis"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|e| e["leader"] == true).count());
    let outages = json["leader_outages"].as_array().map_or(0, Vec::len);
    assert_eq!(outages, leader_faults, "{report}");
    if leader_faults > 0 {
        assert!(
            report.contains("leader faults: service back within"),
            "{report}"
        );
        assert!(
            json["tail"].as_array().is_some_and(|t| t.len() == 2),
            "{report}"
        );
    }
    let page = fs::read_to_string(out.join("timeline.html")).expect("timeline.html");
    assert!(page.contains("linearizability.html") && page.contains("<svg"));
    assert!(out.join("linearizability.html").exists());
    assert_nodes_stopped(&out);
    let _ = fs::remove_dir_all(&out);
}

#[test]
fn chaos_kill_20s_is_linearizable_and_loses_no_write() {
    chaos_run("kill", "1601");
}

#[test]
fn chaos_pause_20s_is_linearizable_and_loses_no_write() {
    chaos_run("pause", "1602");
}

#[test]
fn chaos_partition_20s_is_linearizable_and_loses_no_write() {
    chaos_run("partition", "1603");
}

/// Without `--allow-fault-injection` the admin RPC answers a clear error, and attaching the
/// nemesis to such a cluster fails as a setup error (exit 2).
#[test]
fn a_node_without_fault_injection_refuses_the_admin_rpc() {
    let _serial = serial();
    let c = TestCluster::new("chaos-refuse", 3, 4 << 20);
    c.write_cluster_file();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let refused = rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(client) = connect(c.addrs[0]).await
                && let Ok(r) = client
                    .set_faults(ctx(), CLUSTER_ID, FaultTable::blocking([1]))
                    .await
            {
                return r.expect("the right cluster");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node 0 never answered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let err = refused.expect_err("a node without the flag refuses");
    assert!(
        err.to_string().contains("--allow-fault-injection"),
        "the refusal says how to allow it: {err}"
    );
    let out = out_dir("refuse");
    let o = raftlab(&[
        "chaos",
        "--attach",
        c.dir.to_str().expect("utf-8"),
        "--faults",
        "partition",
        "--time",
        "2s",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    let t = text(&o);
    eprintln!("{t}");
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("refuses fault injection"), "{t}");
    let _ = fs::remove_dir_all(&out);
}

fn op(process: u64, f: &str, key: &str, value: &str, at: (f64, f64), read: Option<&str>) -> String {
    serde_json::json!({
        "process": process, "client": process, "op": f, "key": key, "value": value,
        "invoke": at.0, "complete": at.1, "ok": true, "read": read, "final_read": false,
    })
    .to_string()
}

fn recheck(name: &str, lines: &[String]) -> Output {
    let dir = out_dir(name);
    fs::create_dir_all(&dir).expect("dir");
    fs::write(dir.join("history.jsonl"), lines.join("\n")).expect("write history");
    let o = raftlab(&["chaos", "--recheck", dir.to_str().expect("utf-8")]);
    let _ = fs::remove_dir_all(&dir);
    o
}

/// A planted lost write: an append acknowledged before the final read, missing from it.
#[test]
fn the_checker_fails_a_lost_acknowledged_write() {
    let mut fin: serde_json::Value =
        serde_json::from_str(&op(9, "Get", "k0", "", (3.0, 3.1), Some("P0.1;"))).expect("json");
    fin["final_read"] = true.into();
    let lines = vec![
        op(0, "Put", "k0", "P0.1;", (0.0, 0.1), None),
        op(1, "Append", "k0", "A1.1;", (0.5, 0.6), None),
        fin.to_string(),
    ];
    let o = recheck("lost", &lines);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("lost: 1") && t.contains("A1.1;"), "{t}");
    // The same history with the append in the final value passes.
    fin["read"] = "P0.1;A1.1;".into();
    let ok = vec![lines[0].clone(), lines[1].clone(), fin.to_string()];
    let o = recheck("kept", &ok);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// A stale read: nothing is lost at the end, but a get saw an old value after a put.
#[test]
fn the_checker_fails_a_stale_read() {
    let lines = vec![
        op(0, "Put", "k0", "P0.1;", (0.0, 0.1), None),
        op(0, "Put", "k0", "P0.2;", (0.2, 0.3), None),
        op(1, "Get", "k0", "", (0.4, 0.5), Some("P0.1;")),
    ];
    let o = recheck("stale", &lines);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("not linearizable"), "{t}");
}
