//! The rsm layer's tester (in the spirit of 6.5840's 2025 `rsm` tests): replicas of a small
//! state machine on a labrpc network, commands submitted straight to the replicas' [`Rsm`], the
//! network cut and healed, replicas crashed and restarted from what they persisted.
//!
//! The machine, [`Tally`], keeps every command it applied in order and answers each with how
//! many it has applied, so an output says exactly where in the log its command landed.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labrpc::{Network, Persister, Server, Sim, TaskGroup};
use rsm::{CorruptSnapshot, Rsm, RsmOptions, Session, StateMachine, SubmitError};
use serde::{Deserialize, Serialize};

/// Every rsm test must finish within this much simulated time.
pub const TEST_TIME_LIMIT: Duration = Duration::from_secs(120);

/// A submitter gives up on finding a leader after this long.
const SUBMIT_PATIENCE: Duration = Duration::from_secs(10);

/// The state machine under test: the commands applied, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub applied: Vec<u64>,
}

impl StateMachine for Tally {
    type Command = u64;
    /// How many commands are applied once this one is: its position in the log of commands.
    type Output = u64;

    fn apply(&mut self, command: u64) -> u64 {
        self.applied.push(command);
        self.applied.len() as u64
    }

    fn snapshot(&self) -> Vec<u8> {
        rsm::encode_state(self)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), CorruptSnapshot> {
        *self = rsm::decode_state(bytes)?;
        Ok(())
    }
}

struct Replicas {
    rsms: Vec<Option<Rsm<Tally>>>,
    tasks: Vec<TaskGroup>,
    saved: Vec<Persister>,
    endnames: Vec<Vec<String>>,
    incarnation: Vec<u64>,
    connected: Vec<bool>,
}

/// `n` replicas of [`Tally`].
pub struct RsmCluster {
    pub n: usize,
    net: Network,
    sim: Sim,
    maxraftstate: Option<usize>,
    commit_timeout: Duration,
    state: Mutex<Replicas>,
    monitor: raftcheck::SharedMonitor,
}

impl RsmCluster {
    /// Starts `n` connected replicas (snapshots past `maxraftstate` bytes, if given).
    pub fn start(
        sim: &Sim,
        n: usize,
        reliable: bool,
        maxraftstate: Option<usize>,
    ) -> Arc<RsmCluster> {
        Self::start_waiting(
            sim,
            n,
            reliable,
            maxraftstate,
            RsmOptions::default().commit_timeout,
        )
    }

    /// Like [`RsmCluster::start`], with submitters waiting `commit_timeout` for their command.
    pub fn start_waiting(
        sim: &Sim,
        n: usize,
        reliable: bool,
        maxraftstate: Option<usize>,
        commit_timeout: Duration,
    ) -> Arc<RsmCluster> {
        let net = Network::new(sim.rng("net", 0));
        net.set_reliable(reliable);
        let c = Arc::new(RsmCluster {
            n,
            net,
            sim: sim.clone(),
            maxraftstate,
            commit_timeout,
            state: Mutex::new(Replicas {
                rsms: vec![None; n],
                tasks: (0..n).map(|_| TaskGroup::new()).collect(),
                saved: (0..n).map(|_| Persister::new()).collect(),
                endnames: vec![Vec::new(); n],
                incarnation: vec![0; n],
                connected: vec![false; n],
            }),
            monitor: crate::safety::monitor("rsm"),
        });
        for i in 0..n {
            c.start_replica(i);
        }
        for i in 0..n {
            c.connect(i);
        }
        c
    }

    fn lock(&self) -> MutexGuard<'_, Replicas> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn name(i: usize) -> String {
        format!("rsm{i}")
    }

    fn set_links(&self, st: &Replicas, i: usize, on: bool) {
        for j in 0..self.n {
            let both = on && (i == j || st.connected[j]);
            if let Some(name) = st.endnames[i].get(j) {
                self.net.enable(name, both);
            }
            if let Some(name) = st.endnames[j].get(i) {
                self.net.enable(name, both);
            }
        }
    }

    /// Connects replica i to every other connected replica.
    pub fn connect(&self, i: usize) {
        let mut st = self.lock();
        st.connected[i] = true;
        self.set_links(&st, i, true);
    }

    /// Cuts replica i off from every other.
    pub fn disconnect(&self, i: usize) {
        let mut st = self.lock();
        st.connected[i] = false;
        self.set_links(&st, i, false);
    }

    /// Crashes replica i, keeping what it persisted.
    pub fn crash(&self, i: usize) {
        self.disconnect(i);
        let mut st = self.lock();
        self.net.delete_server(&Self::name(i));
        st.saved[i] = st.saved[i].copy();
        st.rsms[i] = None;
        st.tasks[i].kill();
    }

    /// Starts replica i from what it persisted (it is connected by [`RsmCluster::connect`]).
    pub fn start_replica(&self, i: usize) {
        let mut st = self.lock();
        st.incarnation[i] += 1;
        let inc = st.incarnation[i];
        st.endnames[i] = (0..self.n).map(|j| format!("rsm{i}->{j}#{inc}")).collect();
        let ends = (0..self.n)
            .map(|j| {
                let name = &st.endnames[i][j];
                let end = self.net.make_end(name.clone());
                self.net.connect(name, Self::name(j));
                end
            })
            .collect();
        st.saved[i] = st.saved[i].copy();
        let tasks = TaskGroup::new();
        st.tasks[i] = tasks.clone();
        let options = RsmOptions {
            maxraftstate: self.maxraftstate,
            commit_timeout: self.commit_timeout,
            raft: crate::safety::observed(&self.monitor),
            ..RsmOptions::default()
        };
        let rsm = match Rsm::start(
            format!("rsm-{i}"),
            ends,
            i,
            st.saved[i].clone(),
            options,
            Tally::default(),
            self.sim.rng("rsm", (i as u64) << 32 | inc),
            &tasks,
        ) {
            Ok(r) => r,
            Err(e) => panic!("replica {i} cannot start: {e}"),
        };
        let mut srv = Server::new();
        srv.add_service(rsm.raft().service());
        st.rsms[i] = Some(rsm);
        drop(st);
        self.net.add_server(Self::name(i), srv);
    }

    /// Replica i, if it is running.
    pub fn rsm(&self, i: usize) -> Option<Rsm<Tally>> {
        self.lock().rsms[i].clone()
    }

    /// Submits `cmd` to each running, connected replica in turn until one takes it, like a
    /// client looking for the leader; panics after [`SUBMIT_PATIENCE`].
    pub async fn submit(&self, session: Option<Session>, cmd: u64) -> u64 {
        let deadline = tokio::time::Instant::now() + SUBMIT_PATIENCE;
        let mut i = 0;
        loop {
            let r = {
                let st = self.lock();
                st.connected[i].then(|| st.rsms[i].clone()).flatten()
            };
            if let Some(r) = r {
                let out = match session {
                    Some(s) => r.submit_as(s, cmd).await,
                    None => r.submit(cmd).await,
                };
                if let Ok(out) = out {
                    return out;
                }
            }
            i = (i + 1) % self.n;
            assert!(
                tokio::time::Instant::now() < deadline,
                "no replica committed command {cmd} within {SUBMIT_PATIENCE:?}"
            );
            if i == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Submits `cmd` to replica i only.
    pub async fn submit_to(&self, i: usize, cmd: u64) -> Result<u64, SubmitError> {
        match self.rsm(i) {
            Some(r) => r.submit(cmd).await,
            None => Err(SubmitError::NotLeader),
        }
    }

    /// A linearizable read of replica i's machine (`Rsm::read_linearizable`: ReadIndex, no log
    /// entry), checked against what was applied, by the tester and not by the code under test:
    /// the state read holds every command any replica had applied when the read was asked
    /// (those were committed before it, so a linearizable read sees them), and it is a prefix
    /// of the longest log any replica has applied when the answer arrives. A replica that is
    /// not running reads nothing (`NotLeader`).
    pub async fn read_at(&self, i: usize) -> Result<Vec<u64>, SubmitError> {
        let Some(r) = self.rsm(i) else {
            return Err(SubmitError::NotLeader);
        };
        let floor = self.longest_applied();
        let read = r.read_linearizable(|t| t.applied.clone()).await?;
        assert!(
            read.len() >= floor.len() && read[..floor.len()] == floor[..],
            "replica {i} answered a linearizable read from a machine that had applied {} commands ({:?}), but {} were applied before the read was asked ({:?}): a linearizable read sees every command committed before it was asked (thesis 6.4: confirm the read index, then wait until the machine has applied through it)",
            read.len(),
            read.iter().rev().take(5).collect::<Vec<_>>(),
            floor.len(),
            floor.iter().rev().take(5).collect::<Vec<_>>()
        );
        let longest = self.longest_applied();
        assert!(
            longest.len() >= read.len() && longest[..read.len()] == read[..],
            "replica {i} read a state ({} commands) that is not a prefix of the longest log applied ({} commands)",
            read.len(),
            longest.len()
        );
        Ok(read)
    }

    /// What replica i has applied.
    pub fn applied(&self, i: usize) -> Option<Vec<u64>> {
        self.rsm(i).map(|r| r.read(|t| t.applied.clone()))
    }

    /// The longest log of commands any running replica has applied (a submitter's answer came
    /// from a replica that applied everything up to its command).
    pub fn longest_applied(&self) -> Vec<u64> {
        (0..self.n)
            .filter_map(|i| self.applied(i))
            .max_by_key(Vec::len)
            .unwrap_or_default()
    }

    /// Waits until the running replicas in `which` have applied the same `want` commands.
    pub async fn wait_applied(&self, which: &[usize], want: &[u64]) {
        for _ in 0..500 {
            if which
                .iter()
                .all(|&i| self.applied(i).as_deref() == Some(want))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let got: Vec<_> = which.iter().map(|&i| (i, self.applied(i))).collect();
        panic!("replicas did not converge on {want:?}: {got:?}");
    }

    /// The persisted Raft state of replica i, in bytes.
    pub fn raft_state_size(&self, i: usize) -> usize {
        self.lock().saved[i].raft_state_size()
    }

    /// Fails the test if Raft broke an invariant.
    pub fn check_safety(&self) {
        crate::safety::check(&self.monitor, "rsm");
    }

    /// Kills every replica.
    pub fn kill_all(&self) {
        for t in &self.lock().tasks {
            t.kill();
        }
    }
}

impl Drop for RsmCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}
