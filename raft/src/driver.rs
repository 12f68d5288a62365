//! The async driver: one task owns the [`Raft`] core and runs it on tokio, over any
//! [`Transport`] and [`Storage`]. It ticks the core, feeds it messages and proposals, and acts on
//! each [`Ready`](crate::core::Ready): persist first, then reply, send and apply.
//!
//! The handle, [`Node`], has the lab's API: `start`, `state`, `snapshot`, `kill`.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use labrpc::{ClientEnd, TaskGroup};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use crate::configuration::{ConfChange, ConfChangeError};
use crate::core::{Apply, Config, NotLeader, Raft, Role, Status};
use crate::events::{Contact, Event, Events, Subscription};
use crate::message::Envelope;
use crate::observe::Observer;
use crate::persist::{PersistError, Storage};
use crate::transfer::TransferError;
use crate::types::{LogIndex, NodeId, Term};
use std::sync::atomic::AtomicU64;

/// A boxed future, so transports can be used as trait objects.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How messages reach other nodes. A request's reply, if any arrives, is the call's result.
pub trait Transport: Send + Sync + 'static {
    fn call(&self, to: NodeId, env: Envelope) -> BoxFuture<Option<Envelope>>;
}

/// The labrpc method Raft nodes serve: a request [`Envelope`] in, its reply out.
pub const STEP_METHOD: &str = "Raft.Step";

/// Transport over labrpc client ends, one per peer.
pub struct LabrpcTransport {
    ends: BTreeMap<NodeId, ClientEnd>,
}

impl LabrpcTransport {
    /// `ends[i]` reaches node `i` (the lab's `peers` array; the entry for this node is unused).
    pub fn new(ends: Vec<ClientEnd>) -> Self {
        LabrpcTransport {
            ends: ends
                .into_iter()
                .enumerate()
                .map(|(i, e)| (NodeId(i as u64), e))
                .collect(),
        }
    }
}

impl Transport for LabrpcTransport {
    fn call(&self, to: NodeId, env: Envelope) -> BoxFuture<Option<Envelope>> {
        let end = self.ends.get(&to).cloned();
        Box::pin(async move {
            let end = end?;
            end.call_described::<Envelope, Option<Envelope>>(
                STEP_METHOD,
                &env,
                || crate::trace::describe(&env),
                |reply| {
                    reply
                        .as_ref()
                        .map_or(serde_json::Value::Null, crate::trace::describe)
                },
            )
            .await
            .ok()
            .flatten()
        })
    }
}

enum Input {
    /// A message; requests arriving over RPC carry where to send their reply.
    Step(Envelope, Option<oneshot::Sender<Envelope>>),
    Propose(
        Vec<u8>,
        oneshot::Sender<Result<(LogIndex, Term), NotLeader>>,
    ),
    Compact(LogIndex, Vec<u8>),
    Read(oneshot::Sender<Result<LogIndex, NotLeader>>),
    Transfer(NodeId, oneshot::Sender<Result<(), TransferError>>),
    ChangeMembership(
        ConfChange,
        oneshot::Sender<Result<(LogIndex, Term), ConfChangeError>>,
    ),
    Subscribe(mpsc::Sender<Event>, Arc<AtomicU64>),
    /// A call to this peer failed (no reply).
    Unreachable(NodeId),
}

/// Driver settings.
#[derive(Clone)]
pub struct Options {
    /// Length of one core tick.
    pub tick: Duration,
    /// Before persisting, yield to the runtime and take what arrived meanwhile, so that
    /// requests being handled on other worker threads join the same batch (one fsync, one
    /// AppendEntries). For real clusters on a multi-threaded runtime; in a simulation it would
    /// only reorder work.
    pub coalesce: bool,
    /// Told about every step of the node (a test harness's safety monitor).
    pub observer: Option<Arc<dyn Observer>>,
    /// The Raft group this node belongs to, in the trace's `node.*` events (where several
    /// groups share node ids, as shardkv's do).
    pub trace_group: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tick: Duration::from_millis(10),
            coalesce: false,
            observer: None,
            trace_group: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("tick", &self.tick)
            .field("coalesce", &self.coalesce)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// A running Raft node. Cheap to clone; all clones drive the same node.
#[derive(Clone)]
pub struct Node {
    id: NodeId,
    tx: mpsc::UnboundedSender<Input>,
    status: Arc<Mutex<Status>>,
    contact: Arc<Mutex<Contact>>,
    tasks: TaskGroup,
}

impl Node {
    /// Starts a node from what `storage` holds. Its tasks are spawned in `tasks` (killing the
    /// group stops the node); applied entries and snapshots go to `apply_tx`, in order.
    pub fn start<T: Transport, S: Storage>(
        config: Config,
        transport: T,
        storage: S,
        apply_tx: mpsc::UnboundedSender<Apply>,
        rng: ChaCha8Rng,
        tasks: TaskGroup,
        options: Options,
    ) -> Result<Node, PersistError> {
        let (state, snapshot) = storage.load()?;
        let core = Raft::with_state(config, state, snapshot, rng);
        crate::trace::record_boot(&core, options.trace_group.as_deref());
        if let Some(o) = &options.observer {
            o.boot(&core);
        }
        let id = core.id();
        let status = Arc::new(Mutex::new(core.status()));
        let contact = Arc::new(Mutex::new(Contact::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = Driver {
            core,
            rx,
            tx: tx.clone(),
            transport: Arc::new(transport),
            storage,
            apply_tx,
            status: status.clone(),
            tasks: tasks.clone(),
            waiting: VecDeque::new(),
            coalesce: options.coalesce,
            observer: options.observer.clone(),
            traced: None,
            trace_group: options.trace_group.clone(),
            reads: BTreeMap::new(),
            next_read: 0,
            events: Events::new(id, status.lock().unwrap_or_else(|p| p.into_inner()).clone()),
            contact: contact.clone(),
        };
        tasks.spawn(driver.run(options.tick));
        Ok(Node {
            id,
            tx,
            status,
            contact,
            tasks,
        })
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The lab's `Start`: proposes a command. Returns the index and term it will have if it
    /// commits, or `NotLeader`. It may never commit (the leader may lose its office).
    pub async fn start_command(&self, command: Vec<u8>) -> Result<(LogIndex, Term), NotLeader> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Input::Propose(command, tx)).is_err() {
            return Err(NotLeader { leader: None });
        }
        rx.await.unwrap_or(Err(NotLeader { leader: None }))
    }

    /// The lab's `GetState`: current term and whether this node believes it is the leader.
    pub fn state(&self) -> (Term, bool) {
        let s = self.status();
        (s.term, s.role == Role::Leader)
    }

    /// The node's state as of its last step.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A linearizable read without a log entry (ReadIndex, thesis 6.4): resolves to the index
    /// the service must have applied before it answers the read from its state, once this node
    /// confirmed it was still the leader. `NotLeader` if it is not (or stops being) the leader.
    pub async fn read_index(&self) -> Result<LogIndex, NotLeader> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Input::Read(tx)).is_err() {
            return Err(NotLeader { leader: None });
        }
        rx.await.unwrap_or(Err(NotLeader { leader: None }))
    }

    /// Starts a leadership transfer to `to` (thesis 3.10); see [`Raft::transfer_leadership`].
    /// Returns once it started; watch [`Node::status`] or [`Node::subscribe`] for the outcome.
    pub async fn transfer_leadership(&self, to: NodeId) -> Result<(), TransferError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Input::Transfer(to, tx)).is_err() {
            return Err(NotLeader { leader: None }.into());
        }
        rx.await
            .unwrap_or_else(|_| Err(NotLeader { leader: None }.into()))
    }

    /// Asks this node, as leader, to change the cluster's configuration (see
    /// [`crate::membership`] for the rules). Returns the configuration entry's index and term;
    /// it is in force at once and committed like any entry.
    pub async fn change_membership(
        &self,
        change: ConfChange,
    ) -> Result<(LogIndex, Term), ConfChangeError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Input::ChangeMembership(change, tx)).is_err() {
            return Err(NotLeader { leader: None }.into());
        }
        rx.await
            .unwrap_or_else(|_| Err(NotLeader { leader: None }.into()))
    }

    /// Subscribes to the node's [`Event`]s (leader, role and term changes, votes, commits,
    /// snapshots, peers lost and regained). At most `capacity` events wait in the subscription;
    /// the node never blocks on a slow subscriber, it counts what it had to drop instead.
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let _ = self.tx.send(Input::Subscribe(tx, dropped.clone()));
        Subscription::new(rx, dropped)
    }

    /// When this node last heard from each peer, and which peers its calls cannot reach.
    pub fn contact(&self) -> Contact {
        self.contact
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The service has snapshotted its state through `index`: Raft may discard that prefix.
    pub fn snapshot(&self, index: LogIndex, data: Vec<u8>) {
        // If the node is dead nobody cares about its log any more.
        let _ = self.tx.send(Input::Compact(index, data));
    }

    /// Stops the node: every task it runs is aborted.
    pub fn kill(&self) {
        self.tasks.kill();
    }

    /// Delivers a request from another node and waits for this node's reply: what a
    /// transport's server side calls. `None` if the request is not for this node, is not a
    /// request, or the node is dead.
    pub async fn step_request(&self, env: Envelope) -> Option<Envelope> {
        if env.to != self.id || !env.msg.is_request() {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.tx.send(Input::Step(env, Some(tx))).ok()?;
        rx.await.ok()
    }

    /// The labrpc service (`Raft.Step`) that delivers other nodes' requests to this node.
    pub fn service(&self) -> labrpc::Service {
        let node = self.clone();
        labrpc::Service::new("Raft").method("Step", move |env: Envelope| {
            let node = node.clone();
            async move { node.step_request(env).await }
        })
    }
}

struct Driver<T, S> {
    core: Raft,
    rx: mpsc::UnboundedReceiver<Input>,
    tx: mpsc::UnboundedSender<Input>,
    transport: Arc<T>,
    storage: S,
    apply_tx: mpsc::UnboundedSender<Apply>,
    status: Arc<Mutex<Status>>,
    tasks: TaskGroup,
    /// Reply channels of the requests stepped since the last `ready()`, in order.
    waiting: VecDeque<oneshot::Sender<Envelope>>,
    coalesce: bool,
    observer: Option<Arc<dyn Observer>>,
    /// What the trace last showed of this node's state.
    traced: Option<crate::trace::Traced>,
    trace_group: Option<String>,
    /// Reads registered with the core, by id.
    reads: BTreeMap<u64, oneshot::Sender<Result<LogIndex, NotLeader>>>,
    next_read: u64,
    events: Events,
    contact: Arc<Mutex<Contact>>,
}

impl<T: Transport, S: Storage> Driver<T, S> {
    async fn run(mut self, tick: Duration) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // the first tick completes at once
        loop {
            tokio::select! {
                biased;
                input = self.rx.recv() => match input {
                    Some(input) => self.handle(input),
                    None => return,
                },
                _ = ticker.tick() => {
                    if let Some(o) = &self.observer {
                        o.before_input(&self.core, crate::observe::Input::Tick);
                    }
                    self.core.tick();
                    self.observe_input();
                }
            }
            // Take everything already queued, so one Ready (one persist, one broadcast) covers it.
            while let Ok(input) = self.rx.try_recv() {
                self.handle(input);
            }
            if self.coalesce {
                // A few rounds, as long as each one brings more work.
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                    let mut more = false;
                    while let Ok(input) = self.rx.try_recv() {
                        self.handle(input);
                        more = true;
                    }
                    if !more {
                        break;
                    }
                }
            }
            if let Err(e) = self.flush() {
                error!(
                    node = self.core.id().0,
                    "node {} stops: {e}",
                    self.core.id()
                );
                self.tasks.kill();
                return;
            }
        }
    }

    fn observe_input(&self) {
        if let Some(o) = &self.observer {
            o.after_input(&self.core);
        }
    }

    fn observe_before(&self, input: crate::observe::Input<'_>) {
        if let Some(o) = &self.observer {
            o.before_input(&self.core, input);
        }
    }

    fn handle(&mut self, input: Input) {
        self.handle_input(input);
        self.observe_input();
    }

    fn handle_input(&mut self, input: Input) {
        match input {
            Input::Step(env, reply_to) => {
                let request = env.msg.is_request();
                self.heard_from(env.from, env.msg.is_request().then_some(&env));
                self.observe_before(crate::observe::Input::Step(&env));
                self.core.step(env);
                if request {
                    // The core replies to every request, in order; a request arriving as a
                    // reply to our own call has nobody waiting.
                    if let Some(tx) = reply_to {
                        self.waiting.push_back(tx);
                    }
                }
            }
            Input::Propose(command, tx) => {
                self.observe_before(crate::observe::Input::Propose);
                let _ = tx.send(self.core.propose(command));
            }
            Input::Compact(index, data) => {
                self.observe_before(crate::observe::Input::Compact(index));
                self.core.compact(index, data);
            }
            Input::Read(tx) => {
                self.next_read += 1;
                let id = self.next_read;
                self.observe_before(crate::observe::Input::Read(id));
                match self.core.read_index(id) {
                    Ok(()) => {
                        self.reads.insert(id, tx);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            }
            Input::Transfer(to, tx) => {
                self.observe_before(crate::observe::Input::Transfer(to));
                let _ = tx.send(self.core.transfer_leadership(to));
            }
            Input::ChangeMembership(change, tx) => {
                self.observe_before(crate::observe::Input::ChangeMembership(&change));
                let _ = tx.send(self.core.change_membership(change));
            }
            Input::Subscribe(tx, dropped) => self.events.subscribe(tx, dropped),
            Input::Unreachable(peer) => {
                let now = tokio::time::Instant::now();
                let mut c = self.contact.lock().unwrap_or_else(|p| p.into_inner());
                if c.lost(peer, now) {
                    drop(c);
                    self.events.unreachable(peer);
                }
            }
        }
    }

    /// Any message from a peer is contact with it; a request from our leader (AppendEntries,
    /// InstallSnapshot) is also contact with the leader.
    fn heard_from(&mut self, peer: NodeId, request: Option<&Envelope>) {
        let now = tokio::time::Instant::now();
        let from_leader = request.is_some_and(|env| {
            matches!(
                env.msg,
                crate::Message::AppendEntries(_) | crate::Message::InstallSnapshot(_)
            )
        });
        let mut c = self.contact.lock().unwrap_or_else(|p| p.into_inner());
        if from_leader {
            c.leader = Some((peer, now));
        }
        if c.heard(peer, now) {
            drop(c);
            self.events.reachable(peer);
        }
    }

    fn flush(&mut self) -> Result<(), PersistError> {
        let id = self.core.id();
        let ready = self.core.ready();
        let storage = &mut self.storage;
        let observer = &self.observer;
        let trace_group = self.trace_group.as_deref();
        let out = ready.persist(|p| {
            storage.save(p)?;
            if let Some(o) = observer {
                o.persisted(id, p);
            }
            crate::trace::record_persist(id.0, trace_group, p);
            Ok(())
        })?;
        if labrpc::sim::tracing_enabled() {
            let now = crate::trace::Traced::of(&self.core.status());
            now.record(id.0, self.trace_group.as_deref(), self.traced.as_ref());
            self.traced = Some(now);
        }
        if let Some(o) = &self.observer {
            o.released(&self.core, &out);
        }
        for reply in out.replies {
            if let Some(tx) = self.waiting.pop_front() {
                let _ = tx.send(reply);
            }
        }
        for env in out.messages {
            let transport = self.transport.clone();
            let tx = self.tx.clone();
            self.tasks.spawn(async move {
                let to = env.to;
                match transport.call(to, env).await {
                    Some(reply) if reply.from == to && !reply.msg.is_request() => {
                        let _ = tx.send(Input::Step(reply, None));
                    }
                    _ => {
                        let _ = tx.send(Input::Unreachable(to));
                    }
                }
            });
        }
        for a in out.apply {
            let _ = self.apply_tx.send(a);
        }
        // Reads after the entries they wait for were handed to the service (the core releases
        // a read only once its index is in `apply`).
        for r in out.reads {
            if let Some(tx) = self.reads.remove(&r.id) {
                let _ = tx.send(r.index);
            }
        }
        let status = self.core.status();
        self.events.changed(&status);
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
        Ok(())
    }
}
