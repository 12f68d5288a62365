//! The kvraft lab's tester (a port of 6.5840's `kvraft/config.go` and the helpers of its
//! `test_test.go`): KV servers on a labrpc network, clerks with their own connectivity,
//! partitions and restarts, and a recorded history of every client operation, checked for
//! linearizability at the end of each test.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kvraft::{Clerk, KvServer, ServerOptions};
use labrpc::{Network, Persister, Server, Sim, TaskGroup};
use lincheck::models::kv::{KvInput, KvOp};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The original's `electionTimeout`.
pub const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// A clerk made by the tester, with the names of its ends (so the tester can reconnect it).
pub struct TestClerk {
    ck: Clerk,
    id: u64,
}

impl TestClerk {
    pub fn id(&self) -> u64 {
        self.id
    }
}

struct Shared {
    servers: Vec<Option<KvServer>>,
    tasks: Vec<TaskGroup>,
    saved: Vec<Persister>,
    endnames: Vec<Vec<String>>,
    incarnation: Vec<u64>,
    clerks: BTreeMap<u64, Vec<String>>,
}

/// The cluster under test.
pub struct KvConfig {
    pub n: usize,
    net: Network,
    sim: Sim,
    options: ServerOptions,
    state: Mutex<Shared>,
    rng: Mutex<ChaCha8Rng>,
    next_client_id: AtomicU64,
    history: crate::KvHistory,
    summary: crate::Summary,
    monitor: raftcheck::SharedMonitor,
}

impl KvConfig {
    /// The original's `make_config(t, n, unreliable, maxraftstate)` (`None` for -1).
    pub fn new(sim: &Sim, n: usize, unreliable: bool, maxraftstate: Option<usize>) -> Arc<Self> {
        Self::with_options(
            sim,
            n,
            unreliable,
            ServerOptions {
                maxraftstate,
                ..ServerOptions::default()
            },
        )
    }

    /// Like [`KvConfig::new`] with full server options (e.g. a deliberately broken server).
    pub fn with_options(
        sim: &Sim,
        n: usize,
        unreliable: bool,
        options: ServerOptions,
    ) -> Arc<Self> {
        let net = Network::new(sim.rng("net", 0));
        let cfg = Arc::new(KvConfig {
            n,
            net,
            sim: sim.clone(),
            options,
            state: Mutex::new(Shared {
                servers: vec![None; n],
                tasks: (0..n).map(|_| TaskGroup::new()).collect(),
                saved: (0..n).map(|_| Persister::new()).collect(),
                endnames: vec![Vec::new(); n],
                incarnation: vec![0; n],
                clerks: BTreeMap::new(),
            }),
            rng: Mutex::new(sim.rng("tester", 0)),
            next_client_id: AtomicU64::new(n as u64 + 1000),
            history: crate::KvHistory::default(),
            summary: crate::Summary::new(),
            monitor: crate::safety::monitor("kvraft"),
        });
        for i in 0..n {
            cfg.start_server(i);
        }
        cfg.connect_all();
        cfg.net.set_reliable(!unreliable);
        cfg
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn rand(&self, n: u64) -> u64 {
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random_range(0..n)
    }

    pub fn all(&self) -> Vec<usize> {
        (0..self.n).collect()
    }

    /// Enables server i's ends to and from the servers in `to`.
    fn connect_to(&self, st: &Shared, i: usize, to: &[usize]) {
        for &j in to {
            if let Some(name) = st.endnames[i].get(j) {
                self.net.enable(name, true);
            }
            if let Some(name) = st.endnames[j].get(i) {
                self.net.enable(name, true);
            }
        }
    }

    fn disconnect_from(&self, st: &Shared, i: usize, from: &[usize]) {
        for &j in from {
            if let Some(name) = st.endnames[i].get(j) {
                self.net.enable(name, false);
            }
            if let Some(name) = st.endnames[j].get(i) {
                self.net.enable(name, false);
            }
        }
    }

    pub fn connect_all(&self) {
        let st = self.lock();
        for i in 0..self.n {
            self.connect_to(&st, i, &self.all());
        }
    }

    /// Two partitions, each fully connected inside and cut from the other.
    pub fn partition(&self, p1: &[usize], p2: &[usize]) {
        let st = self.lock();
        for &i in p1 {
            self.disconnect_from(&st, i, p2);
            self.connect_to(&st, i, p1);
        }
        for &i in p2 {
            self.disconnect_from(&st, i, p1);
            self.connect_to(&st, i, p2);
        }
    }

    /// A majority without the leader and a minority with it (the original's `make_partition`).
    pub fn make_partition(&self) -> (Vec<usize>, Vec<usize>) {
        let l = self.leader().unwrap_or(0);
        let mut p1 = Vec::new();
        let mut p2 = Vec::new();
        for i in 0..self.n {
            if i != l {
                if p1.len() < self.n / 2 + 1 {
                    p1.push(i);
                } else {
                    p2.push(i);
                }
            }
        }
        p2.push(l);
        (p1, p2)
    }

    /// Server i's Raft status, if it is running.
    pub fn raft_status(&self, i: usize) -> Option<raft::Status> {
        self.lock().servers[i].as_ref().map(|s| s.raft().status())
    }

    /// The Raft nodes of the running servers that the tester has connected (membership changes
    /// go through them).
    pub fn rafts(&self) -> Vec<raft::Node> {
        let st = self.lock();
        st.servers
            .iter()
            .flatten()
            .map(|s| s.raft().clone())
            .collect()
    }

    /// Which server believes it is the leader, if any.
    pub fn leader(&self) -> Option<usize> {
        let st = self.lock();
        (0..self.n).find(|&i| st.servers[i].as_ref().is_some_and(|s| s.raft().state().1))
    }

    /// The original's `ShutdownServer`: cut it off, delete it from the network, kill it, and
    /// keep a copy of what it persisted.
    pub fn shutdown_server(&self, i: usize) {
        let mut st = self.lock();
        self.disconnect_from(&st, i, &self.all());
        // Disable client connections before copying the persister, so the old instance cannot
        // acknowledge something and persist it in the superseded persister.
        self.net.delete_server(&i.to_string());
        st.saved[i] = st.saved[i].copy();
        if let Some(kv) = st.servers[i].take() {
            kv.kill();
        }
        st.tasks[i].kill();
    }

    /// The original's `StartServer`: fresh ends, a copy of its persisted state, a new server.
    /// It is connected by `connect_all` or `partition`.
    pub fn start_server(&self, i: usize) {
        let mut st = self.lock();
        st.incarnation[i] += 1;
        let inc = st.incarnation[i];
        st.endnames[i] = (0..self.n).map(|j| format!("kv{i}->{j}#{inc}")).collect();
        let ends = (0..self.n)
            .map(|j| {
                let name = &st.endnames[i][j];
                let end = self.net.make_end(name.clone());
                self.net.connect(name, j.to_string());
                end
            })
            .collect();
        st.saved[i] = st.saved[i].copy();
        let tasks = TaskGroup::new();
        st.tasks[i] = tasks.clone();
        let mut options = self.options.clone();
        options.raft.observer = crate::safety::observed(&self.monitor).observer;
        let kv = match KvServer::start(
            ends,
            i,
            st.saved[i].clone(),
            options,
            self.sim.rng("kvraft", ((i as u64) << 32) | inc),
            tasks,
        ) {
            Ok(kv) => kv,
            Err(e) => panic!("server {i} cannot start: {e}"),
        };
        let mut server = Server::new();
        for svc in kv.services() {
            server.add_service(svc);
        }
        st.servers[i] = Some(kv);
        drop(st);
        self.net.add_server(i.to_string(), server);
    }

    /// A clerk with its own ends to every server, connected only to those in `to`.
    pub fn make_client(&self, to: &[usize]) -> TestClerk {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        let names: Vec<String> = (0..self.n).map(|j| format!("ck{id}->{j}")).collect();
        let mut ends: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let end = self.net.make_end(name.clone());
                self.net.connect(name, j.to_string());
                end
            })
            .collect();
        // The original hands clerks their servers in a random order.
        ends.shuffle(&mut *self.rng.lock().unwrap_or_else(|p| p.into_inner()));
        self.lock().clerks.insert(id, names);
        let ck = TestClerk {
            ck: Clerk::new(ends, id),
            id,
        };
        self.connect_client(&ck, to);
        ck
    }

    /// Connects a clerk to exactly the servers in `to`.
    pub fn connect_client(&self, ck: &TestClerk, to: &[usize]) {
        self.connect_client_id(ck.id, to);
    }

    /// Like [`KvConfig::connect_client`], by clerk id (for a clerk busy in another task).
    pub fn connect_client_id(&self, id: u64, to: &[usize]) {
        let st = self.lock();
        if let Some(names) = st.clerks.get(&id) {
            for (j, name) in names.iter().enumerate() {
                self.net.enable(name, to.contains(&j));
            }
        }
    }

    pub fn delete_client(&self, ck: &TestClerk) {
        let mut st = self.lock();
        if let Some(names) = st.clerks.remove(&ck.id) {
            for name in names {
                self.net.delete_end(&name);
            }
        }
    }

    /// The largest persisted Raft state of any server.
    pub fn log_size(&self) -> usize {
        let st = self.lock();
        st.saved
            .iter()
            .map(|p| p.raft_state_size())
            .max()
            .unwrap_or(0)
    }

    /// The largest snapshot of any server.
    pub fn snapshot_size(&self) -> usize {
        let st = self.lock();
        st.saved
            .iter()
            .map(|p| p.snapshot_size())
            .max()
            .unwrap_or(0)
    }

    /// The original's `Get(cfg, ck, key, log, cli)`: with `record`, the operation goes into the
    /// history that `check_linearizable` checks.
    pub async fn get(&self, ck: &mut TestClerk, key: &str, record: bool) -> String {
        let cli = record.then_some(ck.id);
        let input = KvInput {
            op: KvOp::Get,
            key: key.to_owned(),
            value: String::new(),
        };
        self.history.record(cli, input, ck.ck.get(key)).await
    }

    pub async fn put(&self, ck: &mut TestClerk, key: &str, value: &str, record: bool) {
        let cli = record.then_some(ck.id);
        let input = KvInput {
            op: KvOp::Put,
            key: key.to_owned(),
            value: value.to_owned(),
        };
        self.history
            .record(cli, input, async {
                ck.ck.put(key, value).await;
                String::new()
            })
            .await;
    }

    pub async fn append(&self, ck: &mut TestClerk, key: &str, value: &str, record: bool) {
        let cli = record.then_some(ck.id);
        let input = KvInput {
            op: KvOp::Append,
            key: key.to_owned(),
            value: value.to_owned(),
        };
        self.history
            .record(cli, input, async {
                ck.ck.append(key, value).await;
                String::new()
            })
            .await;
    }

    /// Checks that `key` reads `value` (the original's `check`).
    pub async fn check(&self, ck: &mut TestClerk, key: &str, value: &str) {
        let v = self.get(ck, key, true).await;
        assert_eq!(v, value, "Get({key}): expected:\n{value}\nreceived:\n{v}");
    }

    pub fn begin(&self, description: &str) {
        self.summary
            .begin(description, &self.net, self.history.ops());
    }

    /// Prints the original's summary line: simulated seconds, peers, RPCs, bytes, client ops.
    pub fn end(&self) {
        crate::safety::check(&self.monitor, "kvraft");
        self.summary
            .end(self.n, &self.net, Some(self.history.ops()), self.sim.seed());
    }

    /// Checks the recorded history for linearizability; on failure writes the HTML page and
    /// panics with its path.
    pub fn check_linearizable(&self) {
        crate::safety::check(&self.monitor, "kvraft");
        self.history.check(self.sim.seed());
    }
}

impl Drop for KvConfig {
    fn drop(&mut self) {
        let st = self.lock();
        for t in &st.tasks {
            t.kill();
        }
    }
}
