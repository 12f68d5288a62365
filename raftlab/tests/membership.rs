//! Membership changes of a real cluster through the CLI, as a user runs them: `raftlab cluster
//! start`, `add-node`, `remove-node`, `status`, with `raftlab node` processes on loopback and
//! their data on disk; a client load runs throughout.

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::client::TcpClerk;
use tokio::time::Instant;

mod real_cluster;

/// How long one client operation may take (the clerk retries on the next node until then).
const OP_DEADLINE: Duration = Duration::from_secs(10);

/// A cluster directory driven by the `raftlab cluster` commands; stopped (and, unless the test
/// failed, removed) when dropped.
struct CliCluster {
    dir: PathBuf,
    base: u16,
}

/// A port such that `base..base + n` are all free now (and not handed to another test of
/// this process).
fn free_port_range(n: u16) -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let mut base =
        20000 + (std::process::id() % 1000) as u16 * 32 + NEXT.fetch_add(16, Ordering::Relaxed);
    loop {
        let free = (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return base;
        }
        base = base.wrapping_add(n).max(20000);
    }
}

impl CliCluster {
    fn start(name: &str, nodes: u16, spare: u16, maxraftstate: usize) -> CliCluster {
        let dir = std::env::temp_dir().join(format!("raftlab-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let c = CliCluster {
            dir,
            base: free_port_range(nodes + spare),
        };
        let out = c.cli(&[
            "cluster",
            "start",
            "--nodes",
            &nodes.to_string(),
            "--base-port",
            &c.base.to_string(),
            "--maxraftstate",
            &maxraftstate.to_string(),
        ]);
        assert!(out.status.success(), "cluster start: {}", text(&out));
        c
    }

    fn addr(&self, id: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.base + id))
    }

    fn cli(&self, args: &[&str]) -> Output {
        real_cluster::raftlab_in(&self.dir, args)
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "raftlab {args:?} failed: {}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn log(&self, id: u64) -> String {
        fs::read_to_string(self.dir.join(format!("node-{id}.log"))).unwrap_or_default()
    }

    fn node_dir(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}"))
    }
}

impl Drop for CliCluster {
    fn drop(&mut self) {
        let _ = self.cli(&["cluster", "stop"]);
        if std::thread::panicking() {
            eprintln!(
                "cluster directory and node logs kept in {}",
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The first write: retried while no node listens yet or no leader is elected.
async fn first_write(ck: &mut TcpClerk, key: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match ck.put(key, value, Duration::from_secs(5)).await {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("no first write: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The configuration line of `cluster status`.
fn configuration(status: &str) -> String {
    status
        .lines()
        .find(|l| l.starts_with("configuration:"))
        .unwrap_or("")
        .to_owned()
}

/// What the clients had acknowledged: each put key's value, and each client's appends in order.
#[derive(Default)]
struct Acked {
    puts: BTreeMap<String, String>,
    appends: BTreeMap<String, String>,
    errors: Vec<String>,
    ops: u64,
}

/// One client: puts of fresh keys and appends to its own key, one at a time, until `stop`.
async fn client(
    w: usize,
    servers: Vec<SocketAddr>,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<AtomicBool>,
) {
    let mut ck = TcpClerk::new(servers);
    let filler = "v".repeat(150);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let (key, value) = (format!("c{w}-{i}"), format!("{w}.{i}.{filler}"));
        let put = ck.put(&key, &value, OP_DEADLINE).await;
        let appended = format!("[{w}.{i}]");
        let append = ck.append(&format!("log{w}"), &appended, OP_DEADLINE).await;
        let mut a = acked.lock().unwrap_or_else(|p| p.into_inner());
        a.ops += 2;
        match put {
            Ok(()) => {
                a.puts.insert(key, value);
            }
            Err(e) => a.errors.push(format!("put {key}: {e}")),
        }
        match append {
            Ok(()) => a
                .appends
                .entry(format!("log{w}"))
                .or_default()
                .push_str(&appended),
            Err(e) => {
                a.errors.push(format!("append to log{w}: {e}"));
                // The append's outcome is unknown: the exact value can no longer be checked.
                return;
            }
        }
    }
}

/// The node `cluster status` shows as leader.
fn leader_of(status: &str) -> Option<u16> {
    status.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.contains(&"leader").then(|| f.first()?.parse().ok())?
    })
}

/// [`run`] with owned arguments.
// A real cluster, outside any simulation: the CLI is a process, waited for on a thread.
#[allow(clippy::disallowed_methods)]
async fn run_owned(c: &Arc<CliCluster>, args: Vec<String>) -> String {
    let c = c.clone();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        c.ok(&args)
    })
    .await
    .expect("the CLI thread")
}

/// Runs a blocking CLI command on another thread while the clients go on.
// A real cluster, outside any simulation: the CLI is a process, waited for on a thread.
#[allow(clippy::disallowed_methods)]
async fn run(c: &Arc<CliCluster>, args: &[&'static str]) -> String {
    let (c, args) = (c.clone(), args.to_vec());
    tokio::task::spawn_blocking(move || c.ok(&args))
        .await
        .expect("the CLI thread")
}

/// The "done when" of membership changes: a 3-node cluster grows to 5 (two nodes join from
/// empty directories, by snapshot since the log is compacted, learners first, promoted) and
/// shrinks back to 3 (removing two of the original nodes, one of them the leader if it is
/// among them) while clients put and append; no operation fails and every acknowledged write
/// is read back from the final cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_grows_to_five_and_shrinks_to_three_under_load() {
    let started = Instant::now();
    let c = Arc::new(CliCluster::start("grow-shrink", 3, 2, 32 << 10));
    let servers: Vec<SocketAddr> = (0..5).map(|i| c.addr(i)).collect();
    // The first write waits for an election.
    let mut ck = TcpClerk::new(servers.clone());
    first_write(&mut ck, "start", "1").await;

    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|w| tokio::spawn(client(w, servers.clone(), acked.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut steps = Vec::new();
    let mut step =
        |what: &str, t: Instant| steps.push(format!("{what} {:.2} s", t.elapsed().as_secs_f64()));
    for args in [["cluster", "add-node"], ["cluster", "add-node"]] {
        let t = Instant::now();
        let out = run(&c, &args).await;
        assert!(out.contains("is a voter"), "{out}");
        step("add-node", t);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = run(&c, &["cluster", "status"]).await;
    assert!(
        configuration(&status).contains("voters {0,1,2,3,4}"),
        "five voters: {status}"
    );
    // Remove the leader (if it is an original node) and another original node.
    let leader = leader_of(&status).filter(|l| *l < 3).unwrap_or(0);
    let removed = [leader, (leader + 1) % 3];
    let kept: Vec<u16> = (0..5).filter(|i| !removed.contains(i)).collect();
    for id in removed {
        let t = Instant::now();
        let id = id.to_string();
        let out = run_owned(&c, vec!["cluster".into(), "remove-node".into(), id]).await;
        assert!(out.contains("removed from the configuration"), "{out}");
        step("remove-node", t);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = run(&c, &["cluster", "status"]).await;
    let conf = configuration(&status);
    let want = format!(
        "voters {{{}}}",
        kept.iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(conf.contains(&want), "three voters {want}: {status}");
    assert!(!conf.contains("learners"), "{status}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for h in clients {
        h.await.expect("a client task");
    }

    let a = std::mem::take(&mut *acked.lock().unwrap_or_else(|p| p.into_inner()));
    assert!(a.errors.is_empty(), "client errors: {:?}", a.errors);
    assert!(a.puts.len() > 50, "too little load: {} puts", a.puts.len());
    // Every acknowledged write, read back from the final cluster only.
    let mut reader = TcpClerk::new(kept.iter().map(|i| c.addr(*i)).collect());
    for (k, v) in &a.puts {
        let got = reader.get(k, OP_DEADLINE).await.expect("read back");
        assert_eq!(&got, v, "key {k}: lost or changed");
    }
    for (k, v) in &a.appends {
        let got = reader.get(k, OP_DEADLINE).await.expect("read back");
        assert_eq!(&got, v, "key {k}: appends lost, doubled or reordered");
    }
    for id in [3, 4] {
        assert!(
            c.log(id).contains("joined the cluster"),
            "node {id}'s log: {}",
            c.log(id)
        );
    }
    let by_snapshot = [3, 4]
        .iter()
        .filter(|id| c.log(**id).contains("installs a snapshot"))
        .count();
    assert!(by_snapshot >= 1, "no new node caught up by snapshot");
    for id in removed {
        let dir = c.node_dir(u64::from(id));
        assert!(dir.join("removed").exists(), "node {id} not marked removed");
    }
    eprintln!(
        "{} operations acknowledged ({} puts), {} of the new nodes caught up by snapshot; removed {removed:?} (the leader was {leader}); {}; {:.1} s in all",
        a.ops,
        a.puts.len(),
        by_snapshot,
        steps.join(", "),
        started.elapsed().as_secs_f64()
    );
}

/// A removed node's data directory never rejoins: `cluster start` skips it, and `raftlab node`
/// on it refuses to start, whether the node was running when it was removed (it marks its own
/// directory) or down (the CLI marks it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_nodes_directory_cannot_rejoin() {
    let c = CliCluster::start("removed", 3, 0, 4 << 20);
    let servers: Vec<SocketAddr> = (0..3).map(|i| c.addr(i)).collect();
    let mut ck = TcpClerk::new(servers.clone());
    first_write(&mut ck, "k", "before").await;

    // Node 1 down when removed (two of three voters stay up): kill it first.
    let pid = pid_of(&c.dir, 1);
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    std::thread::sleep(Duration::from_millis(300));
    let out = c.ok(&["cluster", "remove-node", "1"]);
    assert!(out.contains("removed from the configuration"), "{out}");
    // Node 2 running when removed.
    let out = c.ok(&["cluster", "remove-node", "2"]);
    assert!(out.contains("removed from the configuration"), "{out}");

    // `cluster start` restarts no removed node.
    let out = c.ok(&["cluster", "start"]);
    assert!(out.contains("0 node(s) started"), "{out}");
    // By hand, on the removed directories, a node refuses to start.
    for id in [1u64, 2] {
        let out = Command::new(env!("CARGO_BIN_EXE_raftlab"))
            .args([
                "node",
                "--id",
                &id.to_string(),
                "--listen",
                &c.addr(id as u16).to_string(),
            ])
            .arg("--peers")
            .arg(
                servers
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .arg("--data-dir")
            .arg(c.node_dir(id))
            .output()
            .expect("run raftlab node");
        assert!(
            !out.status.success(),
            "node {id} started on a removed directory"
        );
        let err = text(&out);
        assert!(
            err.contains("removed from the cluster") && err.contains("must not rejoin"),
            "{err}"
        );
    }
    // The one node left is a cluster of its own and serves.
    ck.put("k", "after", Duration::from_secs(10))
        .await
        .expect("a write to the remaining node");
    assert_eq!(
        ck.get("k", Duration::from_secs(10)).await.expect("read"),
        "after"
    );
    let status = c.ok(&["cluster", "status"]);
    assert!(configuration(&status).contains("voters {0}"), "{status}");
    assert!(status.contains("removed"), "{status}");
}

/// Node `id`'s pid from DIR/cluster.txt.
fn pid_of(dir: &Path, id: u64) -> u32 {
    let text = fs::read_to_string(dir.join("cluster.txt")).expect("cluster.txt");
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[0] == id.to_string()).then(|| f[2].parse().ok())?
        })
        .next()
        .expect("node's pid")
}
