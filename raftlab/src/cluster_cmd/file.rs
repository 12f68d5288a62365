//! The cluster directory's `cluster.txt`, the feature flags, and spawning node processes.

use super::*;

/// Raft's extensions: pre-vote and check-quorum are on unless switched off, lease reads off
/// unless switched on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Args)]
pub(crate) struct FeatureArgs {
    /// Switch pre-vote off (thesis 9.6). Without it a node that cannot reach a majority raises
    /// its term at every election timeout, and can depose the leader when it comes back.
    #[arg(long)]
    pub(super) no_pre_vote: bool,
    /// Switch check-quorum off (thesis 6.2). Without it a leader cut off from a majority stays
    /// leader, and voters grant votes while they still hear from a live leader.
    #[arg(long)]
    pub(super) no_check_quorum: bool,
    #[arg(long, help = lease_help())]
    pub(super) lease_reads: bool,
    /// Serve the `set_faults` admin RPC: `raftlab chaos` cuts and slows the links between
    /// nodes through it (partitions without root). For chaos testing only.
    #[arg(long)]
    pub(crate) allow_fault_injection: bool,
}

pub(super) fn lease_help() -> String {
    format!(
        "Serve Gets from the leader's lease, without a round of heartbeats per read (thesis \
         6.4.1; needs check-quorum). Assumes bounded clock drift: the nodes' clocks run at \
         rates within {:.0}% of each other (raft::core::LEASE_DRIFT), so a lease lasts {:.0}% of \
         the minimum election timeout. Off by default: ReadIndex needs no clock assumption",
        raft::core::LEASE_DRIFT * 100.0,
        (1.0 - raft::core::LEASE_DRIFT) * 100.0
    )
}

impl FeatureArgs {
    pub(crate) fn features(self) -> anyhow::Result<Features> {
        if self.lease_reads && self.no_check_quorum {
            bail!("--lease-reads needs check-quorum: drop --no-check-quorum");
        }
        Ok(Features {
            pre_vote: !self.no_pre_vote,
            check_quorum: !self.no_check_quorum,
            lease_reads: self.lease_reads,
        })
    }

    pub(crate) fn of(f: Features) -> FeatureArgs {
        FeatureArgs {
            no_pre_vote: !f.pre_vote,
            no_check_quorum: !f.check_quorum,
            lease_reads: f.lease_reads,
            allow_fault_injection: false,
        }
    }

    /// The same, with the `set_faults` admin RPC allowed.
    pub(crate) fn with_fault_injection(self) -> FeatureArgs {
        FeatureArgs {
            allow_fault_injection: true,
            ..self
        }
    }

    /// The `raftlab node` flags that give these features.
    pub(super) fn flags(self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.no_pre_vote {
            out.push("--no-pre-vote");
        }
        if self.no_check_quorum {
            out.push("--no-check-quorum");
        }
        if self.lease_reads {
            out.push("--lease-reads");
        }
        if self.allow_fault_injection {
            out.push("--allow-fault-injection");
        }
        out
    }
}

/// The features in words, e.g. `pre-vote, check-quorum`.
pub(super) fn describe(f: Features) -> String {
    let on: Vec<&str> = [
        (f.pre_vote, "pre-vote"),
        (f.check_quorum, "check-quorum"),
        (f.lease_reads, "lease reads"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect();
    if on.is_empty() {
        "no extensions".to_owned()
    } else {
        on.join(", ")
    }
}

/// What `cluster start` records in DIR/cluster.txt: one line per node, `id addr pid`, after a
/// first line `cluster <hex id>` and a line `features <raftlab node flags>` (none: the
/// defaults; a file without the line is read as having the defaults).
pub(crate) struct ClusterFile {
    pub(crate) cluster_id: u64,
    pub(crate) features: FeatureArgs,
    pub(crate) nodes: Vec<(u64, SocketAddr, Option<u32>)>,
}

impl ClusterFile {
    pub(super) fn path(dir: &Path) -> PathBuf {
        dir.join("cluster.txt")
    }

    pub(crate) fn read(dir: &Path) -> anyhow::Result<Option<ClusterFile>> {
        let path = Self::path(dir);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut lines = text.lines().enumerate();
        let bad = |n: usize, why: &str| anyhow::anyhow!("{}:{}: {why}", path.display(), n + 1);
        let cluster_id = match lines.next() {
            Some((n, l)) => {
                let hex = l
                    .strip_prefix("cluster ")
                    .ok_or_else(|| bad(n, "expected `cluster <id>`"))?;
                parse_hex(hex).map_err(|e| bad(n, &e))?
            }
            None => bail!("{} is empty", path.display()),
        };
        let mut nodes = Vec::new();
        let mut features = FeatureArgs::default();
        for (n, line) in lines {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() == Some(&"features") {
                for flag in &f[1..] {
                    match *flag {
                        "--no-pre-vote" => features.no_pre_vote = true,
                        "--no-check-quorum" => features.no_check_quorum = true,
                        "--lease-reads" => features.lease_reads = true,
                        "--allow-fault-injection" => features.allow_fault_injection = true,
                        other => return Err(bad(n, &format!("unknown feature flag {other}"))),
                    }
                }
                continue;
            }
            if f.len() != 3 {
                return Err(bad(n, "expected `<id> <addr> <pid>`"));
            }
            let id = f[0].parse().map_err(|_| bad(n, "bad node id"))?;
            let addr = f[1].parse().map_err(|_| bad(n, "bad address"))?;
            let pid = if f[2] == "-" {
                None
            } else {
                Some(f[2].parse().map_err(|_| bad(n, "bad pid"))?)
            };
            nodes.push((id, addr, pid));
        }
        Ok(Some(ClusterFile {
            cluster_id,
            features,
            nodes,
        }))
    }

    pub(crate) fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let mut text = format!("cluster {:016x}\n", self.cluster_id);
        text += "features";
        for flag in self.features.flags() {
            text += " ";
            text += flag;
        }
        text += "\n";
        for (id, addr, pid) in &self.nodes {
            let pid = pid.map_or("-".to_owned(), |p| p.to_string());
            text += &format!("{id} {addr} {pid}\n");
        }
        let path = Self::path(dir);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|(_, a, _)| *a).collect()
    }
}

/// Starts `raftlab node` for node `id` in the background, logging to DIR/node-ID.log.
pub(crate) fn spawn_node(
    exe: &Path,
    dir: &Path,
    id: u64,
    addr: SocketAddr,
    peers: &str,
    cluster_id: u64,
    flags: FeatureArgs,
) -> anyhow::Result<std::process::Child> {
    spawn_node_as(exe, dir, id, addr, peers, cluster_id, flags, &[])
}

/// [`spawn_node`] with more `raftlab node` flags (`--join`, `--voters K`: see `Roster`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn_node_as(
    exe: &Path,
    dir: &Path,
    id: u64,
    addr: SocketAddr,
    peers: &str,
    cluster_id: u64,
    flags: FeatureArgs,
    extra: &[String],
) -> anyhow::Result<std::process::Child> {
    let node_dir = dir.join(format!("node-{id}"));
    let log_path = dir.join(format!("node-{id}.log"));
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    Command::new(exe)
        .arg("node")
        .args(["--id", &id.to_string()])
        .args(["--listen", &addr.to_string()])
        .args(["--peers", peers])
        .arg("--data-dir")
        .arg(&node_dir)
        .args(["--cluster-id", &format!("{cluster_id:016x}")])
        .args(flags.flags())
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("cannot share the log file")?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start node {id}"))
}

/// Stops node `id`'s process `pid` (SIGTERM) if it is a running `raftlab node`, and says so.
pub(crate) fn stop_node(id: u64, pid: u32) {
    if !node_alive(pid) {
        return;
    }
    let ok = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    println!(
        "node {id}: pid {pid} {}",
        if ok {
            "stopped"
        } else {
            "could not be stopped"
        }
    );
}

/// True if `pid` is a running `raftlab node` process.
pub(crate) fn node_alive(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
            args.iter().any(|a| *a == b"node")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("raftlab-clusterfile-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn cluster_file_keeps_the_features() {
        let d = dir("features");
        let features = FeatureArgs {
            no_pre_vote: true,
            no_check_quorum: false,
            lease_reads: true,
            allow_fault_injection: true,
        };
        let file = ClusterFile {
            cluster_id: 0xabc,
            features,
            nodes: vec![
                (0, "127.0.0.1:1".parse().expect("addr"), Some(7)),
                (1, "127.0.0.1:2".parse().expect("addr"), None),
            ],
        };
        file.write(&d).expect("write");
        let back = ClusterFile::read(&d).expect("read").expect("a file");
        assert_eq!(back.features, features);
        assert_eq!(back.nodes, file.nodes);
        let f = back.features.features().expect("valid");
        assert!(!f.pre_vote && f.check_quorum && f.lease_reads);
        assert_eq!(describe(f), "check-quorum, lease reads");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn an_old_cluster_file_gets_the_production_features() {
        let d = dir("old");
        fs::write(
            ClusterFile::path(&d),
            "cluster 00000000000000ab\n0 127.0.0.1:1 -\n",
        )
        .expect("write");
        let file = ClusterFile::read(&d).expect("read").expect("a file");
        assert_eq!(
            file.features.features().expect("valid"),
            Features::production()
        );
        assert_eq!(file.nodes.len(), 1);
        fs::write(ClusterFile::path(&d), "cluster ab\nfeatures --fast\n").expect("write");
        let err = ClusterFile::read(&d).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("unknown feature flag --fast")));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn lease_reads_need_check_quorum() {
        let args = FeatureArgs {
            no_pre_vote: false,
            no_check_quorum: true,
            lease_reads: true,
            allow_fault_injection: false,
        };
        assert!(args.features().is_err());
    }
}
