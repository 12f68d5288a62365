//! Timers, the term rule, elections and votes: Figure 2's Rules for Servers, Candidates and
//! RequestVote, and the thesis's pre-vote (9.6), check-quorum's vote lease (4.2.3) and
//! TimeoutNow (3.10).

use std::collections::BTreeSet;

use raft::{Envelope, Message, NodeId, Raft, Role};

use super::{Before, Rules, Seen};
use crate::monitor::Property;

impl Rules {
    /// Did this input start an election (or a pre-vote), and was it allowed to?
    pub(super) fn elections(
        &mut self,
        core: &Raft,
        b: &Before,
        s: &raft::Status,
        sent: &[Envelope],
    ) -> bool {
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
    pub(super) fn timers(
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
        let granted = grants_vote(answered);
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
    pub(super) fn term_rule(
        &mut self,
        core: &Raft,
        b: &Before,
        s: &raft::Status,
        answered: &[Envelope],
    ) {
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
                if grants_vote(answered) {
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
    pub(super) fn votes(
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
}

/// The voter hears from a live leader: it is one, or it knows one and its election timer has
/// not reached the minimum timeout (thesis 4.2.3 and 9.6).
fn hears_from_leader(core: &Raft, b: &Before) -> bool {
    b.role == Role::Leader
        || (b.leader.is_some() && b.elapsed < core.config().election_ticks.max(1))
}

/// One of the replies an input produced grants a vote.
fn grants_vote(answered: &[Envelope]) -> bool {
    answered
        .iter()
        .any(|e| matches!(&e.msg, Message::RequestVoteReply(r) if r.vote_granted))
}
