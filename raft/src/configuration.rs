//! The data of cluster configurations (thesis chapter 4): [`Membership`], the changes a
//! leader is asked for ([`ConfChange`]) and its refusals ([`ConfChangeError`]), and how a
//! configuration entry is marked and encoded ([`EntryKind`]). Majorities of a configuration
//! are counted here ([`Membership::is_quorum`], [`Membership::quorum_value`]).
//!
//! Not a student file: the log (`RaftLog` tracks the configuration of its entries) and the
//! safety monitor rely on these definitions, so the code under test cannot change how they
//! count. The rules of changing configurations are in `membership.rs`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::core::NotLeader;
use crate::types::{LogIndex, NodeId};

/// A cluster configuration: who votes and who only receives the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The voters (of the new configuration, while joint).
    pub voters: BTreeSet<NodeId>,
    /// While joint (thesis 4.3): the old configuration's voters. Empty otherwise.
    pub outgoing: BTreeSet<NodeId>,
    /// Non-voting members: they receive entries and snapshots and never count in a majority.
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    /// A configuration of voters only.
    pub fn voters(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership {
            voters: voters.into_iter().collect(),
            ..Membership::default()
        }
    }

    /// In a joint configuration (old and new voters both decide).
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// A voter of either half of the configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id)
    }

    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id) && !self.is_voter(id)
    }

    /// Voters, outgoing voters and learners, each once, in order.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        all.extend(self.outgoing.iter().copied());
        all.extend(self.learners.iter().copied());
        all
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// Whether the nodes for which `yes` holds form a majority of the voters (of both halves,
    /// while joint). A configuration without voters has no majority.
    pub fn is_quorum(&self, yes: impl Fn(NodeId) -> bool) -> bool {
        let majority = |set: &BTreeSet<NodeId>| {
            !set.is_empty() && set.iter().filter(|id| yes(**id)).count() > set.len() / 2
        };
        majority(&self.voters) && (self.outgoing.is_empty() || majority(&self.outgoing))
    }

    /// The highest value that a majority (of both halves, while joint) has reached, for a
    /// value that only grows, like a follower's match index: the commit rule's N. `None`
    /// without voters.
    pub fn quorum_value<T: Ord + Copy>(&self, value: impl Fn(NodeId) -> T) -> Option<T> {
        let of = |set: &BTreeSet<NodeId>| -> Option<T> {
            let mut values: Vec<T> = set.iter().map(|id| value(*id)).collect();
            values.sort_unstable_by(|a, b| b.cmp(a));
            values.get(set.len() / 2).copied()
        };
        let new = of(&self.voters)?;
        if self.outgoing.is_empty() {
            return Some(new);
        }
        Some(new.min(of(&self.outgoing)?))
    }

    /// The bytes of a configuration entry.
    pub fn encode(&self) -> Vec<u8> {
        // Sets of integers always serialize.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a configuration entry's bytes; `None` if they are not one.
    pub fn decode(bytes: &[u8]) -> Option<Membership> {
        let m: Membership = postcard::from_bytes(bytes).ok()?;
        // A node is a voter or a learner, not both (the encoder never writes that).
        let overlap = m.learners.iter().any(|l| m.voters.contains(l));
        (!overlap).then_some(m)
    }

    /// The configuration a joint one leaves to (thesis 4.3: C_new).
    pub fn leave_joint(&self) -> Membership {
        Membership {
            voters: self.voters.clone(),
            outgoing: BTreeSet::new(),
            learners: self.learners.clone(),
        }
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |set: &BTreeSet<NodeId>| {
            set.iter()
                .map(|id| id.0.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(f, "voters {{{}}}", list(&self.voters))?;
        if self.is_joint() {
            write!(f, " outgoing {{{}}}", list(&self.outgoing))?;
        }
        if !self.learners.is_empty() {
            write!(f, " learners {{{}}}", list(&self.learners))?;
        }
        Ok(())
    }
}

/// A change a leader is asked to make.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConfChange {
    /// Make a node a voter: a new node, or a learner's promotion. It must be caught up.
    AddVoter(NodeId),
    /// Add a node as a learner, or demote a voter to one.
    AddLearner(NodeId),
    /// Remove a voter or a learner (possibly the leader itself).
    Remove(NodeId),
    /// Replace the whole configuration; more than one voter changing goes through joint
    /// consensus (thesis 4.3), left automatically once it commits.
    Replace {
        voters: BTreeSet<NodeId>,
        learners: BTreeSet<NodeId>,
    },
}

/// Why a leader refused a membership change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfChangeError {
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
    #[error(
        "no entry of the leader's term has committed yet (a no-op was appended; retry shortly)"
    )]
    NotCommittedInTerm,
    #[error("the configuration change at index {0} has not committed yet")]
    InProgress(LogIndex),
    #[error("the cluster is in a joint configuration; it leaves it by itself once that commits")]
    Joint,
    #[error(
        "node {node} is {behind} entries behind the leader (at most {lag} allowed): add it as a learner and wait"
    )]
    Behind { node: NodeId, behind: u64, lag: u64 },
    #[error("node {0} already has that role")]
    NoChange(NodeId),
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    #[error("a leadership transfer is under way")]
    Transferring,
    #[error("{0}")]
    Invalid(String),
}

/// What kind of entry a log entry is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    /// The service's command (empty: a no-op the service skips).
    #[default]
    Command,
    /// A configuration (`Membership::encode`); Raft's own, applied as `Apply::Membership`.
    Membership,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> BTreeSet<NodeId> {
        v.iter().map(|i| NodeId(*i)).collect()
    }

    #[test]
    fn joint_majority_needs_both_halves_4_3() {
        let m = Membership {
            voters: ids(&[3, 4, 5]),
            outgoing: ids(&[0, 1, 2]),
            learners: BTreeSet::new(),
        };
        assert!(!m.is_quorum(|id| [0, 1, 2].contains(&id.0)), "old only");
        assert!(!m.is_quorum(|id| [3, 4, 5].contains(&id.0)), "new only");
        assert!(m.is_quorum(|id| [0, 1, 3, 4].contains(&id.0)));
        let v = m.quorum_value(|id| LogIndex(id.0 * 10));
        // New half: 50, 40, 30 -> 40; old half: 20, 10, 0 -> 10.
        assert_eq!(v, Some(LogIndex(10)));
    }

    #[test]
    fn learners_never_count_in_a_majority_4_2_1() {
        let m = Membership {
            voters: ids(&[0, 1, 2]),
            outgoing: BTreeSet::new(),
            learners: ids(&[3, 4]),
        };
        assert!(!m.is_quorum(|id| id.0 >= 2));
        assert!(m.is_quorum(|id| id.0 <= 1));
    }

    #[test]
    fn configuration_entries_round_trip_and_reject_garbage() {
        let m = Membership {
            voters: ids(&[0, 1]),
            outgoing: ids(&[0, 2]),
            learners: ids(&[5]),
        };
        assert_eq!(Membership::decode(&m.encode()), Some(m));
        assert_eq!(Membership::decode(&[0xff, 0xff, 0xff]), None);
        let both = Membership {
            voters: ids(&[1]),
            outgoing: BTreeSet::new(),
            learners: ids(&[1]),
        };
        assert_eq!(Membership::decode(&both.encode()), None);
    }
}
