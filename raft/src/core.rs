//! The protocol core: a pure, synchronous state machine.
//!
//! Inputs are [`Raft::tick`], [`Raft::step`] (a received message), [`Raft::propose`] and
//! [`Raft::compact`]; outputs are collected in a [`Ready`]: state to persist, messages to send,
//! entries and snapshots to apply. Nothing in here does I/O, reads a clock or spawns anything;
//! randomized election timeouts come from the seeded generator the core is given. The rules of
//! the protocol live in `election.rs`, `replication.rs` and `snapshot.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tracing::info;

use crate::configuration::Membership;
use crate::log::{Entry, RaftLog};
use crate::message::{Envelope, Message};
use crate::persist::{self, HardState, PersistError};
use crate::types::{LogIndex, NodeId, Term};

/// Timing, in ticks. The driver decides how long a tick is (10 ms in the simulated labs).
#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    /// The bootstrap configuration: every voting member, this node included. It applies until
    /// a configuration entry or a snapshot's configuration replaces it (see `membership.rs`).
    /// Empty for a node that joins a running cluster: it waits to be contacted.
    pub peers: Vec<NodeId>,
    /// A follower or candidate starts an election after a random timeout in
    /// `[election_ticks, 2 * election_ticks)` without hearing from a leader (section 5.2).
    pub election_ticks: u32,
    /// A leader sends heartbeats every this many ticks.
    pub heartbeat_ticks: u32,
    /// The production extensions (all off in the labs, which keep 6.5840's behaviour).
    pub features: Features,
    /// A node may become a voter once it is at most this many entries behind the leader
    /// (thesis 4.2.1: add it as a learner until then).
    pub promotion_lag: u64,
}

/// Switches for the extensions beyond the paper's Figure 2. Each is off by default, so the
/// labs' suites see exactly the protocol they were written for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Features {
    /// Pre-vote (thesis 9.6): a node whose election timer fires first asks whether it could
    /// win, without changing its term; a partitioned node then cannot inflate its term and
    /// depose a working leader when it returns. See `prevote.rs`.
    pub pre_vote: bool,
    /// Check-quorum (thesis 6.2): a leader that has not heard from a majority within an
    /// election timeout steps down, and voters that hear from a live leader refuse to vote
    /// (the lease rule of thesis 4.2.3). See `checkquorum.rs`.
    pub check_quorum: bool,
    /// Lease reads (thesis 6.4.1): a leader answers reads without a confirmation round while a
    /// majority acknowledged a heartbeat it sent less than `election_ticks * (1 - LEASE_DRIFT)`
    /// ticks ago. Needs `check_quorum` (otherwise it is ignored). Assumes clocks that drift by
    /// less than [`LEASE_DRIFT`]; off in the labs. See `read_index.rs`.
    pub lease_reads: bool,
}

/// The clock-drift bound lease reads assume: a node's ticks run at most 10% slower or faster
/// than another's, so a lease lasts 90% of the minimum election timeout.
pub const LEASE_DRIFT: f64 = 0.1;

impl Features {
    /// What a real cluster runs with: pre-vote and check-quorum on, reads confirmed by a round
    /// of heartbeats (no clock assumption).
    pub fn production() -> Features {
        Features {
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
        }
    }
}

impl Config {
    /// The labs' timing with a 10 ms tick: heartbeats every 100 ms (at most ten per second, as
    /// the lab requires) and election timeouts of 300-600 ms.
    pub fn lab(id: NodeId, peers: Vec<NodeId>) -> Self {
        Config {
            id,
            peers,
            election_ticks: 30,
            heartbeat_ticks: 10,
            features: Features::default(),
            promotion_lag: 64,
        }
    }

    /// The same configuration with `features` switched on.
    pub fn with(mut self, features: Features) -> Self {
        self.features = features;
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Follower,
    /// Asking for pre-votes (thesis 9.6): still in its old term, with its old vote.
    PreCandidate,
    Candidate,
    Leader,
}

/// The leader's view of one follower (Figure 2, "Volatile state on leaders").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Progress {
    /// Index of the next entry to send.
    pub next: LogIndex,
    /// Highest index known to be replicated on the follower.
    pub matched: LogIndex,
    /// Entries (or a snapshot) through this index were sent and not acknowledged yet. New
    /// proposals then wait for the reply or the next heartbeat instead of resending the same
    /// entries again and again to a follower that may be unreachable.
    pub inflight: Option<LogIndex>,
}

/// Something the service must apply, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Apply {
    Command {
        index: LogIndex,
        term: Term,
        command: Vec<u8>,
    },
    Snapshot {
        index: LogIndex,
        term: Term,
        data: Arc<Vec<u8>>,
    },
    /// A configuration entry committed (Raft's own; the service only advances past it).
    Membership {
        index: LogIndex,
        term: Term,
        membership: Membership,
    },
}

impl Apply {
    /// What applying the log entry `entry` at `index` hands the service: its command, or the
    /// configuration of a configuration entry.
    pub fn entry(index: LogIndex, entry: &Entry) -> Apply {
        match entry.membership() {
            Some(membership) => Apply::Membership {
                index,
                term: entry.term,
                membership,
            },
            None => Apply::Command {
                index,
                term: entry.term,
                command: entry.command.clone(),
            },
        }
    }

    /// The log index this applies through.
    pub fn index(&self) -> LogIndex {
        match self {
            Apply::Command { index, .. }
            | Apply::Snapshot { index, .. }
            | Apply::Membership { index, .. } => *index,
        }
    }
}

/// State that must reach stable storage before the messages of the same [`Ready`] are sent.
///
/// It says what changed, for storage that writes incrementally (a write-ahead log), and can
/// produce the whole state at once ([`Persist::raft_state`]) for storage that saves one blob
/// (the labs' `Persister`).
#[derive(Clone, Debug)]
pub struct Persist<'a> {
    /// Figure 2's currentTerm and votedFor (always given; they are small).
    pub term: Term,
    pub voted_for: Option<NodeId>,
    /// When the log changed: from this index on, the stored log must be replaced by
    /// `entries` (a truncation, an append, or both).
    pub entries_from: Option<LogIndex>,
    pub entries: &'a [Entry],
    /// The snapshot, when it changed, and the last index and term it covers.
    pub snapshot: Option<Arc<Vec<u8>>>,
    pub snapshot_index: LogIndex,
    pub snapshot_term: Term,
    /// The configuration the snapshot covers (`None`: the bootstrap one).
    pub snapshot_membership: Option<&'a Membership>,
    log: &'a RaftLog,
}

impl Persist<'_> {
    /// The whole persistent state (term, vote, log) encoded as one blob.
    pub fn raft_state(&self) -> Vec<u8> {
        persist::encode(self.term, self.voted_for, self.log)
    }

    /// The whole log as it is now saved (after the changes this `Persist` describes).
    pub fn log(&self) -> &RaftLog {
        self.log
    }
}

/// Everything the core produced since the last `ready()`.
///
/// Its messages are only reachable through [`Ready::persist`]: a driver cannot send a vote or an
/// acknowledgement before the state it promises is saved (Figure 2: "respond to RPCs" only after
/// "updating stable storage").
#[derive(Debug, Default)]
#[must_use = "a Ready holds messages and state that must be persisted and sent"]
pub struct Ready<'a> {
    persist: Option<Persist<'a>>,
    messages: Vec<Envelope>,
    replies: Vec<Envelope>,
    apply: Vec<Apply>,
    reads: Vec<ReadState>,
}

/// The answer to a [`Raft::read_index`] request: the read may be served once the service has
/// applied `index`, or it failed (the node lost leadership before confirming it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReadState {
    pub id: u64,
    pub index: Result<LogIndex, NotLeader>,
}

/// A [`Ready`] whose state is on stable storage: its messages may go out now.
#[derive(Debug, Default)]
pub struct Persisted {
    /// New requests (and replies to replies: none) for other nodes.
    pub messages: Vec<Envelope>,
    /// One reply per request stepped since the last `ready()`, in the order they were stepped.
    pub replies: Vec<Envelope>,
    /// Commands and snapshots to apply, in log order.
    pub apply: Vec<Apply>,
    /// Reads confirmed (or failed) since the last `ready()`. A read's `index` is released only
    /// after the entries before it are in `apply`.
    pub reads: Vec<ReadState>,
}

impl<'a> Ready<'a> {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_none()
            && self.messages.is_empty()
            && self.replies.is_empty()
            && self.apply.is_empty()
            && self.reads.is_empty()
    }

    /// The state to persist, if any (for inspection; use [`Ready::persist`] to act on it).
    pub fn pending_persist(&self) -> Option<&Persist<'a>> {
        self.persist.as_ref()
    }

    /// Saves the state with `save` (skipped when nothing changed), then releases the messages.
    pub fn persist<E>(self, save: impl FnOnce(&Persist) -> Result<(), E>) -> Result<Persisted, E> {
        if let Some(p) = &self.persist {
            save(p)?;
        }
        Ok(Persisted {
            messages: self.messages,
            replies: self.replies,
            apply: self.apply,
            reads: self.reads,
        })
    }
}

/// Returned by [`Raft::propose`] on a node that is not the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("not the leader (leader hint: {leader:?})")]
pub struct NotLeader {
    pub leader: Option<NodeId>,
}

/// A snapshot of the core's state, for tests, status displays and scenario scripts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: Term,
    pub voted_for: Option<NodeId>,
    pub leader: Option<NodeId>,
    pub commit: LogIndex,
    pub applied: LogIndex,
    pub last_index: LogIndex,
    pub snapshot_index: LogIndex,
    /// The follower a leadership transfer is under way to.
    pub transferring_to: Option<NodeId>,
    /// The configuration this node acts on, and the index of its entry (0: bootstrap).
    pub membership: Membership,
    pub membership_index: LogIndex,
}

/// One Raft node's protocol state. Cloning copies it whole (the model checker explores states).
#[derive(Clone)]
pub struct Raft {
    pub(crate) config: Config,
    /// `config.peers` as a configuration: the one in force until the log has another.
    pub(crate) bootstrap: Membership,
    pub(crate) rng: ChaCha8Rng,

    // Persistent state (Figure 2).
    pub(crate) term: Term,
    pub(crate) voted_for: Option<NodeId>,
    pub(crate) log: RaftLog,
    /// The service's snapshot, covering the log up to `log.snapshot_index()`.
    pub(crate) snapshot: Arc<Vec<u8>>,

    // Volatile state.
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    pub(crate) commit: LogIndex,
    /// Highest index handed to the service (in a `Ready`).
    pub(crate) applied: LogIndex,
    pub(crate) election_elapsed: u32,
    pub(crate) election_timeout: u32,
    pub(crate) heartbeat_elapsed: u32,
    pub(crate) votes: BTreeMap<NodeId, bool>,
    pub(crate) progress: BTreeMap<NodeId, Progress>,

    // Outputs waiting for the next `ready()`.
    pub(crate) state_dirty: bool,
    pub(crate) snapshot_dirty: bool,
    pub(crate) messages: Vec<Envelope>,
    pub(crate) replies: Vec<Envelope>,
    pub(crate) apply: Vec<Apply>,
    /// Set by proposals, so that many proposals between two `ready()`s share one broadcast.
    pub(crate) broadcast_pending: bool,

    // Extensions (see `Features`): the leader's bookkeeping, cleared when it steps down.
    /// Check-quorum: the peers heard from since the last check.
    pub(crate) active: BTreeSet<NodeId>,
    pub(crate) check_quorum_elapsed: u32,
    /// A leadership transfer under way.
    pub(crate) transfer: Option<crate::transfer::Transfer>,
    /// ReadIndex: reads and their confirmation rounds.
    pub(crate) reads: crate::read_index::Reads,
    /// Ticks since the node started (lease reads only; not part of the fingerprint).
    pub(crate) ticks: u64,
}

impl Raft {
    /// A node starting from its persisted state and snapshot (both empty on first boot).
    ///
    /// Its state machine restarts from the snapshot, which the service restores itself, so
    /// commit and applied start at the snapshot's last index (section 7).
    pub fn new(
        config: Config,
        raft_state: &[u8],
        snapshot: Vec<u8>,
        rng: ChaCha8Rng,
    ) -> Result<Raft, PersistError> {
        Ok(Raft::with_state(
            config,
            persist::decode(raft_state)?,
            snapshot,
            rng,
        ))
    }

    /// A node starting from already decoded persistent state (see [`Raft::new`]).
    pub fn with_state(
        config: Config,
        state: HardState,
        snapshot: Vec<u8>,
        rng: ChaCha8Rng,
    ) -> Raft {
        let HardState {
            term,
            voted_for,
            log,
        } = state;
        let base = log.snapshot_index();
        let bootstrap = Membership::voters(config.peers.iter().copied());
        let mut raft = Raft {
            config,
            bootstrap,
            rng,
            term,
            voted_for,
            log,
            snapshot: Arc::new(snapshot),
            role: Role::Follower,
            leader: None,
            commit: base,
            applied: base,
            election_elapsed: 0,
            election_timeout: 0,
            heartbeat_elapsed: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            state_dirty: false,
            snapshot_dirty: false,
            messages: Vec::new(),
            replies: Vec::new(),
            apply: Vec::new(),
            broadcast_pending: false,
            active: BTreeSet::new(),
            check_quorum_elapsed: 0,
            transfer: None,
            reads: Default::default(),
            ticks: 0,
        };
        raft.reset_election_timer();
        raft
    }

    pub fn id(&self) -> NodeId {
        self.config.id
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn term(&self) -> Term {
        self.term
    }

    /// `status().commit`, without building the rest (the monitors ask at every step).
    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }

    /// `status().applied`.
    pub fn applied_index(&self) -> LogIndex {
        self.applied
    }

    /// `status().voted_for`.
    pub fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }

    /// `status().leader`: the leader this node knows of in its term.
    pub fn known_leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// `status().transferring_to`.
    pub fn transferring_to(&self) -> Option<NodeId> {
        self.transfer.as_ref().map(|t| t.to)
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    pub fn status(&self) -> Status {
        Status {
            id: self.config.id,
            role: self.role,
            term: self.term,
            voted_for: self.voted_for,
            leader: self.leader,
            commit: self.commit,
            applied: self.applied,
            last_index: self.log.last_index(),
            snapshot_index: self.log.snapshot_index(),
            transferring_to: self.transfer.as_ref().map(|t| t.to),
            membership: self.membership().clone(),
            membership_index: self.membership_index(),
        }
    }

    /// Feeds the protocol state to `h`: everything that decides what the node does next,
    /// except its random generator and the length of its current election timeout (which only
    /// matter to ticks). Two cores with the same fingerprint behave alike under the same
    /// messages and elections; the model checker uses it to recognise states it has seen.
    pub fn fingerprint<H: std::hash::Hasher>(&self, h: &mut H) {
        use std::hash::Hash;
        self.config.id.hash(h);
        self.term.hash(h);
        self.voted_for.hash(h);
        self.log.hash(h);
        self.snapshot.hash(h);
        self.role.hash(h);
        self.leader.hash(h);
        self.commit.hash(h);
        self.applied.hash(h);
        self.election_elapsed.hash(h);
        self.heartbeat_elapsed.hash(h);
        self.votes.hash(h);
        self.progress.hash(h);
        self.broadcast_pending.hash(h);
        self.active.hash(h);
        self.check_quorum_elapsed.hash(h);
        self.transfer.hash(h);
        self.reads.hash(h);
    }

    /// Ticks since the election timer was last reset (Figure 2: a follower or candidate
    /// starts an election once this reaches [`Raft::election_timeout`]). For the rule monitor.
    pub fn election_elapsed(&self) -> u32 {
        self.election_elapsed
    }

    /// The randomized election timeout drawn at the last reset, in ticks.
    pub fn election_timeout(&self) -> u32 {
        self.election_timeout
    }

    /// The requests and the replies produced since the last `ready()`, in order (not yet
    /// released). The rule monitor reads what one input added to them.
    pub fn outbox(&self) -> (&[Envelope], &[Envelope]) {
        (&self.messages, &self.replies)
    }

    /// The leader's progress for each follower (empty unless leader).
    pub fn progress(&self) -> &BTreeMap<NodeId, Progress> {
        &self.progress
    }

    /// Every other member of the configuration: voters and learners (the leader replicates to
    /// all of them; candidates ask all of them, and count the votes of voters).
    pub(crate) fn others(&self) -> impl Iterator<Item = NodeId> + use<> {
        let me = self.config.id;
        self.membership()
            .members()
            .into_iter()
            .filter(move |p| *p != me)
    }

    /// Whether this node is a voter of its configuration (only voters start elections).
    pub(crate) fn is_voter(&self) -> bool {
        self.membership().is_voter(self.config.id)
    }

    pub(crate) fn send(&mut self, to: NodeId, mut msg: Message) {
        if let Message::AppendEntries(m) = &mut msg {
            m.round = self.reads.round;
        }
        self.messages.push(Envelope {
            from: self.config.id,
            to,
            msg,
        });
    }

    /// Sends `msg` to every other voting member.
    pub(crate) fn send_to_others(&mut self, msg: Message) {
        let others: Vec<NodeId> = self.others().collect();
        for peer in others {
            self.send(peer, msg.clone());
        }
    }

    pub(crate) fn reply(&mut self, to: NodeId, msg: Message) {
        self.replies.push(Envelope {
            from: self.config.id,
            to,
            msg,
        });
    }

    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let base = self.config.election_ticks.max(1);
        self.election_timeout = base + self.rng.random_range(0..base);
    }

    /// One unit of time passes.
    pub fn tick(&mut self) {
        let was_leader = self.is_leader();
        self.ticks += 1;
        self.tick_raft();
        if self.role == Role::Leader {
            if self.config.features.check_quorum {
                self.tick_check_quorum();
            }
            if self.transfer.is_some() {
                self.tick_transfer();
            }
        }
        self.after_input(was_leader);
    }

    /// What every input ends with: a node that just became leader settles an unfinished
    /// configuration change; a leader whose commit index reached its configuration entry
    /// leaves a joint configuration or, removed, steps down (see `membership.rs`).
    pub(crate) fn after_input(&mut self, was_leader: bool) {
        if !was_leader && self.is_leader() {
            self.settle_membership();
        }
        self.after_commit();
    }

    /// The timers of Figure 2: heartbeats and election timeouts.
    fn tick_raft(&mut self) {
        // SOLUTION BEGIN: tick: a leader sends heartbeats every heartbeat_ticks ticks; a follower or candidate starts an election once its randomized election timeout has elapsed
        if self.role == Role::Leader {
            self.heartbeat_elapsed += 1;
            let interval = if labrpc::planted!(HeartbeatTooSlow) {
                2 * self.config.heartbeat_ticks
            } else {
                self.config.heartbeat_ticks
            };
            if self.heartbeat_elapsed >= interval {
                self.heartbeat_elapsed = 0;
                self.broadcast_append(true);
            }
        } else {
            self.election_elapsed += 1;
            let timeout = if labrpc::planted!(ElectionTooEarly) {
                self.election_timeout / 2
            } else {
                self.election_timeout
            };
            if self.election_elapsed >= timeout {
                self.campaign();
            }
        }
        // SOLUTION END
    }

    /// Handles a message from another node. Every request produces exactly one reply in the
    /// next [`Ready`]'s `replies`, in the order requests were stepped.
    pub fn step(&mut self, env: Envelope) {
        let was_leader = self.is_leader();
        let from = env.from;
        let ack = match &env.msg {
            Message::AppendEntriesReply(r) => Some((r.term, r.round)),
            _ => None,
        };
        match &env.msg {
            Message::PreVote(_)
            | Message::PreVoteReply(_)
            | Message::TimeoutNow(_)
            | Message::TimeoutNowReply(_) => self.step_extension(env),
            _ => {
                if self.config.features.check_quorum && self.refuse_in_lease(&env) {
                    return;
                }
                let round = match &env.msg {
                    Message::AppendEntries(m) => Some(m.round),
                    _ => None,
                };
                let first_reply = self.replies.len();
                self.step_raft(env);
                // The reply echoes the request's read round (whatever the handler answered).
                if let Some(round) = round
                    && let Some(Envelope {
                        msg: Message::AppendEntriesReply(r),
                        ..
                    }) = self.replies.get_mut(first_reply)
                {
                    r.round = round;
                }
            }
        }
        self.after_step(from, ack);
        self.after_input(was_leader);
    }

    /// The extensions' messages: the term rule of Figure 2 (except for a PreVote, which asks
    /// about a term nobody is in yet), then their handlers.
    fn step_extension(&mut self, env: Envelope) {
        let Envelope { from, msg, .. } = env;
        if msg.term() > self.term && !matches!(msg, Message::PreVote(_)) {
            self.become_follower(msg.term(), None);
        }
        match msg {
            Message::PreVote(m) => self.handle_pre_vote(from, m),
            Message::PreVoteReply(m) => self.handle_pre_vote_reply(from, m),
            Message::TimeoutNow(m) => self.handle_timeout_now(from, m),
            _ => {}
        }
    }

    /// A leader's bookkeeping after any message from a follower of its term: contact for
    /// check-quorum, acknowledged read rounds, and the transfer's next step.
    fn after_step(&mut self, from: NodeId, ack: Option<(Term, u64)>) {
        if self.role != Role::Leader || !self.progress.contains_key(&from) {
            return;
        }
        self.active.insert(from);
        if let Some((term, round)) = ack
            && term == self.term
        {
            self.reads.acknowledged(from, round);
            if self.reads.confirming() {
                self.confirm_reads();
                self.extend_lease();
            }
        }
        if self.transfer.is_some() {
            self.maybe_timeout_now();
        }
    }

    /// Figure 2's messages.
    fn step_raft(&mut self, env: Envelope) {
        // SOLUTION BEGIN: step: a message with a higher term makes you its follower (Figure 2, Rules for Servers); then hand the message to its handler (only Figure 2's and Figure 13's messages reach here: end the match with `_ => {}`)
        let Envelope { from, msg, .. } = env;
        // Figure 2, "Rules for Servers": a message with a higher term makes us a follower of it.
        let ignored =
            matches!(msg, Message::AppendEntriesReply(_)) && labrpc::planted!(ReplyTermIgnored);
        if msg.term() > self.term && !ignored {
            let leader = match msg {
                Message::AppendEntries(_) | Message::InstallSnapshot(_) => Some(from),
                _ => None,
            };
            self.become_follower(msg.term(), leader);
            if labrpc::planted!(TermNotPersisted) {
                self.state_dirty = false;
            }
        }
        match msg {
            Message::RequestVote(m) => self.handle_request_vote(from, m),
            Message::RequestVoteReply(m) => self.handle_vote_reply(from, m),
            Message::AppendEntries(m) => self.handle_append_entries(from, m),
            Message::AppendEntriesReply(m) => self.handle_append_reply(from, m),
            Message::InstallSnapshot(m) => self.handle_install_snapshot(from, m),
            Message::InstallSnapshotReply(m) => self.handle_snapshot_reply(from, m),
            // The extensions' messages are stepped elsewhere.
            _ => {}
        }
        // SOLUTION END
    }

    /// Appends a command to the leader's log. Returns the index and term it will commit at if
    /// this node stays leader (the lab's `Start`).
    pub fn propose(&mut self, command: Vec<u8>) -> Result<(LogIndex, Term), NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader,
            });
        }
        if let Some(t) = &self.transfer {
            // Thesis 3.10: the leader stops accepting proposals while it hands over.
            return Err(NotLeader { leader: Some(t.to) });
        }
        let index = self.log.append(Entry::new(self.term, command));
        self.state_dirty = true;
        self.broadcast_pending = true;
        // A single-node cluster commits on its own.
        self.maybe_commit();
        self.after_commit();
        Ok((index, self.term))
    }

    /// Collects what the core produced. The driver persists, then sends and applies it.
    pub fn ready(&mut self) -> Ready<'_> {
        if self.broadcast_pending {
            self.broadcast_pending = false;
            if self.role == Role::Leader {
                self.broadcast_append(false);
            }
        }
        self.collect_applies();
        self.start_read_round();
        let dirty = self.state_dirty || self.snapshot_dirty;
        let entries_from = self.log.take_dirty();
        let snapshot = self.snapshot_dirty.then(|| self.snapshot.clone());
        self.state_dirty = false;
        self.snapshot_dirty = false;
        let messages = std::mem::take(&mut self.messages);
        let replies = std::mem::take(&mut self.replies);
        let apply = std::mem::take(&mut self.apply);
        let reads = std::mem::take(&mut self.reads.done);
        let log = &self.log;
        let persist = dirty.then(|| Persist {
            term: self.term,
            voted_for: self.voted_for,
            entries_from,
            entries: entries_from.map_or(&[][..], |from| log.entries_from(from)),
            snapshot,
            snapshot_index: log.snapshot_index(),
            snapshot_term: log.snapshot_term(),
            snapshot_membership: log.snapshot_membership(),
            log,
        });
        Ready {
            persist,
            messages,
            replies,
            apply,
            reads,
        }
    }

    /// Hands committed entries to the service, in order (Figure 2: "If commitIndex >
    /// lastApplied: increment lastApplied, apply log[lastApplied] to state machine").
    fn collect_applies(&mut self) {
        // SOLUTION BEGIN: collect_applies: hand every committed entry not applied yet to the service, in log order (Figure 2, lastApplied)
        while self.applied < self.commit {
            let index = self.applied.next();
            let Some(entry) = self.log.entry(index) else {
                // Cannot happen: the snapshot never goes past `applied`.
                break;
            };
            self.apply.push(Apply::entry(index, entry));
            self.applied = index;
            if labrpc::planted!(ApplyOneAtATime) {
                break;
            }
        }
        // SOLUTION END
    }

    /// Figure 2, "Rules for Servers": on a higher term, adopt it and become a follower.
    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            if self.role != Role::Follower {
                info!(
                    node = self.config.id.0,
                    term = term.0,
                    old_term = self.term.0,
                    "node {} steps down: saw term {} > {}",
                    self.config.id,
                    term,
                    self.term
                );
            }
            self.term = term;
            self.voted_for = None;
            self.state_dirty = true;
        }
        if self.role == Role::Leader {
            self.lost_leadership();
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.progress.clear();
    }

    /// The leader's extension state goes with its office: reads waiting for confirmation fail
    /// (the service retries them at the new leader), a transfer ends.
    fn lost_leadership(&mut self) {
        self.active.clear();
        self.check_quorum_elapsed = 0;
        self.transfer = None;
        self.reads.fail_all();
    }

    pub(crate) fn advance_commit(&mut self, index: LogIndex) {
        if index > self.commit {
            self.commit = index;
            info!(
                node = self.config.id.0,
                term = self.term.0,
                index = index.0,
                "node {} commits up to index {}",
                self.config.id,
                index
            );
        }
    }
}
