//! The shard controller's tester (a port of 6.5840's `shardctrler/config.go`): controller
//! replicas on a labrpc network, clerks with their ends in random order, servers shut down and
//! restarted with a copy of what they persisted.
//!
//! [`CtrlerCluster`] is also the controller service of the shardkv tester, which runs it on the
//! same network as the groups.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labrpc::{ClientEnd, Network, Persister, Server, Sim, TaskGroup};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use shardkv::ctrler::{Clerk, Config, CtrlerServer, Gid, NSHARDS};
use shardkv::rsm::RsmOptions;

/// The original's `checkTimeout`: every controller test must finish within this much simulated
/// time.
pub const TEST_TIME_LIMIT: Duration = Duration::from_secs(120);

struct Replicas {
    servers: Vec<Option<CtrlerServer>>,
    tasks: Vec<TaskGroup>,
    saved: Vec<Persister>,
    /// `endnames[i][j]`: server i's end to server j.
    endnames: Vec<Vec<String>>,
    incarnation: Vec<u64>,
}

/// `n` controller replicas named `<prefix><i>` on a network.
pub struct CtrlerCluster {
    pub n: usize,
    net: Network,
    sim: Sim,
    prefix: String,
    state: Mutex<Replicas>,
    next_end: AtomicU64,
    monitor: raftcheck::SharedMonitor,
}

impl CtrlerCluster {
    /// Starts `n` replicas, all connected.
    pub fn start(sim: &Sim, net: &Network, n: usize, prefix: &str) -> CtrlerCluster {
        let cluster = CtrlerCluster {
            n,
            net: net.clone(),
            sim: sim.clone(),
            prefix: prefix.to_owned(),
            state: Mutex::new(Replicas {
                servers: vec![None; n],
                tasks: (0..n).map(|_| TaskGroup::new()).collect(),
                saved: (0..n).map(|_| Persister::new()).collect(),
                endnames: vec![Vec::new(); n],
                incarnation: vec![0; n],
            }),
            next_end: AtomicU64::new(0),
            monitor: crate::safety::monitor(&format!("{prefix}ctrler")),
        };
        for i in 0..n {
            cluster.start_server(i);
        }
        cluster.connect_all();
        cluster
    }

    /// Fails the test if the controller's Raft broke an invariant (a checkpoint; the monitor
    /// also fails the test the moment it happens).
    pub fn check_safety(&self) {
        crate::safety::check(&self.monitor, &format!("{}ctrler", self.prefix));
    }

    fn lock(&self) -> MutexGuard<'_, Replicas> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The network name of replica i (the original's `ctrlername`).
    pub fn server_name(&self, i: usize) -> String {
        format!("{}{i}", self.prefix)
    }

    fn all(&self) -> Vec<usize> {
        (0..self.n).collect()
    }

    fn set_links(&self, st: &Replicas, i: usize, to: &[usize], on: bool) {
        for &j in to {
            if let Some(name) = st.endnames[i].get(j) {
                self.net.enable(name, on);
            }
            if let Some(name) = st.endnames[j].get(i) {
                self.net.enable(name, on);
            }
        }
    }

    /// Connects every replica to every other (the original's `ConnectAll`).
    pub fn connect_all(&self) {
        let st = self.lock();
        for i in 0..self.n {
            self.set_links(&st, i, &self.all(), true);
        }
    }

    /// The original's `ShutdownServer`: cut it off, delete it from the network, kill it, and
    /// keep a copy of what it persisted.
    pub fn shutdown_server(&self, i: usize) {
        let mut st = self.lock();
        self.set_links(&st, i, &self.all(), false);
        // Delete the server before copying the persister, so the old instance cannot
        // acknowledge something and persist it in the superseded persister.
        self.net.delete_server(&self.server_name(i));
        st.saved[i] = st.saved[i].copy();
        st.servers[i] = None;
        st.tasks[i].kill();
    }

    /// The original's `StartServer`: fresh ends, a copy of its persisted state, a new replica.
    /// It is connected by [`CtrlerCluster::connect_all`].
    pub fn start_server(&self, i: usize) {
        let mut st = self.lock();
        st.incarnation[i] += 1;
        let inc = st.incarnation[i];
        st.endnames[i] = (0..self.n)
            .map(|j| format!("{}{i}->{j}#{inc}", self.prefix))
            .collect();
        let ends = (0..self.n)
            .map(|j| {
                let name = &st.endnames[i][j];
                let end = self.net.make_end(name.clone());
                self.net.connect(name, self.server_name(j));
                end
            })
            .collect();
        st.saved[i] = st.saved[i].copy();
        let tasks = TaskGroup::new();
        st.tasks[i] = tasks.clone();
        let seed = (i as u64) << 32 | inc;
        let server = match CtrlerServer::start(
            ends,
            i,
            st.saved[i].clone(),
            RsmOptions {
                raft: raft::Options {
                    trace_group: Some(format!("{}ctrler", self.prefix)),
                    ..crate::safety::observed(&self.monitor)
                },
                ..RsmOptions::default()
            },
            self.sim.rng(&format!("{}ctrler", self.prefix), seed),
            &tasks,
        ) {
            Ok(s) => s,
            Err(e) => panic!("controller {i} cannot start: {e}"),
        };
        let mut srv = Server::new();
        for svc in server.services() {
            srv.add_service(svc);
        }
        st.servers[i] = Some(server);
        drop(st);
        self.net.add_server(self.server_name(i), srv);
    }

    /// The replica that believes it is the leader, if any.
    pub fn leader(&self) -> Option<usize> {
        let st = self.lock();
        (0..self.n).find(|&i| st.servers[i].as_ref().is_some_and(|s| s.raft().state().1))
    }

    /// Enabled ends to every replica, in random order (the original's `random_handles`).
    pub fn make_ends(&self, rng: &mut ChaCha8Rng) -> Vec<ClientEnd> {
        let mut ends: Vec<ClientEnd> = (0..self.n)
            .map(|j| {
                let k = self.next_end.fetch_add(1, Ordering::Relaxed);
                let name = format!("{}ck{k}->{j}", self.prefix);
                let end = self.net.make_end(name.clone());
                self.net.connect(&name, self.server_name(j));
                self.net.enable(&name, true);
                end
            })
            .collect();
        ends.shuffle(rng);
        ends
    }

    /// Kills every replica.
    pub fn kill_all(&self) {
        let st = self.lock();
        for t in &st.tasks {
            t.kill();
        }
    }
}

impl Drop for CtrlerCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The controller tester: a cluster on its own network.
pub struct CtrlerConfig {
    pub cluster: CtrlerCluster,
    net: Network,
    sim: Sim,
    rng: Mutex<ChaCha8Rng>,
    next_client_id: AtomicU64,
    summary: crate::Summary,
}

impl CtrlerConfig {
    /// The original's `make_config(t, n, unreliable)`.
    pub fn new(sim: &Sim, n: usize, unreliable: bool) -> Arc<CtrlerConfig> {
        let net = Network::new(sim.rng("net", 0));
        let cluster = CtrlerCluster::start(sim, &net, n, "");
        net.set_reliable(!unreliable);
        Arc::new(CtrlerConfig {
            cluster,
            net,
            sim: sim.clone(),
            rng: Mutex::new(sim.rng("tester", 0)),
            next_client_id: AtomicU64::new(1),
            summary: crate::Summary::new(),
        })
    }

    pub fn rand(&self, n: u64) -> u64 {
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random_range(0..n)
    }

    /// A clerk with its own ends to every replica.
    pub fn make_client(&self) -> Clerk {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        let ends = self
            .cluster
            .make_ends(&mut self.rng.lock().unwrap_or_else(|p| p.into_inner()));
        Clerk::new(ends, id)
    }

    pub fn begin(&self, description: &str) {
        self.summary.begin(description, &self.net, 0);
    }

    /// Prints the original's "Passed" line with simulated seconds, replicas, RPCs and bytes.
    pub fn end(&self) {
        self.cluster.check_safety();
        self.summary
            .end(self.cluster.n, &self.net, None, self.sim.seed());
    }
}

/// The original's `check`: the latest configuration has exactly `groups`, every shard is
/// assigned to one of them (when there are any), and the assignment is balanced.
pub async fn check(groups: &[Gid], ck: &mut Clerk) -> Config {
    let c = ck.query(None).await;
    assert_eq!(
        c.groups.len(),
        groups.len(),
        "wanted {} groups, got {}",
        groups.len(),
        c.groups.len()
    );
    for g in groups {
        assert!(c.groups.contains_key(g), "missing group {g}");
    }
    if !groups.is_empty() {
        for (s, g) in c.shards.iter().enumerate() {
            assert!(c.groups.contains_key(g), "shard {s} -> invalid group {g}");
        }
    }
    let counts = shard_counts(&c);
    let min = counts.values().copied().min().unwrap_or(0);
    let max = counts.values().copied().max().unwrap_or(0);
    assert!(max <= min + 1, "max {max} too much larger than min {min}");
    c
}

/// Shards per group of the configuration (every group listed, with 0 for none).
pub fn shard_counts(c: &Config) -> BTreeMap<Gid, usize> {
    let mut counts: BTreeMap<Gid, usize> = c.groups.keys().map(|&g| (g, 0)).collect();
    for g in &c.shards {
        if let Some(n) = counts.get_mut(g) {
            *n += 1;
        }
    }
    counts
}

/// The original's `check_same_config`.
pub fn check_same_config(c1: &Config, c2: &Config) {
    assert_eq!(c1.num, c2.num, "Num wrong");
    assert_eq!(c1.shards, c2.shards, "Shards wrong");
    assert_eq!(
        c1.groups.len(),
        c2.groups.len(),
        "number of Groups is wrong"
    );
    for (gid, sa) in &c1.groups {
        assert_eq!(c2.groups.get(gid), Some(sa), "Groups wrong for gid {gid}");
    }
}

/// Shards that changed group between two configurations.
pub fn moved_shards(a: &Config, b: &Config) -> usize {
    (0..NSHARDS).filter(|&s| a.shards[s] != b.shards[s]).count()
}
