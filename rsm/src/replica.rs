//! One replica: a Raft node, the state machine, the sessions and the submitters waiting.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labrpc::{ClientEnd, Persister, TaskGroup, planted};
use raft::{
    Apply, LabrpcTransport, LogIndex, Node, NodeId, PersistError, Storage, Term, Transport,
};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info};

use crate::machine::{CorruptSnapshot, StateMachine};
use crate::session::{Entry, Session, Sessions, Snapshot};

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Raft(#[from] PersistError),
    #[error(transparent)]
    Snapshot(#[from] CorruptSnapshot),
}

/// Why a submitted command has no outcome to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
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
    /// Raft's extensions (pre-vote, check-quorum, lease reads); none in the labs.
    pub features: raft::Features,
    /// The group's bootstrap voters (`None`: all `peers`). A replica not among them starts
    /// without a configuration and joins once the group's leader adds it
    /// (`Node::change_membership`).
    pub voters: Option<Vec<usize>>,
}

impl Default for RsmOptions {
    fn default() -> Self {
        RsmOptions {
            maxraftstate: None,
            commit_timeout: Duration::from_millis(500),
            raft: raft::Options::default(),
            features: raft::Features::default(),
            voters: None,
        }
    }
}

struct Waiter<O> {
    term: Term,
    tx: oneshot::Sender<O>,
}

struct Shared<M: StateMachine> {
    machine: M,
    sessions: Sessions<M::Output>,
    last_applied: u64,
    /// The term of the entry at `last_applied` (0 before any entry was applied here).
    last_applied_term: u64,
    /// Index of the last snapshot handed to Raft.
    last_snapshot: u64,
    waiters: BTreeMap<u64, Waiter<M::Output>>,
}

struct Inner<M: StateMachine> {
    /// For log lines: which replica this is, e.g. `kv-1`, `ctrler-1` or `100-2`.
    name: String,
    rf: Node,
    state_size: Box<dyn Fn() -> usize + Send + Sync>,
    options: RsmOptions,
    state: Mutex<Shared<M>>,
    /// Woken after each batch of applied entries (linearizable reads wait on it).
    applied: tokio::sync::Notify,
    tasks: TaskGroup,
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

/// Encodes the layer's snapshot: the sessions and the machine.
fn encode<M: StateMachine>(sessions: &Sessions<M::Output>, machine: &M) -> Vec<u8> {
    let snap = Snapshot {
        sessions: sessions.clone(),
        machine: machine.snapshot(),
    };
    crate::machine::encode_state(&snap)
}

/// Restores the sessions and the machine from a snapshot made by [`encode`].
fn decode<M: StateMachine>(
    bytes: &[u8],
    machine: &mut M,
) -> Result<Sessions<M::Output>, CorruptSnapshot> {
    let snap: Snapshot<M::Output> = crate::machine::decode_state(bytes)?;
    machine.restore(&snap.machine)?;
    Ok(snap.sessions)
}

impl<M: StateMachine> Rsm<M> {
    /// Starts Raft in the simulator (`peers[i]` reaches replica i) and the applier, with
    /// `machine` restored from the persister's snapshot if it has one. All tasks run in `tasks`.
    #[allow(clippy::too_many_arguments)] // a replica's identity, its Raft's inputs, and the machine
    pub fn start(
        name: String,
        peers: Vec<ClientEnd>,
        me: usize,
        persister: Persister,
        options: RsmOptions,
        machine: M,
        rng: ChaCha8Rng,
        tasks: &TaskGroup,
    ) -> Result<Rsm<M>, StartError> {
        let n = peers.len();
        let sizer = persister.clone();
        Rsm::start_with(
            name,
            LabrpcTransport::new(peers),
            persister,
            me,
            n,
            move || sizer.raft_state_size(),
            options,
            machine,
            rng,
            tasks,
        )
    }

    /// Starts a replica over any transport and storage (the real cluster uses TCP and disk).
    /// `state_size` reports how many bytes of Raft state the storage holds, for `maxraftstate`.
    #[allow(clippy::too_many_arguments)]
    pub fn start_with<T: Transport, S: Storage>(
        name: String,
        transport: T,
        storage: S,
        me: usize,
        peers: usize,
        state_size: impl Fn() -> usize + Send + Sync + 'static,
        options: RsmOptions,
        mut machine: M,
        rng: ChaCha8Rng,
        tasks: &TaskGroup,
    ) -> Result<Rsm<M>, StartError> {
        let (_, snapshot) = storage.load()?;
        let sessions = if snapshot.is_empty() {
            Sessions::default()
        } else {
            decode(&snapshot, &mut machine)?
        };
        let (apply_tx, apply_rx) = mpsc::unbounded_channel();
        let bootstrap: Vec<NodeId> = match &options.voters {
            None => (0..peers).map(|p| NodeId(p as u64)).collect(),
            Some(v) if v.contains(&me) => v.iter().map(|p| NodeId(*p as u64)).collect(),
            // Not a bootstrap voter: wait to be added.
            Some(_) => Vec::new(),
        };
        let rf = Node::start(
            raft::Config::lab(NodeId(me as u64), bootstrap).with(options.features),
            transport,
            storage,
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
            state_size: Box::new(state_size),
            options,
            state: Mutex::new(Shared {
                machine,
                sessions,
                last_applied,
                last_applied_term: 0,
                last_snapshot: last_applied,
                waiters: BTreeMap::new(),
            }),
            applied: tokio::sync::Notify::new(),
            tasks: tasks.clone(),
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

    /// A linearizable read without a log entry (ReadIndex, thesis 6.4): Raft confirms this
    /// replica still leads and gives the commit index at the time of the read; once the machine
    /// has applied through it, `f` reads the machine. `NotLeader` on a replica that does not
    /// lead (or stops leading first), `Timeout` after `commit_timeout`.
    pub async fn read_linearizable<R>(&self, f: impl FnOnce(&M) -> R) -> Result<R, SubmitError> {
        let inner = &self.inner;
        // SOLUTION BEGIN: read_linearizable: ask Raft for a read index (read_index: NotLeader on error) and wait until the machine has applied through it (wait on inner.applied, checking last_applied before each wait), then read with f; Timeout after commit_timeout for the whole read
        let read = async {
            if planted!(RsmLocalRead) && inner.rf.state().1 {
                return Ok(());
            }
            let index = inner
                .rf
                .read_index()
                .await
                .map_err(|_| SubmitError::NotLeader)?;
            loop {
                let woken = inner.applied.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                if inner.lock().last_applied >= index.0 {
                    return Ok(());
                }
                woken.await;
            }
        };
        match tokio::time::timeout(inner.options.commit_timeout, read).await {
            Ok(Ok(())) => Ok(f(&inner.lock().machine)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SubmitError::Timeout),
        }
        // SOLUTION END
    }

    /// True when this replica is the leader and has applied an entry of its own term, so its
    /// state includes every committed entry. A new leader is not there until something it
    /// proposed commits (Raft commits earlier terms' entries only through one of its own).
    pub fn leader_caught_up(&self) -> bool {
        let (term, leader) = self.inner.rf.state();
        leader && self.inner.lock().last_applied_term == term.0
    }

    /// Stops the replica and its Raft node.
    pub fn kill(&self) {
        self.inner.tasks.kill();
    }

    /// Puts `command` through the log and returns what applying it returned.
    pub async fn submit(&self, command: M::Command) -> Result<M::Output, SubmitError> {
        submit(&self.inner, None, command).await
    }

    /// Like [`Rsm::submit`], for an exactly-once client: a command whose session was applied
    /// already is not applied again, and its first output is the answer.
    pub async fn submit_as(
        &self,
        session: Session,
        command: M::Command,
    ) -> Result<M::Output, SubmitError> {
        submit(&self.inner, Some(session), command).await
    }
}

impl<M: StateMachine> Inner<M> {
    fn lock(&self) -> MutexGuard<'_, Shared<M>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn submit<M: StateMachine>(
    inner: &Inner<M>,
    session: Option<Session>,
    command: M::Command,
) -> Result<M::Output, SubmitError> {
    // SOLUTION BEGIN: submit: answer an already-applied session from the table; otherwise start the entry in Raft (not leader: NotLeader), wait for it to be applied at the index Raft gave, and take the output only if the entry applied there has the term Raft gave (Lost otherwise); Timeout after commit_timeout
    if let Some(s) = &session
        && let Some(output) = inner.lock().sessions.applied(s)
    {
        // Applied (so committed) already: any replica may say so.
        return Ok(output);
    }
    let entry = Entry { session, command };
    let bytes = postcard::to_stdvec(&entry).map_err(|_| SubmitError::Lost)?;
    let (index, term) = inner
        .rf
        .start_command(bytes)
        .await
        .map_err(|_| SubmitError::NotLeader)?;
    let rx = {
        let mut st = inner.lock();
        if st.last_applied >= index.0 {
            // Applied before we could wait for it: only a session's output is still known.
            return session
                .and_then(|s| st.sessions.applied(&s))
                .ok_or(SubmitError::Lost);
        }
        let (tx, rx) = oneshot::channel();
        // A waiter left at this index by an earlier term is superseded: its entry can no
        // longer commit there (dropping its sender tells it so).
        st.waiters.insert(index.0, Waiter { term, tx });
        rx
    };
    match tokio::time::timeout(inner.options.commit_timeout, rx).await {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(_)) => Err(SubmitError::Lost),
        Err(_) => {
            let mut st = inner.lock();
            if st.waiters.get(&index.0).is_some_and(|w| w.term == term) {
                st.waiters.remove(&index.0);
            }
            Err(SubmitError::Timeout)
        }
    }
    // SOLUTION END
}

/// Applies what Raft commits, in order, and answers the submitters waiting for it.
async fn applier<M: StateMachine>(inner: Arc<Inner<M>>, mut rx: mpsc::UnboundedReceiver<Apply>) {
    while let Some(first) = rx.recv().await {
        apply(&inner, first);
        // Take whatever else is ready, then consider one snapshot for the lot.
        while let Ok(next) = rx.try_recv() {
            apply(&inner, next);
        }
        inner.applied.notify_waiters();
        maybe_snapshot(&inner);
    }
}

fn apply<M: StateMachine>(inner: &Inner<M>, msg: Apply) {
    // SOLUTION BEGIN: apply: apply committed entries in log order (skipping what is applied already), a session's command only once (its output kept for retries), answer the waiter at that index if its term matches, and restore machine and sessions from installed snapshots
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
            if command.is_empty() {
                // A leader's no-op (appended so that reads can be confirmed): nothing to apply.
                return;
            }
            let entry: Entry<M::Command> = match postcard::from_bytes(&command) {
                Ok(e) => e,
                Err(e) => {
                    // Only this layer writes to the log, so this is a bug, not bad input.
                    error!(
                        node = inner.name,
                        index = index.0,
                        "undecodable log entry: {e}"
                    );
                    return;
                }
            };
            let repeat = entry
                .session
                .and_then(|s| st.sessions.applied(&s))
                .filter(|_| !planted!(KvNoDuplicateDetection));
            let output = match repeat {
                Some(first) => first,
                None => {
                    let output = st.machine.apply(entry.command);
                    if let Some(s) = entry.session {
                        st.sessions.record(s, output.clone());
                    }
                    output
                }
            };
            if let Some(w) = waiter
                && (w.term == term || planted!(KvWrongLeaderAnswer))
            {
                let _ = w.tx.send(output);
            }
            // Otherwise another leader's entry committed at that index: dropping the waiter's
            // sender tells its submitter the command lost its place.
        }
        Apply::Membership { index, term, .. } => {
            // Raft's own entry: the machine skips it; a submitter waiting there lost its place.
            if index.0 > st.last_applied {
                st.last_applied = index.0;
                st.last_applied_term = term.0;
                st.waiters.remove(&index.0);
            }
        }
        Apply::Snapshot { index, term, data } => {
            if index.0 <= st.last_applied {
                return;
            }
            let restored = decode(&data, &mut st.machine);
            match restored {
                Ok(sessions) => {
                    st.sessions = sessions;
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
    // SOLUTION END
}

fn maybe_snapshot<M: StateMachine>(inner: &Inner<M>) {
    // SOLUTION BEGIN: maybe_snapshot: when Raft's persisted state reaches maxraftstate, hand Raft a snapshot of the machine and the sessions through the last applied index
    let Some(max) = inner.options.maxraftstate else {
        return;
    };
    let mut st = inner.lock();
    if st.last_applied > st.last_snapshot && (inner.state_size)() >= max {
        st.last_snapshot = st.last_applied;
        let snapshot = if planted!(KvSnapshotWithoutDedup) {
            encode(&Sessions::default(), &st.machine)
        } else {
            encode(&st.sessions, &st.machine)
        };
        inner.rf.snapshot(LogIndex(st.last_applied), snapshot);
    }
    // SOLUTION END
}
