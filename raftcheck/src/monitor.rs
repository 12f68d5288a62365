//! The safety monitor: Raft's invariants (Figure 3 of the paper) and the rules they rest on,
//! checked at every step of every node.
//!
//! A [`Monitor`] watches one Raft group. Whatever runs the nodes (the async driver through
//! [`SharedMonitor`], the scenario runner, the model checker) tells it about each node's boot,
//! every message stepped, every input handled, every save and every release of messages,
//! replies and applied entries. It keeps what a node cannot lie about: a mirror of what each
//! node saved (which survives crashes, as the disk does), and a history of the whole run (every
//! leader of every term, every vote, every committed entry). The first violation is kept, with
//! the nodes involved; later events are still accepted but not judged.
//!
//! Properties (each a [`Property`]):
//! - **Election Safety**: at most one leader per term, over the whole run.
//! - **Log Matching**: two logs with an entry of the same index and term agree up to it. Checked
//!   as its inductive form: every (index, term) ever saved anywhere has one command and one
//!   previous term.
//! - **Leader Completeness**: the leader of a term holds every entry committed in an earlier
//!   term (a leader of an old term may still win, late, with votes given before the commit).
//! - **State Machine Safety**: no two nodes apply different commands at one index; each node
//!   applies in order.
//! - **Monotonicity**: terms never go back (also across a restart), nor commit and applied within
//!   an incarnation, nor what a node saved.
//! - **One vote per term**: a node never votes for two candidates in one term, across restarts.
//! - **Election restriction** (5.4.1): a vote goes only to a candidate whose log is at least as
//!   up-to-date as the voter's; a leader won with votes from a majority of its term.
//! - **Commitment** (5.3, 5.4.2): a leader commits only through an entry of its own term stored
//!   on a majority of the saved logs.
//! - **Persist before reply**: a term, a vote or an entry a message promises is on stable
//!   storage when the message leaves.
//! - **Acknowledgements**: a success reply claims only what its request proved, answers a
//!   request of its own term, and the entries it acknowledged stay in the log for that term.
//! - **Pre-vote** (thesis 9.6): answering a PreVote does not move the voter's term.
//! - **Configuration changes** (thesis chapter 4): a leader appends a configuration only
//!   after its previous one and an entry of its own term committed, and any majority of the
//!   new configuration intersects any majority of the previous one (a single-server change, or
//!   entering or leaving a joint configuration). Majorities (for elections and commitment) are
//!   those of the node's own configuration, so a learner's vote or copy never counts.
//! - **Read safety** (thesis 6.4): a ReadIndex read is answered at an index that covers every
//!   entry committed before it was asked ([`Monitor::check_read`], called by whoever issues the
//!   reads: the scenario runner and the model checker).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use raft::message::{AppendEntriesReply, InstallSnapshotReply, RequestVoteReply};
use raft::{
    Apply, Envelope, Input, LogIndex, Membership, Message, NodeId, Observer, Persist, Persisted,
    Raft, Role, Term,
};

/// Which property a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Property {
    ElectionSafety,
    LogMatching,
    LeaderCompleteness,
    StateMachineSafety,
    Monotonicity,
    OneVotePerTerm,
    ElectionRestriction,
    Commitment,
    PersistBeforeReply,
    Acknowledgement,
    PreVote,
    ReadIndex,
    Membership,
    // The rules of each step (`crate::rules`).
    Timers,
    TermRule,
    Elections,
    Replication,
    CommitRule,
    Apply,
    CheckQuorum,
    Transfer,
    MembershipRules,
    Lease,
}

impl Property {
    pub fn name(self) -> &'static str {
        match self {
            Property::ElectionSafety => "Election Safety",
            Property::LogMatching => "Log Matching",
            Property::LeaderCompleteness => "Leader Completeness",
            Property::StateMachineSafety => "State Machine Safety",
            Property::Monotonicity => "Monotonicity",
            Property::OneVotePerTerm => "One vote per term",
            Property::ElectionRestriction => "Election restriction (5.4.1)",
            Property::Commitment => "Commitment rule (5.3, 5.4.2)",
            Property::PersistBeforeReply => "Persist before reply (Figure 2)",
            Property::Acknowledgement => "Acknowledgement rule (Figure 2, AppendEntries)",
            Property::PreVote => "Pre-vote (thesis 9.6)",
            Property::ReadIndex => "Read safety (ReadIndex, thesis 6.4)",
            Property::Membership => "Configuration changes (thesis 4)",
            Property::Timers => "Timer rules (Figure 2, 5.2)",
            Property::TermRule => "Term rule (Figure 2, Rules for Servers)",
            Property::Elections => "Election rules (Figure 2, Candidates and Leaders)",
            Property::Replication => "AppendEntries rules (Figure 2, Figure 13)",
            Property::CommitRule => "Commit rule, exact (Figure 2)",
            Property::Apply => "Apply rule (Figure 2, All Servers)",
            Property::CheckQuorum => "Check-quorum (thesis 6.2, 4.2.3)",
            Property::Transfer => "Leadership transfer (thesis 3.10)",
            Property::MembershipRules => "Membership rules (thesis 4.2.2, 4.3)",
            Property::Lease => "Lease reads (thesis 6.4.1)",
        }
    }

    /// A rule of a step (the rule monitor's), rather than an invariant of the run.
    pub fn is_rule(self) -> bool {
        self >= Property::Timers
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A broken invariant: which, by which nodes, and what happened.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Violation {
    pub property: Property,
    pub nodes: Vec<NodeId>,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: Vec<String> = self.nodes.iter().map(|n| n.to_string()).collect();
        write!(
            f,
            "{} violation: {} (nodes {}): {}",
            if self.property.is_rule() {
                "rule"
            } else {
                "safety"
            },
            self.property,
            nodes.join(", "),
            self.detail
        )
    }
}

/// FNV-1a: a command's identity in the monitor (commands are compared by hash).
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A request a node stepped and has not answered yet, with what its reply will be judged by.
#[derive(Clone, Debug, Hash)]
enum Pending {
    Vote {
        term: Term,
        candidate: NodeId,
        /// The candidate's last entry, and the voter's when it read the request.
        candidate_last: (Term, LogIndex),
        voter_last: (Term, LogIndex),
    },
    Append {
        term: Term,
        prev: LogIndex,
        terms: Vec<Term>,
    },
    Snapshot {
        term: Term,
    },
    /// The voter's term when it read the PreVote.
    PreVote {
        term: Term,
    },
    TimeoutNow,
}

/// What the monitor knows of one node.
#[derive(Clone, Debug, Default, Hash)]
struct NodeView {
    // What the node saved (survives crashes).
    saved_term: Term,
    saved_vote: Option<NodeId>,
    snapshot: (LogIndex, Term),
    /// Saved entries after the snapshot: (term, command hash).
    log: Vec<(Term, u64)>,
    /// Highest term the node ever reported, in any incarnation.
    max_term: Term,
    // This incarnation.
    booted: bool,
    term: Term,
    role: Option<Role>,
    commit: LogIndex,
    applied: LogIndex,
    /// Last index handed to the service.
    released_apply: LogIndex,
    requests: VecDeque<Pending>,
    /// Highest index acknowledged to the leader of this term.
    acked: Option<(Term, LogIndex)>,
    /// A commit advanced as leader (term, new commit, the entry of its own term that carries it),
    /// checked against the saved logs when the node's Ready is released.
    pending_commit: Option<(Term, LogIndex, LogIndex, Membership)>,
    /// The index of the latest configuration entry seen in the node's log.
    config_index: LogIndex,
}

impl NodeView {
    fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot.0.0 + self.log.len() as u64)
    }

    /// The saved term at `i`: the snapshot's last entry counts, earlier ones are unknown.
    fn term_at(&self, i: LogIndex) -> Option<Term> {
        if i == self.snapshot.0 {
            return Some(self.snapshot.1);
        }
        if i < self.snapshot.0 || i > self.last_index() {
            return None;
        }
        Some(self.log[(i.0 - self.snapshot.0.0 - 1) as usize].0)
    }

    /// Does the saved state hold entry (i, t) (or a snapshot past it, which covers committed
    /// entries only)?
    fn holds(&self, i: LogIndex, t: Term) -> bool {
        i < self.snapshot.0 || self.term_at(i) == Some(t)
    }
}

/// The monitor of one Raft group. See the module documentation.
#[derive(Clone, Debug, Default, Hash)]
pub struct Monitor {
    nodes: BTreeMap<NodeId, NodeView>,
    leaders: BTreeMap<Term, NodeId>,
    votes: BTreeMap<(NodeId, Term), NodeId>,
    /// Log Matching, inductively: (index, term) -> (previous entry's term, command hash).
    entries: BTreeMap<(LogIndex, Term), (Term, u64)>,
    /// Applied anywhere: index -> (term, command hash).
    committed: BTreeMap<LogIndex, (Term, u64)>,
    /// Committed by a leader: index -> (the entry's term, the term of the leader that first
    /// committed it).
    decided: BTreeMap<LogIndex, (Term, Term)>,
    violation: Option<Violation>,
    /// The rules of each step (not hashed: see `Rules`).
    rules: crate::rules::Rules,
}

impl Monitor {
    /// The highest index a leader is known to have committed so far.
    pub fn decided_through(&self) -> LogIndex {
        self.decided.keys().next_back().copied().unwrap_or_default()
    }

    pub fn new() -> Monitor {
        Monitor::default()
    }

    /// The first violation seen, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// Moves what the rule monitor found into the verdict.
    fn judge_rules(&mut self) {
        for v in self.rules.take() {
            self.fail(v.property, &v.nodes, v.detail);
        }
    }

    fn fail(&mut self, property: Property, nodes: &[NodeId], detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation {
                property,
                nodes: nodes.to_vec(),
                detail,
            });
        }
    }

    /// The configuration `core` acts on, read from its log (or its bootstrap peers).
    fn configuration(core: &Raft) -> Membership {
        core.log()
            .membership()
            .cloned()
            .unwrap_or_else(|| Membership::voters(core.config().peers.iter().copied()))
    }

    /// A leader appended configuration entries: each must follow the rules of thesis 4.
    fn check_reconfiguration(&mut self, core: &Raft, commit_before: LogIndex) {
        let (id, term, log) = (core.id(), core.term(), core.log());
        let seen = self.view(id).config_index;
        let latest = log.membership_index();
        self.view(id).config_index = latest;
        if latest <= seen || log.term_at(latest) != Some(term) {
            return;
        }
        let changes = log.membership_changes();
        let bootstrap = || Membership::voters(core.config().peers.iter().copied());
        for (k, (index, next)) in changes.iter().enumerate() {
            if *index <= seen || log.term_at(*index) != Some(term) {
                continue;
            }
            let (prev_index, prev) = match k.checked_sub(1).and_then(|j| changes.get(j)) {
                Some((i, m)) => (*i, m.clone()),
                None => (
                    log.snapshot_index(),
                    log.snapshot_membership().cloned().unwrap_or_else(bootstrap),
                ),
            };
            // The leader's commit when it appended: before this input, or after it for a
            // configuration it appended because its commit moved (leaving a joint one).
            let commit = core.commit_index().max(commit_before);
            if prev_index > commit && prev_index > LogIndex(0) {
                self.fail(
                    Property::Membership,
                    &[id],
                    format!(
                        "leader {id} of term {term} appended the configuration {next} at index {index} while the previous one ({prev}, index {prev_index}) was uncommitted (commit {commit}): one change at a time"
                    ),
                );
            } else if !self.decided.values().any(|(_, by)| *by == term)
                && prev.voters != next.voters
            {
                self.fail(
                    Property::Membership,
                    &[id],
                    format!(
                        "leader {id} of term {term} appended the configuration {next} at index {index} before any entry of its term committed: a change of the previous leader may be uncommitted in a log it has not seen"
                    ),
                );
            } else if let Some((a, b)) = disjoint_majorities(&prev, next) {
                self.fail(
                    Property::Membership,
                    &[id],
                    format!(
                        "leader {id} of term {term} went from {prev} to {next} at index {index}: majorities {} and {} of the two do not intersect",
                        fmt_set(&a),
                        fmt_set(&b)
                    ),
                );
            }
        }
    }

    fn view(&mut self, id: NodeId) -> &mut NodeView {
        self.nodes.entry(id).or_default()
    }

    fn record_vote(&mut self, voter: NodeId, term: Term, candidate: NodeId) {
        match self.votes.get(&(voter, term)) {
            None => {
                self.votes.insert((voter, term), candidate);
            }
            Some(&first) if first != candidate => self.fail(
                Property::OneVotePerTerm,
                &[voter, first, candidate],
                format!("node {voter} voted for {first} and then for {candidate} in term {term}"),
            ),
            Some(_) => {}
        }
    }

    /// A node's core was created from its storage.
    pub fn boot(&mut self, core: &Raft) {
        self.boot_safety(core);
        self.rules.boot(core);
        self.judge_rules();
    }

    /// `input` is about to be handled by `core`.
    pub fn before_input(&mut self, core: &Raft, input: Input<'_>) {
        if let Input::Step(env) = input {
            self.before_step(core, env);
        }
        let decided = self.decided_through();
        self.rules.before_input(core, input, decided);
    }

    /// `core` handled the input announced by `before_input`.
    pub fn after_input(&mut self, core: &Raft) {
        self.after_input_safety(core);
        self.rules.after_input(core);
        self.judge_rules();
    }

    /// `core`'s Ready was persisted and is released: its requests, its replies, its applied
    /// entries and its reads.
    pub fn released(&mut self, core: &Raft, out: &Persisted) {
        self.released_safety(core, out);
        let applied = self.view(core.id()).released_apply;
        self.rules.released(core, out, applied);
        self.judge_rules();
    }

    fn boot_safety(&mut self, core: &Raft) {
        let id = core.id();
        let s = core.status();
        let v = self.view(id);
        v.config_index = core.log().membership_index();
        let before = v.max_term;
        v.booted = true;
        v.term = s.term;
        v.role = Some(s.role);
        v.commit = s.commit;
        v.applied = s.applied;
        v.released_apply = s.applied;
        v.requests.clear();
        v.pending_commit = None;
        if s.term < before {
            self.fail(
                Property::Monotonicity,
                &[id],
                format!(
                    "node {id} restarted in term {} after having been in term {before}: its term was not persisted",
                    s.term
                ),
            );
        }
        if let Some(c) = s.voted_for {
            self.record_vote(id, s.term, c);
        }
    }

    /// `env` is about to be stepped by `core`.
    fn before_step(&mut self, core: &Raft, env: &Envelope) {
        let log = core.log();
        let voter_last = (log.last_term(), log.last_index());
        let pending = match &env.msg {
            Message::RequestVote(m) => Pending::Vote {
                term: m.term,
                candidate: env.from,
                candidate_last: (m.last_log_term, m.last_log_index),
                voter_last,
            },
            Message::AppendEntries(m) => Pending::Append {
                term: m.term,
                prev: m.prev_log_index,
                terms: m.entries.iter().map(|e| e.term).collect(),
            },
            Message::InstallSnapshot(m) => Pending::Snapshot { term: m.term },
            Message::PreVote(_) => Pending::PreVote { term: core.term() },
            Message::TimeoutNow(_) => Pending::TimeoutNow,
            _ => return,
        };
        self.view(core.id()).requests.push_back(pending);
    }

    fn after_input_safety(&mut self, core: &Raft) {
        let id = core.id();
        let s = Brief::of(core);
        let v = self.view(id);
        let (term0, commit0, applied0) = (v.term, v.commit, v.applied);
        v.term = s.term;
        v.max_term = v.max_term.max(s.term);
        v.role = Some(s.role);
        v.commit = v.commit.max(s.commit);
        v.applied = v.applied.max(s.applied);
        if s.term < term0 {
            self.fail(
                Property::Monotonicity,
                &[id],
                format!("node {id}'s term went back from {term0} to {}", s.term),
            );
        }
        if s.commit < commit0 {
            self.fail(
                Property::Monotonicity,
                &[id],
                format!(
                    "node {id}'s commit index went back from {commit0} to {}",
                    s.commit
                ),
            );
        }
        if s.applied < applied0 {
            self.fail(
                Property::Monotonicity,
                &[id],
                format!(
                    "node {id}'s last applied went back from {applied0} to {}",
                    s.applied
                ),
            );
        }
        if let Some(c) = s.voted_for {
            self.record_vote(id, s.term, c);
        }
        if s.role != Role::Leader {
            self.view(id).config_index = core.log().membership_index();
            return;
        }
        if s.commit > commit0 {
            self.leader_commits(core, commit0);
        }
        self.check_reconfiguration(core, commit0);
        match self.leaders.get(&s.term) {
            Some(&l) if l == id => {}
            Some(&l) => self.fail(
                Property::ElectionSafety,
                &[l, id],
                format!("nodes {l} and {id} are both leader of term {}", s.term),
            ),
            None => {
                self.leaders.insert(s.term, id);
                self.new_leader(core);
            }
        }
    }

    /// `core` just became leader of its term: it needs a majority of that term's votes, and every
    /// entry committed so far.
    fn new_leader(&mut self, core: &Raft) {
        let (id, term) = (core.id(), core.term());
        let voters: Vec<NodeId> = self
            .votes
            .iter()
            .filter(|((_, t), c)| *t == term && **c == id)
            .map(|((v, _), _)| *v)
            .collect();
        let config = Self::configuration(core);
        if !config.is_quorum(|n| voters.contains(&n)) {
            let list: Vec<String> = voters.iter().map(|v| v.to_string()).collect();
            self.fail(
                Property::ElectionRestriction,
                &[id],
                format!(
                    "node {id} became leader of term {term} with the votes of only [{}] (a majority of {config} needed)",
                    list.join(" "),
                ),
            );
            return;
        }
        let log = core.log();
        let missing = self
            .decided
            .range(log.snapshot_index().next()..)
            .find(|(i, (t, committed_in))| *committed_in < term && log.term_at(**i) != Some(*t))
            .map(|(i, (t, c))| (*i, *t, *c));
        if let Some((i, t, c)) = missing {
            self.fail(
                Property::LeaderCompleteness,
                &[id],
                format!(
                    "node {id} became leader of term {term} without entry {i} (term {t}), committed in term {c}; it has {}",
                    log.term_at(i).map_or("nothing there".to_string(), |t| format!("term {t} there"))
                ),
            );
        }
    }

    /// A leader advanced its commit index: through which entry of its own term?
    fn leader_commits(&mut self, core: &Raft, from: LogIndex) {
        let (id, term, commit) = (core.id(), core.term(), core.commit_index());
        let log = core.log();
        let mut i = from.next().max(log.snapshot_index().next());
        while i <= commit {
            if let Some(t) = log.term_at(i) {
                self.decided.entry(i).or_insert((t, term));
            }
            i = i.next();
        }
        let mut carrier = None;
        let mut i = commit;
        while i <= log.last_index() {
            match log.term_at(i) {
                Some(t) if t == term => {
                    carrier = Some(i);
                    break;
                }
                Some(t) if t > term => break,
                _ => {}
            }
            i = i.next();
        }
        match carrier {
            Some(m) => {
                let config = Self::configuration(core);
                self.view(id).pending_commit = Some((term, commit, m, config));
            }
            None => self.fail(
                Property::Commitment,
                &[id],
                format!(
                    "leader {id} of term {term} advanced its commit index from {from} to {commit} (an entry of term {}) with no entry of its own term at or after it: entries of earlier terms commit only through one of the current term (Figure 8)",
                    log.term_at(commit).map_or("?".to_string(), |t| t.to_string())
                ),
            ),
        }
    }

    /// `p` reached node `id`'s stable storage.
    pub fn persisted(&mut self, id: NodeId, p: &Persist<'_>) {
        let mut problems: Vec<(Property, String)> = Vec::new();
        let mut new_entries: Vec<(LogIndex, Term, Term, u64)> = Vec::new();
        let v = self.nodes.entry(id).or_default();
        if p.term < v.saved_term {
            problems.push((
                Property::Monotonicity,
                format!("node {id} saved term {} over term {}", p.term, v.saved_term),
            ));
        }
        // The snapshot first: compaction drops a prefix (and the suffix, if it conflicts).
        if p.snapshot_index < v.snapshot.0 {
            problems.push((
                Property::Monotonicity,
                format!(
                    "node {id} saved a snapshot through {} over one through {}",
                    p.snapshot_index, v.snapshot.0
                ),
            ));
        } else if p.snapshot_index > v.snapshot.0 {
            if p.snapshot.is_none() {
                problems.push((
                    Property::PersistBeforeReply,
                    format!(
                        "node {id} saved a log compacted through index {} without saving the snapshot that replaces it",
                        p.snapshot_index
                    ),
                ));
            }
            if let Some(&(t, _)) = self.committed.get(&p.snapshot_index)
                && t != p.snapshot_term
            {
                problems.push((
                    Property::LogMatching,
                    format!(
                        "node {id} saved a snapshot through index {} as of term {}, but the entry committed there has term {t}",
                        p.snapshot_index, p.snapshot_term
                    ),
                ));
            }
            let keep = v.term_at(p.snapshot_index) == Some(p.snapshot_term);
            let cut = (p.snapshot_index.0 - v.snapshot.0.0) as usize;
            if keep {
                v.log.drain(..cut.min(v.log.len()));
            } else {
                v.log.clear();
            }
            v.snapshot = (p.snapshot_index, p.snapshot_term);
        }
        if let Some(from) = p.entries_from.filter(|f| *f > v.snapshot.0) {
            let keep = (from.0 - v.snapshot.0.0 - 1) as usize;
            // Entries acknowledged to this term's leader must survive in this term.
            if let Some((t, through)) = v.acked
                && t == p.term
                && from <= through
            {
                let old: Vec<Term> = (from.0..=through.0)
                    .filter_map(|i| v.term_at(LogIndex(i)))
                    .collect();
                let new: Vec<Term> = p
                    .entries
                    .iter()
                    .take((through.0 - from.0 + 1) as usize)
                    .map(|e| e.term)
                    .collect();
                if old != new {
                    problems.push((
                        Property::Acknowledgement,
                        format!(
                            "node {id} removed or replaced entries {from}..={through}, which it had acknowledged to the leader of term {t}"
                        ),
                    ));
                }
            }
            v.log.truncate(keep);
            for (k, e) in p.entries.iter().enumerate() {
                let index = LogIndex(from.0 + k as u64);
                let prev = v.term_at(index.prev()).unwrap_or_default();
                let h = fnv(&e.command);
                v.log.push((e.term, h));
                new_entries.push((index, e.term, prev, h));
            }
        }
        if v.last_index() != p.log().last_index() {
            // Storage and the core disagree on what changed: take the whole saved log.
            let log = p.log();
            v.snapshot = (log.snapshot_index(), log.snapshot_term());
            v.log = log
                .entries()
                .iter()
                .map(|e| (e.term, fnv(&e.command)))
                .collect();
        }
        v.saved_term = p.term;
        v.saved_vote = p.voted_for;
        if let Some(c) = p.voted_for {
            self.record_vote(id, p.term, c);
        }
        for (index, term, prev, h) in new_entries {
            match self.entries.get(&(index, term)) {
                None => {
                    self.entries.insert((index, term), (prev, h));
                }
                Some(&(p0, h0)) if (p0, h0) != (prev, h) => {
                    let what = if p0 != prev {
                        format!("follows an entry of term {prev} here but of term {p0} elsewhere")
                    } else {
                        "holds a different command than elsewhere".to_string()
                    };
                    self.fail(
                        Property::LogMatching,
                        &[id],
                        format!("node {id}'s entry {index} of term {term} {what}"),
                    );
                }
                Some(_) => {}
            }
        }
        for (property, detail) in problems {
            self.fail(property, &[id], detail);
        }
    }

    fn released_safety(&mut self, core: &Raft, out: &Persisted) {
        let id = core.id();
        if let Some((term, commit, carrier, config)) = self.view(id).pending_commit.take() {
            let holders: Vec<NodeId> = self
                .nodes
                .iter()
                .filter(|(_, v)| v.holds(carrier, term))
                .map(|(n, _)| *n)
                .collect();
            if !config.is_quorum(|n| holders.contains(&n)) {
                let list: Vec<String> = holders.iter().map(|n| n.to_string()).collect();
                self.fail(
                    Property::Commitment,
                    &[id],
                    format!(
                        "leader {id} of term {term} committed through index {commit}, but entry {carrier} of its term is saved only on [{}] (a majority of {config} needed)",
                        list.join(" "),
                    ),
                );
            }
        }
        for env in &out.messages {
            self.check_sent(id, env);
            match &env.msg {
                Message::RequestVote(m) => {
                    self.record_vote(id, m.term, id);
                    let v = self.view(id);
                    if v.saved_term == m.term && v.saved_vote != Some(id) {
                        self.fail(
                            Property::PersistBeforeReply,
                            &[id],
                            format!(
                                "node {id} asked for votes in term {} before saving its vote for itself",
                                m.term
                            ),
                        );
                    }
                }
                Message::AppendEntries(_) | Message::InstallSnapshot(_) => {
                    let term = env.msg.term();
                    match self.leaders.get(&term) {
                        Some(&l) if l != id => self.fail(
                            Property::ElectionSafety,
                            &[l, id],
                            format!(
                                "node {id} sends {} as leader of term {term}, whose leader is {l}",
                                env.msg.kind()
                            ),
                        ),
                        Some(_) => {}
                        None => {
                            self.leaders.insert(term, id);
                        }
                    }
                }
                _ => {}
            }
        }
        for env in &out.replies {
            self.check_sent(id, env);
            let request = self.view(id).requests.pop_front();
            match (&env.msg, request) {
                (
                    Message::RequestVoteReply(r),
                    Some(Pending::Vote {
                        term,
                        candidate,
                        candidate_last,
                        voter_last,
                    }),
                ) => self.check_vote(id, r, term, candidate, candidate_last, voter_last),
                (Message::AppendEntriesReply(r), Some(Pending::Append { term, prev, terms })) => {
                    self.check_append_ack(id, r, term, prev, &terms)
                }
                (Message::InstallSnapshotReply(r), Some(Pending::Snapshot { term })) => {
                    self.check_snapshot_ack(id, r, term)
                }
                (Message::PreVoteReply(r), Some(Pending::PreVote { term })) => {
                    if r.term != term {
                        self.fail(
                            Property::PreVote,
                            &[id, env.to],
                            format!(
                                "node {id} answered {}'s PreVote in term {} after reading it in term {term}: answering a pre-vote must not move the voter's term",
                                env.to, r.term
                            ),
                        );
                    }
                }
                (Message::TimeoutNowReply(_), Some(Pending::TimeoutNow)) => {}
                (_, request) => self.fail(
                    Property::Acknowledgement,
                    &[id],
                    format!(
                        "node {id} answered {} to {}: a node replies to each request in order",
                        env.msg.kind(),
                        match request {
                            Some(Pending::Vote { .. }) => "a RequestVote",
                            Some(Pending::Append { .. }) => "an AppendEntries",
                            Some(Pending::Snapshot { .. }) => "an InstallSnapshot",
                            Some(Pending::PreVote { .. }) => "a PreVote",
                            Some(Pending::TimeoutNow) => "a TimeoutNow",
                            None => "no request",
                        }
                    ),
                ),
            }
        }
        for a in &out.apply {
            self.check_apply(id, a);
        }
    }

    /// Every message carries its sender's term, which must be saved when it leaves.
    fn check_sent(&mut self, id: NodeId, env: &Envelope) {
        let saved = self.view(id).saved_term;
        if env.msg.term() > saved {
            self.fail(
                Property::PersistBeforeReply,
                &[id],
                format!(
                    "node {id} sent {} of term {} while its saved term is {saved}",
                    env.msg.kind(),
                    env.msg.term()
                ),
            );
        }
    }

    fn check_vote(
        &mut self,
        id: NodeId,
        r: &RequestVoteReply,
        term: Term,
        candidate: NodeId,
        candidate_last: (Term, LogIndex),
        voter_last: (Term, LogIndex),
    ) {
        if !r.vote_granted {
            return;
        }
        if r.term != term {
            self.fail(
                Property::Acknowledgement,
                &[id, candidate],
                format!(
                    "node {id} granted {candidate}'s request for term {term} while in term {}",
                    r.term
                ),
            );
            return;
        }
        self.record_vote(id, term, candidate);
        if candidate_last < voter_last {
            self.fail(
                Property::ElectionRestriction,
                &[id, candidate],
                format!(
                    "node {id} granted its vote in term {term} to {candidate}, whose log ends at index {} term {}, behind its own (index {} term {})",
                    candidate_last.1, candidate_last.0, voter_last.1, voter_last.0
                ),
            );
        }
        let v = self.view(id);
        let saved_vote = v.saved_vote;
        if v.saved_term == term && saved_vote != Some(candidate) {
            self.fail(
                Property::PersistBeforeReply,
                &[id, candidate],
                format!(
                    "node {id} granted its vote to {candidate} in term {term} before saving it (saved vote: {})",
                    saved_vote.map_or("none".to_string(), |n| n.to_string())
                ),
            );
        }
    }

    fn check_append_ack(
        &mut self,
        id: NodeId,
        r: &AppendEntriesReply,
        term: Term,
        prev: LogIndex,
        terms: &[Term],
    ) {
        if !r.success {
            return;
        }
        if r.term != term {
            self.fail(
                Property::Acknowledgement,
                &[id],
                format!(
                    "node {id} in term {} accepted an AppendEntries of term {term}: requests of older terms must be refused",
                    r.term
                ),
            );
            return;
        }
        let carried = LogIndex(prev.0 + terms.len() as u64);
        if r.match_index > carried {
            self.fail(
                Property::Acknowledgement,
                &[id],
                format!(
                    "node {id} acknowledged index {} to an AppendEntries that proved its log only through {carried} (prev {prev} + {} entries)",
                    r.match_index,
                    terms.len()
                ),
            );
            return;
        }
        let v = self.view(id);
        if v.saved_term == term {
            let missing = (prev.0 + 1..=r.match_index.0)
                .map(LogIndex)
                .find(|i| !v.holds(*i, terms[(i.0 - prev.0 - 1) as usize]));
            if let Some(i) = missing {
                self.fail(
                    Property::PersistBeforeReply,
                    &[id],
                    format!(
                        "node {id} acknowledged entries through {} in term {term} before saving them (entry {i} is not saved)",
                        r.match_index
                    ),
                );
                return;
            }
        }
        let acked = match v.acked {
            Some((t, m)) if t == term => m.max(r.match_index),
            _ => r.match_index,
        };
        v.acked = Some((term, acked));
    }

    fn check_snapshot_ack(&mut self, id: NodeId, r: &InstallSnapshotReply, term: Term) {
        if r.last_included_index == LogIndex(0) || r.term != term {
            return;
        }
        let v = self.view(id);
        if v.saved_term == term
            && v.snapshot.0 < r.last_included_index
            && v.last_index() < r.last_included_index
        {
            self.fail(
                Property::PersistBeforeReply,
                &[id],
                format!(
                    "node {id} acknowledged a snapshot through {} before saving it",
                    r.last_included_index
                ),
            );
        }
    }

    fn check_apply(&mut self, id: NodeId, a: &Apply) {
        let (index, term, hash) = match a {
            Apply::Command {
                index,
                term,
                command,
            } => (*index, *term, Some(fnv(command))),
            Apply::Snapshot { index, term, .. } => (*index, *term, None),
            Apply::Membership {
                index,
                term,
                membership,
            } => (*index, *term, Some(fnv(&membership.encode()))),
        };
        let last = self.view(id).released_apply;
        match a {
            Apply::Command { .. } | Apply::Membership { .. } if index != last.next() => self.fail(
                Property::StateMachineSafety,
                &[id],
                format!("node {id} applied index {index} after index {last}"),
            ),
            Apply::Snapshot { .. } if index <= last => self.fail(
                Property::Monotonicity,
                &[id],
                format!(
                    "node {id} applied a snapshot through {index} after applying through {last}: its state machine went back"
                ),
            ),
            _ => {}
        }
        self.view(id).released_apply = index;
        match (self.committed.get(&index).copied(), hash) {
            (None, Some(h)) => {
                self.committed.insert(index, (term, h));
            }
            (Some((t0, h0)), Some(h)) if (t0, h0) != (term, h) => self.fail(
                Property::StateMachineSafety,
                &[id],
                format!(
                    "node {id} applied {} at index {index} (term {term}), where another node applied {} (term {t0})",
                    if t0 == term { "a different command" } else { "an entry" },
                    if t0 == term { "another" } else { "one" }
                ),
            ),
            (Some((t0, _)), None) if t0 != term => self.fail(
                Property::StateMachineSafety,
                &[id],
                format!(
                    "node {id} applied a snapshot through index {index} of term {term}, where the committed entry has term {t0}"
                ),
            ),
            _ => {}
        }
    }
}

/// Two majorities, one of `a` and one of `b`, with no node in common, if there are any
/// (thesis 4.1: every majority of the old configuration must meet every majority of the new).
/// Majorities are upward closed, so it suffices to try each set of the nodes involved as a
/// majority of `a` against the rest as one of `b`.
pub fn disjoint_majorities(a: &Membership, b: &Membership) -> Option<(Vec<NodeId>, Vec<NodeId>)> {
    let mut all: Vec<NodeId> = a.voters.iter().chain(&a.outgoing).copied().collect();
    all.extend(b.voters.iter().chain(&b.outgoing).copied());
    all.sort_unstable();
    all.dedup();
    if all.len() > 16 {
        return None; // beyond what any test builds; not judged
    }
    for mask in 0u32..(1 << all.len()) {
        let side: Vec<NodeId> = (0..all.len())
            .filter(|k| mask & (1 << k) != 0)
            .map(|k| all[k])
            .collect();
        let rest: Vec<NodeId> = (0..all.len())
            .filter(|k| mask & (1 << k) == 0)
            .map(|k| all[k])
            .collect();
        if a.is_quorum(|n| side.contains(&n)) && b.is_quorum(|n| rest.contains(&n)) {
            return Some((side, rest));
        }
    }
    None
}

fn fmt_set(nodes: &[NodeId]) -> String {
    let list: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    format!("{{{}}}", list.join(","))
}

/// A [`Monitor`] shared by the nodes of a group, as their driver's [`Observer`]. Calls `alarm`
/// once, at the first violation (the test harness fails the test there).
#[derive(Clone)]
pub struct SharedMonitor {
    inner: Arc<Mutex<Monitor>>,
    alarm: Arc<dyn Fn(&Violation) + Send + Sync>,
}

impl SharedMonitor {
    pub fn new(alarm: impl Fn(&Violation) + Send + Sync + 'static) -> SharedMonitor {
        SharedMonitor {
            inner: Arc::new(Mutex::new(Monitor::new())),
            alarm: Arc::new(alarm),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Monitor> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first violation seen, if any.
    pub fn violation(&self) -> Option<Violation> {
        self.lock().violation().cloned()
    }

    fn with(&self, f: impl FnOnce(&mut Monitor)) {
        let mut m = self.lock();
        let before = m.violation.is_some();
        f(&mut m);
        if !before && let Some(v) = m.violation.clone() {
            drop(m);
            (self.alarm)(&v);
        }
    }
}

impl Observer for SharedMonitor {
    fn boot(&self, core: &Raft) {
        self.with(|m| m.boot(core));
    }
    fn before_input(&self, core: &Raft, input: Input<'_>) {
        self.with(|m| m.before_input(core, input));
    }
    fn after_input(&self, core: &Raft) {
        self.with(|m| m.after_input(core));
    }
    fn persisted(&self, node: NodeId, p: &Persist<'_>) {
        self.with(|m| m.persisted(node, p));
    }
    fn released(&self, core: &Raft, out: &Persisted) {
        self.with(|m| m.released(core, out));
    }
}

/// What the safety checks read of a node at every step (`Raft::status` would also copy its
/// configuration, at every step of every node).
struct Brief {
    term: Term,
    role: Role,
    commit: LogIndex,
    applied: LogIndex,
    voted_for: Option<NodeId>,
}

impl Brief {
    fn of(core: &Raft) -> Brief {
        Brief {
            term: core.term(),
            role: core.role(),
            commit: core.commit_index(),
            applied: core.applied_index(),
            voted_for: core.voted_for(),
        }
    }
}
