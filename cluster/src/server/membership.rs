//! Membership on a node: the `change_membership` admin call's wait for the commit, and the
//! narration of the node's configuration (joined, promoted, removed) with the `removed` marker.

use std::path::PathBuf;
use std::time::Duration;

use raft::NodeId;
use tracing::info;

use crate::rpc::MembershipFailure;
use crate::storage;

/// How long `change_membership` waits for the entry to commit.
const COMMIT_WAIT: Duration = Duration::from_secs(5);

/// Asks this node, as leader, for `change`, and waits (at most [`COMMIT_WAIT`]) for the
/// configuration entry to commit; returns its index.
pub(super) async fn change_and_wait(
    raft: &raft::Node,
    id: u64,
    change: raft::ConfChange,
) -> Result<u64, MembershipFailure> {
    let (index, term) = match raft.change_membership(change.clone()).await {
        Ok(at) => at,
        Err(e) => return Err(membership_failure(id, e)),
    };
    info!(
        node = id,
        "node {}: asked for {change:?}: the configuration entry is at index {index}; waiting for it to commit",
        id
    );
    let deadline = tokio::time::Instant::now() + COMMIT_WAIT;
    loop {
        let s = raft.status();
        // A leader never truncates its own entries, and no other leader exists in its
        // term: with the same term, commit past the index means the entry committed.
        if s.term != term {
            return Err(MembershipFailure::Unknown {
                index: index.0,
                why: format!("the term moved from {term} to {}", s.term),
            });
        }
        if s.commit >= index {
            return Ok(index.0);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(MembershipFailure::Unknown {
                index: index.0,
                why: format!("not committed within {} s", COMMIT_WAIT.as_secs()),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Narrates this node's configuration as it changes (joined, promoted, demoted, removed, and
/// others' changes), and writes the `removed` marker once its own removal has committed.
pub(super) async fn watch_membership(id: u64, cluster: u64, raft: raft::Node, dir: PathBuf) {
    let me = NodeId(id);
    let mut last: Option<raft::Membership> = None;
    let mut was_member = false;
    let mut marked = false;
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        interval.tick().await;
        let s = raft.status();
        let m = &s.membership;
        if last.as_ref() != Some(m) {
            let before = last.as_ref();
            let role = |m: Option<&raft::Membership>| match m {
                Some(m) if m.is_voter(me) => "voter",
                Some(m) if m.is_learner(me) => "learner",
                _ => "none",
            };
            let at = s.membership_index;
            match (role(before), role(Some(m))) {
                ("none", "learner") => {
                    info!(
                        node = id,
                        "node {id}: joined the cluster as a learner (configuration {m}, index {at}); catching up"
                    )
                }
                ("none", "voter") if before.is_some() => {
                    info!(
                        node = id,
                        "node {id}: joined the cluster as a voter (configuration {m}, index {at})"
                    )
                }
                ("learner", "voter") => {
                    info!(
                        node = id,
                        "node {id}: promoted to voter (configuration {m}, index {at})"
                    )
                }
                ("voter", "learner") => {
                    info!(
                        node = id,
                        "node {id}: demoted to learner (configuration {m}, index {at})"
                    )
                }
                (r, "none") if r != "none" => {
                    info!(
                        node = id,
                        "node {id}: removed from the configuration (now {m}, index {at}); I no longer take part once that commits"
                    )
                }
                _ if before.is_some() => {
                    info!(
                        node = id,
                        "node {id}: the configuration is now {m} (index {at})"
                    )
                }
                _ if !m.members().is_empty() => {
                    info!(node = id, "node {id}: configuration {m} (index {at})")
                }
                _ => {}
            }
            last = Some(m.clone());
        }
        if m.contains(me) {
            was_member = true;
        } else if was_member && !marked && s.commit >= s.membership_index {
            let why = format!(
                "node {id} of cluster {cluster:016x}: its removal committed at index {} (configuration {m})",
                s.membership_index
            );
            match storage::write_removed(&dir, &why) {
                Ok(()) => info!(
                    node = id,
                    "node {id}: my removal has committed: {} marks this data directory, which will not start again",
                    storage::REMOVED_FILE
                ),
                Err(e) => tracing::warn!(node = id, "node {id}: cannot mark my removal: {e}"),
            }
            marked = true;
        }
    }
}

fn membership_failure(at: u64, e: raft::ConfChangeError) -> MembershipFailure {
    use raft::ConfChangeError as E;
    match e {
        E::NotLeader(n) => MembershipFailure::NotLeader {
            at,
            hint: n.leader.map(|l| l.0),
        },
        E::NotCommittedInTerm => MembershipFailure::NotCommittedInTerm,
        E::InProgress(i) => MembershipFailure::InProgress(i.0),
        E::Behind { node, behind, lag } => MembershipFailure::Behind {
            node: node.0,
            behind,
            lag,
        },
        E::NoChange(n) => MembershipFailure::NoChange(n.0),
        E::NotMember(n) => MembershipFailure::NotMember(n.0),
        e @ (E::Joint | E::Transferring) => MembershipFailure::Busy(e.to_string()),
        e @ E::Invalid(_) => MembershipFailure::Refused(e.to_string()),
    }
}
