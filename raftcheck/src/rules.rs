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

use raft::{Apply, Envelope, Input, LogIndex, Membership, Message, NodeId, Raft, Role, Term};

use crate::monitor::{Property, Violation};

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
    /// The tick count at which each peer was last heard from (any message), and at which it
    /// last answered an AppendEntries or InstallSnapshot of this term (a heartbeat round).
    heard: BTreeMap<NodeId, u64>,
    answered: BTreeMap<NodeId, u64>,
    /// Ticks since the transfer under way began.
    transfer_ticks: u32,
}

/// A read asked at a leader and not answered yet.
#[derive(Clone, Debug, Default)]
struct Read {
    /// What a leader had committed when the read was asked.
    decided: LogIndex,
    /// The peers that answered an AppendEntries of the leader's term since.
    confirmed: BTreeSet<NodeId>,
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

fn hears_from_leader(core: &Raft, b: &Before) -> bool {
    b.role == Role::Leader
        || (b.leader.is_some() && b.elapsed < core.config().election_ticks.max(1))
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
        let s = core.status();
        let (messages, replies) = core.outbox();
        let before = Before {
            seen: Seen::of(core, input),
            role: s.role,
            term: s.term,
            voted_for: s.voted_for,
            leader: s.leader,
            commit: s.commit,
            last: (core.log().last_term(), core.log().last_index()),
            elapsed: core.election_elapsed(),
            timeout: core.election_timeout(),
            voter: s.membership.is_voter(s.id),
            transferring: s.transferring_to.is_some(),
            outbox: (messages.len(), replies.len()),
        };
        let v = self.nodes.entry(core.id()).or_default();
        if let Seen::Read(id) = before.seen {
            v.reads.insert(
                id,
                Read {
                    decided,
                    confirmed: BTreeSet::new(),
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
        self.check_sent(core, &b, sent);
        self.membership(core, &s);
    }

    /// Did this input start an election (or a pre-vote), and was it allowed to?
    fn elections(&mut self, core: &Raft, b: &Before, s: &raft::Status, sent: &[Envelope]) -> bool {
        let id = core.id();
        let real = s.term > b.term && s.voted_for == Some(id);
        let pre = s.role == Role::PreCandidate
            && s.term == b.term
            && (b.role != Role::PreCandidate
                || (matches!(b.seen, Seen::Tick | Seen::Timeout) && core.election_elapsed() == 0));
        if !real && !pre {
            return false;
        }
        let expired = b.role != Role::Leader && b.elapsed + 1 >= b.timeout;
        let features = core.config().features;
        let why = match &b.seen {
            Seen::Tick if expired => None,
            Seen::Tick => Some(format!(
                "its election timer was at {} of {} ticks: an election starts only once the timeout elapses",
                b.elapsed + 1,
                b.timeout
            )),
            Seen::Timeout => None,
            Seen::PreVoteReply { .. } if b.role == Role::PreCandidate && real => None,
            Seen::TimeoutNow {
                from,
                term,
                last_index,
            } if real => {
                if *term == b.term
                    && b.leader == Some(*from)
                    && b.role == Role::Follower
                    && b.last.1 >= *last_index
                {
                    None
                } else {
                    Some(format!(
                        "it honoured a TimeoutNow of term {term} from {from} for index {last_index} while in term {} (leader {:?}, {:?}, log through {}): only a TimeoutNow of the current term from its leader, with its log caught up, starts an election (thesis 3.10)",
                        b.term, b.leader, b.role, b.last.1
                    ))
                }
            }
            other => Some(format!(
                "{} starts no election: only the election timer, a majority of pre-votes or a TimeoutNow does",
                other.name()
            )),
        };
        let kind = if real { "an election" } else { "a pre-vote" };
        let property = if matches!(b.seen, Seen::TimeoutNow { .. }) {
            Property::Transfer
        } else {
            Property::Timers
        };
        if let Some(why) = why {
            self.fail(
                property,
                &[id],
                format!("node {id} started {kind} on {}: {why}", b.seen.name()),
            );
        }
        if !b.voter {
            self.fail(
                Property::Elections,
                &[id],
                format!(
                    "node {id} started {kind} in term {} while not a voter of its configuration: learners and removed servers never campaign (thesis 4.2.1)",
                    s.term
                ),
            );
        }
        let from_timer =
            matches!(b.seen, Seen::Tick | Seen::Timeout) && b.role != Role::PreCandidate;
        let alone = s.membership.is_quorum(|n| n == id);
        if from_timer && features.pre_vote && real && !alone {
            self.fail(
                Property::PreVote,
                &[id],
                format!(
                    "node {id}'s election timer started a real election (term {} -> {}) with pre-vote on: it must first ask for pre-votes, keeping its term (thesis 9.6)",
                    b.term, s.term
                ),
            );
        }
        if pre && !features.pre_vote {
            self.fail(
                Property::PreVote,
                &[id],
                format!("node {id} asked for pre-votes with pre-vote off"),
            );
        }
        let v = self.nodes.entry(id).or_default();
        v.votes.clear();
        // The shape of an election: Figure 2, Candidates (or thesis 9.6 for a pre-vote).
        let log = core.log();
        let last = (log.last_term(), log.last_index());
        if real && s.term != b.term.next() {
            self.fail(
                Property::Elections,
                &[id],
                format!(
                    "node {id} went from term {} to {} to start an election: a candidate increments its term by one",
                    b.term, s.term
                ),
            );
        }
        if pre && s.voted_for != b.voted_for {
            self.fail(
                Property::PreVote,
                &[id],
                format!(
                    "node {id} changed its vote from {:?} to {:?} when asking for pre-votes: a pre-candidate keeps its vote (thesis 9.6)",
                    b.voted_for, s.voted_for
                ),
            );
        }
        if s.role == Role::Leader {
            return true; // a lone voter wins at once
        }
        let transfer = matches!(b.seen, Seen::TimeoutNow { .. });
        let me = id;
        for peer in s.membership.members().into_iter().filter(|p| *p != me) {
            let asked = sent.iter().find_map(|e| match &e.msg {
                Message::RequestVote(m) if real && e.to == peer => {
                    Some((m.term, m.last_log_term, m.last_log_index, m.transfer))
                }
                Message::PreVote(m) if !real && e.to == peer => {
                    Some((m.term, m.last_log_term, m.last_log_index, false))
                }
                _ => None,
            });
            let ok = asked.is_some_and(|(t, lt, li, tr)| {
                t == s.term && (lt, li) == last && (!real || tr == transfer)
            });
            if !ok {
                self.fail(
                    Property::Elections,
                    &[id, peer],
                    format!(
                        "node {id} started {kind} for term {} without asking {peer} correctly (sent: {asked:?}; expected term {}, last log entry index {} term {}, transfer {transfer}): a candidate sends RequestVote with its last log entry to every other server (Figure 2)",
                        if real { s.term } else { s.term.next() },
                        s.term,
                        last.1,
                        last.0
                    ),
                );
                break;
            }
        }
        true
    }

    /// Figure 2's election timer, exactly, and the monitor's own tick counts as a cross-check.
    fn timers(
        &mut self,
        core: &Raft,
        b: &Before,
        s: &raft::Status,
        answered: &[Envelope],
        started: bool,
    ) {
        let id = core.id();
        let et = core.config().election_ticks.max(1);
        let elapsed = core.election_elapsed();
        let granted = answered
            .iter()
            .any(|e| matches!(&e.msg, Message::RequestVoteReply(r) if r.vote_granted));
        let contact = match &b.seen {
            Seen::Append { term, .. } | Seen::Snapshot { term, .. } => *term >= b.term,
            _ => false,
        };
        let required = started || granted || contact;
        let expired = b.role != Role::Leader && b.elapsed + 1 >= b.timeout;
        let permitted = s.term > b.term
            || (b.role == Role::Leader && s.role != Role::Leader)
            || (!b.voter && matches!(b.seen, Seen::Tick) && expired)
            || (!b.voter && matches!(b.seen, Seen::Timeout));
        let ticked = matches!(b.seen, Seen::Tick) && b.role != Role::Leader;
        let why = if started {
            "it started an election"
        } else if granted {
            "it granted a vote"
        } else {
            "it heard from the leader of its term"
        };
        if required && elapsed != 0 {
            self.fail(
                Property::Timers,
                &[id],
                format!(
                    "node {id} did not reset its election timer on {} although {why} (it stands at {elapsed} ticks): Figure 2, Followers",
                    b.seen.name()
                ),
            );
        } else if !required && !permitted && b.role != Role::Leader && s.role != Role::Leader {
            let expected = b.elapsed + u32::from(ticked);
            if elapsed != expected {
                self.fail(
                    Property::Timers,
                    &[id],
                    format!(
                        "node {id}'s election timer went from {} to {elapsed} ticks on {}: only contact with the leader of its term, a vote granted or an election resets it (Figure 2){}",
                        b.elapsed,
                        b.seen.name(),
                        if elapsed == 0 { "" } else { ", and a tick adds one" }
                    ),
                );
            }
        }
        if matches!(b.seen, Seen::Tick) && expired && b.voter && !started && s.role != Role::Leader
        {
            self.fail(
                Property::Timers,
                &[id],
                format!(
                    "node {id}'s election timeout of {} ticks elapsed and it started no election (Figure 2, Followers)",
                    b.timeout
                ),
            );
        }
        if (required || permitted) && elapsed == 0 && (b.elapsed != 0 || started) {
            self.drew(core);
        }
        // The monitor's own count of ticks.
        let v = self.nodes.entry(id).or_default();
        if matches!(b.seen, Seen::Tick) {
            v.ticks += 1;
        }
        if ticked {
            v.since_any += 1;
            v.since_required = v.since_required.map(|c| c + 1);
        }
        let early = match (started && matches!(b.seen, Seen::Tick), v.since_required) {
            (true, Some(c)) if c < et => Some(c),
            _ => None,
        };
        if required {
            v.since_required = Some(0);
            v.since_any = 0;
        } else if permitted {
            v.since_any = 0;
        }
        if !s.membership.is_voter(id) {
            v.since_required = None;
            v.since_any = 0;
        }
        let late = s.role != Role::Leader && v.since_any >= 2 * et;
        let since_any = v.since_any;
        if late {
            v.since_any = 0; // reported once
        }
        if let Some(c) = early {
            self.fail(
                Property::Timers,
                &[id],
                format!(
                    "node {id} started an election {c} ticks after its last vote granted, contact with its leader or election: the minimum election timeout is {et} ticks (the monitor's count)"
                ),
            );
        }
        if late {
            self.fail(
                Property::Timers,
                &[id],
                format!(
                    "node {id} went {since_any} ticks without contact with a leader, a vote granted or an election, and started none: its election timer must fire within {} ticks (the monitor's count)",
                    2 * et
                ),
            );
        }
    }

    /// Figure 2, Rules for Servers: "If RPC request or response contains term T > currentTerm:
    /// set currentTerm = T, convert to follower"; and a request of an older term changes nothing.
    fn term_rule(&mut self, core: &Raft, b: &Before, s: &raft::Status, answered: &[Envelope]) {
        let id = core.id();
        let Some((from, t, kind)) = b.seen.message() else {
            return;
        };
        if t > b.term {
            let lease = core.config().features.check_quorum
                && matches!(
                    b.seen,
                    Seen::Vote {
                        transfer: false,
                        ..
                    }
                )
                && hears_from_leader(core, b);
            if lease && s.term == b.term {
                let granted = answered
                    .iter()
                    .any(|e| matches!(&e.msg, Message::RequestVoteReply(r) if r.vote_granted));
                if granted {
                    self.fail(
                        Property::CheckQuorum,
                        &[id, from],
                        format!(
                            "node {id} granted {from}'s RequestVote of term {t} without adopting the term"
                        ),
                    );
                }
                return;
            }
            let adopted = s.term >= t && (s.role == Role::Follower || s.term > t);
            if !adopted {
                self.fail(
                    Property::TermRule,
                    &[id, from],
                    format!(
                        "node {id} in term {} ({:?}) stepped {kind} of term {t} from {from} and is now {:?} in term {}: a higher term in any request or reply makes a node adopt it and become follower (Figure 2, Rules for Servers)",
                        b.term, b.role, s.role, s.term
                    ),
                );
            } else if lease {
                self.fail(
                    Property::CheckQuorum,
                    &[id, from],
                    format!(
                        "node {id} adopted term {t} of {from}'s RequestVote while hearing from a live leader: thesis 4.2.3 neither updates the term nor grants the vote within an election timeout of hearing from one"
                    ),
                );
            }
        } else if t < b.term
            && matches!(
                b.seen,
                Seen::Append { .. } | Seen::Snapshot { .. } | Seen::Vote { .. }
            )
            && (s.term != b.term || s.role != b.role || s.leader != b.leader)
        {
            self.fail(
                Property::TermRule,
                &[id, from],
                format!(
                    "node {id} in term {} stepped {kind} of the older term {t} from {from} and went from {:?} (leader {:?}) to {:?} in term {} (leader {:?}): a request of an older term is refused and changes nothing",
                    b.term, b.role, b.leader, s.role, s.term, s.leader
                ),
            );
        }
        if matches!(b.seen, Seen::Append { .. } | Seen::Snapshot { .. })
            && t >= b.term
            && (s.role != Role::Follower || s.leader != Some(from))
            && s.term == t
        {
            self.fail(
                Property::Elections,
                &[id, from],
                format!(
                    "node {id} stepped {kind} of term {t} from {from} and is {:?} with leader {:?}: the sender leads the term, so it follows it (Figure 2, Candidates)",
                    s.role, s.leader
                ),
            );
        }
    }

    /// The voter's rules (RequestVote, PreVote) and the candidate's count.
    fn votes(
        &mut self,
        core: &Raft,
        b: &Before,
        s: &raft::Status,
        answered: &[Envelope],
        started: bool,
    ) {
        let id = core.id();
        let et = core.config().election_ticks.max(1);
        let reply = |pre: bool| {
            answered.iter().find_map(|e| match &e.msg {
                Message::RequestVoteReply(r) if !pre => Some((r.term, r.vote_granted)),
                Message::PreVoteReply(r) if pre => Some((r.term, r.vote_granted)),
                _ => None,
            })
        };
        match &b.seen {
            Seen::Vote {
                from,
                term,
                up_to_date,
                transfer,
            } => {
                let lease = core.config().features.check_quorum
                    && !transfer
                    && *term > b.term
                    && hears_from_leader(core, b);
                let free = *term > b.term || b.voted_for.is_none() || b.voted_for == Some(*from);
                let grant = *term >= b.term && free && *up_to_date && !lease;
                let got = reply(false);
                if got != Some((s.term, grant)) {
                    self.fail(
                        Property::Elections,
                        &[id, *from],
                        format!(
                            "node {id} answered {from}'s RequestVote of term {term} with {got:?} (term, granted); the rules say ({}, {grant}): Figure 2, RequestVote RPC, grants whenever the term is current, the vote free and the log up to date",
                            s.term
                        ),
                    );
                }
            }
            Seen::PreVote {
                term, up_to_date, ..
            } => {
                let hears = b.role == Role::Leader || (b.leader.is_some() && b.elapsed < et);
                let grant = *term >= b.term && !hears && *up_to_date;
                let got = reply(true);
                if got != Some((b.term, grant)) {
                    self.fail(
                        Property::PreVote,
                        &[id],
                        format!(
                            "node {id} (term {}, {}) answered a PreVote of term {term} with {got:?} (term, granted); thesis 9.6 says ({}, {grant}): grant when the log is up to date and no live leader is heard from",
                            b.term,
                            if hears { "hearing from a leader" } else { "hearing from no leader" },
                            b.term
                        ),
                    );
                }
                if s.term != b.term || s.voted_for != b.voted_for {
                    self.fail(
                        Property::PreVote,
                        &[id],
                        format!(
                            "node {id} answered a PreVote and went from term {} vote {:?} to term {} vote {:?}: answering a pre-vote changes nothing (thesis 9.6)",
                            b.term, b.voted_for, s.term, s.voted_for
                        ),
                    );
                }
            }
            Seen::VoteReply {
                from,
                term,
                granted,
            }
            | Seen::PreVoteReply {
                from,
                term,
                granted,
            } => {
                let pre = matches!(b.seen, Seen::PreVoteReply { .. });
                let role = if pre {
                    Role::PreCandidate
                } else {
                    Role::Candidate
                };
                let v = self.nodes.entry(id).or_default();
                let counts = if pre {
                    *term <= b.term
                } else {
                    *term == b.term
                };
                if b.role == role && counts && !started {
                    v.votes.insert(*from, *granted);
                }
                let votes: BTreeSet<NodeId> = v
                    .votes
                    .iter()
                    .filter(|(_, g)| **g)
                    .map(|(n, _)| *n)
                    .collect();
                if s.role == role
                    && s.term == b.term
                    && s.membership.is_quorum(|n| n == id || votes.contains(&n))
                {
                    self.fail(
                        Property::Elections,
                        &[id],
                        format!(
                            "node {id} holds {} of a majority ({{{}}} and itself) in term {} and is still {role:?}: a majority makes the {} at once",
                            if pre { "pre-votes" } else { "votes" },
                            votes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
                            s.term,
                            if pre { "candidate" } else { "leader" }
                        ),
                    );
                }
            }
            _ => {}
        }
    }

    /// Figure 2, AppendEntries receiver, and Figure 13's InstallSnapshot receiver.
    fn follower_append(
        &mut self,
        core: &Raft,
        b: &Before,
        s: &raft::Status,
        answered: &[Envelope],
    ) {
        let id = core.id();
        let log = core.log();
        match &b.seen {
            Seen::Append {
                from,
                term,
                prev,
                terms,
                leader_commit,
                matches,
                conflict,
            } if *term >= b.term => {
                let reply = answered.iter().find_map(|e| match &e.msg {
                    Message::AppendEntriesReply(r) => Some((r.success, r.match_index)),
                    _ => None,
                });
                let last_new = LogIndex(prev.0 + terms.len() as u64);
                let fail = |d: String| (Property::Replication, vec![id, *from], d);
                let mut found = Vec::new();
                match reply {
                    Some((true, m)) => {
                        if !matches {
                            found.push(fail(format!("node {id} accepted an AppendEntries whose prevLogIndex {prev} its log does not hold with that term (Figure 2, AppendEntries 2)")));
                        } else if m != last_new {
                            found.push(fail(format!("node {id} acknowledged index {m} to an AppendEntries whose last new entry is {last_new} (Figure 2: the reply speaks for what the request proved)")));
                        }
                        let missing = terms.iter().enumerate().find(|(k, t)| {
                            let i = LogIndex(prev.0 + 1 + *k as u64);
                            i > log.snapshot_index() && log.term_at(i) != Some(**t)
                        });
                        if let Some((k, t)) = missing {
                            found.push(fail(format!(
                                "node {id} accepted an AppendEntries but does not hold its entry {} (term {t}) (Figure 2, AppendEntries 3-4)",
                                prev.0 + 1 + k as u64
                            )));
                        }
                        if !conflict && log.last_index() < b.last.1 {
                            found.push(fail(format!(
                                "node {id} cut its log from {} to {} entries on an AppendEntries that conflicts with none of them: only a conflicting entry and those after it are deleted (Figure 2, AppendEntries 3)",
                                b.last.1, log.last_index()
                            )));
                        }
                        let expected = b.commit.max((*leader_commit).min(last_new));
                        if s.commit != expected {
                            found.push((Property::CommitRule, vec![id, *from], format!(
                                "node {id} set its commit index to {} on an AppendEntries with leaderCommit {leader_commit} whose last new entry is {last_new} (commit was {}): Figure 2, AppendEntries 5 says commitIndex = min(leaderCommit, index of last new entry) = {expected}",
                                s.commit, b.commit
                            )));
                        }
                    }
                    Some((false, _)) => {
                        if *matches {
                            found.push(fail(format!("node {id} refused an AppendEntries of its term whose prevLogIndex {prev} matches its log: a follower refuses only when it lacks the entry (Figure 2, AppendEntries 2)")));
                        } else if log.last_index() != b.last.1 || s.commit != b.commit {
                            found.push(fail(format!("node {id} refused an AppendEntries and still changed its log or commit index")));
                        }
                    }
                    None => found.push(fail(format!("node {id} did not answer an AppendEntries"))),
                }
                for (p, n, d) in found {
                    self.fail(p, &n, d);
                }
            }
            Seen::Snapshot {
                from,
                term,
                last_index,
            } if *term >= b.term
                && *last_index > b.commit
                && (log.snapshot_index() != *last_index || s.commit != *last_index) =>
            {
                self.fail(
                        Property::Replication,
                        &[id, *from],
                        format!(
                            "node {id} stepped an InstallSnapshot through {last_index} past its commit index {} and holds a snapshot through {} with commit {} (Figure 13: install it, reset the state machine)",
                            b.commit,
                            log.snapshot_index(),
                            s.commit
                        ),
                    );
            }
            _ => {}
        }
    }

    /// The leader's rules: a new leader's state and heartbeat, matchIndex and nextIndex, the
    /// exact commit rule, heartbeats, check-quorum, transfers and proposals.
    fn leader(&mut self, core: &Raft, b: &Before, s: &raft::Status, sent: &[Envelope]) {
        let id = core.id();
        let cfg = core.config();
        let (et, hb) = (cfg.election_ticks.max(1), cfg.heartbeat_ticks.max(1));
        let v = self.nodes.entry(id).or_default();
        let ticks = v.ticks;
        let was = v
            .lead
            .take()
            .filter(|l| l.term == s.term && b.role == Role::Leader);
        let mut found: Vec<(Property, Vec<NodeId>, String)> = Vec::new();
        // Check-quorum's step-down, judged on the leadership that ended.
        if let Some(l) = &was
            && s.role != Role::Leader
            && s.term == b.term
            && cfg.features.check_quorum
            && matches!(b.seen, Seen::Tick)
            && s.membership.is_voter(id)
            && s.membership.is_quorum(|n| {
                n == id
                    || l.answered
                        .get(&n)
                        .is_some_and(|h| *h + u64::from(et) >= ticks)
            })
        {
            found.push((Property::CheckQuorum, vec![id], format!(
                "leader {id} of term {} stepped down on a tick although it heard from a majority within the last election timeout ({et} ticks): thesis 6.2 steps down only without one", s.term)));
        }
        if s.role != Role::Leader {
            self.report(found);
            return;
        }
        let new = was.is_none();
        let mut l = was.unwrap_or(Lead {
            term: s.term,
            since: ticks,
            ..Lead::default()
        });
        let log = core.log();
        let last = log.last_index();
        let members: Vec<NodeId> = s
            .membership
            .members()
            .into_iter()
            .filter(|p| *p != id)
            .collect();
        if new {
            for p in &members {
                match core.progress().get(p) {
                    Some(pr) if pr.matched == LogIndex(0) && pr.next == b.last.1.next() => {}
                    other => found.push((Property::Elections, vec![id, *p], format!(
                        "node {id} became leader of term {} with progress {other:?} for {p}: nextIndex starts just past its log ({}), matchIndex at 0 (Figure 2, Leaders)",
                        s.term, b.last.1.next()))),
                }
                let beat = sent.iter().any(|e| {
                    e.to == *p
                        && matches!(
                            e.msg,
                            Message::AppendEntries(_) | Message::InstallSnapshot(_)
                        )
                });
                if !beat {
                    found.push((Property::Elections, vec![id, *p], format!(
                        "node {id} became leader of term {} and sent {p} no AppendEntries: upon election a leader sends heartbeats to each server at once (Figure 2, Leaders)", s.term)));
                }
            }
        }
        l.matched.retain(|p, _| members.contains(p));
        l.unsent.retain(|p, _| members.contains(p));
        // Acknowledgements: the monitor's own matchIndex, and the leader's.
        match &b.seen {
            Seen::AppendReply {
                from,
                term,
                success,
                match_index,
                next_before,
            } if *term == s.term && b.role == Role::Leader => {
                let p = core.progress().get(from).copied();
                if *success && members.contains(from) {
                    let m = l.matched.entry(*from).or_default();
                    *m = (*m).max((*match_index).min(last));
                    let m = *m;
                    if p.is_some_and(|p| p.matched < m || p.next <= p.matched) {
                        found.push((Property::Replication, vec![id, *from], format!(
                            "leader {id} has matchIndex {} and nextIndex {} for {from} after it acknowledged index {m}: a success moves matchIndex to the acknowledged index (never back) and nextIndex past it (Figure 2, Leaders)",
                            p.map_or(0, |p| p.matched.0), p.map_or(0, |p| p.next.0))));
                    }
                } else if !success && let (Some(p), Some(nb)) = (p, next_before) {
                    if p.next > *nb {
                        found.push((Property::Replication, vec![id, *from], format!(
                            "leader {id} moved nextIndex for {from} forward from {nb} to {} on a refusal (Figure 2: decrement nextIndex and retry)", p.next)));
                    } else if p.next < *nb && !sent.iter().any(|e| e.to == *from) {
                        found.push((Property::Replication, vec![id, *from], format!(
                            "leader {id} moved nextIndex for {from} back to {} on a refusal and did not retry (Figure 2: decrement nextIndex and retry)", p.next)));
                    }
                }
            }
            Seen::SnapshotReply { from, term, index }
                if *term == s.term && b.role == Role::Leader && members.contains(from) =>
            {
                let m = l.matched.entry(*from).or_default();
                *m = (*m).max((*index).min(last));
            }
            _ => {}
        }
        let sender = match &b.seen {
            Seen::PreVote { from, .. } => Some(*from),
            other => other.message().map(|m| m.0),
        };
        if let Some(from) = sender {
            l.heard.insert(from, ticks);
        }
        match &b.seen {
            Seen::AppendReply { from, term, .. } | Seen::SnapshotReply { from, term, .. }
                if *term == s.term =>
            {
                l.answered.insert(*from, ticks);
            }
            _ => {}
        }
        // The commit rule, exactly: the highest N stored on a majority with log[N] of this term.
        let n = s.membership.quorum_value(|p| {
            if p == id {
                last
            } else {
                l.matched.get(&p).copied().unwrap_or_default()
            }
        });
        if let Some(n) = n
            && n > s.commit
            && log.term_at(n) == Some(s.term)
        {
            found.push((Property::CommitRule, vec![id], format!(
                "leader {id} of term {} has entry {n} of its term on a majority (matchIndex by the acknowledgements it stepped: {:?}) but its commitIndex is {}: Figure 2, Leaders, sets commitIndex = N",
                s.term, l.matched, s.commit)));
        }
        // Heartbeats: every member hears from the leader every heartbeat interval.
        let tick = matches!(b.seen, Seen::Tick) && !new;
        for p in &members {
            let u = l.unsent.entry(*p).or_default();
            if tick {
                *u += 1;
            }
            if sent.iter().any(|e| {
                e.to == *p
                    && matches!(
                        e.msg,
                        Message::AppendEntries(_) | Message::InstallSnapshot(_)
                    )
            }) {
                *u = 0;
            }
            if *u >= hb {
                found.push((Property::Timers, vec![id, *p], format!(
                    "leader {id} of term {} sent {p} nothing for {} ticks: heartbeats go out every {hb} ticks during idle periods (Figure 2, Leaders)", s.term, *u)));
                *u = 0;
            }
        }
        // Check-quorum: a leader that heard from no majority for two election timeouts is gone.
        if cfg.features.check_quorum
            && ticks > l.since + 2 * u64::from(et)
            && !s.membership.is_quorum(|p| {
                p == id
                    || l.heard
                        .get(&p)
                        .is_some_and(|h| *h + 2 * u64::from(et) + 1 >= ticks)
            })
        {
            found.push((Property::CheckQuorum, vec![id], format!(
                "leader {id} of term {} heard from no majority for {} ticks and still leads: thesis 6.2 steps down after an election timeout ({et} ticks) without one", s.term, 2 * et + 1)));
            l.since = ticks;
        }
        // Transfers (thesis 3.10).
        if s.transferring_to.is_some() {
            if tick {
                l.transfer_ticks += 1;
            }
            if l.transfer_ticks > et {
                found.push((Property::Transfer, vec![id], format!(
                    "leader {id}'s transfer to {:?} has lasted {} ticks: it is aborted after an election timeout ({et} ticks) (thesis 3.10)", s.transferring_to, l.transfer_ticks)));
                l.transfer_ticks = 0;
            }
        } else {
            l.transfer_ticks = 0;
        }
        for e in sent {
            if let Message::TimeoutNow(_) = e.msg
                && l.matched.get(&e.to).copied().unwrap_or_default() < last
            {
                found.push((Property::Transfer, vec![id, e.to], format!(
                    "leader {id} sent TimeoutNow to {} whose log it knows only through {} of {last}: the target must be caught up first (thesis 3.10)",
                    e.to, l.matched.get(&e.to).copied().unwrap_or_default())));
            }
        }
        if matches!(b.seen, Seen::Propose) && b.role == Role::Leader {
            let ok = if b.transferring {
                last == b.last.1
            } else {
                last == b.last.1.next() && log.term_at(last) == Some(s.term)
            };
            if !ok {
                found.push((Property::Replication, vec![id], format!(
                    "leader {id} of term {} went from log end {} to {last} on a proposal{}", s.term, b.last.1,
                    if b.transferring { " during a transfer: a leader stops accepting proposals while it hands over (thesis 3.10)" } else { ": the command is appended to its log as one entry of its term (Figure 2, Leaders)" })));
            }
        }
        // Reads waiting are confirmed by replies of this term that arrive after them.
        if let Seen::AppendReply { from, term, .. } = &b.seen
            && *term == s.term
        {
            let v = self.nodes.entry(id).or_default();
            for r in v.reads.values_mut() {
                r.confirmed.insert(*from);
            }
        }
        self.nodes.entry(id).or_default().lead = Some(l);
        self.report(found);
    }

    fn report(&mut self, found: Vec<(Property, Vec<NodeId>, String)>) {
        for (p, n, d) in found {
            self.fail(p, &n, d);
        }
    }

    /// Every AppendEntries a node sends: it leads the term, and the request matches its log.
    fn check_sent(&mut self, core: &Raft, b: &Before, sent: &[Envelope]) {
        let id = core.id();
        let log = core.log();
        let s_role = core.role();
        for e in sent {
            let Message::AppendEntries(m) = &e.msg else {
                if let Message::InstallSnapshot(m) = &e.msg
                    && !(m.term == core.term()
                        && (s_role == Role::Leader || b.role == Role::Leader))
                {
                    self.fail(Property::Replication, &[id], format!(
                        "node {id} sent an InstallSnapshot of term {} as {s_role:?} of term {}: only a leader of the term sends one", m.term, core.term()));
                }
                continue;
            };
            let leads = m.term == core.term() && (s_role == Role::Leader || b.role == Role::Leader);
            let prev_ok = log.term_at(m.prev_log_index) == Some(m.prev_log_term);
            let bad_entry = m.entries.iter().enumerate().find(|(k, en)| {
                let i = LogIndex(m.prev_log_index.0 + 1 + *k as u64);
                log.entry(i)
                    .is_none_or(|mine| mine.term != en.term || mine.command != en.command)
            });
            let commit = core.status().commit;
            let detail = if !leads {
                Some(format!(
                    "it is {s_role:?} of term {} (was {:?} of term {}): only the leader of the request's term sends AppendEntries",
                    core.term(),
                    b.role,
                    b.term
                ))
            } else if !prev_ok {
                Some(format!(
                    "prevLogTerm {} is not the term of its entry {} ({:?})",
                    m.prev_log_term,
                    m.prev_log_index,
                    log.term_at(m.prev_log_index)
                ))
            } else if let Some((k, _)) = bad_entry {
                Some(format!(
                    "entry {} is not the one in its log",
                    m.prev_log_index.0 + 1 + k as u64
                ))
            } else if m.leader_commit > commit || m.leader_commit < b.commit.min(commit) {
                Some(format!(
                    "leaderCommit is {}, its commitIndex {commit}",
                    m.leader_commit
                ))
            } else {
                None
            };
            if let Some(d) = detail {
                self.fail(Property::Replication, &[id, e.to], format!(
                    "node {id} sent {} an AppendEntries of term {} (prev {} term {}, {} entries, leaderCommit {}) that does not follow its log: {d} (Figure 2, AppendEntries arguments)",
                    e.to, m.term, m.prev_log_index, m.prev_log_term, m.entries.len(), m.leader_commit));
            }
        }
    }

    /// Thesis 4.2.2 and 4.3: after every input of a leader.
    fn membership(&mut self, core: &Raft, s: &raft::Status) {
        let id = core.id();
        if s.role != Role::Leader || s.membership_index > s.commit {
            return;
        }
        if s.membership.is_joint() {
            self.fail(Property::MembershipRules, &[id], format!(
                "leader {id} holds the committed joint configuration {} (index {}) and has not appended the new one: C_new follows as soon as C_old,new commits (thesis 4.3)", s.membership, s.membership_index));
        } else if !s.membership.is_voter(id) && s.membership_index > LogIndex(0) {
            self.fail(Property::MembershipRules, &[id], format!(
                "leader {id}'s removal (configuration {} at index {}) committed and it still leads: it steps down (thesis 4.2.2)", s.membership, s.membership_index));
        }
    }

    /// A Ready left the node: the requests `ready()` added are judged against the core now, the
    /// reads it answered against what was committed and confirmed, and every committed entry
    /// must be on its way to the service.
    pub fn released(&mut self, core: &Raft, out: &raft::Persisted, applied: LogIndex) {
        let id = core.id();
        let v = self.nodes.entry(id).or_default();
        let produced = std::mem::take(&mut v.produced).min(out.messages.len());
        let before = Before {
            seen: Seen::Other,
            role: core.role(),
            term: core.term(),
            voted_for: None,
            leader: None,
            commit: LogIndex(0),
            last: (core.log().last_term(), core.log().last_index()),
            elapsed: 0,
            timeout: 0,
            voter: true,
            transferring: false,
            outbox: (0, 0),
        };
        let tail = &out.messages[produced..];
        if let Some(l) = &mut self.nodes.entry(id).or_default().lead {
            for e in &out.messages {
                if matches!(
                    e.msg,
                    Message::AppendEntries(_) | Message::InstallSnapshot(_)
                ) {
                    l.unsent.insert(e.to, 0);
                }
            }
        }
        self.check_sent(core, &before, tail);
        let membership: Membership = core.membership().clone();
        let lease = core.config().features.lease_reads && core.config().features.check_quorum;
        for r in &out.reads {
            let Some(read) = self.nodes.entry(id).or_default().reads.remove(&r.id) else {
                continue;
            };
            let Ok(index) = r.index else { continue };
            if index < read.decided {
                self.fail(Property::ReadIndex, &[id], format!(
                    "node {id} answered read #{} at index {index}, but entries through {} were committed before the read was asked: the read would miss them", r.id, read.decided));
            }
            if !lease && !membership.is_quorum(|n| n == id || read.confirmed.contains(&n)) {
                self.fail(Property::ReadIndex, &[id], format!(
                    "node {id} answered read #{} at index {index} after hearing from only {:?} in its term since the read was asked: a ReadIndex read waits for a majority to answer a round of heartbeats (thesis 6.4)", r.id, read.confirmed));
            }
            if applied < index {
                self.fail(Property::ReadIndex, &[id], format!(
                    "node {id} released read #{} at index {index} before handing the service the entries through it (applied through {applied})", r.id));
            }
        }
        let commit = core.status().commit;
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
