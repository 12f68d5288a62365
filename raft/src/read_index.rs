//! Linearizable reads without a log entry: ReadIndex (thesis section 6.4) and, behind a flag,
//! lease reads (section 6.4.1).
//!
//! Going through the log makes every read cost a disk write on a majority. ReadIndex costs one
//! round of heartbeats instead:
//! 1. The leader records its commit index as the read's index. A new leader does not know the
//!    commit index yet: it waits until an entry of its own term has committed (etcd #7331),
//!    and appends an empty entry (a no-op, which services skip) if it has none of its term.
//! 2. It confirms it is still the leader with a round of heartbeats: every AppendEntries carries
//!    the latest round number, each reply echoes it, and a round acknowledged by a majority
//!    proves that nobody else led at the moment its reads were registered. All reads waiting
//!    when a round starts share it (batching).
//! 3. The service waits until it has applied through the read's index, then answers from its
//!    state. (The core releases a read only in a `Ready` whose `apply` already reaches it.)
//!
//! Lease reads skip step 2 while a majority acknowledged a heartbeat sent less than
//! `election_ticks * (1 - LEASE_DRIFT)` ticks ago: with check-quorum's vote lease, no other
//! leader can be elected before the followers' election timeout runs out, *provided clocks
//! drift by less than [`LEASE_DRIFT`]*. It is off unless configured, and never in the labs.

use std::collections::{BTreeMap, VecDeque};

use labrpc::planted;

use crate::core::{LEASE_DRIFT, NotLeader, Raft, ReadState, Role};
use crate::types::{LogIndex, NodeId};

/// The leader's reads.
#[derive(Clone, Debug, Default, Hash)]
pub(crate) struct Reads {
    /// The latest confirmation round started (carried by every AppendEntries).
    pub round: u64,
    /// Reads not in a round yet.
    waiting: Vec<u64>,
    /// Rounds started and not yet acknowledged by a majority, oldest first.
    rounds: VecDeque<Round>,
    /// The latest round each follower acknowledged.
    acked: BTreeMap<NodeId, u64>,
    /// Reads answered, for the next `Ready`.
    pub done: Vec<ReadState>,
    /// Lease reads: rounds with the tick they were sent at, and the lease's end.
    sent: VecDeque<(u64, u64)>,
    lease_until: u64,
}

#[derive(Clone, Debug, Hash)]
struct Round {
    round: u64,
    index: LogIndex,
    ids: Vec<u64>,
}

impl Reads {
    pub(crate) fn acknowledged(&mut self, from: NodeId, round: u64) {
        let r = self.acked.entry(from).or_default();
        *r = (*r).max(round);
    }

    /// Rounds wait for acknowledgements, or a lease is kept.
    pub(crate) fn confirming(&self) -> bool {
        !self.rounds.is_empty() || !self.sent.is_empty()
    }

    pub(crate) fn end_lease(&mut self) {
        self.lease_until = 0;
        self.sent.clear();
    }

    /// The node is no longer leader: every read waiting fails.
    pub(crate) fn fail_all(&mut self) {
        let ids = self
            .waiting
            .drain(..)
            .chain(self.rounds.drain(..).flat_map(|r| r.ids));
        self.done.extend(ids.map(|id| ReadState {
            id,
            index: Err(NotLeader { leader: None }),
        }));
        self.acked.clear();
        self.end_lease();
    }
}

impl Raft {
    /// Registers a linearizable read (thesis 6.4). Its [`ReadState`] comes out of a later
    /// `ready()`: the index to wait for before answering, or an error if this node lost
    /// leadership first. `id` is the caller's, to match the answer.
    pub fn read_index(&mut self, id: u64) -> Result<(), NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader,
            });
        }
        if let Some(t) = &self.transfer {
            return Err(NotLeader { leader: Some(t.to) });
        }
        if self.log.last_term() != self.term {
            // Thesis 6.4: "the leader must have at least one committed entry from its term";
            // a leader that has none appends an empty entry (a no-op the service skips).
            let _ = self.propose(Vec::new());
        }
        if self.lease_valid() && self.own_term_committed() {
            self.reads.done.push(ReadState {
                id,
                index: Ok(self.commit),
            });
        } else {
            self.reads.waiting.push(id);
        }
        Ok(())
    }

    /// Reads waiting in the leader (registered, not yet answered).
    pub fn pending_reads(&self) -> usize {
        self.reads.waiting.len() + self.reads.rounds.iter().map(|r| r.ids.len()).sum::<usize>()
    }

    fn own_term_committed(&self) -> bool {
        self.log.term_at(self.commit) == Some(self.term)
    }

    fn lease_valid(&self) -> bool {
        let f = self.config.features;
        f.lease_reads && f.check_quorum && self.ticks < self.reads.lease_until
    }

    /// Thesis 6.4, steps 1 and 2: the reads waiting get the commit index and one round of
    /// heartbeats (called by `ready()`, so that every read registered since the last one
    /// shares the round).
    pub(crate) fn start_read_round(&mut self) {
        if self.role != Role::Leader || self.reads.waiting.is_empty() {
            return;
        }
        // SOLUTION BEGIN: start_read_round: once an entry of your own term has committed (own_term_committed), give every waiting read your commit index; a lone voter answers them at once (self.reads.done); otherwise start a new round (self.reads.round + 1) holding them and send heartbeats to everyone (broadcast_append(true))
        if !self.own_term_committed() && !planted!(ReadBeforeOwnTermCommit) {
            return;
        }
        let ids = std::mem::take(&mut self.reads.waiting);
        let index = self.commit;
        let me = self.config.id;
        if self.is_quorum(|id| id == me) || planted!(ReadWithoutConfirmation) {
            self.reads.done.extend(ids.into_iter().map(|id| ReadState {
                id,
                index: Ok(index),
            }));
            return;
        }
        self.reads.round += 1;
        let round = self.reads.round;
        self.reads.rounds.push_back(Round { round, index, ids });
        self.broadcast_append(true);
        // SOLUTION END
    }

    /// A follower acknowledged a round: answer every read of the rounds a majority has now
    /// acknowledged (a later round confirms the earlier ones too).
    pub(crate) fn confirm_reads(&mut self) {
        // SOLUTION BEGIN: confirm_reads: while the oldest round in self.reads.rounds is acknowledged (self.reads.acked: a follower's latest round) by a majority counting yourself, answer its reads with its index
        while let Some(r) = self.reads.rounds.front() {
            let (me, acked) = (self.config.id, &self.reads.acked);
            let confirmed =
                self.is_quorum(|id| id == me || acked.get(&id).is_some_and(|a| *a >= r.round));
            if !confirmed {
                break;
            }
            let Some(r) = self.reads.rounds.pop_front() else {
                break;
            };
            self.reads
                .done
                .extend(r.ids.into_iter().map(|id| ReadState {
                    id,
                    index: Ok(r.index),
                }));
        }
        // SOLUTION END
    }

    /// Lease reads: every heartbeat starts a round; the newest round a majority acknowledged
    /// extends the lease from the tick it was sent at.
    pub(crate) fn heartbeat_round(&mut self) {
        let f = self.config.features;
        if !(f.lease_reads && f.check_quorum) || self.transfer.is_some() {
            return;
        }
        self.reads.round += 1;
        self.reads.sent.push_back((self.reads.round, self.ticks));
        while self.reads.sent.len() > 64 {
            self.reads.sent.pop_front();
        }
    }

    pub(crate) fn extend_lease(&mut self) {
        if !(self.config.features.lease_reads && self.config.features.check_quorum) {
            return;
        }
        // The round a majority (this node included) has acknowledged.
        let (me, acked) = (self.config.id, &self.reads.acked);
        let Some(majority) = self.membership().quorum_value(|id| {
            if id == me {
                u64::MAX
            } else {
                acked.get(&id).copied().unwrap_or(0)
            }
        }) else {
            return;
        };
        // SOLUTION BEGIN: extend_lease: every round in self.reads.sent (round, tick sent) that the majority has acknowledged extends the lease to the tick it was *sent* plus election_ticks * (1 - LEASE_DRIFT) (thesis 6.4.1: the followers' timers started no earlier than the send, and may run that much faster); drop those rounds
        let margin = if planted!(LeaseTooLong) {
            0.0
        } else {
            LEASE_DRIFT
        };
        let lease = (f64::from(self.config.election_ticks) * (1.0 - margin)) as u64;
        while let Some(&(round, at)) = self.reads.sent.front() {
            if round > majority {
                break;
            }
            self.reads.sent.pop_front();
            if planted!(LeaseNeverHeld) {
                continue;
            }
            let from = if planted!(LeaseFromAck) {
                self.ticks
            } else {
                at
            };
            self.reads.lease_until = self.reads.lease_until.max(from + lease);
        }
        // SOLUTION END
    }
}
