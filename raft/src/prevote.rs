//! Pre-vote (thesis section 9.6): an election in two rounds, so that a node that cannot win
//! does not raise its term.
//!
//! A node cut off from the leader times out again and again. Without pre-vote it increments its
//! term each time, and when it comes back its high term deposes a leader that was working fine.
//! With pre-vote, a node whose election timer fires first becomes a *pre-candidate*: it keeps
//! its term and its vote (nothing is persisted) and asks the others whether they would vote for
//! it in the next term. Only with a majority of yeses does it start the real election.
//!
//! The traps this code avoids, each with a test in `raft/tests/all/extensions.rs`:
//! - Answering a pre-vote changes nothing: not the voter's term, not its vote, not its election
//!   timer (hashicorp/raft #609: a voter that resets its timer on every pre-vote it grants can
//!   keep a cluster from ever electing anyone).
//! - A refusal carries the voter's term, and a pre-candidate behind it adopts that term
//!   (openraft #1796). Otherwise a node with the most up-to-date log but a smaller term than
//!   the others could never be elected (etcd #8243): everyone with a higher term would refuse
//!   it forever.
//! - A voter behind the pre-candidate (smaller term) still answers, and its yes counts.

use labrpc::planted;
use tracing::info;

use crate::core::{Raft, Role};
use crate::message::{Message, RequestVote, RequestVoteReply};
use crate::types::NodeId;

impl Raft {
    /// Thesis 9.6: "a candidate would first ask other servers whether its log was up-to-date
    /// enough to get their vote. Only if the candidate believed it could get votes from a
    /// majority of the cluster would it increment its term and start a normal election."
    pub(crate) fn pre_campaign(&mut self) {
        // SOLUTION BEGIN: pre_campaign: become a pre-candidate without changing your term or vote (nothing to persist), forget the leader, reset the election timer and send PreVote (your current term, last log index and term) to every other server; a lone voter starts the real election at once (become_candidate)
        if planted!(PreVoteBumpsTerm) {
            self.term = self.term.next();
            self.voted_for = None;
            self.state_dirty = true;
        }
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.config.id, true);
        self.reset_election_timer();
        info!(
            node = self.config.id.0,
            term = self.term.0,
            "node {} asks for pre-votes for term {}",
            self.config.id,
            self.term.next()
        );
        if self.has_vote_majority() {
            self.become_candidate();
            return;
        }
        let req = self.vote_request();
        self.send_to_others(Message::PreVote(req));
        // SOLUTION END
    }

    /// A voter has heard from a live leader within the minimum election timeout (or is the
    /// leader). Thesis 9.6: such a voter refuses pre-votes; with check-quorum it also refuses
    /// votes (thesis 4.2.3).
    pub(crate) fn hears_from_leader(&self) -> bool {
        self.role == Role::Leader
            || (self.leader.is_some() && self.election_elapsed < self.config.election_ticks)
    }

    /// Thesis 9.6, the voter's side: would I vote for this node in the term after its own?
    pub(crate) fn handle_pre_vote(&mut self, from: NodeId, req: RequestVote) {
        // SOLUTION BEGIN: handle_pre_vote: grant when the term asked about (req.term + 1) is above yours, you hear from no live leader (hears_from_leader) and the sender's log is at least as up-to-date as yours (section 5.4.1); change nothing (no term, no vote, no timer reset); reply PreVoteReply with your term
        let refusal = if req.term < self.term {
            Some("its term is behind")
        } else if self.hears_from_leader() {
            Some("it hears from a live leader")
        } else if !self.candidate_log_is_up_to_date(&req) {
            Some("its log is more up-to-date")
        } else {
            None
        };
        match refusal {
            None => info!(
                node = self.config.id.0,
                term = self.term.0,
                candidate = from.0,
                "node {} would vote for {} in term {}",
                self.config.id,
                from,
                req.term.next()
            ),
            Some(reason) => info!(
                node = self.config.id.0,
                term = self.term.0,
                candidate = from.0,
                reason,
                "node {} refuses a pre-vote to {} for term {}: {reason}",
                self.config.id,
                from,
                req.term.next()
            ),
        }
        if refusal.is_none() && planted!(PreVoteGrantResetsTimer) {
            self.reset_election_timer();
        }
        let term = self.term;
        self.reply(
            from,
            Message::PreVoteReply(RequestVoteReply {
                term,
                vote_granted: refusal.is_none(),
            }),
        );
        // SOLUTION END
    }

    /// The pre-candidate's side: with a majority of pre-votes, start the real election.
    pub(crate) fn handle_pre_vote_reply(&mut self, from: NodeId, reply: RequestVoteReply) {
        // SOLUTION BEGIN: handle_pre_vote_reply: while a pre-candidate, count the answers (a higher term in a refusal was already adopted, making you a follower); with a majority of pre-votes, become a candidate
        if self.role != Role::PreCandidate || reply.term > self.term {
            return;
        }
        self.votes.insert(from, reply.vote_granted);
        if self.has_vote_majority() {
            self.become_candidate();
        }
        // SOLUTION END
    }
}
