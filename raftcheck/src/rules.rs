//! The rule monitor: every rule of Figure 2, Figure 13 and the thesis's extensions that applies
//! to a step, checked at that step, from what the node saw and what it did.
//!
//! The safety monitor ([`crate::monitor`]) judges invariants: nothing unsafe happened. A Raft can
//! keep them in every run a suite makes and still break a rule: a voter that does not reset its
//! election timer when it grants a vote, a leader that ignores a higher term in a reply, a
//! follower that takes `min(leaderCommit, lastLogIndex)` as its commit index. Such a Raft is
//! slower, livelocks, or is unsafe under schedules the suite did not reach. The rule monitor
//! judges each transition instead: before every input it notes the node's state and the input
//! ([`raft::Input`]); after it, it compares the state and the messages that input produced with
//! what the rules say. What it relies on, it keeps itself where it can: the ticks it saw, the
//! acknowledgements a leader stepped (its own matchIndex), the contact a leader had, the reads
//! asked and the replies that followed. The core's own timer (`election_elapsed`) is read only
//! to judge the timer rules exactly, and is cross-checked by the monitor's tick counts.
//!
//! Rules (each a [`Property`] of the rule kind; the table in `raft/README.md` lists every one with
//! a planted bug and the test that catches it):
//! - **Timers** (Figure 2, 5.2): the election timer is reset by an AppendEntries or
//!   InstallSnapshot of the current term, a vote granted and an election started, and by nothing
//!   else (adopting a higher term and stepping down may reset it too, as etcd does); it fires only
//!   on a tick, after a timeout drawn at random from `[election_ticks, 2 * election_ticks)`; a
//!   leader sends every member an AppendEntries at least every `heartbeat_ticks` ticks.
//! - **Term rule** (Figure 2, Rules for Servers): a request *or reply* of a higher term makes the
//!   node adopt it and become follower (a PreVote, and a RequestVote refused under check-quorum's
//!   lease, excepted); a request of an older term changes nothing.
//! - **Elections** (Figure 2, Candidates and Leaders; 5.4.1): an election starts with term + 1, a
//!   vote for itself and a RequestVote carrying the last log entry to every member; a majority of
//!   votes makes the leader at once; a voter grants a vote whenever the rules allow it; a new leader
//!   sets nextIndex past its log and matchIndex to 0 and sends heartbeats at once; learners never
//!   campaign.
//! - **Replication** (Figure 2, AppendEntries): a leader's AppendEntries matches its own log; a
//!   follower accepts exactly when it holds prevLogIndex with prevLogTerm, truncates only at a
//!   conflict, acknowledges the last new entry, and sets commitIndex = max(commitIndex,
//!   min(leaderCommit, index of last new entry)); a leader's matchIndex follows the success
//!   replies, and its nextIndex moves back only on a refusal, with a retry.
//! - **Commit rule, exact** (Figure 2, Leaders; 5.4.2): after every input, a leader's commitIndex
//!   is the highest N stored on a majority (by the acknowledgements it stepped) with log[N] of its
//!   term, whenever that N is past it.
//! - **InstallSnapshot** (Figure 13): a snapshot newer than the commit index is installed whole.
//! - **Apply** (Figure 2, All Servers): every committed entry is handed to the service in the
//!   next Ready.
//! - **Pre-vote** (thesis 9.6): the timer starts a pre-vote, which keeps term and vote; a voter
//!   grants a pre-vote exactly when it hears from no live leader and the log is up to date, and
//!   granting resets nothing; a majority of pre-votes starts the real election.
//! - **Check-quorum** (6.2, 4.2.3): a leader that heard from no majority for two election timeouts
//!   has stepped down, and none steps down while it hears from one; a voter hearing from a live
//!   leader refuses votes (not a transfer's) without adopting their term.
//! - **Leadership transfer** (3.10): no proposal is accepted while transferring, TimeoutNow goes only
//!   to a caught-up target, a transfer ends within an election timeout, and only a TimeoutNow of
//!   the current term from the node's leader, with the log caught up, starts an election early.
//! - **Reads** (6.4): a read is answered at an index covering everything committed when it was
//!   asked, and (ReadIndex) only after a majority answered heartbeats of the term after it was asked.
//! - **Membership** (4.2.2, 4.3): a leader whose removal committed steps down, a committed joint
//!   configuration is left at once.

use std::collections::{BTreeMap, BTreeSet};

use raft::{Apply, Envelope, Input, LogIndex, Message, NodeId, Raft, Role, Term};

use crate::monitor::{Property, Violation};

mod elections;
mod leader;
mod replication;

/// The input, with what the rules need of it.
#[derive(Clone, Debug)]
enum Seen {
    Tick,
    Timeout,
    Append {
        from: NodeId,
        term: Term,
        prev: LogIndex,
        terms: Vec<Term>,
        leader_commit: LogIndex,
        /// The log held prevLogIndex with prevLogTerm (or a snapshot past it).
        matches: bool,
        /// Some entry of the request conflicts with one of the log.
        conflict: bool,
    },
    Snapshot {
        from: NodeId,
        term: Term,
        last_index: LogIndex,
    },
    Vote {
        from: NodeId,
        term: Term,
        up_to_date: bool,
        transfer: bool,
    },
    PreVote {
        from: NodeId,
        term: Term,
        up_to_date: bool,
    },
    VoteReply {
        from: NodeId,
        term: Term,
        granted: bool,
    },
    PreVoteReply {
        from: NodeId,
        term: Term,
        granted: bool,
    },
    AppendReply {
        from: NodeId,
        term: Term,
        success: bool,
        match_index: LogIndex,
        /// The read round the reply echoes.
        round: u64,
        /// The leader's nextIndex for `from` before the reply.
        next_before: Option<LogIndex>,
    },
    SnapshotReply {
        from: NodeId,
        term: Term,
        index: LogIndex,
    },
    TimeoutNow {
        from: NodeId,
        term: Term,
        last_index: LogIndex,
    },
    OtherMessage {
        from: NodeId,
        term: Term,
    },
    Propose,
    Read(u64),
    Other,
}

impl Seen {
    fn of(core: &Raft, input: Input<'_>) -> Seen {
        let env = match input {
            Input::Tick => return Seen::Tick,
            Input::Timeout => return Seen::Timeout,
            Input::Propose => return Seen::Propose,
            Input::Read(id) => return Seen::Read(id),
            Input::Step(env) => env,
            _ => return Seen::Other,
        };
        let log = core.log();
        let up_to_date = |last_term: Term, last_index: LogIndex| {
            (last_term, last_index) >= (log.last_term(), log.last_index())
        };
        let from = env.from;
        match &env.msg {
            Message::AppendEntries(m) => {
                let terms: Vec<Term> = m.entries.iter().map(|e| e.term).collect();
                let matches = m.prev_log_index < log.snapshot_index()
                    || log.term_at(m.prev_log_index) == Some(m.prev_log_term);
                let conflict = terms.iter().enumerate().any(|(k, t)| {
                    let i = LogIndex(m.prev_log_index.0 + 1 + k as u64);
                    i > log.snapshot_index() && log.term_at(i).is_some_and(|have| have != *t)
                });
                Seen::Append {
                    from,
                    term: m.term,
                    prev: m.prev_log_index,
                    terms,
                    leader_commit: m.leader_commit,
                    matches,
                    conflict,
                }
            }
            Message::InstallSnapshot(m) => Seen::Snapshot {
                from,
                term: m.term,
                last_index: m.last_included_index,
            },
            Message::RequestVote(m) => Seen::Vote {
                from,
                term: m.term,
                up_to_date: up_to_date(m.last_log_term, m.last_log_index),
                transfer: m.transfer,
            },
            Message::PreVote(m) => Seen::PreVote {
                from,
                term: m.term,
                up_to_date: up_to_date(m.last_log_term, m.last_log_index),
            },
            Message::RequestVoteReply(r) => Seen::VoteReply {
                from,
                term: r.term,
                granted: r.vote_granted,
            },
            Message::PreVoteReply(r) => Seen::PreVoteReply {
                from,
                term: r.term,
                granted: r.vote_granted,
            },
            Message::AppendEntriesReply(r) => Seen::AppendReply {
                from,
                term: r.term,
                success: r.success,
                match_index: r.match_index,
                round: r.round,
                next_before: core.progress().get(&from).map(|p| p.next),
            },
            Message::InstallSnapshotReply(r) => Seen::SnapshotReply {
                from,
                term: r.term,
                index: r.last_included_index,
            },
            Message::TimeoutNow(m) => Seen::TimeoutNow {
                from,
                term: m.term,
                last_index: m.last_log_index,
            },
            Message::TimeoutNowReply(r) => Seen::OtherMessage { from, term: r.term },
        }
    }

    /// The message's sender and term, for a step.
    fn message(&self) -> Option<(NodeId, Term, &'static str)> {
        Some(match self {
            Seen::Append { from, term, .. } => (*from, *term, "an AppendEntries"),
            Seen::Snapshot { from, term, .. } => (*from, *term, "an InstallSnapshot"),
            Seen::Vote { from, term, .. } => (*from, *term, "a RequestVote"),
            Seen::VoteReply { from, term, .. } => (*from, *term, "a RequestVote reply"),
            Seen::PreVoteReply { from, term, .. } => (*from, *term, "a PreVote reply"),
            Seen::AppendReply { from, term, .. } => (*from, *term, "an AppendEntries reply"),
            Seen::SnapshotReply { from, term, .. } => (*from, *term, "an InstallSnapshot reply"),
            Seen::TimeoutNow { from, term, .. } => (*from, *term, "a TimeoutNow"),
            Seen::OtherMessage { from, term } => (*from, *term, "a TimeoutNow reply"),
            _ => return None,
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Seen::Tick => "a tick",
            Seen::Timeout => "an election timeout",
            Seen::PreVote { .. } => "a PreVote",
            Seen::Propose => "a proposal",
            Seen::Read(_) => "a read",
            Seen::Other => "a local request",
            s => s.message().map_or("a message", |m| m.2),
        }
    }
}

/// The node's state before an input.
#[derive(Clone, Debug)]
struct Before {
    seen: Seen,
    role: Role,
    term: Term,
    voted_for: Option<NodeId>,
    leader: Option<NodeId>,
    commit: LogIndex,
    last: (Term, LogIndex),
    elapsed: u32,
    timeout: u32,
    voter: bool,
    transferring: bool,
    /// How many requests and replies the node had produced before this input.
    outbox: (usize, usize),
}

/// What the AppendEntries check needs of the node before the requests were made.
#[derive(Clone, Copy, Debug)]
struct Was {
    role: Role,
    term: Term,
    commit: LogIndex,
}

/// A leader's term, as the monitor saw it.
#[derive(Clone, Debug, Default)]
struct Lead {
    term: Term,
    /// The node's tick count when it became leader.
    since: u64,
    /// The highest index each follower acknowledged in this term (the monitor's matchIndex).
    matched: BTreeMap<NodeId, LogIndex>,
    /// Ticks since an AppendEntries or InstallSnapshot went to each member.
    unsent: BTreeMap<NodeId, u32>,
    /// The highest index each member was sent in this term (an AppendEntries' last entry, an
    /// InstallSnapshot's last included index): past its matchIndex, something is in flight.
    sent_through: BTreeMap<NodeId, LogIndex>,
    /// Members a proposal's entry must reach by the end of the Ready that follows (nothing was
    /// in flight to them), with the entry.
    owed: BTreeMap<NodeId, LogIndex>,
    /// The tick count at which each peer was last heard from (any message), and at which it
    /// last answered an AppendEntries or InstallSnapshot of this term (a heartbeat round).
    heard: BTreeMap<NodeId, u64>,
    answered: BTreeMap<NodeId, u64>,
    /// Ticks since the transfer under way began.
    transfer_ticks: u32,
    /// Lease reads: the tick at which each read round (an AppendEntries' `round`) was first
    /// sent in this term, the latest such tick each follower acknowledged, and the tick of the
    /// latest TimeoutNow (rounds sent until then give no lease: the target will not honour it).
    rounds: BTreeMap<u64, u64>,
    lease_acked: BTreeMap<NodeId, u64>,
    lease_floor: Option<u64>,
}

impl Lead {
    /// Records how far a message of this leader's term carries its receiver's log.
    fn note_sent(&mut self, e: &Envelope) {
        let through = match &e.msg {
            Message::AppendEntries(m) if m.term == self.term => {
                LogIndex(m.prev_log_index.0 + m.entries.len() as u64)
            }
            Message::InstallSnapshot(m) if m.term == self.term => m.last_included_index,
            _ => return,
        };
        let t = self.sent_through.entry(e.to).or_default();
        *t = (*t).max(through);
    }

    /// Everything sent to `p` in this term has been acknowledged.
    fn settled(&self, p: NodeId) -> bool {
        self.sent_through.get(&p).copied().unwrap_or_default()
            <= self.matched.get(&p).copied().unwrap_or_default()
    }
    /// The lease a leader holds at tick `now` (thesis 6.4.1): a majority, itself included,
    /// acknowledged rounds sent less than `lease` ticks ago, after the latest TimeoutNow.
    fn leased(&self, id: NodeId, membership: &raft::Membership, now: u64, lease: u64) -> bool {
        membership
            .is_quorum(|n| n == id || self.lease_acked.get(&n).is_some_and(|at| at + lease > now))
    }
}

/// A read asked at a leader and not answered yet.
#[derive(Clone, Debug, Default)]
struct Read {
    /// What a leader had committed when the read was asked.
    decided: LogIndex,
    /// The peers that answered an AppendEntries of the leader's term since.
    confirmed: BTreeSet<NodeId>,
    /// Asked at a leader with lease reads on, an entry of its term committed, and a lease of
    /// half the allowed length: it must be answered in the Ready that follows, by lease.
    in_lease: bool,
}

#[derive(Clone, Debug, Default)]
struct NodeRules {
    before: Option<Before>,
    /// Ticks this incarnation.
    ticks: u64,
    /// Ticks while not leader since the last reset the rules require (a vote granted, contact
    /// with the leader, an election started); `None` while that is unknown (a learner).
    since_required: Option<u32>,
    /// Ticks while not leader since the last event that may reset the timer.
    since_any: u32,
    /// Election timeouts drawn, the first one, and whether they ever differed.
    draws: u32,
    first_draw: Option<u32>,
    varied: bool,
    /// The latest answer of each voter to this node's current election (or pre-vote).
    votes: BTreeMap<NodeId, bool>,
    lead: Option<Lead>,
    reads: BTreeMap<u64, Read>,
    /// Requests produced by inputs since the last release (the rest come from `ready()`).
    produced: usize,
}

/// How long a lease lasts from the sending of the heartbeat a majority acknowledged: the
/// followers' election timeouts (at least `election_ticks`) less the clock drift allowed.
fn lease_ticks(election_ticks: u32) -> u64 {
    (f64::from(election_ticks) * (1.0 - raft::LEASE_DRIFT)) as u64
}

/// The rule monitor of one Raft group; [`crate::Monitor`] runs it beside the safety checks.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    nodes: BTreeMap<NodeId, NodeRules>,
    found: Vec<Violation>,
}

/// The model checker hashes the monitor into its states; the rule monitor's counters would
/// only split states that behave alike, so they are left out.
impl std::hash::Hash for Rules {
    fn hash<H: std::hash::Hasher>(&self, _h: &mut H) {}
}

impl Rules {
    /// Violations found since the last call.
    pub fn take(&mut self) -> Vec<Violation> {
        std::mem::take(&mut self.found)
    }

    fn fail(&mut self, property: Property, nodes: &[NodeId], detail: String) {
        self.found.push(Violation {
            property,
            nodes: nodes.to_vec(),
            detail,
        });
    }

    pub fn boot(&mut self, core: &Raft) {
        let v = self.nodes.entry(core.id()).or_default();
        let (draws, first_draw, varied) = (v.draws, v.first_draw, v.varied);
        *v = NodeRules {
            since_required: Some(0),
            draws,
            first_draw,
            varied,
            ..NodeRules::default()
        };
        self.drew(core);
    }

    /// `input` is about to be handled by `core`; entries through `decided` are committed.
    pub fn before_input(&mut self, core: &Raft, input: Input<'_>, decided: LogIndex) {
        // At every step: the fields one by one, not `status()` (which copies the configuration).
        let (me, role, term, commit) = (core.id(), core.role(), core.term(), core.commit_index());
        let membership = core.membership();
        let (messages, replies) = core.outbox();
        let before = Before {
            seen: Seen::of(core, input),
            role,
            term,
            voted_for: core.voted_for(),
            leader: core.known_leader(),
            commit,
            last: (core.log().last_term(), core.log().last_index()),
            elapsed: core.election_elapsed(),
            timeout: core.election_timeout(),
            voter: membership.is_voter(me),
            transferring: core.transferring_to().is_some(),
            outbox: (messages.len(), replies.len()),
        };
        let v = self.nodes.entry(core.id()).or_default();
        if let Seen::Read(id) = before.seen {
            let f = core.config().features;
            let half = lease_ticks(core.config().election_ticks) / 2;
            let in_lease = f.lease_reads
                && f.check_quorum
                && role == Role::Leader
                && core.transferring_to().is_none()
                && core.log().term_at(commit) == Some(term)
                && v.lead.as_ref().is_some_and(|l| {
                    l.term == term
                        && l.lease_floor.is_none()
                        && l.leased(me, membership, v.ticks, half)
                });
            v.reads.insert(
                id,
                Read {
                    decided,
                    confirmed: BTreeSet::new(),
                    in_lease,
                },
            );
        }
        v.before = Some(before);
    }

    /// A new election timeout was drawn: in range, and random.
    fn drew(&mut self, core: &Raft) {
        let (id, et, t) = (
            core.id(),
            core.config().election_ticks.max(1),
            core.election_timeout(),
        );
        if t < et || t >= 2 * et {
            self.fail(
                Property::Timers,
                &[id],
                format!(
                    "node {id} drew an election timeout of {t} ticks, outside [{et}, {}) (section 5.2)",
                    2 * et
                ),
            );
        }
        let v = self.nodes.entry(id).or_default();
        v.draws += 1;
        match v.first_draw {
            None => v.first_draw = Some(t),
            Some(f) if f != t => v.varied = true,
            _ => {}
        }
        if et >= 2 && v.draws == 40 && !v.varied {
            self.fail(
                Property::Timers,
                &[id],
                format!(
                    "node {id} drew the same election timeout ({t} ticks) 40 times: timeouts must be randomized (section 5.2), or split votes repeat forever"
                ),
            );
        }
    }

    pub fn after_input(&mut self, core: &Raft) {
        let id = core.id();
        let Some(b) = self.nodes.get_mut(&id).and_then(|v| v.before.take()) else {
            return;
        };
        let s = core.status();
        let (messages, replies) = core.outbox();
        let sent = &messages[b.outbox.0.min(messages.len())..];
        let answered = &replies[b.outbox.1.min(replies.len())..];
        let v = self.nodes.entry(id).or_default();
        v.produced = messages.len();
        if let Seen::Read(read) = b.seen
            && (b.role != Role::Leader || b.transferring)
        {
            v.reads.remove(&read); // refused at once: the caller was told
        }
        let started = self.elections(core, &b, &s, sent);
        self.timers(core, &b, &s, answered, started);
        self.term_rule(core, &b, &s, answered);
        self.votes(core, &b, &s, answered, started);
        self.follower_append(core, &b, &s, answered);
        self.leader(core, &b, &s, sent);
        self.check_sent(
            core,
            Was {
                role: b.role,
                term: b.term,
                commit: b.commit,
            },
            sent,
        );
        self.membership(core, &s);
    }

    /// A Ready left the node: the requests `ready()` added are judged against the core now, the
    /// reads it answered against what was committed and confirmed, and every committed entry
    /// must be on its way to the service.
    pub fn released(&mut self, core: &Raft, out: &raft::Persisted, applied: LogIndex) {
        let id = core.id();
        let v = self.nodes.entry(id).or_default();
        let produced = std::mem::take(&mut v.produced).min(out.messages.len());
        let tail = &out.messages[produced..];
        let ticks = v.ticks;
        let lease_len = lease_ticks(core.config().election_ticks);
        let mut owed = None;
        if let Some(l) = &mut self.nodes.entry(id).or_default().lead {
            for e in &out.messages {
                match &e.msg {
                    Message::AppendEntries(m) => {
                        l.unsent.insert(e.to, 0);
                        l.owed.remove(&e.to);
                        if m.term == l.term {
                            l.rounds.entry(m.round).or_insert(ticks);
                        }
                    }
                    Message::InstallSnapshot(_) => {
                        l.unsent.insert(e.to, 0);
                        l.owed.remove(&e.to);
                    }
                    Message::TimeoutNow(m) if m.term == l.term => l.lease_floor = Some(ticks),
                    _ => {}
                }
            }
            // The step's own messages were noted when it was judged (`leader`).
            for e in tail {
                l.note_sent(e);
            }
            if let Some((p, entry)) = std::mem::take(&mut l.owed).into_iter().next() {
                owed = Some((p, entry, l.matched.get(&p).copied().unwrap_or_default()));
            }
            // Rounds too old to lease anything.
            l.rounds.retain(|_, at| *at + lease_len >= ticks);
        }
        if let Some((p, entry, matched)) = owed {
            self.fail(Property::Replication, &[id, p], format!(
                "leader {id} appended entry {entry} and sent {p} nothing, though {p} had acknowledged everything sent to it (through {matched}): a new entry goes at once to every follower with nothing in flight, not at the next heartbeat (Figure 2, Leaders)"));
        }
        // Requests `ready()` made: judged against the core as it is now (no input came between).
        let now = Was {
            role: core.role(),
            term: core.term(),
            commit: LogIndex(0),
        };
        self.check_sent(core, now, tail);
        let membership = core.membership();
        let lease = core.config().features.lease_reads && core.config().features.check_quorum;
        let leased = self
            .nodes
            .get(&id)
            .and_then(|v| v.lead.as_ref())
            .is_some_and(|l| l.term == core.term() && l.leased(id, membership, ticks, lease_len));
        for r in &out.reads {
            let Some(read) = self.nodes.entry(id).or_default().reads.remove(&r.id) else {
                continue;
            };
            let Ok(index) = r.index else { continue };
            if index < read.decided {
                self.fail(Property::ReadIndex, &[id], format!(
                    "node {id} answered read #{} at index {index}, but entries through {} were committed before the read was asked: the read would miss them", r.id, read.decided));
            }
            let confirmed = membership.is_quorum(|n| n == id || read.confirmed.contains(&n));
            if !confirmed && !lease {
                self.fail(Property::ReadIndex, &[id], format!(
                    "node {id} answered read #{} at index {index} after hearing from only {:?} in its term since the read was asked: a ReadIndex read waits for a majority to answer a round of heartbeats (thesis 6.4)", r.id, read.confirmed));
            } else if !confirmed && !leased {
                let acked = self
                    .nodes
                    .get(&id)
                    .and_then(|v| v.lead.as_ref())
                    .map(|l| l.lease_acked.clone())
                    .unwrap_or_default();
                self.fail(Property::Lease, &[id], format!(
                    "node {id} answered read #{} at index {index} at tick {ticks} by lease, but the rounds of heartbeats a majority acknowledged were sent at ticks {acked:?} (by follower): a lease lasts {lease_len} ticks from the sending of the heartbeat, election_ticks * (1 - {}) for clock drift, and none is left after a TimeoutNow (thesis 6.4.1)", r.id, raft::LEASE_DRIFT));
            }
            if applied < index {
                self.fail(Property::ReadIndex, &[id], format!(
                    "node {id} released read #{} at index {index} before handing the service the entries through it (applied through {applied})", r.id));
            }
        }
        // Thesis 6.4.1: while the lease holds the leader answers at once, without a round of
        // heartbeats. Judged with half the allowed lease, so a cautious lease passes; a lease
        // that never holds (reads always wait for a round) does not.
        let unused: Vec<u64> = self
            .nodes
            .entry(id)
            .or_default()
            .reads
            .iter_mut()
            .filter_map(|(read, r)| std::mem::take(&mut r.in_lease).then_some(*read))
            .collect();
        if let Some(read) = unused.first() {
            self.fail(Property::Lease, &[id], format!(
                "node {id} did not answer read #{read} at once, though it was asked while a majority had acknowledged heartbeats sent less than {} ticks earlier (half the lease) and an entry of the leader's term was committed: within its lease a leader answers a read without a round of heartbeats (thesis 6.4.1)", lease_len / 2));
        }
        let commit = core.commit_index();
        if applied < commit {
            let kind = out.apply.last().map(|a| match a {
                Apply::Snapshot { .. } => "a snapshot",
                _ => "entries",
            });
            self.fail(Property::Apply, &[id], format!(
                "node {id} has committed through {commit} but handed the service only through {applied} ({}): Figure 2, All Servers: apply log[lastApplied] while commitIndex > lastApplied",
                kind.unwrap_or("nothing in this Ready")));
        }
    }
}
