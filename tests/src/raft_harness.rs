//! The Raft lab's tester (a port of 6.5840's `raft/config.go`): it builds a cluster of Raft nodes
//! on a labrpc network, crashes, restarts, partitions them, and checks what they apply.
//!
//! What it checks, as the original does: at most one leader per term and exactly one when a
//! majority is connected, agreement on terms, every server's applied sequence agreeing index by
//! index and arriving in order, and (for snapshot tests) the log staying small.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labrpc::{Network, Persister, Server, Sim, TaskGroup};
use raft::{
    Apply, ConfChange, ConfChangeError, LabrpcTransport, LogIndex, Membership, Node, NodeId,
};
use raftcheck::SharedMonitor;
use rand::Rng;
use rand::distr::Alphanumeric;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep};

/// The tester asks for elections to complete within five seconds; it waits this long between
/// checks (the original's `RaftElectionTimeout`).
pub const ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);
/// The snapshot tests snapshot after every this many applied entries.
pub const SNAPSHOT_INTERVAL: u64 = 10;
/// The snapshot tests fail if any persisted Raft state grows past this.
pub const MAX_LOG_SIZE: usize = 2000;
/// Every test must finish within this much simulated time.
pub const TEST_TIME_LIMIT: Duration = Duration::from_secs(120);

/// A command as the tests submit them: the original uses Go ints and strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmd {
    Int(i64),
    Str(String),
    /// A configuration entry (Raft's own), as `Membership` displays it.
    Config(String),
    /// An empty entry a leader appends by itself (part 3G: to commit an entry of its term
    /// before a configuration change).
    Noop,
}

impl From<i64> for Cmd {
    fn from(v: i64) -> Self {
        Cmd::Int(v)
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cmd::Int(v) => write!(f, "{v}"),
            Cmd::Config(c) => write!(f, "config {c}"),
            Cmd::Noop => write!(f, "no-op"),
            Cmd::Str(s) if s.len() > 16 => write!(f, "{:?}..({} bytes)", &s[..16], s.len()),
            Cmd::Str(s) => write!(f, "{s:?}"),
        }
    }
}

fn encode_cmd(cmd: &Cmd) -> Vec<u8> {
    postcard::to_stdvec(cmd).unwrap_or_default()
}

/// Runs one Raft test: seed and trace from the environment, the replay line on failure, and the
/// per-test limit of 120 simulated seconds.
pub fn raft_test<F, Fut>(body: F)
where
    F: FnOnce(Sim) -> Fut,
    Fut: Future<Output = ()>,
{
    crate::sim_test(TEST_TIME_LIMIT, body);
}

/// Joins tasks spawned by a test, re-raising the first panic (a tester `fatal` inside a task).
pub async fn join_all<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("tester task failed: {e}"),
        }
    }
    out
}

struct Shared {
    rafts: Vec<Option<Node>>,
    tasks: Vec<TaskGroup>,
    apply_err: Vec<Option<String>>,
    connected: Vec<bool>,
    saved: Vec<Persister>,
    endnames: Vec<Vec<String>>,
    logs: Vec<BTreeMap<u64, Cmd>>,
    last_applied: Vec<u64>,
    max_index: u64,
    incarnation: Vec<u64>,
    /// Every configuration entry applied by any server, by index (all servers agree on them:
    /// `check_logs`).
    configs: BTreeMap<u64, Membership>,
}

impl Shared {
    /// The original's `checkLogs`: has any server applied something else at this index?
    fn check_logs(&mut self, i: usize, index: u64, cmd: Cmd) -> (Option<String>, bool) {
        let mut err = None;
        for (j, log) in self.logs.iter().enumerate() {
            if let Some(old) = log.get(&index)
                && *old != cmd
            {
                // some server has already committed a different value for this entry!
                err = Some(format!(
                    "commit index={index} server={i} {cmd} != server={j} {old}"
                ));
            }
        }
        let prevok = self.logs[i].contains_key(&(index - 1));
        self.logs[i].insert(index, cmd);
        self.max_index = self.max_index.max(index);
        (err, prevok)
    }

    /// The original's `ingestSnap`: restore server i's applied log from a snapshot.
    fn ingest_snap(&mut self, i: usize, snapshot: &[u8], index: Option<u64>) -> Option<String> {
        if snapshot.is_empty() {
            return Some("nil snapshot".into());
        }
        let (last_included, xlog): (u64, Vec<Option<Cmd>>) = match postcard::from_bytes(snapshot) {
            Ok(v) => v,
            Err(e) => return Some(format!("snapshot decode error: {e}")),
        };
        if let Some(index) = index
            && index != last_included
        {
            return Some(format!(
                "server {i} snapshot doesn't match m.SnapshotIndex ({index} vs {last_included})"
            ));
        }
        self.logs[i] = xlog
            .into_iter()
            .enumerate()
            .filter_map(|(j, c)| c.map(|c| (j as u64, c)))
            .collect();
        self.last_applied[i] = last_included;
        None
    }
}

/// The cluster under test.
pub struct Config {
    pub n: usize,
    net: Network,
    sim: Sim,
    snapshot: bool,
    state: Arc<Mutex<Shared>>,
    rng: Mutex<ChaCha8Rng>,
    summary: crate::Summary,
    monitor: SharedMonitor,
    /// The Raft extensions the servers run with (none in parts 3A-3D).
    features: raft::Features,
    /// The servers of the bootstrap configuration (all of them but in part 3G); the others
    /// start with no configuration (`peers: vec![]`) and wait to be added.
    bootstrap: Vec<usize>,
}

impl Config {
    /// The original's `make_config(t, n, unreliable, snapshot)`: n servers, all started and
    /// connected, long delays on.
    pub fn new(sim: &Sim, n: usize, unreliable: bool, snapshot: bool) -> Config {
        Config::with_features(sim, n, unreliable, snapshot, raft::Features::default())
    }

    /// Like [`Config::new`], with servers running the given extensions (parts 3E and 3F).
    pub fn with_features(
        sim: &Sim,
        n: usize,
        unreliable: bool,
        snapshot: bool,
        features: raft::Features,
    ) -> Config {
        Config::with_bootstrap(
            sim,
            n,
            unreliable,
            snapshot,
            features,
            &(0..n).collect::<Vec<_>>(),
        )
    }

    /// Part 3G: n servers of which only `bootstrap` form the initial configuration (all
    /// voters); the others start with no configuration and join when a leader adds them
    /// ([`Config::change_membership`]).
    pub fn with_bootstrap(
        sim: &Sim,
        n: usize,
        unreliable: bool,
        snapshot: bool,
        features: raft::Features,
        bootstrap: &[usize],
    ) -> Config {
        let net = Network::new(sim.rng("net", 0));
        net.set_reliable(!unreliable);
        net.set_long_delays(true);
        let cfg = Config {
            n,
            net,
            sim: sim.clone(),
            snapshot,
            state: Arc::new(Mutex::new(Shared {
                rafts: vec![None; n],
                tasks: (0..n).map(|_| TaskGroup::new()).collect(),
                apply_err: vec![None; n],
                connected: vec![false; n],
                saved: (0..n).map(|_| Persister::new()).collect(),
                endnames: vec![Vec::new(); n],
                logs: vec![BTreeMap::new(); n],
                last_applied: vec![0; n],
                max_index: 0,
                incarnation: vec![0; n],
                configs: BTreeMap::new(),
            })),
            rng: Mutex::new(sim.rng("tester", 0)),
            summary: crate::Summary::new(),
            monitor: crate::safety::monitor("raft"),
            features,
            bootstrap: bootstrap.to_vec(),
        };
        for i in 0..n {
            cfg.start1(i);
        }
        for i in 0..n {
            cfg.connect(i);
        }
        cfg
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A random number in `0..n` from the tester's own generator.
    pub fn rand(&self, n: u64) -> u64 {
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random_range(0..n)
    }

    /// A random non-negative integer command (the original's `rand.Int()`).
    pub fn rand_int(&self) -> i64 {
        (self.rand(u64::MAX) >> 1) as i64
    }

    /// A random alphanumeric string of `n` characters (the original's `randstring`).
    pub fn rand_string(&self, n: usize) -> String {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        (0..n).map(|_| rng.sample(Alphanumeric) as char).collect()
    }

    pub fn net(&self) -> &Network {
        &self.net
    }

    /// The node at index i, if it is running.
    pub fn raft(&self, i: usize) -> Option<Node> {
        self.lock().rafts[i].clone()
    }

    pub fn is_connected(&self, i: usize) -> bool {
        self.lock().connected[i]
    }

    /// The original's `crash1`: disconnect, delete the server, kill the node, and keep a copy of
    /// what it persisted for the next incarnation.
    pub fn crash1(&self, i: usize) {
        crate::test_event("test.crash", serde_json::json!({ "server": i }));
        self.disconnect(i);
        self.net.delete_server(&i.to_string());
        let mut st = self.lock();
        // A fresh persister, in case the old instance continues to update the Persister, with a
        // copy of the old one's content so the next instance starts from the last saved state.
        st.saved[i] = st.saved[i].copy();
        if let Some(rf) = st.rafts[i].take() {
            rf.kill();
        }
        st.tasks[i].kill();
    }

    /// The original's `start1`: (re)start server i with fresh client ends and its saved state.
    pub fn start1(&self, i: usize) {
        self.crash1(i);
        crate::test_event("test.start", serde_json::json!({ "server": i }));
        let mut st = self.lock();
        st.incarnation[i] += 1;
        let inc = st.incarnation[i];
        // A fresh set of outgoing end names, so the old instance's ends cannot send.
        st.endnames[i] = (0..self.n).map(|j| format!("{i}->{j}#{inc}")).collect();
        let ends = (0..self.n)
            .map(|j| {
                let name = &st.endnames[i][j];
                let end = self.net.make_end(name.clone());
                self.net.connect(name, j.to_string());
                end
            })
            .collect();
        st.last_applied[i] = 0;
        st.saved[i] = st.saved[i].copy();
        let snapshot = st.saved[i].read_snapshot();
        if !snapshot.is_empty()
            && let Some(e) = st.ingest_snap(i, &snapshot, None)
        {
            panic!("{e}");
        }
        let tasks = TaskGroup::new();
        st.tasks[i] = tasks.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        // A server outside the bootstrap configuration joins: it knows no configuration until a
        // leader's entries or snapshot bring one.
        let peers = if self.bootstrap.contains(&i) {
            self.bootstrap.iter().map(|p| NodeId(*p as u64)).collect()
        } else {
            Vec::new()
        };
        let node = match Node::start(
            raft::Config::lab(NodeId(i as u64), peers).with(self.features),
            LabrpcTransport::new(ends),
            st.saved[i].clone(),
            tx,
            self.sim.rng("raft", ((i as u64) << 32) | inc),
            tasks.clone(),
            crate::safety::observed(&self.monitor),
        ) {
            Ok(node) => node,
            Err(e) => panic!("server {i} cannot start: {e}"),
        };
        st.rafts[i] = Some(node.clone());
        drop(st);
        tasks.spawn(applier(
            self.state.clone(),
            i,
            rx,
            node.clone(),
            self.snapshot,
        ));
        let mut server = Server::new();
        server.add_service(node.service());
        self.net.add_server(i.to_string(), server);
    }

    /// Attaches server i to the network: its outgoing and incoming ends to connected servers.
    pub fn connect(&self, i: usize) {
        crate::test_event("test.connect", serde_json::json!({ "server": i }));
        let mut st = self.lock();
        st.connected[i] = true;
        for j in 0..self.n {
            if st.connected[j] {
                if let Some(name) = st.endnames[i].get(j) {
                    self.net.enable(name, true);
                }
                if let Some(name) = st.endnames[j].get(i) {
                    self.net.enable(name, true);
                }
            }
        }
    }

    /// Detaches server i from the network.
    pub fn disconnect(&self, i: usize) {
        crate::test_event("test.disconnect", serde_json::json!({ "server": i }));
        let mut st = self.lock();
        st.connected[i] = false;
        for j in 0..self.n {
            if let Some(name) = st.endnames[i].get(j) {
                self.net.enable(name, false);
            }
            if let Some(name) = st.endnames[j].get(i) {
                self.net.enable(name, false);
            }
        }
    }

    pub fn rpc_count(&self, i: usize) -> u64 {
        self.net.count(&i.to_string())
    }

    pub fn rpc_total(&self) -> u64 {
        self.net.total_count()
    }

    pub fn bytes_total(&self) -> u64 {
        self.net.total_bytes()
    }

    pub fn set_unreliable(&self, unreliable: bool) {
        self.net.set_reliable(!unreliable);
    }

    pub fn set_long_reordering(&self, on: bool) {
        self.net.set_long_reordering(on);
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

    /// Starts a test: prints its name and remembers the counters, to report what it used.
    pub fn begin(&self, description: &str) {
        crate::test_event(
            "test.begin",
            serde_json::json!({ "name": description, "servers": self.n }),
        );
        let max_index = self.lock().max_index;
        self.summary.begin(description, &self.net, max_index);
    }

    /// Ends a test: checks no apply errors and prints the original's summary line (simulated
    /// seconds, peers, RPCs, bytes, commands) with the seed.
    pub fn end(&self) {
        self.check_apply_errors();
        let max_index = self.lock().max_index;
        self.summary
            .end(self.n, &self.net, Some(max_index), self.sim.seed());
    }

    /// Fails the test if the safety monitor saw a violation (it also fails the test the moment
    /// it happens; this is the tester's own checkpoint).
    pub fn check_safety(&self) {
        crate::safety::check(&self.monitor, "raft");
    }

    fn check_apply_errors(&self) {
        self.check_safety();
        let st = self.lock();
        for (i, e) in st.apply_err.iter().enumerate() {
            if let Some(e) = e {
                panic!("apply error on server {i}: {e}");
            }
        }
    }

    /// Checks that one of the connected servers thinks it is the leader, and no other
    /// connected server of the same term does; retries over about five seconds.
    pub async fn check_one_leader(&self) -> usize {
        for _ in 0..10 {
            let ms = 450 + self.rand(100);
            sleep(Duration::from_millis(ms)).await;
            self.check_safety();
            let mut leaders: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
            {
                let st = self.lock();
                for i in 0..self.n {
                    if st.connected[i]
                        && let Some(rf) = &st.rafts[i]
                    {
                        let (term, leader) = rf.state();
                        if leader {
                            leaders.entry(term.0).or_default().push(i);
                        }
                    }
                }
            }
            for (term, ls) in &leaders {
                if ls.len() > 1 {
                    panic!("term {term} has {} (>1) leaders", ls.len());
                }
            }
            if let Some((_, ls)) = leaders.iter().next_back() {
                return ls[0];
            }
        }
        panic!("expected one leader, got none");
    }

    /// Checks that every connected server agrees on the term, and returns it.
    pub fn check_terms(&self) -> u64 {
        let st = self.lock();
        let mut term = None;
        for i in 0..self.n {
            if st.connected[i]
                && let Some(rf) = &st.rafts[i]
            {
                let xterm = rf.state().0.0;
                match term {
                    None => term = Some(xterm),
                    Some(t) if t != xterm => panic!("servers disagree on term"),
                    Some(_) => {}
                }
            }
        }
        term.unwrap_or(0)
    }

    /// Checks that none of the connected servers thinks it is the leader.
    pub fn check_no_leader(&self) {
        let st = self.lock();
        for i in 0..self.n {
            if st.connected[i]
                && let Some(rf) = &st.rafts[i]
                && rf.state().1
            {
                panic!("expected no leader among connected servers, but {i} claims to be leader");
            }
        }
    }

    /// How many servers think the entry at `index` is committed, and its command.
    pub fn n_committed(&self, index: u64) -> (usize, Option<Cmd>) {
        self.check_safety();
        let st = self.lock();
        let mut count = 0;
        let mut cmd: Option<Cmd> = None;
        for i in 0..self.n {
            if let Some(e) = &st.apply_err[i] {
                panic!("{e}");
            }
            if let Some(cmd1) = st.logs[i].get(&index) {
                if let Some(c) = &cmd
                    && c != cmd1
                {
                    panic!("committed values do not match: index {index}, {c}, {cmd1}");
                }
                count += 1;
                cmd = Some(cmd1.clone());
            }
        }
        (count, cmd)
    }

    /// Waits for at least `n` servers to commit `index`, but gives up after a while if the term
    /// moved past `start_term` (returns `None`, the original's -1).
    pub async fn wait(&self, index: u64, n: usize, start_term: Option<u64>) -> Option<Cmd> {
        let mut to = Duration::from_millis(10);
        for _ in 0..30 {
            let (nd, _) = self.n_committed(index);
            if nd >= n {
                break;
            }
            sleep(to).await;
            if to < Duration::from_secs(1) {
                to *= 2;
            }
            if let Some(start_term) = start_term {
                let st = self.lock();
                for rf in st.rafts.iter().flatten() {
                    if rf.state().0.0 > start_term {
                        // someone has moved on; can no longer guarantee that we'll "win"
                        return None;
                    }
                }
            }
        }
        let (nd, cmd) = self.n_committed(index);
        if nd < n {
            panic!("only {nd} decided for index {index}; wanted {n}");
        }
        cmd
    }

    /// The original's `one`: submit `cmd` to whichever server is leader and wait until at least
    /// `expected` servers committed it at the returned index. With `retry`, resubmit after a
    /// failed attempt (a leader may have failed after accepting it); the whole thing must
    /// succeed within 10 seconds.
    pub async fn one(&self, cmd: impl Into<Cmd>, expected: usize, retry: bool) -> u64 {
        let cmd = cmd.into();
        crate::test_event(
            "test.one",
            serde_json::json!({ "cmd": cmd.to_string(), "expected": expected }),
        );
        let bytes = encode_cmd(&cmd);
        let t0 = Instant::now();
        let mut starts = 0;
        while t0.elapsed() < Duration::from_secs(10) {
            // try all the servers, maybe one is the leader.
            let mut index = None;
            for _ in 0..self.n {
                starts = (starts + 1) % self.n;
                let rf = self.connected_raft(starts);
                if let Some(rf) = rf
                    && let Ok((i, _)) = rf.start_command(bytes.clone()).await
                {
                    index = Some(i.0);
                    break;
                }
            }
            if let Some(index) = index {
                // somebody claimed to be the leader and to have submitted our command; wait a
                // while for agreement.
                let t1 = Instant::now();
                while t1.elapsed() < Duration::from_secs(2) {
                    let (nd, cmd1) = self.n_committed(index);
                    if nd > 0 && nd >= expected && cmd1.as_ref() == Some(&cmd) {
                        // committed, and it was the command we submitted.
                        crate::test_event(
                            "test.agreed",
                            serde_json::json!({ "cmd": cmd.to_string(), "index": index, "servers": nd }),
                        );
                        return index;
                    }
                    sleep(Duration::from_millis(20)).await;
                }
                if !retry {
                    panic!("one({cmd}) failed to reach agreement");
                }
            } else {
                sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("one({cmd}) failed to reach agreement");
    }

    /// Server i's Raft node, if it is running and connected (what `one` and membership
    /// changes try, one server after another).
    fn connected_raft(&self, i: usize) -> Option<Node> {
        let st = self.lock();
        if st.connected[i] {
            st.rafts[i].clone()
        } else {
            None
        }
    }

    /// `Start` on server i, the way tests call it directly: `None` if it is dead or not leader.
    pub async fn start(&self, i: usize, cmd: impl Into<Cmd>) -> Option<(u64, u64)> {
        let rf = self.raft(i)?;
        rf.start_command(encode_cmd(&cmd.into()))
            .await
            .ok()
            .map(|(i, t)| (i.0, t.0))
    }

    /// `GetState` on server i.
    pub fn state(&self, i: usize) -> Option<(u64, bool)> {
        self.raft(i).map(|rf| {
            let (t, l) = rf.state();
            (t.0, l)
        })
    }
}

/// Whether configuration `m` already has what `change` asks for.
fn achieved(m: &Membership, change: &ConfChange) -> bool {
    match change {
        ConfChange::AddVoter(id) => m.voters.contains(id),
        ConfChange::AddLearner(id) => m.is_learner(*id),
        ConfChange::Remove(id) => !m.contains(*id),
        ConfChange::Replace { voters, learners } => {
            !m.is_joint() && m.voters == *voters && m.learners == *learners
        }
    }
}

impl Config {
    // -----------------------------------------------------------------------------------------
    // Part 3G: membership changes

    /// The configuration server i acts on (the latest in its log or snapshot, committed or
    /// not), if it is running.
    pub fn membership(&self, i: usize) -> Option<Membership> {
        self.raft(i).map(|rf| rf.status().membership)
    }

    /// The servers `m` makes voters (of either half while joint), as tester indices.
    pub fn voters(m: &Membership) -> Vec<usize> {
        let mut v: Vec<usize> = m
            .voters
            .iter()
            .chain(&m.outgoing)
            .map(|id| id.0 as usize)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The configuration entries committed so far (applied by some server), by index.
    pub fn committed_configs(&self) -> BTreeMap<u64, Membership> {
        self.lock().configs.clone()
    }

    /// Like [`Config::try_change_membership`]; fails the test if the change is refused.
    pub async fn change_membership(&self, change: ConfChange) -> (Membership, u64) {
        match self.try_change_membership(change.clone()).await {
            Ok(done) => done,
            Err(e) => panic!("change_membership({change:?}) refused: {e}"),
        }
    }

    /// Asks whichever connected server is leader to make `change` (the way `one` submits a
    /// command), retrying what passes with time: no leader, no entry of the leader's term
    /// committed yet, another change uncommitted or a joint configuration not left yet, a
    /// transfer under way, a new voter still behind. Then waits until the configuration entry
    /// is committed (applied by some server) and, for a change through a joint configuration,
    /// until the final configuration the leader appends by itself is committed too. Returns
    /// that configuration and its index. An error that no retry can fix (the change is
    /// invalid, or already in force) is returned; 20 seconds without success fail the test.
    pub async fn try_change_membership(
        &self,
        change: ConfChange,
    ) -> Result<(Membership, u64), ConfChangeError> {
        crate::test_event(
            "test.change_membership",
            serde_json::json!({ "change": format!("{change:?}") }),
        );
        let t0 = Instant::now();
        let mut appended = false;
        let mut starts = 0;
        let mut last_refusal = None;
        while t0.elapsed() < Duration::from_secs(20) {
            let mut proposed = None;
            for _ in 0..self.n {
                starts = (starts + 1) % self.n;
                let rf = self.connected_raft(starts);
                let Some(rf) = rf else { continue };
                if appended {
                    // An earlier attempt may have gone through after all.
                    let s = rf.status();
                    if s.role == raft::Role::Leader
                        && s.membership_index <= s.commit
                        && achieved(&s.membership, &change)
                    {
                        return Ok((s.membership, s.membership_index.0));
                    }
                }
                match rf.change_membership(change.clone()).await {
                    Ok((index, _)) => {
                        proposed = Some(index.0);
                        break;
                    }
                    Err(ConfChangeError::NotLeader(_)) => {}
                    Err(
                        e @ (ConfChangeError::NotCommittedInTerm
                        | ConfChangeError::InProgress(_)
                        | ConfChangeError::Joint
                        | ConfChangeError::Transferring
                        | ConfChangeError::Behind { .. }),
                    ) => {
                        last_refusal = Some(e);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some(index) = proposed else {
                sleep(Duration::from_millis(50)).await;
                continue;
            };
            appended = true;
            // Wait for the entry to commit: some server applies a configuration at `index`
            // (another command there means the entry was overwritten: try again).
            let t1 = Instant::now();
            let mut joint = None;
            while t1.elapsed() < Duration::from_secs(3) {
                let (nd, cmd) = self.n_committed(index);
                if nd > 0 {
                    match (cmd, self.lock().configs.get(&index).cloned()) {
                        (Some(Cmd::Config(_)), Some(m)) if m.is_joint() => joint = Some(m),
                        (Some(Cmd::Config(_)), Some(m)) => {
                            crate::test_event(
                                "test.membership",
                                serde_json::json!({ "index": index, "membership": m.to_string() }),
                            );
                            return Ok((m, index));
                        }
                        _ => {}
                    }
                    break;
                }
                sleep(Duration::from_millis(20)).await;
            }
            let Some(joint) = joint else { continue };
            // Committed C_old,new: the leader (this one or the next) appends C_new by itself.
            let target = joint.leave_joint();
            let t2 = Instant::now();
            while t0.elapsed() < Duration::from_secs(20) && t2.elapsed() < Duration::from_secs(10) {
                let left = self
                    .lock()
                    .configs
                    .range(index + 1..)
                    .find(|(_, m)| !m.is_joint())
                    .map(|(i, m)| (*i, m.clone()));
                if let Some((i, m)) = left {
                    assert_eq!(
                        m, target,
                        "the joint configuration {joint} was left for another than its new half"
                    );
                    crate::test_event(
                        "test.membership",
                        serde_json::json!({ "index": i, "membership": m.to_string() }),
                    );
                    return Ok((m, i));
                }
                sleep(Duration::from_millis(20)).await;
            }
            panic!(
                "the joint configuration {joint} (committed at index {index}) was not left within 10 seconds"
            );
        }
        panic!(
            "change_membership({change:?}) did not complete within 20 seconds (last refusal: {})",
            last_refusal.map_or("none".to_string(), |e| e.to_string())
        );
    }

    /// Waits until each of `servers` acts on configuration `target` (within `timeout`);
    /// fails the test with what they act on otherwise.
    pub async fn wait_membership(&self, servers: &[usize], target: &Membership, timeout: Duration) {
        let t0 = Instant::now();
        loop {
            self.check_safety();
            let off: Vec<String> = servers
                .iter()
                .filter_map(|&i| match self.membership(i) {
                    Some(m) if m == *target => None,
                    Some(m) => Some(format!("server {i}: {m}")),
                    None => Some(format!("server {i}: not running")),
                })
                .collect();
            if off.is_empty() {
                return;
            }
            if t0.elapsed() >= timeout {
                panic!(
                    "servers {servers:?} should act on the configuration {target} after {:?}, but {}",
                    timeout,
                    off.join("; ")
                );
            }
            sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        let st = self.lock();
        for t in &st.tasks {
            t.kill();
        }
    }
}

/// Reads server i's apply channel and checks each entry against every other server's log
/// (the original's `applier` and, for snapshot tests, `applierSnap`).
async fn applier(
    state: Arc<Mutex<Shared>>,
    i: usize,
    mut rx: mpsc::UnboundedReceiver<Apply>,
    node: Node,
    snapshot: bool,
) {
    while let Some(m) = rx.recv().await {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let mut err = None;
        match m {
            Apply::Snapshot { index, data, .. } => {
                if snapshot {
                    err = st.ingest_snap(i, &data, Some(index.0));
                }
            }
            Apply::Command { .. } | Apply::Membership { .. } => {
                let index = m.index().0;
                let cmd: Cmd = match m {
                    Apply::Membership { membership, .. } => {
                        let cmd = Cmd::Config(membership.to_string());
                        st.configs.entry(index).or_insert(membership);
                        cmd
                    }
                    Apply::Command { command, .. } if command.is_empty() => Cmd::Noop,
                    Apply::Command { command, .. } => match postcard::from_bytes(&command) {
                        Ok(c) => c,
                        Err(e) => {
                            st.apply_err[i] = Some(format!("server {i} applied garbage: {e}"));
                            continue;
                        }
                    },
                    Apply::Snapshot { .. } => continue,
                };
                if snapshot && index != st.last_applied[i] + 1 {
                    err = Some(format!(
                        "server {i} apply out of order, expected index {}, got {index}",
                        st.last_applied[i] + 1
                    ));
                }
                if err.is_none() {
                    let (e, prevok) = st.check_logs(i, index, cmd);
                    err = e;
                    if index > 1 && !prevok {
                        err = Some(format!("server {i} apply out of order {index}"));
                    }
                }
                st.last_applied[i] = index;
                if snapshot && (index + 1) % SNAPSHOT_INTERVAL == 0 {
                    let xlog: Vec<Option<Cmd>> =
                        (0..=index).map(|j| st.logs[i].get(&j).cloned()).collect();
                    let data = postcard::to_stdvec(&(index, xlog)).unwrap_or_default();
                    node.snapshot(LogIndex(index), data);
                }
            }
        }
        if let Some(e) = err {
            eprintln!("apply error: {e}");
            st.apply_err[i] = Some(e);
        }
    }
}
