//! A replicated state machine on Raft, shared by the shard controller and the key/value groups.
//!
//! A service puts each command through the Raft log with [`Rsm::submit`] and gets back what the
//! state machine returned when it applied that command. Every replica applies the same commands in
//! the same order, so every replica holds the same state. The service snapshots the state machine
//! whenever Raft's persisted state grows past `maxraftstate`, and a restarted replica starts from
//! its last snapshot.
//!
//! A submitter waits on the log index Raft gave its command; it learns the outcome only if the
//! entry applied at that index has the term Raft gave it. By the Log Matching property an entry is
//! identified by its index and term, so that is its own command and not another leader's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labrpc::{ClientEnd, Persister, TaskGroup};
use raft::{Apply, LabrpcTransport, LogIndex, Node, NodeId, PersistError, Term};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info};

/// A state machine that a [`Rsm`] replicates.
pub trait StateMachine: Send + 'static {
    /// What goes into the log.
    type Command: Serialize + DeserializeOwned + Send;
    /// What applying a command returns to its submitter.
    type Output: Send + 'static;

    /// Applies one committed command. Must be deterministic: every replica calls it with the same
    /// commands in the same order.
    fn apply(&mut self, command: Self::Command) -> Self::Output;

    /// The whole state, encoded.
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the state with a snapshot made by [`StateMachine::snapshot`].
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), CorruptSnapshot>;
}

/// A snapshot that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("corrupt snapshot ({len} bytes): {reason}")]
pub struct CorruptSnapshot {
    pub len: usize,
    pub reason: String,
}

impl CorruptSnapshot {
    pub fn new(bytes: &[u8], reason: impl ToString) -> Self {
        CorruptSnapshot {
            len: bytes.len(),
            reason: reason.to_string(),
        }
    }
}

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Raft(#[from] PersistError),
    #[error(transparent)]
    Snapshot(#[from] CorruptSnapshot),
}

/// Why a submitted command has no outcome to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// This replica is not the leader.
    #[error("not the leader")]
    NotLeader,
    /// Another entry committed at the command's index (its leader lost office), or the outcome
    /// went into a snapshot before the submitter could see it.
    #[error("the command lost its place in the log")]
    Lost,
    /// The command did not commit in time (e.g. its leader is in a minority).
    #[error("timed out waiting for the command to commit")]
    Timeout,
}

/// Replica settings.
#[derive(Clone, Debug)]
pub struct RsmOptions {
    /// Snapshot once Raft's persisted state reaches this many bytes (`None`: never).
    pub maxraftstate: Option<usize>,
    /// How long [`Rsm::submit`] waits for its command to commit.
    pub commit_timeout: Duration,
    /// The Raft driver's settings.
    pub raft: raft::Options,
}

impl Default for RsmOptions {
    fn default() -> Self {
        RsmOptions {
            maxraftstate: None,
            commit_timeout: Duration::from_millis(500),
            raft: raft::Options::default(),
        }
    }
}

struct Waiter<O> {
    term: Term,
    tx: oneshot::Sender<O>,
}

struct Shared<M: StateMachine> {
    machine: M,
    last_applied: u64,
    /// The term of the entry at `last_applied` (0 before any entry was applied here).
    last_applied_term: u64,
    /// Index of the last snapshot handed to Raft.
    last_snapshot: u64,
    waiters: BTreeMap<u64, Waiter<M::Output>>,
}

struct Inner<M: StateMachine> {
    /// For log lines: which replica this is, e.g. `ctrler-1` or `100-2`.
    name: String,
    rf: Node,
    persister: Persister,
    options: RsmOptions,
    state: Mutex<Shared<M>>,
}

/// A running replica. Cheap to clone.
pub struct Rsm<M: StateMachine> {
    inner: Arc<Inner<M>>,
}

impl<M: StateMachine> Clone for Rsm<M> {
    fn clone(&self) -> Self {
        Rsm {
            inner: self.inner.clone(),
        }
    }
}

impl<M: StateMachine> Rsm<M> {
    /// Starts Raft (`peers[i]` reaches replica i) and the applier, with `machine` restored from
    /// the persister's snapshot if it has one. All tasks run in `tasks`.
    #[allow(clippy::too_many_arguments)] // a replica's identity, its Raft's inputs, and the machine
    pub fn start(
        name: String,
        peers: Vec<ClientEnd>,
        me: usize,
        persister: Persister,
        options: RsmOptions,
        mut machine: M,
        rng: ChaCha8Rng,
        tasks: &TaskGroup,
    ) -> Result<Rsm<M>, StartError> {
        let snapshot = persister.read_snapshot();
        if !snapshot.is_empty() {
            machine.restore(&snapshot)?;
        }
        let n = peers.len();
        let (apply_tx, apply_rx) = mpsc::unbounded_channel();
        let rf = Node::start(
            raft::Config::lab(
                NodeId(me as u64),
                (0..n).map(|p| NodeId(p as u64)).collect(),
            ),
            LabrpcTransport::new(peers),
            persister.clone(),
            apply_tx,
            rng,
            tasks.clone(),
            options.raft.clone(),
        )?;
        // Raft restarts with its applied index at its snapshot's, and keeps that index itself.
        let last_applied = rf.status().applied.0;
        let inner = Arc::new(Inner {
            name,
            rf,
            persister,
            options,
            state: Mutex::new(Shared {
                machine,
                last_applied,
                last_applied_term: 0,
                last_snapshot: last_applied,
                waiters: BTreeMap::new(),
            }),
        });
        tasks.spawn(applier(inner.clone(), apply_rx));
        Ok(Rsm { inner })
    }

    /// The Raft node under this replica.
    pub fn raft(&self) -> &Node {
        &self.inner.rf
    }

    /// True when this replica believes it leads its group.
    pub fn is_leader(&self) -> bool {
        self.inner.rf.state().1
    }

    /// Reads the local state (which may lag behind the group's).
    pub fn read<R>(&self, f: impl FnOnce(&M) -> R) -> R {
        f(&self.inner.lock().machine)
    }

    /// True when this replica is the leader and has applied an entry of its own term, so its
    /// state includes every committed entry. A new leader is not there until something it
    /// proposed commits (Raft commits earlier terms' entries only through one of its own).
    pub fn leader_caught_up(&self) -> bool {
        let (term, leader) = self.inner.rf.state();
        leader && self.inner.lock().last_applied_term == term.0
    }

    /// Puts `command` through the log and returns what applying it returned.
    pub async fn submit(&self, command: M::Command) -> Result<M::Output, SubmitError> {
        let bytes = postcard::to_stdvec(&command).map_err(|_| SubmitError::Lost)?;
        let (index, term) = self
            .inner
            .rf
            .start_command(bytes)
            .await
            .map_err(|_| SubmitError::NotLeader)?;
        let rx = {
            let mut st = self.inner.lock();
            if st.last_applied >= index.0 {
                // Applied before we could wait for it: its outcome is gone.
                return Err(SubmitError::Lost);
            }
            let (tx, rx) = oneshot::channel();
            // A waiter left at this index by an earlier term is superseded: its entry can no
            // longer commit there (dropping its sender tells it so).
            st.waiters.insert(index.0, Waiter { term, tx });
            rx
        };
        match tokio::time::timeout(self.inner.options.commit_timeout, rx).await {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(_)) => Err(SubmitError::Lost),
            Err(_) => {
                let mut st = self.inner.lock();
                if st.waiters.get(&index.0).is_some_and(|w| w.term == term) {
                    st.waiters.remove(&index.0);
                }
                Err(SubmitError::Timeout)
            }
        }
    }
}

impl<M: StateMachine> Inner<M> {
    fn lock(&self) -> MutexGuard<'_, Shared<M>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Applies what Raft commits, in order, and answers the submitters waiting for it.
async fn applier<M: StateMachine>(inner: Arc<Inner<M>>, mut rx: mpsc::UnboundedReceiver<Apply>) {
    while let Some(first) = rx.recv().await {
        apply(&inner, first);
        // Take whatever else is ready, then consider one snapshot for the lot.
        while let Ok(next) = rx.try_recv() {
            apply(&inner, next);
        }
        maybe_snapshot(&inner);
    }
}

fn apply<M: StateMachine>(inner: &Inner<M>, msg: Apply) {
    let mut st = inner.lock();
    match msg {
        Apply::Command {
            index,
            term,
            command,
        } => {
            if index.0 <= st.last_applied {
                return;
            }
            st.last_applied = index.0;
            st.last_applied_term = term.0;
            let waiter = st.waiters.remove(&index.0);
            let command: M::Command = match postcard::from_bytes(&command) {
                Ok(c) => c,
                Err(e) => {
                    // Only this service writes to the log, so this is a bug, not bad input.
                    error!(
                        node = inner.name,
                        index = index.0,
                        "undecodable log entry: {e}"
                    );
                    return;
                }
            };
            let output = st.machine.apply(command);
            if let Some(w) = waiter
                && w.term == term
            {
                let _ = w.tx.send(output);
            }
            // Otherwise another leader's entry committed at that index: dropping the waiter's
            // sender tells its submitter the command lost its place.
        }
        Apply::Snapshot { index, term, data } => {
            if index.0 <= st.last_applied {
                return;
            }
            match st.machine.restore(&data) {
                Ok(()) => {
                    st.last_applied = index.0;
                    st.last_applied_term = term.0;
                    st.last_snapshot = st.last_snapshot.max(index.0);
                    // Submitters waiting inside the snapshot cannot learn their outcome here.
                    let later = st.waiters.split_off(&(index.0 + 1));
                    st.waiters = later;
                    info!(
                        node = inner.name,
                        index = index.0,
                        "{} restores a snapshot through index {}",
                        inner.name,
                        index.0
                    );
                }
                Err(e) => error!(
                    node = inner.name,
                    "ignoring a corrupt snapshot from Raft: {e}"
                ),
            }
        }
    }
}

fn maybe_snapshot<M: StateMachine>(inner: &Inner<M>) {
    let Some(max) = inner.options.maxraftstate else {
        return;
    };
    let mut st = inner.lock();
    if st.last_applied > st.last_snapshot && inner.persister.raft_state_size() >= max {
        st.last_snapshot = st.last_applied;
        inner
            .rf
            .snapshot(LogIndex(st.last_applied), st.machine.snapshot());
    }
}
