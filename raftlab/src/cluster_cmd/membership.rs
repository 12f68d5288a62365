//! `cluster add-node`, `remove-node` and `promote`: membership changes of a running cluster
//! (thesis chapter 4), and DIR/membership.txt, which says how each node starts.
//!
//! A node is added in four steps: every running node learns its address (the `add_peer`
//! admin call; restarts get every address from `--peers`), its process starts with an empty
//! data directory and no configuration (`raftlab node --join`), the leader adds it as a
//! learner (it catches up from the log, or by snapshot if the log was compacted), and, unless
//! `--learner`, it is promoted to voter once caught up: the leader refuses a voter that is
//! more than `promotion_lag` entries behind (`Behind`), so `AddVoter` is retried, as it is while
//! the leader has no entry of its term committed or another change is uncommitted. Node ids and
//! ports are never reused: a removed node keeps its line in cluster.txt, so `--peers` stays
//! indexed by id.

use std::collections::BTreeSet;

use cluster::rpc::{MembershipFailure, MembershipStatus};
use raft::{ConfChange, NodeId};

use super::status::{current_leader, statuses};
use super::*;

/// DIR/membership.txt: which nodes the cluster was created with (`bootstrap K`: nodes 0..K),
/// which joined later (`joined N`, started with `--join`), which were removed (`removed N`,
/// never started again), and the snapshot threshold nodes run with (`maxraftstate BYTES`).
/// A cluster without the file has all its nodes from its creation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Roster {
    pub(crate) bootstrap: Option<usize>,
    pub(crate) joined: BTreeSet<u64>,
    pub(crate) removed: BTreeSet<u64>,
    pub(crate) maxraftstate: Option<usize>,
}

impl Roster {
    fn path(dir: &Path) -> PathBuf {
        dir.join("membership.txt")
    }

    pub(crate) fn read(dir: &Path) -> anyhow::Result<Roster> {
        let path = Self::path(dir);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Roster::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut r = Roster::default();
        for (n, line) in text.lines().enumerate() {
            let bad = || {
                anyhow::anyhow!(
                    "{}:{}: expected `bootstrap K`, `joined N`, `removed N` or `maxraftstate BYTES`",
                    path.display(),
                    n + 1
                )
            };
            let f: Vec<&str> = line.split_whitespace().collect();
            let [word, value] = f[..] else {
                if f.is_empty() {
                    continue;
                }
                return Err(bad());
            };
            let v: u64 = value.parse().map_err(|_| bad())?;
            match word {
                "bootstrap" => r.bootstrap = Some(usize::try_from(v).map_err(|_| bad())?),
                "joined" => {
                    r.joined.insert(v);
                }
                "removed" => {
                    r.removed.insert(v);
                }
                "maxraftstate" => r.maxraftstate = Some(usize::try_from(v).map_err(|_| bad())?),
                _ => return Err(bad()),
            }
        }
        Ok(r)
    }

    pub(crate) fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let mut text = String::new();
        if let Some(k) = self.bootstrap {
            text += &format!("bootstrap {k}\n");
        }
        if let Some(m) = self.maxraftstate {
            text += &format!("maxraftstate {m}\n");
        }
        for id in &self.joined {
            text += &format!("joined {id}\n");
        }
        for id in &self.removed {
            text += &format!("removed {id}\n");
        }
        let path = Self::path(dir);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The extra `raftlab node` flags node `id` starts with.
    pub(crate) fn node_flags(&self, id: u64, nodes: usize) -> Vec<String> {
        let mut out = Vec::new();
        if self.joined.contains(&id) {
            out.push("--join".to_owned());
        } else if let Some(k) = self.bootstrap.filter(|k| *k < nodes) {
            out.extend(["--voters".to_owned(), k.to_string()]);
        }
        if let Some(m) = self.maxraftstate {
            out.extend(["--maxraftstate".to_owned(), m.to_string()]);
        }
        out
    }
}

/// What a membership command needs: the cluster file, the roster, a deadline.
struct Ctx {
    dir: PathBuf,
    file: ClusterFile,
    roster: Roster,
    deadline: tokio::time::Instant,
    timeout: f64,
}

impl Ctx {
    fn open(dir: &Path, timeout: f64) -> anyhow::Result<Ctx> {
        let Some(file) = ClusterFile::read(dir)? else {
            bail!("no cluster in {} (no cluster.txt)", dir.display());
        };
        if !(timeout.is_finite() && timeout > 0.0) {
            bail!("--timeout must be a positive number of seconds");
        }
        let roster = Roster::read(dir)?;
        Ok(Ctx {
            dir: dir.to_owned(),
            file,
            roster,
            deadline: tokio::time::Instant::now() + Duration::from_secs_f64(timeout),
            timeout,
        })
    }

    fn save(&self) -> anyhow::Result<()> {
        self.roster.write(&self.dir)?;
        self.file.write(&self.dir)
    }

    fn node(&self, id: u64) -> anyhow::Result<(u64, SocketAddr, Option<u32>)> {
        match self.file.nodes.iter().find(|(n, _, _)| *n == id) {
            Some(n) => Ok(*n),
            None => bail!("unknown node {id} in the cluster in {}", self.dir.display()),
        }
    }

    fn expired(&self) -> bool {
        tokio::time::Instant::now() >= self.deadline
    }

    /// Asks the leader for `change` until it is made (`Ok(Some(index))`), or found already
    /// made (`Ok(None)`: `NoChange`/`NotMember`), retrying while the failure says to.
    async fn change(&self, change: ConfChange) -> anyhow::Result<Option<u64>> {
        let mut last = String::from("no leader answered");
        let mut hint: Option<u64> = None;
        loop {
            let st = statuses(&self.file).await;
            let target = hint
                .and_then(|h| self.file.nodes.iter().position(|(id, _, _)| *id == h))
                .or_else(|| current_leader(&self.file, &st).map(|(i, _)| i));
            hint = None;
            if let Some(i) = target {
                let (id, addr, _) = self.file.nodes[i];
                let answer = match connect(addr).await {
                    Some(c) => tokio::time::timeout(
                        Duration::from_secs(8),
                        c.change_membership(ctx(), self.file.cluster_id, change.clone()),
                    )
                    .await
                    .ok()
                    .and_then(|r| r.ok()),
                    None => None,
                };
                match answer {
                    Some(Ok(Ok(index))) => return Ok(Some(index)),
                    Some(Ok(Err(
                        MembershipFailure::NoChange(_) | MembershipFailure::NotMember(_),
                    ))) => return Ok(None),
                    Some(Ok(Err(MembershipFailure::NotLeader { hint: h, .. }))) => {
                        hint = h;
                        last = format!("node {id} is not the leader");
                    }
                    Some(Ok(Err(e))) if e.is_retryable() => last = format!("node {id}: {e}"),
                    Some(Ok(Err(e))) => bail!("node {id} refused {change:?}: {e}"),
                    Some(Err(wrong)) => bail!("{wrong}"),
                    None => last = format!("node {id} did not answer"),
                }
            }
            if self.expired() {
                bail!(
                    "timed out after {} s asking for {change:?}: {last}",
                    self.timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The configuration as the current leader sees it.
    async fn membership(&self) -> Option<MembershipStatus> {
        let st = statuses(&self.file).await;
        current_leader(&self.file, &st).and_then(|(i, _)| st[i].clone().map(|s| s.membership))
    }
}

/// `cluster add-node [--learner]`.
pub(super) fn add_node(dir: &Path, learner: bool, timeout: f64) -> anyhow::Result<ExitCode> {
    let mut c = Ctx::open(dir, timeout)?;
    let Some(&(last_id, last_addr, _)) = c.file.nodes.iter().max_by_key(|(id, _, _)| *id) else {
        bail!("the cluster in {} has no nodes", dir.display());
    };
    let id = last_id + 1;
    let max_port = c
        .file
        .nodes
        .iter()
        .map(|(_, a, _)| a.port())
        .max()
        .unwrap_or(0);
    let port = max_port
        .checked_add(1)
        .context("no port left after the cluster's highest")?;
    let addr = SocketAddr::new(last_addr.ip(), port);
    if c.roster.bootstrap.is_none() {
        c.roster.bootstrap = Some(c.file.nodes.len());
    }
    let features = c.file.features.features()?;
    let rt = runtime()?;
    rt.block_on(async {
        // Everyone learns the address first: the leader must reach the node to add it.
        for (peer, paddr, pid) in &c.file.nodes {
            if c.roster.removed.contains(peer) || !pid.is_some_and(node_alive) {
                continue;
            }
            let told = match connect(*paddr).await {
                Some(cl) => tokio::time::timeout(
                    Duration::from_secs(2),
                    cl.add_peer(ctx(), c.file.cluster_id, id, addr),
                )
                .await
                .is_ok_and(|r| r.is_ok_and(|r| r.is_ok())),
                None => false,
            };
            if !told {
                eprintln!(
                    "warning: node {peer} did not answer: it learns node {id}'s address when it restarts"
                );
            }
        }
        c.file.nodes.push((id, addr, None));
        c.roster.joined.insert(id);
        let peers = peers_arg(&c.file);
        let exe = std::env::current_exe().context("cannot find the raftlab executable")?;
        let flags = c.roster.node_flags(id, c.file.nodes.len());
        let child = spawn_node_as(
            &exe,
            dir,
            id,
            addr,
            &peers,
            c.file.cluster_id,
            c.file.features,
            &flags,
        )?;
        if let Some(n) = c.file.nodes.last_mut() {
            n.2 = Some(child.id());
        }
        c.save()?;
        println!(
            "node {id}: {addr}, pid {}, log {} ({}), joining",
            child.id(),
            dir.join(format!("node-{id}.log")).display(),
            describe(features)
        );
        c.change(ConfChange::AddLearner(NodeId(id)))
            .await
            .with_context(|| {
                format!(
                    "node {id} was started but not added; `raftlab cluster remove-node {id}` \
                     stops it and marks its directory"
                )
            })?;
        println!("node {id} is a learner; it catches up from the leader");
        if !learner {
            c.change(ConfChange::AddVoter(NodeId(id)))
                .await
                .with_context(|| {
                    format!(
                        "node {id} is a learner but was not promoted; retry with \
                         `raftlab cluster promote {id}`"
                    )
                })?;
            println!("node {id} is a voter");
        }
        if let Some(m) = c.membership().await {
            println!("configuration: {m} (index {})", m.index);
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `cluster promote N`: a learner becomes a voter once caught up.
pub(super) fn promote(dir: &Path, id: u64, timeout: f64) -> anyhow::Result<ExitCode> {
    let c = Ctx::open(dir, timeout)?;
    c.node(id)?;
    if c.roster.removed.contains(&id) {
        bail!("node {id} was removed from the cluster");
    }
    runtime()?.block_on(async {
        match c.change(ConfChange::AddVoter(NodeId(id))).await? {
            Some(index) => println!("node {id} is a voter (configuration entry {index})"),
            None => println!("node {id} is already a voter"),
        }
        if let Some(m) = c.membership().await {
            println!("configuration: {m} (index {})", m.index);
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `cluster remove-node N`: out of the configuration, then its directory is marked as removed
/// and its process stopped.
pub(super) fn remove_node(dir: &Path, id: u64, timeout: f64) -> anyhow::Result<ExitCode> {
    let mut c = Ctx::open(dir, timeout)?;
    let (_, addr, pid) = c.node(id)?;
    runtime()?.block_on(async {
        match c.change(ConfChange::Remove(NodeId(id))).await? {
            Some(index) => println!("node {id} removed from the configuration (entry {index}, committed)"),
            None => println!("node {id} was not a member any more"),
        }
        // The removal committed: mark the directory so that it never rejoins by accident.
        let retired = match connect(addr).await {
            Some(cl) => tokio::time::timeout(Duration::from_secs(2), cl.retire(ctx(), c.file.cluster_id))
                .await
                .is_ok_and(|r| r.is_ok_and(|r| r.is_ok())),
            None => false,
        };
        let node_dir = dir.join(format!("node-{id}"));
        if !retired {
            cluster::storage::write_removed(
                &node_dir,
                &format!(
                    "node {id} of cluster {:016x}: removed by `raftlab cluster remove-node` while it was down",
                    c.file.cluster_id
                ),
            )?;
        }
        println!("{} marks its data directory as removed", node_dir.join(cluster::storage::REMOVED_FILE).display());
        anyhow::Ok(())
    })?;
    if let Some(p) = pid {
        stop_node(id, p);
    }
    if let Some(n) = c.file.nodes.iter_mut().find(|(n, _, _)| *n == id) {
        n.2 = None;
    }
    if c.roster.bootstrap.is_none() {
        c.roster.bootstrap = Some(c.file.nodes.len());
    }
    c.roster.removed.insert(id);
    c.save()?;
    Ok(ExitCode::SUCCESS)
}

/// `--peers` for the cluster's nodes: every address in id order (ids are never reused).
pub(super) fn peers_arg(file: &ClusterFile) -> String {
    file.addrs()
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roster_round_trips_and_gives_each_node_its_flags() {
        let d = std::env::temp_dir().join(format!("raftlab-roster-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("dir");
        assert_eq!(Roster::read(&d).expect("no file"), Roster::default());
        let r = Roster {
            bootstrap: Some(3),
            joined: [3, 4].into(),
            removed: [0].into(),
            maxraftstate: Some(65536),
        };
        r.write(&d).expect("write");
        assert_eq!(Roster::read(&d).expect("read"), r);
        assert_eq!(r.node_flags(4, 5), ["--join", "--maxraftstate", "65536"]);
        assert_eq!(
            r.node_flags(1, 5),
            ["--voters", "3", "--maxraftstate", "65536"]
        );
        fs::write(d.join("membership.txt"), "joined x\n").expect("write");
        assert!(Roster::read(&d).is_err());
        let _ = fs::remove_dir_all(&d);
    }
}
