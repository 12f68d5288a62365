//! Membership changes as the testers make them: ask whichever node leads, retry what a leader
//! refuses for now, and wait until the change is in force and committed.

use std::time::Duration;

use raft::{ConfChange, ConfChangeError, Membership, Node};
use tokio::time::{Instant, sleep};

/// Asks the leader among `nodes()` (the running, reachable nodes of a group, asked again on
/// every attempt) to make `change`, and waits until a leader's configuration is the change's
/// final one (past the joint configuration, for a `Replace` of several voters) and committed.
/// Retries while no node leads, while the leader has no entry of its term committed, while
/// another change is in progress and while a new voter is still catching up; gives up after
/// `limit` (the error says the last refusal).
pub async fn change_membership(
    nodes: impl Fn() -> Vec<Node>,
    change: &ConfChange,
    limit: Duration,
) -> Result<Membership, String> {
    let t0 = Instant::now();
    let mut target: Option<Membership> = None;
    let mut last = String::from("no leader");
    while t0.elapsed() < limit {
        for node in nodes() {
            let status = node.status();
            if status.role != raft::Role::Leader {
                continue;
            }
            // Done once a leader runs the target configuration, committed.
            if let Some(t) = &target
                && &status.membership == t
                && status.membership_index <= status.commit
            {
                return Ok(t.clone());
            }
            if target.is_some() {
                // Appended: leaving the joint configuration or committing takes a moment.
                // Ask again if this leader does not have it (a new leader may have lost it).
                let current = &status.membership;
                if target.as_ref().is_some_and(|t| {
                    current.is_joint() && &current.leave_joint() == t || current == t
                }) {
                    continue;
                }
            }
            match node.change_membership(change.clone()).await {
                Ok(_) => {
                    let m = node.status().membership;
                    target = Some(if m.is_joint() { m.leave_joint() } else { m });
                }
                Err(ConfChangeError::NoChange(_)) | Err(ConfChangeError::NotMember(_)) => {
                    // Already so (an earlier attempt went through, maybe under another leader).
                    target = Some(status.membership.clone());
                }
                Err(ConfChangeError::Invalid(why)) => return Err(why),
                Err(e) => last = e.to_string(),
            }
        }
        sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "the change {change:?} did not complete within {limit:?} (last refusal: {last})"
    ))
}
