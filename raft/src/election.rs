//! Leader election (section 5.2) and the election restriction (section 5.4.1).

use labrpc::planted;
use tracing::info;

use crate::core::{Progress, Raft, Role};
use crate::message::{Message, RequestVote, RequestVoteReply};
use crate::types::NodeId;

impl Raft {
    /// No word from a leader within the election timeout: start an election, after a round of
    /// pre-votes when that is enabled (see `prevote.rs`).
    pub fn campaign(&mut self) {
        if !self.is_voter() {
            // A learner, a removed node or one that has not joined yet never campaigns.
            self.reset_election_timer();
            return;
        }
        let was_leader = self.is_leader();
        if self.config.features.pre_vote {
            self.pre_campaign();
        } else {
            self.become_candidate();
        }
        self.after_input(was_leader);
    }

    /// Figure 2, "Rules for Servers, Followers": no word from a leader within the election
    /// timeout, so convert to candidate: increment the term, vote for self, reset the election
    /// timer and send RequestVote to every other server.
    pub fn become_candidate(&mut self) {
        // SOLUTION BEGIN: become_candidate: become a candidate for the next term, vote for yourself, reset the election timer and send RequestVote (with your last log index and term) to every other server; a lone voter wins at once (Figure 2, Candidates)
        self.term = self.term.next();
        self.role = Role::Candidate;
        self.leader = None;
        self.voted_for = Some(self.config.id);
        self.state_dirty = true;
        self.votes.clear();
        if !planted!(CandidateForgetsOwnVote) {
            self.votes.insert(self.config.id, true);
        }
        self.reset_election_timer();
        info!(
            node = self.config.id.0,
            term = self.term.0,
            "node {} starts an election for term {}",
            self.config.id,
            self.term
        );
        if self.has_vote_majority() {
            self.become_leader();
            return;
        }
        let mut req = self.vote_request();
        if planted!(VoteRequestCarriesTerm) {
            req.last_log_term = self.term;
        }
        self.send_to_others(Message::RequestVote(req));
        // SOLUTION END
    }

    /// A vote request for this node's current term, with its last log entry (section 5.4.1).
    pub(crate) fn vote_request(&self) -> RequestVote {
        RequestVote {
            term: self.term,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            transfer: false,
        }
    }

    /// Section 5.4.1: a voter denies its vote if its own log is more up-to-date than the
    /// candidate's: the log whose last entry has the later term wins; with equal last terms,
    /// the longer log wins.
    pub(crate) fn candidate_log_is_up_to_date(&self, req: &RequestVote) -> bool {
        let (my_term, my_index) = (self.log.last_term(), self.log.last_index());
        req.last_log_term > my_term
            || (req.last_log_term == my_term && req.last_log_index >= my_index)
    }

    /// Figure 2, RequestVote RPC receiver implementation.
    pub(crate) fn handle_request_vote(&mut self, from: NodeId, req: RequestVote) {
        // SOLUTION BEGIN: handle_request_vote: grant the vote if the request is of your current term, you have not voted for another candidate, and the candidate's log is at least as up-to-date as yours (section 5.4.1); reset the election timer when granting; always reply with your term (Figure 2, RequestVote RPC)
        // 1. Reply false if term < currentTerm. (A higher term was adopted in `step`.)
        let mut granted = false;
        if req.term == self.term {
            // 2. If votedFor is null or candidateId, and the candidate's log is at least as
            //    up-to-date as the receiver's log, grant the vote.
            let free = self.voted_for.is_none()
                || (self.voted_for == Some(from) && !planted!(VoteRefusedToSameCandidate))
                || planted!(VoteTwice);
            let up_to_date = if planted!(VoteComparesLengthOnly) {
                req.last_log_index >= self.log.last_index()
            } else {
                self.candidate_log_is_up_to_date(&req) || planted!(VoteIgnoresLog)
            };
            if free && up_to_date {
                granted = true;
                if self.voted_for != Some(from) {
                    self.voted_for = Some(from);
                    self.state_dirty = !planted!(VoteNotPersisted);
                }
                // Granting a vote resets the election timer, so a node does not compete with
                // the candidate it just voted for.
                if !planted!(GrantKeepsTimer) {
                    self.reset_election_timer();
                }
                info!(
                    node = self.config.id.0,
                    term = self.term.0,
                    candidate = from.0,
                    "node {} grants its vote to {} for term {}",
                    self.config.id,
                    from,
                    self.term
                );
            }
        }
        let term = self.term;
        self.reply(
            from,
            Message::RequestVoteReply(RequestVoteReply {
                term,
                vote_granted: granted,
            }),
        );
        // SOLUTION END
    }

    pub(crate) fn handle_vote_reply(&mut self, from: NodeId, reply: RequestVoteReply) {
        // SOLUTION BEGIN: handle_vote_reply: count the votes of the current election (ignore stale replies) and become leader on a majority
        // A reply from an older term (or arriving after we stopped campaigning) counts for nothing.
        if self.role != Role::Candidate || (reply.term != self.term && !planted!(StaleVoteCounted))
        {
            return;
        }
        self.votes.insert(from, reply.vote_granted);
        let members = self.membership().members().len();
        if self.has_vote_majority()
            || (planted!(LearnerVoteCounted) && self.count_votes() > members / 2)
        {
            self.become_leader();
        }
        // SOLUTION END
    }

    pub(crate) fn count_votes(&self) -> usize {
        self.votes.values().filter(|v| **v).count()
    }

    /// The votes granted (`self.votes`) make a majority of this node's configuration (of
    /// both halves while joint; a learner's vote counts for nothing).
    pub(crate) fn has_vote_majority(&self) -> bool {
        self.is_quorum(|id| self.votes.get(&id) == Some(&true))
    }

    /// Section 5.2: a candidate with votes from a majority becomes leader and immediately sends
    /// heartbeats to establish its authority. Figure 2: nextIndex starts just past the leader's
    /// log, matchIndex at 0.
    pub(crate) fn become_leader(&mut self) {
        // SOLUTION BEGIN: become_leader: take the leader role, set every follower's nextIndex just past your log and matchIndex to 0, and send heartbeats at once (Figure 2, Leaders)
        self.role = Role::Leader;
        self.leader = Some(self.config.id);
        self.heartbeat_elapsed = 0;
        let next = self.log.last_index().next();
        let others: Vec<NodeId> = self.others().collect();
        self.progress = others
            .into_iter()
            .map(|p| {
                (
                    p,
                    Progress {
                        next,
                        matched: Default::default(),
                        inflight: None,
                    },
                )
            })
            .collect();
        info!(
            node = self.config.id.0,
            term = self.term.0,
            votes = self.count_votes(),
            "node {} is leader of term {} ({} votes, configuration {})",
            self.config.id,
            self.term,
            self.count_votes(),
            self.membership()
        );
        if !planted!(NoHeartbeatOnElection) {
            self.broadcast_append(true);
        }
        // SOLUTION END
    }
}
