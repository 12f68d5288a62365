//! Check-quorum (thesis section 6.2) and the lease rule for votes (thesis section 4.2.3).
//!
//! A leader cut off from the majority keeps believing it leads: it accepts proposals that will
//! never commit and, without a check, serves reads it cannot vouch for. With check-quorum it
//! counts the followers it heard from; a leader that has not heard from a majority within an
//! election timeout steps down.
//!
//! The other half: a voter that hears from a live leader refuses RequestVotes (and does not
//! adopt their term), unless the election is a leadership transfer. A server that was removed,
//! or partitioned with pre-vote off, then cannot depose a working leader. This stays live: the
//! stuck node answers the leader's AppendEntries with its higher term, the leader steps down,
//! and the next election is held at that term (etcd #8334).

use std::collections::BTreeSet;

use labrpc::planted;
use tracing::info;

use crate::core::Raft;
use crate::message::{Envelope, Message, RequestVoteReply};
use crate::types::NodeId;

impl Raft {
    /// Thesis 6.2: "a leader steps down if an election timeout elapses without a successful
    /// round of heartbeats to a majority of its cluster".
    pub(crate) fn tick_check_quorum(&mut self) {
        // SOLUTION BEGIN: tick_check_quorum: every election_ticks ticks, count the followers heard from since the last check (self.active) plus yourself; below a majority, step down to follower of your term with no leader (become_follower); start counting again
        self.check_quorum_elapsed += 1;
        let window = if planted!(CheckQuorumStepsDownEarly) {
            self.config.election_ticks / 2
        } else {
            self.config.election_ticks
        };
        if self.check_quorum_elapsed < window {
            return;
        }
        self.check_quorum_elapsed = 0;
        let me = self.config.id;
        let active = std::mem::take(&mut self.active);
        if !self.is_quorum(|id| id == me || active.contains(&id))
            && !planted!(CheckQuorumNeverStepsDown)
        {
            self.narrate_check_quorum_step_down(&active);
            self.become_follower(self.term, None);
        }
        // SOLUTION END
    }

    /// The event a student wants to see when check-quorum deposes a leader.
    /// `active`: the members heard from in the window (the leader counts itself as heard).
    fn narrate_check_quorum_step_down(&self, active: &BTreeSet<NodeId>) {
        let members = self.membership().members();
        let heard = members
            .iter()
            .filter(|id| **id == self.config.id || active.contains(id))
            .count();
        info!(
            node = self.config.id.0,
            term = self.term.0,
            heard,
            ticks = self.config.election_ticks,
            "node {} steps down: no contact with a majority for an election timeout ({} of {} heard)",
            self.config.id,
            heard,
            members.len()
        );
    }

    /// Thesis 4.2.3: "if a server receives a RequestVote request within the minimum election
    /// timeout of hearing from a current leader, it does not update its term or grant its
    /// vote". Returns true when `env` was refused (and answered) here.
    pub(crate) fn refuse_in_lease(&mut self, env: &Envelope) -> bool {
        // SOLUTION BEGIN: refuse_in_lease: a RequestVote of a higher term that is not a leadership transfer, arriving while you hear from a live leader (hears_from_leader), is answered here: not granted, with your term, and its term is not adopted; return whether you answered
        let Message::RequestVote(req) = &env.msg else {
            return false;
        };
        if req.term <= self.term
            || req.transfer
            || !self.hears_from_leader()
            || planted!(VoteLeaseIgnored)
        {
            return false;
        }
        info!(
            node = self.config.id.0,
            term = self.term.0,
            candidate = env.from.0,
            "node {} refuses its vote to {} for term {}: it hears from leader {}",
            self.config.id,
            env.from,
            req.term,
            self.leader.map_or("?".to_string(), |l| l.to_string())
        );
        let term = self.term;
        self.reply(
            env.from,
            Message::RequestVoteReply(RequestVoteReply {
                term,
                vote_granted: false,
            }),
        );
        true
        // SOLUTION END
    }
}
