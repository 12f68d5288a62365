//! Cluster membership changes (thesis chapter 4): configurations in the log, single-server
//! changes (4.1), learners (4.2.1), removing the leader (4.2.2) and joint consensus (4.3).
//!
//! # When a configuration takes effect
//! A server uses the latest configuration in its log, committed or not, from the moment the
//! entry is appended (thesis 4.1, hashicorp/raft). The alternative (etcd: on apply) delays the
//! change by a commit round and makes the leader count with a configuration other than the one
//! its log says; taking effect on append keeps one rule everywhere: the configuration of a
//! log is a function of the log. A truncated configuration entry therefore reverts the node to
//! the one before it, a snapshot carries the configuration it covers (`RaftLog` keeps it beside
//! the snapshot's index and term; `InstallSnapshot` sends it), and a restarted node recovers it
//! from its log and snapshot. Before any configuration is in the log or a snapshot, the
//! bootstrap configuration is `Config::peers` (all voters).
//!
//! # The rules the leader enforces (`Raft::change_membership`)
//! - An entry of its own term has committed (otherwise a change of the previous leader may
//!   still be uncommitted in a log it has not seen: the single-server bug Ongaro reported on
//!   raft-dev in 2015). A leader without one appends an empty no-op so a retry can succeed.
//! - No other configuration entry is uncommitted (one change at a time).
//! - A single-server change adds or removes at most one voter; any two majorities of
//!   configurations differing by one voter intersect (thesis 4.1).
//! - Several voters at once go through a joint configuration (voters = new, outgoing = old):
//!   decisions need a majority of both. Once the joint entry commits, the leader appends the
//!   final configuration by itself; a new leader that finds itself in a joint configuration
//!   appends a no-op, commits the joint entry through it, and leaves likewise.
//! - A new voter must have caught up to within `Config::promotion_lag` entries (add it as a
//!   learner first): an empty new voter would make commits wait for it (thesis 4.2.1).
//! - A leader that is not a voter of its latest configuration does not count itself in
//!   majorities; once that configuration commits it steps down (thesis 4.2.2).
//! - Only voters start elections; learners answer vote requests like anyone (a candidate that
//!   still sees them as voters needs their answer: etcd #10998) but their votes count only
//!   where the candidate's configuration makes them voters.

use labrpc::planted;
use tracing::info;

pub use crate::configuration::{ConfChange, ConfChangeError, EntryKind, Membership};
use crate::core::{NotLeader, Raft, Role};
use crate::log::Entry;
use crate::types::{LogIndex, NodeId, Term};

impl Membership {
    /// The configuration after `change`, or why the change is not allowed from this one.
    pub fn after(&self, change: &ConfChange) -> Result<Membership, ConfChangeError> {
        if self.is_joint() {
            return Err(ConfChangeError::Joint);
        }
        let mut next = self.clone();
        match change {
            ConfChange::AddVoter(id) => {
                if self.voters.contains(id) {
                    return Err(ConfChangeError::NoChange(*id));
                }
                next.learners.remove(id);
                next.voters.insert(*id);
            }
            ConfChange::AddLearner(id) => {
                if self.learners.contains(id) {
                    return Err(ConfChangeError::NoChange(*id));
                }
                // A voter becomes a learner: a single-server removal of a voter.
                next.voters.remove(id);
                next.learners.insert(*id);
            }
            ConfChange::Remove(id) => {
                if !self.contains(*id) {
                    return Err(ConfChangeError::NotMember(*id));
                }
                next.voters.remove(id);
                next.learners.remove(id);
            }
            ConfChange::Replace { voters, learners } => {
                if let Some(both) = voters.intersection(learners).next() {
                    return Err(ConfChangeError::Invalid(format!(
                        "node {both} cannot be both a voter and a learner"
                    )));
                }
                next.voters = voters.clone();
                next.learners = learners.clone();
                if next.voters.symmetric_difference(&self.voters).count() > 1 {
                    // SOLUTION BEGIN: replace: more than one voter changes, so go through the joint configuration (thesis 4.3): its outgoing half is the old voters
                    if !planted!(ConfChangeWithoutJoint) {
                        next.outgoing = self.voters.clone();
                    }
                    // SOLUTION END
                }
            }
        }
        if next.voters.is_empty() {
            return Err(ConfChangeError::Invalid(
                "a configuration needs at least one voter".to_owned(),
            ));
        }
        Ok(next)
    }
}

impl Raft {
    /// The configuration this node acts on: the latest in its log or snapshot.
    pub fn membership(&self) -> &Membership {
        self.log.membership().unwrap_or(&self.bootstrap)
    }

    /// The index of the latest configuration entry (0 for the snapshot's or the bootstrap one).
    pub(crate) fn membership_index(&self) -> LogIndex {
        self.log.membership_index()
    }

    /// Asks the leader to change the configuration (see the module documentation for the
    /// rules). Returns the index and term of the configuration entry.
    pub fn change_membership(
        &mut self,
        change: ConfChange,
    ) -> Result<(LogIndex, Term), ConfChangeError> {
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader,
            }
            .into());
        }
        if self.transfer.is_some() {
            return Err(ConfChangeError::Transferring);
        }
        // SOLUTION BEGIN: change_membership: one change at a time (InProgress while the latest configuration entry is uncommitted); none before an entry of your term has committed (NotCommittedInTerm, after appending a no-op with append_noop_once so that a retry succeeds); the next configuration from Membership::after; no new voter more than promotion_lag entries behind (Behind); then append it (append_membership: in force at once)
        let pending = self.membership_index();
        if pending > self.commit && !planted!(ConfChangeWhileUncommitted) {
            return Err(ConfChangeError::InProgress(pending));
        }
        if self.log.term_at(self.commit) != Some(self.term)
            && !planted!(ConfChangeBeforeOwnTermCommit)
        {
            self.append_noop_once();
            return Err(ConfChangeError::NotCommittedInTerm);
        }
        let current = self.membership().clone();
        let next = current.after(&change)?;
        let lag = self.config.promotion_lag;
        let last = self.log.last_index();
        for id in next.voters.iter().filter(|id| !current.is_voter(**id)) {
            let matched = if *id == self.config.id {
                last
            } else {
                self.progress.get(id).map_or(LogIndex(0), |p| p.matched)
            };
            let behind = last.0.saturating_sub(matched.0);
            if behind > lag {
                return Err(ConfChangeError::Behind {
                    node: *id,
                    behind,
                    lag,
                });
            }
        }
        let joint = next.is_joint();
        let at = self.append_membership(next.clone());
        if joint && planted!(JointLeftBeforeCommit) {
            self.append_membership(next.leave_joint());
        }
        self.after_commit();
        Ok(at)
        // SOLUTION END
    }

    /// Appends a configuration entry on the leader; it takes effect at once.
    fn append_membership(&mut self, next: Membership) -> (LogIndex, Term) {
        info!(
            node = self.config.id.0,
            term = self.term.0,
            "node {} proposes the configuration {}",
            self.config.id,
            next
        );
        let index = self.log.append(Entry {
            term: self.term,
            kind: EntryKind::Membership,
            command: next.encode(),
        });
        self.state_dirty = true;
        self.broadcast_pending = true;
        self.membership_changed();
        self.maybe_commit();
        (index, self.term)
    }

    /// An empty entry of the leader's term, unless one is already uncommitted.
    pub(crate) fn append_noop_once(&mut self) {
        if self.log.last_term() == self.term && self.log.last_index() > self.commit {
            return;
        }
        self.log.append(Entry {
            term: self.term,
            kind: EntryKind::Command,
            command: Vec::new(),
        });
        self.state_dirty = true;
        self.broadcast_pending = true;
        self.maybe_commit();
    }

    /// The configuration may have changed (an entry appended or truncated, a snapshot): a
    /// leader starts or stops replicating to the members that came or went.
    /// Members of the previous configuration keep receiving entries until the new one commits,
    /// so that a removed node usually learns of its removal (and stops campaigning).
    pub(crate) fn membership_changed(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let mut members = self.membership().members();
        if self.membership_index() > self.commit {
            members.extend(self.previous_membership().members());
        }
        let me = self.config.id;
        let next = self.log.last_index().next();
        self.progress
            .retain(|id, _| members.contains(id) || *id == me);
        self.progress.remove(&me);
        for id in members.into_iter().filter(|id| *id != me) {
            self.progress
                .entry(id)
                .or_insert_with(|| crate::core::Progress {
                    // Probe from the end of the log, as for a new leader's followers.
                    next,
                    matched: LogIndex(0),
                    inflight: None,
                });
        }
    }

    /// The configuration before the latest one in the log (the snapshot's, or the bootstrap).
    fn previous_membership(&self) -> &Membership {
        let changes = self.log.membership_changes();
        match changes.len() {
            0 => &self.bootstrap,
            1 => self.log.snapshot_membership().unwrap_or(&self.bootstrap),
            n => &changes[n - 2].1,
        }
    }

    /// After the commit index moved, on a leader: stop replicating to members the committed
    /// configuration removed, leave a committed joint configuration, and step down once a
    /// configuration without this node as a voter has committed.
    pub(crate) fn after_commit(&mut self) {
        if self.role != Role::Leader || self.membership_index() > self.commit {
            return;
        }
        let current = self.membership();
        if self.progress.keys().any(|id| !current.contains(*id)) {
            let members = current.members();
            self.progress.retain(|id, _| members.contains(id));
        }
        let current = self.membership();
        if !current.is_joint() && current.is_voter(self.config.id) {
            // The common case, after every input of a leader: nothing to do.
            return;
        }
        let m = current.clone();
        if m.is_joint() {
            // SOLUTION BEGIN: after_commit, joint: C_old,new has committed; append C_new (Membership::leave_joint) with append_membership (thesis 4.3)
            if !planted!(JointNeverLeft) {
                self.append_membership(m.leave_joint());
            }
            // SOLUTION END
        } else if !m.is_voter(self.config.id) {
            // SOLUTION BEGIN: after_commit, removed: a configuration without you as a voter has committed; step down to follower of your term (thesis 4.2.2)
            info!(
                node = self.config.id.0,
                term = self.term.0,
                "node {} steps down: its removal committed",
                self.config.id
            );
            let term = self.term;
            if !planted!(RemovedLeaderKeepsLeading) {
                self.become_follower(term, None);
            }
            // SOLUTION END
        }
    }

    /// A new leader in a joint configuration, or with a configuration entry of an earlier
    /// term uncommitted, commits it through an entry of its own term (and then leaves the
    /// joint configuration in `after_commit`).
    pub(crate) fn settle_membership(&mut self) {
        if self.membership().is_joint() || self.membership_index() > self.commit {
            self.append_noop_once();
        }
    }

    /// The nodes whose `yes` make a majority of this node's configuration. A leader or
    /// candidate counts itself where `yes` says so, and only if it is a voter.
    pub(crate) fn is_quorum(&self, yes: impl Fn(NodeId) -> bool) -> bool {
        self.membership().is_quorum(yes)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn ids(v: &[u64]) -> BTreeSet<NodeId> {
        v.iter().map(|i| NodeId(*i)).collect()
    }

    #[test]
    fn replacing_more_than_one_voter_goes_through_a_joint_configuration_4_3() {
        let m = Membership::voters(ids(&[0, 1, 2]));
        let one = m
            .after(&ConfChange::Replace {
                voters: ids(&[0, 1, 2, 3]),
                learners: BTreeSet::new(),
            })
            .unwrap();
        assert!(!one.is_joint(), "one voter added: a single-server change");
        let two = m
            .after(&ConfChange::Replace {
                voters: ids(&[0, 3, 4]),
                learners: BTreeSet::new(),
            })
            .unwrap();
        assert_eq!(two.outgoing, ids(&[0, 1, 2]));
        assert_eq!(two.leave_joint(), Membership::voters(ids(&[0, 3, 4])));
        assert_eq!(
            two.after(&ConfChange::AddVoter(NodeId(9))),
            Err(ConfChangeError::Joint)
        );
    }

    #[test]
    fn a_configuration_keeps_a_voter() {
        let m = Membership::voters(ids(&[0]));
        assert!(matches!(
            m.after(&ConfChange::Remove(NodeId(0))),
            Err(ConfChangeError::Invalid(_))
        ));
    }
}
