//! The nodes under test: a cluster `raftlab chaos` started itself (its children, killed at the
//! end), or one started by `raftlab cluster start` that it attached to (its pids from
//! `cluster.txt`, left running and healed at the end). Kill -9, SIGSTOP/SIGCONT, restart,
//! fault tables and status.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::{Context, bail};
use cluster::faults::FaultTable;
use cluster::rpc::NodeStatus;
use cluster::transport::{connect, ctx};

use crate::cluster_cmd::{ClusterFile, FeatureArgs, node_alive, query, spawn_node};

/// One node's process.
enum Proc {
    /// Started by this run.
    Child(Child),
    /// Started by someone else (`cluster start`).
    Pid(u32),
    Dead,
}

pub struct Nodes {
    exe: PathBuf,
    /// The cluster directory (`cluster.txt`, `node-N/`, `node-N.log`).
    pub dir: PathBuf,
    pub addrs: Vec<SocketAddr>,
    pub cluster_id: u64,
    flags: FeatureArgs,
    procs: Vec<Proc>,
    paused: Vec<bool>,
    attached: bool,
}

fn signal(pid: u32, sig: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with a pid this run started or read from cluster.txt (checked to be a
    // `raftlab node` process); no memory is shared.
    unsafe { libc::kill(pid, sig) == 0 }
}

impl Nodes {
    /// Starts `n` nodes on free loopback ports in `dir`, with fault injection allowed.
    pub fn start(dir: &Path, n: usize, cluster_id: u64) -> anyhow::Result<Nodes> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let listeners: Vec<std::net::TcpListener> = (0..n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()
            .context("cannot find free ports")?;
        let addrs = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<Result<Vec<_>, _>>()
            .context("cannot find free ports")?;
        drop(listeners);
        let mut nodes = Nodes {
            exe: std::env::current_exe().context("cannot find the raftlab executable")?,
            dir: dir.to_owned(),
            addrs,
            cluster_id,
            flags: FeatureArgs::of(cluster::server::Features::production()).with_fault_injection(),
            procs: (0..n).map(|_| Proc::Dead).collect(),
            paused: vec![false; n],
            attached: false,
        };
        for i in 0..n {
            nodes.restart(i)?;
        }
        Ok(nodes)
    }

    /// Attaches to the cluster `raftlab cluster start` runs in `dir`.
    pub fn attach(dir: &Path) -> anyhow::Result<Nodes> {
        let Some(file) = ClusterFile::read(dir)? else {
            bail!(
                "no cluster in {} (no cluster.txt): start one with `raftlab cluster start \
                 --allow-fault-injection --dir {}`",
                dir.display(),
                dir.display()
            );
        };
        let n = file.nodes.len();
        let procs = file
            .nodes
            .iter()
            .map(|(_, _, pid)| match pid {
                Some(p) if node_alive(*p) => Proc::Pid(*p),
                _ => Proc::Dead,
            })
            .collect();
        Ok(Nodes {
            exe: std::env::current_exe().context("cannot find the raftlab executable")?,
            dir: dir.to_owned(),
            addrs: file.addrs(),
            cluster_id: file.cluster_id,
            flags: file.features,
            procs,
            paused: vec![false; n],
            attached: true,
        })
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn attached(&self) -> bool {
        self.attached
    }

    fn pid(&self, i: usize) -> Option<u32> {
        match &self.procs[i] {
            Proc::Child(c) => Some(c.id()),
            Proc::Pid(p) => Some(*p),
            Proc::Dead => None,
        }
    }

    pub fn is_up(&self, i: usize) -> bool {
        !matches!(self.procs[i], Proc::Dead)
    }

    pub fn is_paused(&self, i: usize) -> bool {
        self.paused[i]
    }

    /// Records the nodes' pids in `cluster.txt` (so `raftlab cluster status|stop --dir` work).
    fn write_file(&self) -> anyhow::Result<()> {
        ClusterFile {
            cluster_id: self.cluster_id,
            features: self.flags,
            nodes: (0..self.len())
                .map(|i| (i as u64, self.addrs[i], self.pid(i)))
                .collect(),
        }
        .write(&self.dir)
    }

    /// kill -9 (a paused node too: SIGKILL needs no SIGCONT).
    pub fn kill(&mut self, i: usize) {
        match std::mem::replace(&mut self.procs[i], Proc::Dead) {
            Proc::Child(mut c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            Proc::Pid(p) => {
                if node_alive(p) {
                    signal(p, libc::SIGKILL);
                }
            }
            Proc::Dead => {}
        }
        self.paused[i] = false;
    }

    /// Starts node `i` again (if it is down) from its data directory.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        if self.is_up(i) {
            return Ok(());
        }
        let peers = self
            .addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let child = spawn_node(
            &self.exe,
            &self.dir,
            i as u64,
            self.addrs[i],
            &peers,
            self.cluster_id,
            self.flags,
        )?;
        self.procs[i] = Proc::Child(child);
        self.write_file()
    }

    /// SIGSTOP.
    pub fn pause(&mut self, i: usize) -> bool {
        let ok = self.pid(i).is_some_and(|p| signal(p, libc::SIGSTOP));
        if ok {
            self.paused[i] = true;
        }
        ok
    }

    /// SIGCONT.
    pub fn resume(&mut self, i: usize) {
        if let Some(p) = self.pid(i) {
            signal(p, libc::SIGCONT);
        }
        self.paused[i] = false;
    }

    pub async fn status(&self, i: usize) -> Option<NodeStatus> {
        if !self.is_up(i) || self.paused[i] {
            return None;
        }
        query(self.addrs[i], self.cluster_id).await
    }

    /// The node that says it leads (the highest term's, if several do).
    pub async fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for i in 0..self.len() {
            if let Some(s) = self.status(i).await
                && s.role == "leader"
                && best.is_none_or(|(t, _)| s.term > t)
            {
                best = Some((s.term, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// Sets node `i`'s fault table. `Err` with the node's refusal or "no answer".
    pub async fn set_faults(&self, i: usize, table: FaultTable) -> Result<(), String> {
        set_faults_at(self.addrs[i], self.cluster_id, i, table).await
    }

    /// Clears every live, running node's fault table.
    pub async fn clear_faults(&self) {
        for i in 0..self.len() {
            if self.is_up(i) && !self.paused[i] {
                let _ = self.set_faults(i, FaultTable::default()).await;
            }
        }
    }

    /// Heals everything: SIGCONT paused nodes, clear fault tables, restart dead nodes.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        for i in 0..self.len() {
            if self.paused[i] {
                self.resume(i);
            }
        }
        self.clear_faults().await;
        for i in 0..self.len() {
            self.restart(i)?;
        }
        Ok(())
    }

    /// Waits until every node answers, one leads, and all have committed and applied the
    /// same index. Returns the index.
    pub async fn converge(&self, within: Duration) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            let mut all = Vec::new();
            for i in 0..self.len() {
                all.push(self.status(i).await);
            }
            let st: Vec<NodeStatus> = all.into_iter().flatten().collect();
            if st.len() == self.len()
                && st.iter().any(|s| s.role == "leader")
                && let Some(first) = st.first()
                && st
                    .iter()
                    .all(|s| s.commit == first.commit && s.applied == first.commit)
            {
                return Some(first.commit);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    /// Stops what this run started: SIGCONT paused nodes first, then kill the nodes it started
    /// (an attached cluster's nodes are left running, resumed).
    pub fn stop(&mut self) {
        for i in 0..self.len() {
            if self.paused[i] {
                self.resume(i);
            }
        }
        if !self.attached {
            for i in 0..self.len() {
                self.kill(i);
            }
            let _ = self.write_file();
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sets the fault table of node `i` at `addr`. `Err` with the node's refusal or "no answer".
pub async fn set_faults_at(
    addr: SocketAddr,
    cluster: u64,
    i: usize,
    table: FaultTable,
) -> Result<(), String> {
    let Some(client) = connect(addr).await else {
        return Err(format!("node {i} does not answer"));
    };
    match tokio::time::timeout(
        Duration::from_secs(1),
        client.set_faults(ctx(), cluster, table),
    )
    .await
    {
        Ok(Ok(Ok(Ok(_)))) => Ok(()),
        Ok(Ok(Ok(Err(refused)))) => Err(refused.to_string()),
        Ok(Ok(Err(wrong))) => Err(wrong.to_string()),
        Ok(Err(e)) => Err(format!("node {i}: {e}")),
        Err(_) => Err(format!("node {i} did not answer within 1 s")),
    }
}
