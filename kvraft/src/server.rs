//! The KV server: submits each client operation to Raft, applies committed operations in log
//! order to its [`Store`], and answers a client only once the client's own operation committed
//! at the index Raft gave it. It snapshots its store when Raft's persisted state grows past
//! `maxraftstate`, and a restarted server starts from its last snapshot.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labrpc::{ClientEnd, Persister, Service, TaskGroup, planted};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info};

use crate::common::{KvError, Op, OpKind, Reply};
use crate::store::{CorruptSnapshot, Store};
use raft::{
    Apply, LabrpcTransport, LogIndex, Node, NodeId, PersistError, Storage, Term, Transport,
};

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Snapshot once Raft's persisted state reaches this many bytes (`None`: never).
    pub maxraftstate: Option<usize>,
    /// How long a request waits for its operation to commit before the client is told to try
    /// elsewhere (its leader may be in a minority).
    pub commit_timeout: Duration,
    /// BROKEN ON PURPOSE, for testing the tests: answer Get from this server's local state,
    /// without going through the log. A follower or a deposed leader then serves stale values,
    /// which the suite's linearizability check must catch.
    pub unsafe_local_reads: bool,
    /// Settings of the Raft driver under the service.
    pub raft: raft::Options,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            maxraftstate: None,
            commit_timeout: Duration::from_millis(500),
            unsafe_local_reads: false,
            raft: raft::Options::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Raft(#[from] PersistError),
    #[error(transparent)]
    Snapshot(#[from] CorruptSnapshot),
}

/// A request waiting for its operation to be applied.
struct Waiter {
    term: Term,
    client_id: u64,
    seq: u64,
    tx: oneshot::Sender<Reply>,
}

struct State {
    store: Store,
    last_applied: u64,
    /// Index of the last snapshot handed to Raft.
    last_snapshot: u64,
    waiters: BTreeMap<u64, Waiter>,
}

struct Inner {
    me: usize,
    rf: Node,
    state_size: Box<dyn Fn() -> usize + Send + Sync>,
    options: ServerOptions,
    state: Mutex<State>,
    tasks: TaskGroup,
}

/// A running KV server. Cheap to clone.
#[derive(Clone)]
pub struct KvServer {
    inner: Arc<Inner>,
}

impl KvServer {
    /// The lab's `StartKVServer`: starts Raft (`peers[i]` reaches server i) and the service on
    /// top of it, restoring the store from the persister's snapshot. All tasks run in `tasks`.
    pub fn start(
        peers: Vec<ClientEnd>,
        me: usize,
        persister: Persister,
        options: ServerOptions,
        rng: ChaCha8Rng,
        tasks: TaskGroup,
    ) -> Result<KvServer, StartError> {
        let n = peers.len();
        let sizer = persister.clone();
        KvServer::start_with(
            LabrpcTransport::new(peers),
            persister,
            me,
            n,
            move || sizer.raft_state_size(),
            options,
            rng,
            tasks,
        )
    }

    /// Starts a server over any transport and storage (the real cluster uses TCP and disk).
    /// `state_size` reports how many bytes of Raft state the storage holds, for `maxraftstate`.
    #[allow(clippy::too_many_arguments)]
    pub fn start_with<T: Transport, S: Storage>(
        transport: T,
        storage: S,
        me: usize,
        peers: usize,
        state_size: impl Fn() -> usize + Send + Sync + 'static,
        options: ServerOptions,
        rng: ChaCha8Rng,
        tasks: TaskGroup,
    ) -> Result<KvServer, StartError> {
        let (_, snapshot) = storage.load()?;
        let store = Store::decode(&snapshot)?;
        let (apply_tx, apply_rx) = mpsc::unbounded_channel();
        let rf = Node::start(
            raft::Config::lab(
                NodeId(me as u64),
                (0..peers).map(|p| NodeId(p as u64)).collect(),
            ),
            transport,
            storage,
            apply_tx,
            rng,
            tasks.clone(),
            options.raft.clone(),
        )?;
        // Raft restarts with commit and applied at its snapshot's index.
        let last_applied = rf.status().applied.0;
        let inner = Arc::new(Inner {
            me,
            rf,
            state_size: Box::new(state_size),
            options,
            state: Mutex::new(State {
                store,
                last_applied,
                last_snapshot: last_applied,
                waiters: BTreeMap::new(),
            }),
            tasks: tasks.clone(),
        });
        tasks.spawn(applier(inner.clone(), apply_rx));
        Ok(KvServer { inner })
    }

    /// Handles one client operation: what a transport's server side calls.
    pub async fn command(&self, op: Op) -> Reply {
        command(self.inner.clone(), op).await
    }

    /// The Raft node under this server.
    pub fn raft(&self) -> &Node {
        &self.inner.rf
    }

    /// The services to register with labrpc: `KVServer` and `Raft`.
    pub fn services(&self) -> Vec<Service> {
        let inner = self.inner.clone();
        let kv = Service::new("KVServer").method("Command", move |op: Op| {
            let inner = inner.clone();
            async move { command(inner, op).await }
        });
        vec![kv, self.inner.rf.service()]
    }

    /// Stops the server and its Raft node.
    pub fn kill(&self) {
        self.inner.tasks.kill();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Handles one client request.
async fn command(inner: Arc<Inner>, op: Op) -> Reply {
    // SOLUTION BEGIN: command: submit the operation to Raft (wrong leader if not leader), wait for it to be applied at the index Raft gave, and answer only if the entry applied there is this operation of this term; time out after commit_timeout
    if op.kind == OpKind::Get && (inner.options.unsafe_local_reads || planted!(KvStaleLocalRead)) {
        return Ok(inner.lock().store.get(&op.key));
    }
    if op.kind != OpKind::Get && inner.lock().store.is_duplicate(op.client_id, op.seq) {
        // Already applied (committed), so the client may hear so from anyone.
        return Ok(String::new());
    }
    let command = postcard::to_stdvec(&op).map_err(|_| KvError::WrongLeader)?;
    let (index, term) = inner
        .rf
        .start_command(command)
        .await
        .map_err(|_| KvError::WrongLeader)?;
    let rx = {
        let mut st = inner.lock();
        if st.last_applied >= index.0 {
            // Applied before we could wait for it: writes can still be confirmed.
            return if op.kind != OpKind::Get && st.store.is_duplicate(op.client_id, op.seq) {
                Ok(String::new())
            } else {
                Err(KvError::WrongLeader)
            };
        }
        let (tx, rx) = oneshot::channel();
        // A waiter left at this index by an earlier term is superseded: its entry can no
        // longer commit there (dropping its sender tells it so).
        st.waiters.insert(
            index.0,
            Waiter {
                term,
                client_id: op.client_id,
                seq: op.seq,
                tx,
            },
        );
        rx
    };
    match tokio::time::timeout(inner.options.commit_timeout, rx).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(_)) => Err(KvError::WrongLeader),
        Err(_) => {
            let mut st = inner.lock();
            if st
                .waiters
                .get(&index.0)
                .is_some_and(|w| w.client_id == op.client_id && w.seq == op.seq)
            {
                st.waiters.remove(&index.0);
            }
            Err(KvError::Timeout)
        }
    }
    // SOLUTION END
}

/// Applies what Raft commits, in order, and answers the requests waiting for it.
async fn applier(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Apply>) {
    while let Some(first) = rx.recv().await {
        apply(&inner, first);
        // Take whatever else is ready, then consider one snapshot for the lot.
        while let Ok(next) = rx.try_recv() {
            apply(&inner, next);
        }
        maybe_snapshot(&inner);
    }
}

fn apply(inner: &Inner, msg: Apply) {
    // SOLUTION BEGIN: apply: apply committed commands in order to the store (skipping what is already applied), wake the request waiting at that index, and restore the store from installed snapshots
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
            let op: Op = match postcard::from_bytes(&command) {
                Ok(op) => op,
                Err(e) => {
                    // Only this service writes to the log, so this is a bug, not bad input.
                    error!(
                        node = inner.me,
                        index = index.0,
                        "undecodable log entry: {e}"
                    );
                    return;
                }
            };
            let result = st.store.apply(&op);
            if let Some(w) = st.waiters.remove(&index.0) {
                // Answer only the request whose own entry committed here; another entry at
                // this index means its leader lost office before committing it.
                let ours = (w.term == term && w.client_id == op.client_id && w.seq == op.seq)
                    || planted!(KvWrongLeaderAnswer);
                let _ = w.tx.send(if ours {
                    Ok(result)
                } else {
                    Err(KvError::WrongLeader)
                });
            }
        }
        Apply::Snapshot { index, data, .. } => {
            if index.0 <= st.last_applied {
                return;
            }
            match Store::decode(&data) {
                Ok(store) => {
                    st.store = store;
                    st.last_applied = index.0;
                    st.last_snapshot = st.last_snapshot.max(index.0);
                    // Requests waiting inside the snapshot cannot know their outcome here.
                    let later = st.waiters.split_off(&(index.0 + 1));
                    st.waiters = later;
                    info!(
                        node = inner.me,
                        index = index.0,
                        keys = st.store.len(),
                        "kv server {} restores a snapshot through index {}",
                        inner.me,
                        index.0
                    );
                }
                Err(e) => error!(
                    node = inner.me,
                    "ignoring a corrupt snapshot from Raft: {e}"
                ),
            }
        }
    }
    // SOLUTION END
}

fn maybe_snapshot(inner: &Inner) {
    // SOLUTION BEGIN: maybe_snapshot: when Raft's persisted state reaches maxraftstate, hand Raft a snapshot of the store (data and duplicate table) through the last applied index
    let Some(max) = inner.options.maxraftstate else {
        return;
    };
    let mut st = inner.lock();
    if st.last_applied > st.last_snapshot && (inner.state_size)() >= max {
        st.last_snapshot = st.last_applied;
        let snapshot = if planted!(KvSnapshotWithoutDedup) {
            let mut data_only = st.store.clone();
            data_only.last_seq.clear();
            data_only.encode()
        } else {
            st.store.encode()
        };
        inner.rf.snapshot(LogIndex(st.last_applied), snapshot);
    }
    // SOLUTION END
}
