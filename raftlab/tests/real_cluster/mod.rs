//! A real cluster for raftlab's integration tests: `raftlab node` processes on loopback (free
//! ports chosen at run time), killed with SIGKILL and restarted, with their data on disk.
//! Shared by several test binaries, each of which uses a part of it.
#![allow(dead_code)]

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use cluster::client::TcpClerk;
use cluster::rpc::NodeStatus;
use cluster::transport::{connect, ctx};
use tokio::time::{Instant, sleep};

pub const CLUSTER_ID: u64 = 0x5eed_c0de_0000_0001;

/// The longest election timeout of a real node (30 to 60 ticks of 10 ms).
pub const ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(600);

pub struct TestCluster {
    pub dir: PathBuf,
    pub addrs: Vec<SocketAddr>,
    pub children: Vec<Option<Child>>,
    pub maxraftstate: usize,
    /// Extra `raftlab node` flags (e.g. `--no-pre-vote`).
    pub flags: Vec<String>,
}

pub fn free_ports(n: usize) -> Vec<SocketAddr> {
    // Bind them all at once so they are distinct, then release them for the nodes.
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr"))
        .collect()
}

impl TestCluster {
    pub fn new(name: &str, n: usize, maxraftstate: usize) -> TestCluster {
        TestCluster::with_flags(name, n, maxraftstate, &[])
    }

    pub fn with_flags(name: &str, n: usize, maxraftstate: usize, flags: &[&str]) -> TestCluster {
        let dir = std::env::temp_dir().join(format!("raftlab-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("test dir");
        let mut c = TestCluster {
            dir,
            addrs: free_ports(n),
            children: (0..n).map(|_| None).collect(),
            maxraftstate,
            flags: flags.iter().map(|f| f.to_string()).collect(),
        };
        for i in 0..n {
            c.start(i);
        }
        c
    }

    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node-{i}"))
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node-{i}.log"))
    }

    pub fn command(&self, i: usize) -> Command {
        let peers: Vec<String> = self.addrs.iter().map(|a| a.to_string()).collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_raftlab"));
        cmd.arg("node")
            .args(["--id", &i.to_string()])
            .args(["--listen", &self.addrs[i].to_string()])
            .args(["--peers", &peers.join(",")])
            .arg("--data-dir")
            .arg(self.node_dir(i))
            .args(["--cluster-id", &format!("{CLUSTER_ID:016x}")])
            .args(["--maxraftstate", &self.maxraftstate.to_string()])
            .args(&self.flags)
            // The node's default level (info) shows the election story.
            .env_remove("RUST_LOG");
        cmd
    }

    pub fn start(&mut self, i: usize) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .expect("log file");
        let child = self
            .command(i)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start a node");
        self.children[i] = Some(child);
    }

    /// kill -9.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn clerk(&self) -> TcpClerk {
        TcpClerk::new(self.addrs.clone())
    }

    pub async fn status(&self, i: usize) -> Option<NodeStatus> {
        let client = connect(self.addrs[i]).await?;
        match tokio::time::timeout(Duration::from_secs(1), client.status(ctx(), CLUSTER_ID)).await {
            Ok(Ok(Ok(s))) => Some(s),
            _ => None,
        }
    }

    pub async fn statuses(&self) -> Vec<Option<NodeStatus>> {
        let mut out = Vec::new();
        for i in 0..self.addrs.len() {
            out.push(if self.children[i].is_some() {
                self.status(i).await
            } else {
                None
            });
        }
        out
    }

    /// Waits for a live node to lead a term newer than `after`; returns (node, term).
    pub async fn wait_leader(&self, after: u64, within: Duration) -> Option<(usize, u64)> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            for (i, s) in self.statuses().await.into_iter().enumerate() {
                if let Some(s) = s
                    && s.role == "leader"
                    && s.term > after
                {
                    return Some((i, s.term));
                }
            }
            sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Waits for the first leader and writes `key` = `value` through a new clerk; returns the
    /// leader, its term and the clerk.
    pub async fn first_write(&self, key: &str, value: &str) -> (usize, u64, TcpClerk) {
        let (leader, term) = self
            .wait_leader(0, Duration::from_secs(10))
            .await
            .expect("a first leader");
        let mut ck = self.clerk();
        ck.put(key, value, Duration::from_secs(10))
            .await
            .expect("first write");
        (leader, term, ck)
    }

    /// Waits until every live node applied everything the leader committed.
    pub async fn wait_caught_up(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let st: Vec<NodeStatus> = self.statuses().await.into_iter().flatten().collect();
            let live = self.children.iter().filter(|c| c.is_some()).count();
            if let Some(l) = st.iter().find(|s| s.role == "leader")
                && st.len() == live
                && st.iter().all(|s| s.applied >= l.commit)
            {
                return true;
            }
            sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub fn log_text(&self, i: usize) -> String {
        fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    /// Writes DIR/cluster.txt as `raftlab cluster start` would, so that the `cluster`
    /// commands (`status`, `transfer`) work on this cluster with `--dir`.
    pub fn write_cluster_file(&self) {
        let mut text = format!("cluster {CLUSTER_ID:016x}\nfeatures");
        for f in &self.flags {
            text += " ";
            text += f;
        }
        text += "\n";
        for (i, a) in self.addrs.iter().enumerate() {
            let pid = self.children[i]
                .as_ref()
                .map_or("-".to_owned(), |c| c.id().to_string());
            text += &format!("{i} {a} {pid}\n");
        }
        fs::write(self.dir.join("cluster.txt"), text).expect("write cluster.txt");
    }

    /// Runs `raftlab ARGS --dir DIR` (a cluster command) and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        raftlab_in(&self.dir, args)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("node logs kept in {}", self.dir.display());
        }
    }
}

/// Runs `raftlab ARGS --dir DIR` (a cluster command on the cluster directory `dir`).
pub fn raftlab_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftlab"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run raftlab")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
