//! The messages Raft nodes exchange: the two RPCs of Figure 2 and InstallSnapshot (Figure 13),
//! each with its reply, and the production extensions: PreVote (thesis 9.6) and TimeoutNow
//! (leadership transfer, thesis 3.10). The core sees them as one-way messages; a driver carries a request and
//! its reply over one RPC.

use serde::{Deserialize, Serialize};

use crate::configuration::Membership;
use crate::log::Entry;
use crate::types::{LogIndex, NodeId, Term};

/// A message with its sender and receiver.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Envelope {
    pub from: NodeId,
    pub to: NodeId,
    pub msg: Message,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Message {
    RequestVote(RequestVote),
    RequestVoteReply(RequestVoteReply),
    AppendEntries(AppendEntries),
    AppendEntriesReply(AppendEntriesReply),
    InstallSnapshot(InstallSnapshot),
    InstallSnapshotReply(InstallSnapshotReply),
    /// "Would you vote for me in the next term?" (thesis 9.6). Carries the sender's current
    /// term, as every message does: the election it asks about is the term after it. Answering
    /// changes nothing the voter keeps.
    PreVote(RequestVote),
    PreVoteReply(RequestVoteReply),
    /// "Campaign now" from the leader to the target of a leadership transfer (thesis 3.10).
    TimeoutNow(TimeoutNow),
    TimeoutNowReply(TimeoutNowReply),
}

impl Message {
    /// The sender's term, carried by every message (Figure 2, "Rules for Servers").
    pub fn term(&self) -> Term {
        match self {
            Message::RequestVote(m) => m.term,
            Message::RequestVoteReply(m) => m.term,
            Message::AppendEntries(m) => m.term,
            Message::AppendEntriesReply(m) => m.term,
            Message::InstallSnapshot(m) => m.term,
            Message::InstallSnapshotReply(m) => m.term,
            Message::PreVote(m) => m.term,
            Message::PreVoteReply(m) => m.term,
            Message::TimeoutNow(m) => m.term,
            Message::TimeoutNowReply(m) => m.term,
        }
    }

    /// Requests get exactly one reply each; replies get none.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            Message::RequestVote(_)
                | Message::AppendEntries(_)
                | Message::InstallSnapshot(_)
                | Message::PreVote(_)
                | Message::TimeoutNow(_)
        )
    }

    /// A short name for logs and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::RequestVote(_) => "RequestVote",
            Message::RequestVoteReply(_) => "RequestVoteReply",
            Message::AppendEntries(_) => "AppendEntries",
            Message::AppendEntriesReply(_) => "AppendEntriesReply",
            Message::InstallSnapshot(_) => "InstallSnapshot",
            Message::InstallSnapshotReply(_) => "InstallSnapshotReply",
            Message::PreVote(_) => "PreVote",
            Message::PreVoteReply(_) => "PreVoteReply",
            Message::TimeoutNow(_) => "TimeoutNow",
            Message::TimeoutNowReply(_) => "TimeoutNowReply",
        }
    }
}

/// Invoked by candidates to gather votes (section 5.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestVote {
    pub term: Term,
    pub last_log_index: LogIndex,
    pub last_log_term: Term,
    /// The election was started by the leader's TimeoutNow (thesis 3.10): voters grant it even
    /// while they hear from a live leader (the check-quorum lease does not apply).
    pub transfer: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestVoteReply {
    pub term: Term,
    pub vote_granted: bool,
}

/// Invoked by the leader to replicate entries (section 5.3); also the heartbeat (section 5.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppendEntries {
    pub term: Term,
    pub prev_log_index: LogIndex,
    pub prev_log_term: Term,
    pub entries: Vec<Entry>,
    pub leader_commit: LogIndex,
    /// The leader's latest read-confirmation round (ReadIndex, thesis 6.4), echoed in the reply:
    /// a reply with round R proves the follower still followed this leader after the reads of
    /// round R were registered. Stamped by the core when the message is sent.
    pub round: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppendEntriesReply {
    pub term: Term,
    pub success: bool,
    /// On success: the last index now known to match the leader's log
    /// (`prev_log_index + entries.len()`), so a reordered reply cannot move progress back.
    pub match_index: LogIndex,
    /// On failure, the fast backtracking hint (section 5.3, "the follower can include the term
    /// of the conflicting entry and the first index it stores for that term"): the term of the
    /// follower's entry at `prev_log_index`, or `None` when its log is too short.
    pub conflict_term: Option<Term>,
    /// On failure: the first index of `conflict_term` in the follower's log, or its log length + 1.
    /// 0 when the request was refused for its stale term rather than for a log mismatch.
    pub conflict_index: LogIndex,
    /// The request's `round`, echoed (set by the core, not by the handler).
    pub round: u64,
}

/// Invoked by the leader to send a snapshot to a follower that lags behind the leader's log
/// (section 7, Figure 13). Sent in one piece, as in the labs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstallSnapshot {
    pub term: Term,
    pub last_included_index: LogIndex,
    pub last_included_term: Term,
    /// The configuration as of `last_included_index` (thesis 4: the snapshot carries it);
    /// `None` while the cluster still runs its bootstrap configuration.
    pub membership: Option<Membership>,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstallSnapshotReply {
    pub term: Term,
    /// What the follower now has through snapshots: the request's index when it installed the
    /// snapshot or already had its entries, 0 when it refused the request for its stale term.
    pub last_included_index: LogIndex,
}

/// Sent by a leader to the target of a leadership transfer once its log is up to date
/// (thesis 3.10). The target campaigns at once if the message is of its current term, comes
/// from its leader and its log holds everything the leader had when it sent it: a TimeoutNow
/// that arrives late, after the transfer was aborted and the term moved on, starts nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeoutNow {
    pub term: Term,
    pub last_log_index: LogIndex,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeoutNowReply {
    pub term: Term,
    /// The target started an election.
    pub campaigning: bool,
}
