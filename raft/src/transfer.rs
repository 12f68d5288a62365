//! Leadership transfer (thesis section 3.10).
//!
//! To hand leadership to another server (for maintenance, or to move it closer to clients), the
//! leader (1) stops accepting proposals, (2) brings the target's log up to date, (3) sends it
//! TimeoutNow, and the target starts an election at once, without waiting for its timer and
//! without a pre-vote; voters grant it even while they hear from the old leader (the election is
//! marked as a transfer). If the target does not take over within an election timeout, the
//! transfer is aborted and the leader accepts proposals again.
//!
//! A TimeoutNow carries the leader's term and last index, and the target acts on it only when
//! it is of its current term, from its leader, and its log holds that index: one that arrives
//! late, after the term moved on, starts nothing (raft-rs #234).

use labrpc::planted;
use tracing::info;

use crate::core::{NotLeader, Raft, Role};
use crate::message::{Message, TimeoutNow, TimeoutNowReply};
use crate::types::NodeId;

/// A transfer under way, on the leader.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Transfer {
    pub to: NodeId,
    /// Ticks since the transfer began; it is aborted after an election timeout.
    pub elapsed: u32,
    /// TimeoutNow was sent since the last heartbeat (it is resent once per heartbeat interval
    /// while the transfer lasts, in case it was lost).
    pub sent: bool,
}

/// Why a transfer could not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
    #[error("node {0} is not a voting member of this cluster")]
    UnknownPeer(NodeId),
    #[error("node {0} is already the leader")]
    AlreadyLeader(NodeId),
    #[error("a transfer to node {0} is already under way")]
    InProgress(NodeId),
}

impl Raft {
    /// Starts handing leadership to `to` (thesis 3.10). Proposals are refused until the
    /// transfer completes (this node steps down) or is aborted (after an election timeout).
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), TransferError> {
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader,
            }
            .into());
        }
        if to == self.config.id {
            return Err(TransferError::AlreadyLeader(to));
        }
        if !self.progress.contains_key(&to) || !self.membership().is_voter(to) {
            return Err(TransferError::UnknownPeer(to));
        }
        if let Some(t) = &self.transfer {
            return Err(TransferError::InProgress(t.to));
        }
        info!(
            node = self.config.id.0,
            term = self.term.0,
            target = to.0,
            "node {} hands leadership of term {} to {}",
            self.config.id,
            self.term,
            to
        );
        self.begin_transfer(to);
        Ok(())
    }

    fn begin_transfer(&mut self, to: NodeId) {
        // SOLUTION BEGIN: begin_transfer: record the transfer (self.transfer), then send TimeoutNow at once if the target is up to date (maybe_timeout_now), or else the entries it lacks (send_append)
        self.transfer = Some(Transfer {
            to,
            elapsed: 0,
            sent: false,
        });
        self.maybe_timeout_now();
        if planted!(TransferWaitsForHeartbeat) {
            return;
        }
        if self.transfer.as_ref().is_some_and(|t| !t.sent) {
            self.send_append(to);
        }
        // SOLUTION END
    }

    /// Sends TimeoutNow to the transfer's target once its log matches the leader's.
    pub(crate) fn maybe_timeout_now(&mut self) {
        // SOLUTION BEGIN: maybe_timeout_now: if a transfer is under way, TimeoutNow was not sent since the last heartbeat and the target's matchIndex has reached your last index, send it TimeoutNow with your term and last index and mark it sent; end any read lease (the target will not honour it)
        let last = self.log.last_index();
        let Some(t) = &self.transfer else {
            return;
        };
        let to = t.to;
        let caught_up = self.progress.get(&to).is_some_and(|p| p.matched >= last);
        if t.sent || !(caught_up || planted!(TransferBeforeCaughtUp)) {
            return;
        }
        if let Some(t) = &mut self.transfer {
            t.sent = true;
        }
        self.reads.end_lease();
        let term = self.term;
        self.send(
            to,
            Message::TimeoutNow(TimeoutNow {
                term,
                last_log_index: last,
            }),
        );
        // SOLUTION END
    }

    /// A transfer that did not complete within an election timeout is aborted.
    pub(crate) fn tick_transfer(&mut self) {
        let heartbeat = self.config.heartbeat_ticks.max(1);
        let Some(t) = &mut self.transfer else {
            return;
        };
        t.elapsed += 1;
        if t.elapsed % heartbeat == 0 {
            t.sent = false;
        }
        if t.elapsed >= self.config.election_ticks {
            let to = t.to;
            self.transfer = None;
            info!(
                node = self.config.id.0,
                term = self.term.0,
                target = to.0,
                "node {} aborts the transfer to {}: no election within an election timeout",
                self.config.id,
                to
            );
        } else {
            self.maybe_timeout_now();
        }
    }

    /// The target's side: campaign now, skipping the pre-vote and the voters' lease.
    pub(crate) fn handle_timeout_now(&mut self, from: NodeId, m: TimeoutNow) {
        // SOLUTION BEGIN: handle_timeout_now: campaign at once (become_candidate, with every RequestVote it sends marked as a transfer) only if the message is of your term, from your leader, you are its follower and your log reaches its last index; reply TimeoutNowReply saying whether you did
        let go = m.term == self.term
            && ((self.leader == Some(from)
                && self.role == Role::Follower
                && self.log.last_index() >= m.last_log_index)
                || planted!(TransferBeforeCaughtUp));
        let term = self.term;
        self.reply(
            from,
            Message::TimeoutNowReply(TimeoutNowReply {
                term,
                campaigning: go,
            }),
        );
        if !go {
            info!(
                node = self.config.id.0,
                term = self.term.0,
                leader = from.0,
                "node {} ignores a stale TimeoutNow from {} (term {}, index {})",
                self.config.id,
                from,
                m.term,
                m.last_log_index
            );
            return;
        }
        info!(
            node = self.config.id.0,
            term = self.term.0,
            leader = from.0,
            "node {} takes over from {}: TimeoutNow",
            self.config.id,
            from
        );
        let first = self.messages.len();
        self.become_candidate();
        for env in &mut self.messages[first..] {
            if let Message::RequestVote(req) = &mut env.msg {
                req.transfer = true;
            }
        }
        // SOLUTION END
    }
}
