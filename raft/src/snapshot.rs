//! Log compaction (section 7): the service's snapshots, and InstallSnapshot for followers that
//! fall behind the leader's compacted log.

use std::sync::Arc;

use labrpc::planted;
use tracing::info;

use crate::core::{Apply, Raft, Role};
use crate::message::{InstallSnapshot, InstallSnapshotReply, Message};
use crate::types::{LogIndex, NodeId};

impl Raft {
    /// The service has a snapshot of its state through `index` (which it has applied): discard
    /// the log up to there and keep the snapshot instead.
    pub fn compact(&mut self, index: LogIndex, data: Vec<u8>) {
        // SOLUTION BEGIN: compact: discard the log through index (which the service has applied) and keep the service's snapshot instead; both must be persisted (section 7)
        if index <= self.log.snapshot_index() || index > self.applied {
            return; // stale, or about entries the service cannot have applied yet
        }
        let Some(term) = self.log.term_at(index) else {
            return;
        };
        let term = if planted!(SnapshotWrongTerm) {
            self.term
        } else {
            term
        };
        self.log.compact(index, term);
        if planted!(SnapshotForgetsMembership) {
            self.log = std::mem::take(&mut self.log).with_snapshot_membership(None);
        }
        self.snapshot = Arc::new(data);
        self.state_dirty = true;
        self.snapshot_dirty = true;
        info!(
            node = self.config.id.0,
            term = self.term.0,
            index = index.0,
            "node {} takes a snapshot through index {}",
            self.config.id,
            index
        );
        // SOLUTION END
    }

    pub(crate) fn send_snapshot(&mut self, peer: NodeId) {
        let through = self.log.snapshot_index();
        if let Some(p) = self.progress.get_mut(&peer) {
            p.inflight = Some(through);
        }
        let req = InstallSnapshot {
            term: self.term,
            last_included_index: self.log.snapshot_index(),
            last_included_term: self.log.snapshot_term(),
            // Always explicit, so a node that joined without a configuration learns it too.
            membership: Some(
                self.log
                    .snapshot_membership()
                    .unwrap_or(&self.bootstrap)
                    .clone(),
            ),
            data: self.snapshot.as_ref().clone(),
        };
        self.send(peer, Message::InstallSnapshot(req));
    }

    /// Figure 13, InstallSnapshot RPC receiver implementation (the whole snapshot in one chunk).
    pub(crate) fn handle_install_snapshot(&mut self, from: NodeId, req: InstallSnapshot) {
        // SOLUTION BEGIN: handle_install_snapshot: reject stale terms; follow the sender and reset the election timer; install a snapshot newer than your commit index (log, commit, applied) and hand it to the service; always reply (Figure 13)
        let term = self.term;
        // 1. Reply immediately if term < currentTerm, saying that nothing was installed: the
        //    reply may reach a leader whose term has since caught up with ours, which must not
        //    take it for an acknowledgement.
        if req.term < self.term {
            let refusal = InstallSnapshotReply {
                term,
                last_included_index: LogIndex(0),
            };
            self.reply(from, Message::InstallSnapshotReply(refusal));
            return;
        }
        let echo = InstallSnapshotReply {
            term,
            last_included_index: req.last_included_index,
        };
        if self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(req.term, Some(from));
        }
        self.reset_election_timer();
        // A snapshot of what we already committed would only roll the state machine back.
        if req.last_included_index > self.commit || planted!(SnapshotRollsBack) {
            // 6-7. Keep the log entries after the snapshot if the log has its last entry;
            //      otherwise discard the entire log.
            // The snapshot's configuration comes with it (thesis chapter 4).
            self.log.install_snapshot(
                req.last_included_index,
                req.last_included_term,
                req.membership.clone(),
            );
            self.snapshot = Arc::new(req.data);
            self.state_dirty = true;
            self.snapshot_dirty = !planted!(SnapshotNotPersisted);
            // 8. Reset the state machine using the snapshot contents.
            self.commit = req.last_included_index;
            self.applied = req.last_included_index;
            self.apply.push(Apply::Snapshot {
                index: req.last_included_index,
                term: req.last_included_term,
                data: self.snapshot.clone(),
            });
            info!(
                node = self.config.id.0,
                term = self.term.0,
                index = req.last_included_index.0,
                "node {} installs a snapshot through index {}",
                self.config.id,
                req.last_included_index
            );
        }
        self.reply(from, Message::InstallSnapshotReply(echo));
        // SOLUTION END
    }

    pub(crate) fn handle_snapshot_reply(&mut self, from: NodeId, reply: InstallSnapshotReply) {
        // SOLUTION BEGIN: handle_snapshot_reply: advance the follower's progress past the snapshot and send it what follows
        if self.role != Role::Leader || reply.term != self.term {
            return;
        }
        // A refusal echoes index 0, which acknowledges nothing.
        self.acknowledge(from, reply.last_included_index);
        // SOLUTION END
    }
}
