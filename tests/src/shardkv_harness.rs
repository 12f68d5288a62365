//! The sharded key/value service's tester (a port of 6.5840's `shardkv/config.go`): three
//! controller replicas and three groups (gids 100, 101, 102) of `n` servers named
//! `server-<gid>-<i>` on one labrpc network; groups join and leave, servers and whole groups shut
//! down and restart from what they persisted; clerks and servers reach other servers through
//! `make_end` as in the original. Client operations can be recorded into a history that is
//! checked for linearizability, as in the kvraft tester.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labrpc::{ClientEnd, Network, Persister, Server, Sim, TaskGroup};
use lincheck::models::kv::{KvInput, KvOp};
use rand::Rng;
use rand::distr::Alphanumeric;
use rand_chacha::ChaCha8Rng;
use shardkv::ctrler::{self, Config, Gid};
use shardkv::{Clerk, MakeEnd, ServerOptions, ShardKvServer};

use crate::shardctrler_harness::CtrlerCluster;

/// Every shardkv test must finish within this much simulated time (the original relies on
/// `go test`'s timeout; its slowest test takes about 25 s).
pub const TEST_TIME_LIMIT: Duration = Duration::from_secs(300);

/// A clerk made by the tester.
pub struct TestClerk {
    ck: Clerk,
    id: u64,
}

impl TestClerk {
    pub fn id(&self) -> u64 {
        self.id
    }
}

struct Group {
    gid: Gid,
    servers: Vec<Option<ShardKvServer>>,
    tasks: Vec<TaskGroup>,
    saved: Vec<Persister>,
    /// `endnames[i][j]`: server i's end to server j of the same group.
    endnames: Vec<Vec<String>>,
    /// `mendnames[i][j]`: server i's end to controller j.
    mendnames: Vec<Vec<String>>,
    incarnation: Vec<u64>,
    monitor: raftcheck::SharedMonitor,
}

/// Makes uniquely named, connected and enabled ends (the tester's `make_end`).
#[derive(Clone)]
struct EndMaker {
    net: Network,
    next: Arc<AtomicU64>,
}

impl EndMaker {
    fn make(&self, server: &str) -> ClientEnd {
        let name = format!("end{}", self.next.fetch_add(1, Ordering::Relaxed));
        let end = self.net.make_end(name.clone());
        self.net.connect(&name, server);
        self.net.enable(&name, true);
        end
    }

    fn make_end(&self) -> MakeEnd {
        let maker = self.clone();
        Arc::new(move |server: &str| maker.make(server))
    }
}

/// The system under test.
pub struct ShardKvConfig {
    /// Servers per group.
    pub n: usize,
    pub ngroups: usize,
    net: Network,
    sim: Sim,
    maxraftstate: Option<usize>,
    /// Every group's bootstrap voters (`None`: all `n` servers); the others join when added.
    voters: Option<Vec<usize>>,
    ctrlers: CtrlerCluster,
    /// The tester's controller clerk (the original's `mck`).
    mck: tokio::sync::Mutex<ctrler::Clerk>,
    groups: Mutex<Vec<Group>>,
    ends: EndMaker,
    rng: Mutex<ChaCha8Rng>,
    next_client_id: AtomicU64,
    history: crate::KvHistory,
    summary: crate::Summary,
}

impl ShardKvConfig {
    /// The original's `make_config(t, n, unreliable, maxraftstate)` (`None` for -1): three
    /// controller replicas and three groups of `n` servers, all started; no group has joined.
    pub fn new(sim: &Sim, n: usize, unreliable: bool, maxraftstate: Option<usize>) -> Arc<Self> {
        Self::with_voters(sim, n, unreliable, maxraftstate, None)
    }

    /// Like [`ShardKvConfig::new`], with only `voters` (of each group's `n` servers) in the
    /// groups' bootstrap configurations: the other servers run, and join when added.
    pub fn with_voters(
        sim: &Sim,
        n: usize,
        unreliable: bool,
        maxraftstate: Option<usize>,
        voters: Option<Vec<usize>>,
    ) -> Arc<Self> {
        let net = Network::new(sim.rng("net", 0));
        let ends = EndMaker {
            net: net.clone(),
            next: Arc::new(AtomicU64::new(0)),
        };
        let ctrlers = CtrlerCluster::start(sim, &net, 3, "ctrler");
        let mut rng = sim.rng("tester", 0);
        let mck = ctrler::Clerk::new(ctrlers.make_ends(&mut rng), 1);
        let ngroups = 3;
        let groups = (0..ngroups)
            .map(|gi| Group {
                gid: 100 + gi as Gid,
                monitor: crate::safety::monitor(&format!("group {}", 100 + gi as Gid)),
                servers: vec![None; n],
                tasks: (0..n).map(|_| TaskGroup::new()).collect(),
                saved: (0..n).map(|_| Persister::new()).collect(),
                endnames: vec![Vec::new(); n],
                mendnames: vec![Vec::new(); n],
                incarnation: vec![0; n],
            })
            .collect();
        let cfg = Arc::new(ShardKvConfig {
            n,
            ngroups,
            net: net.clone(),
            sim: sim.clone(),
            maxraftstate,
            voters,
            ctrlers,
            mck: tokio::sync::Mutex::new(mck),
            groups: Mutex::new(groups),
            ends,
            rng: Mutex::new(rng),
            next_client_id: AtomicU64::new(1000),
            history: crate::KvHistory::default(),
            summary: crate::Summary::new(),
        });
        for gi in 0..ngroups {
            for i in 0..n {
                cfg.start_server(gi, i);
            }
        }
        net.set_reliable(!unreliable);
        cfg
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rng(&self) -> MutexGuard<'_, ChaCha8Rng> {
        self.rng.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn rand(&self, n: u64) -> u64 {
        self.rng().random_range(0..n)
    }

    /// A random alphanumeric string (the original's `randstring`).
    pub fn randstring(&self, n: usize) -> String {
        let mut rng = self.rng();
        (0..n)
            .map(|_| char::from(rng.sample(Alphanumeric)))
            .collect()
    }

    /// The gid of group `gi`.
    pub fn gid(&self, gi: usize) -> Gid {
        100 + gi as Gid
    }

    /// The original's `servername(gid, i)`.
    pub fn server_name(gid: Gid, i: usize) -> String {
        format!("server-{gid}-{i}")
    }

    fn server_names(&self, gi: usize) -> Vec<String> {
        (0..self.n)
            .map(|i| Self::server_name(self.gid(gi), i))
            .collect()
    }

    /// The original's `StartServer(gi, i)`: fresh ends to its group and to the controllers, a
    /// copy of what it persisted, and a new server.
    pub fn start_server(&self, gi: usize, i: usize) {
        let mut groups = self.lock();
        let gg = &mut groups[gi];
        gg.incarnation[i] += 1;
        let inc = gg.incarnation[i];
        let gid = gg.gid;
        gg.endnames[i] = (0..self.n)
            .map(|j| format!("g{gid}-{i}->{j}#{inc}"))
            .collect();
        let ends = (0..self.n)
            .map(|j| {
                let name = &gg.endnames[i][j];
                let end = self.net.make_end(name.clone());
                self.net.connect(name, Self::server_name(gid, j));
                self.net.enable(name, true);
                end
            })
            .collect();
        gg.mendnames[i] = (0..self.ctrlers.n)
            .map(|j| format!("g{gid}-{i}->ctrler{j}#{inc}"))
            .collect();
        let mends = (0..self.ctrlers.n)
            .map(|j| {
                let name = &gg.mendnames[i][j];
                let end = self.net.make_end(name.clone());
                self.net.connect(name, self.ctrlers.server_name(j));
                self.net.enable(name, true);
                end
            })
            .collect();
        gg.saved[i] = gg.saved[i].copy();
        let tasks = TaskGroup::new();
        gg.tasks[i] = tasks.clone();
        let options = ServerOptions {
            maxraftstate: self.maxraftstate,
            raft: raft::Options {
                trace_group: Some(format!("{}", 100 + gi as Gid)),
                ..crate::safety::observed(&gg.monitor)
            },
            voters: self.voters.clone(),
            ..ServerOptions::default()
        };
        let seed = gid << 40 | (i as u64) << 32 | inc;
        let kv = match ShardKvServer::start(
            ends,
            i,
            gg.saved[i].clone(),
            options,
            gid,
            mends,
            self.ends.make_end(),
            self.sim.rng("shardkv", seed),
            &tasks,
        ) {
            Ok(kv) => kv,
            Err(e) => panic!("server {i} of group {gid} cannot start: {e}"),
        };
        let mut srv = Server::new();
        for svc in kv.services() {
            srv.add_service(svc);
        }
        gg.servers[i] = Some(kv);
        drop(groups);
        self.net.add_server(Self::server_name(gid, i), srv);
    }

    /// The Raft nodes of group `gi`'s running servers (membership changes go through them).
    pub fn group_rafts(&self, gi: usize) -> Vec<raft::Node> {
        self.lock()[gi]
            .servers
            .iter()
            .flatten()
            .map(|s| s.raft().clone())
            .collect()
    }

    /// The original's `ShutdownServer(gi, i)`: stop it sending, delete it from the network, keep
    /// a copy of what it persisted, and kill it.
    pub fn shutdown_server(&self, gi: usize, i: usize) {
        let mut groups = self.lock();
        let gg = &mut groups[gi];
        for name in gg.endnames[i].iter().chain(&gg.mendnames[i]) {
            self.net.enable(name, false);
        }
        // Delete the server before copying the persister, so the old instance cannot
        // acknowledge something and persist it in the superseded persister.
        self.net.delete_server(&Self::server_name(gg.gid, i));
        gg.saved[i] = gg.saved[i].copy();
        gg.servers[i] = None;
        gg.tasks[i].kill();
    }

    pub fn shutdown_group(&self, gi: usize) {
        for i in 0..self.n {
            self.shutdown_server(gi, i);
        }
    }

    pub fn start_group(&self, gi: usize) {
        for i in 0..self.n {
            self.start_server(gi, i);
        }
    }

    /// The original's `checklogs`: with snapshots, no server's Raft state may exceed
    /// 8 * maxraftstate; without, no server may have a snapshot.
    pub fn check_logs(&self) {
        let groups = self.lock();
        for gg in groups.iter() {
            for (i, p) in gg.saved.iter().enumerate() {
                let raft = p.raft_state_size();
                let snap = p.snapshot_size();
                match self.maxraftstate {
                    Some(max) => assert!(
                        raft <= 8 * max,
                        "server {i} of group {}: persister.RaftStateSize() {raft}, but \
                         maxraftstate {max}",
                        gg.gid
                    ),
                    None => assert!(
                        snap == 0,
                        "server {i} of group {}: maxraftstate is -1, but snapshot is non-empty!",
                        gg.gid
                    ),
                }
            }
        }
    }

    /// Raft state plus snapshot, summed over every server of every group.
    pub fn total_persisted_size(&self) -> usize {
        let groups = self.lock();
        groups
            .iter()
            .flat_map(|gg| gg.saved.iter())
            .map(|p| p.raft_state_size() + p.snapshot_size())
            .sum()
    }

    /// A clerk with its own ends to the controllers and its own `make_end`.
    pub fn make_client(&self) -> TestClerk {
        let ends = self.ctrlers.make_ends(&mut self.rng());
        self.make_client_for(ends)
    }

    /// A clerk that reads its configurations from another controller service.
    pub fn make_client_of(&self, ctrlers: &CtrlerCluster) -> TestClerk {
        let ends = ctrlers.make_ends(&mut self.rng());
        self.make_client_for(ends)
    }

    fn make_client_for(&self, ctrler_ends: Vec<ClientEnd>) -> TestClerk {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        TestClerk {
            ck: Clerk::new(ctrler_ends, self.ends.make_end(), id),
            id,
        }
    }

    /// A second controller service on the same network (replicas `<prefix><i>`), which the
    /// groups know nothing about.
    pub fn start_ctrler_service(&self, prefix: &str) -> CtrlerCluster {
        CtrlerCluster::start(&self.sim, &self.net, 3, prefix)
    }

    /// A controller clerk of `ctrlers` (for administering a second controller service).
    pub fn make_ctrler_clerk(&self, ctrlers: &CtrlerCluster) -> ctrler::Clerk {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        ctrler::Clerk::new(ctrlers.make_ends(&mut self.rng()), id)
    }

    /// The servers of group `gi`, as a Join names them.
    pub fn group_servers(&self, gi: usize) -> BTreeMap<Gid, Vec<String>> {
        [(self.gid(gi), self.server_names(gi))]
            .into_iter()
            .collect()
    }

    /// The original's `join(gi)`.
    pub async fn join(&self, gi: usize) {
        self.joinm(&[gi]).await;
    }

    /// The original's `joinm(gis)`: one Join of several groups.
    pub async fn joinm(&self, gis: &[usize]) {
        let m = gis.iter().flat_map(|&gi| self.group_servers(gi)).collect();
        self.mck.lock().await.join(m).await;
    }

    /// The original's `leave(gi)`.
    pub async fn leave(&self, gi: usize) {
        self.leavem(&[gi]).await;
    }

    /// The original's `leavem(gis)`: one Leave of several groups.
    pub async fn leavem(&self, gis: &[usize]) {
        let gids = gis.iter().map(|&gi| self.gid(gi)).collect();
        self.mck.lock().await.leave(gids).await;
    }

    /// The latest configuration (the original's `mck.Query(-1)`).
    pub async fn query_latest(&self) -> Config {
        self.mck.lock().await.query(None).await
    }

    /// Sets the network reliable or not (the original's `net.Reliable`).
    pub fn set_reliable(&self, yes: bool) {
        self.net.set_reliable(yes);
    }

    /// `ck.Get(key)`; with `record`, the operation goes into the history.
    pub async fn get(&self, ck: &mut TestClerk, key: &str, record: bool) -> String {
        let input = KvInput {
            op: KvOp::Get,
            key: key.to_owned(),
            value: String::new(),
        };
        self.history
            .record(record.then_some(ck.id), input, ck.ck.get(key))
            .await
    }

    pub async fn put(&self, ck: &mut TestClerk, key: &str, value: &str, record: bool) {
        let input = KvInput {
            op: KvOp::Put,
            key: key.to_owned(),
            value: value.to_owned(),
        };
        self.history
            .record(record.then_some(ck.id), input, async {
                ck.ck.put(key, value).await;
                String::new()
            })
            .await;
    }

    pub async fn append(&self, ck: &mut TestClerk, key: &str, value: &str, record: bool) {
        let input = KvInput {
            op: KvOp::Append,
            key: key.to_owned(),
            value: value.to_owned(),
        };
        self.history
            .record(record.then_some(ck.id), input, async {
                ck.ck.append(key, value).await;
                String::new()
            })
            .await;
    }

    /// The original's `check(t, ck, key, value)`, recorded.
    pub async fn check(&self, ck: &mut TestClerk, key: &str, value: &str) {
        let v = self.get(ck, key, true).await;
        assert_eq!(v, value, "Get({key}): expected:\n{value}\nreceived:\n{v}");
    }

    /// Fails the test if a group's or the controller's Raft broke an invariant (a checkpoint;
    /// the monitors also fail the test the moment it happens).
    pub fn check_safety(&self) {
        self.ctrlers.check_safety();
        for gg in self.lock().iter() {
            crate::safety::check(&gg.monitor, &format!("group {}", gg.gid));
        }
    }

    pub fn begin(&self, description: &str) {
        self.summary
            .begin(description, &self.net, self.history.ops());
    }

    /// Prints the "Passed" line: simulated seconds, servers per group, RPCs, bytes, client ops.
    pub fn end(&self) {
        self.check_safety();
        self.summary
            .end(self.n, &self.net, Some(self.history.ops()), self.sim.seed());
    }

    /// Checks the recorded history for linearizability; on failure writes the HTML page and
    /// panics with its path.
    pub fn check_linearizable(&self) {
        self.check_safety();
        self.history.check(self.sim.seed());
    }
}

impl Drop for ShardKvConfig {
    fn drop(&mut self) {
        let groups = self.lock();
        for gg in groups.iter() {
            for t in &gg.tasks {
                t.kill();
            }
        }
    }
}
