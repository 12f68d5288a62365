//! Log replication (section 5.3), the commitment rule (section 5.4.2, Figure 8) and the fast
//! backtracking of nextIndex after a rejected AppendEntries.

use labrpc::planted;
use tracing::debug;

use crate::core::{Raft, Role};
use crate::log::Entry;
use crate::message::{AppendEntries, AppendEntriesReply, Message};
use crate::types::{LogIndex, NodeId, Term};

impl Raft {
    /// Sends AppendEntries (or a snapshot) to every follower: the heartbeat of section 5.2 and
    /// the replication of section 5.3 are the same message. Heartbeats (`force`) go to everyone;
    /// new entries skip followers that have not answered the entries sent to them last.
    pub(crate) fn broadcast_append(&mut self, force: bool) {
        if force {
            self.heartbeat_round();
        }
        let peers: Vec<NodeId> = self
            .progress
            .iter()
            .filter(|(_, p)| force || p.inflight.is_none())
            .map(|(id, _)| *id)
            .collect();
        for peer in peers {
            self.send_append(peer);
        }
    }

    /// Sends the entries from the follower's nextIndex on, or the snapshot when those entries
    /// were compacted away (section 7).
    pub(crate) fn send_append(&mut self, peer: NodeId) {
        // SOLUTION BEGIN: send_append: send the follower the entries from its nextIndex with prevLogIndex and prevLogTerm, or the snapshot when those entries were compacted away (section 7)
        let Some(progress) = self.progress.get(&peer).copied() else {
            return;
        };
        if progress.next <= self.log.snapshot_index() {
            self.send_snapshot(peer);
            return;
        }
        let prev_log_index = progress.next.prev();
        let Some(prev_log_term) = self.log.term_at(prev_log_index) else {
            // next is past our log (cannot happen: it is clamped); send from the end instead.
            if let Some(p) = self.progress.get_mut(&peer) {
                p.next = self.log.last_index().next();
            }
            return;
        };
        let entries = batch(self.log.entries_from(progress.next)).to_vec();
        if !entries.is_empty()
            && let Some(p) = self.progress.get_mut(&peer)
        {
            p.inflight = Some(LogIndex(prev_log_index.0 + entries.len() as u64));
        }
        let prev_log_term = if planted!(AppendPrevTermIsCurrentTerm) {
            self.term
        } else {
            prev_log_term
        };
        let req = AppendEntries {
            term: self.term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit: self.commit,
            round: 0, // stamped by `send`
        };
        self.send(peer, Message::AppendEntries(req));
        // SOLUTION END
    }

    /// Figure 2, AppendEntries RPC receiver implementation.
    pub(crate) fn handle_append_entries(&mut self, from: NodeId, req: AppendEntries) {
        // SOLUTION BEGIN: handle_append_entries: reject stale terms; follow the sender and reset the election timer; check prevLogIndex/prevLogTerm (reject with a conflict hint), skip entries the snapshot covers, truncate conflicting entries, append new ones and advance commitIndex (Figure 2, AppendEntries RPC)
        // 1. Reply false if term < currentTerm. (`conflict_index` 0 tells the leader the refusal
        //    is about the term, not about its log.)
        if req.term < self.term && !planted!(AppendAcceptsStaleTerm) {
            if planted!(StaleAppendResetsTimer) {
                self.reset_election_timer();
            }
            self.reject_append(from, None, LogIndex(0));
            return;
        }
        // The sender is the leader of our term (at most one per term, section 5.2). A candidate
        // of the same term steps back to follower; everyone restarts the election timer.
        if self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(req.term, Some(from));
        }
        let kept = self.election_elapsed;
        self.reset_election_timer();
        if planted!(TruncateMatchingSuffix) && !req.entries.is_empty() {
            // "Delete everything after prevLogIndex, then append": loses entries a newer,
            // reordered AppendEntries already appended and that were acknowledged.
            let cut = req
                .prev_log_index
                .next()
                .max(self.log.snapshot_index().next());
            if self.log.term_at(req.prev_log_index) == Some(req.prev_log_term) {
                self.log.truncate_from(cut);
                self.state_dirty = true;
            }
        }

        let mut prev = req.prev_log_index;
        let mut entries = req.entries.as_slice();
        // Entries the snapshot already covers are committed, so they match: skip them.
        let base = self.log.snapshot_index();
        if prev < base {
            let covered = (base.0 - prev.0) as usize;
            if covered >= entries.len() {
                let m = LogIndex(prev.0 + entries.len() as u64);
                self.accept_append(from, m, req.leader_commit);
                return;
            }
            entries = &entries[covered..];
            prev = base;
        } else {
            // 2. Reply false if the log does not contain an entry at prevLogIndex whose term
            //    matches prevLogTerm, with the hint of section 5.3 for fast backtracking.
            match self.log.term_at(prev) {
                None => {
                    let len = self.log.last_index().next();
                    if planted!(AppendKeepsTimer) {
                        self.election_elapsed = kept;
                    }
                    self.reject_append(from, None, len);
                    return;
                }
                Some(t) if t != req.prev_log_term => {
                    let first = self.log.first_index_of_term(t, prev);
                    self.reject_append(from, Some(t), first);
                    return;
                }
                Some(_) => {}
            }
        }
        let dirty = !planted!(EntriesNotPersisted);
        // 3. If an existing entry conflicts with a new one (same index, different terms),
        //    delete it and all that follow. 4. Append any new entries not already in the log.
        //    Entries that match are left alone, so a stale, reordered AppendEntries cannot cut
        //    off entries a newer one appended.
        for (k, entry) in entries.iter().enumerate() {
            let index = LogIndex(prev.0 + 1 + k as u64);
            match self.log.term_at(index) {
                Some(t) if t == entry.term => continue,
                Some(_) => {
                    debug!(
                        node = self.config.id.0,
                        index = index.0,
                        "truncating a conflicting suffix"
                    );
                    self.log.truncate_from(index);
                }
                None => {}
            }
            for e in &entries[k..] {
                self.log.append(e.clone());
            }
            self.state_dirty |= dirty;
            break;
        }
        let last_new = if planted!(MatchIndexFromOwnLog) {
            self.log.last_index()
        } else {
            LogIndex(prev.0 + entries.len() as u64)
        };
        self.accept_append(from, last_new, req.leader_commit);
        // SOLUTION END
    }

    fn accept_append(&mut self, leader: NodeId, last_new: LogIndex, leader_commit: LogIndex) {
        // 5. If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of last
        //    new entry): entries past what this request proved to match may still be stale.
        let target = leader_commit.min(last_new);
        self.advance_commit(target);
        let term = self.term;
        self.reply(
            leader,
            Message::AppendEntriesReply(AppendEntriesReply {
                term,
                success: true,
                match_index: last_new,
                conflict_term: None,
                conflict_index: LogIndex(0),
                round: 0, // the request's, set by `step`
            }),
        );
    }

    fn reject_append(
        &mut self,
        leader: NodeId,
        conflict_term: Option<Term>,
        conflict_index: LogIndex,
    ) {
        let term = self.term;
        self.reply(
            leader,
            Message::AppendEntriesReply(AppendEntriesReply {
                term,
                success: false,
                match_index: LogIndex(0),
                conflict_term,
                conflict_index,
                round: 0, // the request's, set by `step`
            }),
        );
    }

    /// The leader's side: advance the follower's progress, or back nextIndex up and retry.
    pub(crate) fn handle_append_reply(&mut self, from: NodeId, reply: AppendEntriesReply) {
        // SOLUTION BEGIN: handle_append_reply: on success advance the follower's matchIndex and nextIndex and try to commit; on failure move nextIndex back using the conflict hint and retry
        if self.role != Role::Leader
            || (reply.term != self.term && !planted!(StaleAppendReplyCounted))
        {
            return; // a reply to an older term's request
        }
        if reply.success {
            self.acknowledge(from, reply.match_index);
            return;
        }
        let last = self.log.last_index();
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        if reply.conflict_index == LogIndex(0) {
            // Refused for its term, not for its log: the request came from an older term of
            // ours (a newer term in the reply was handled in `step`). Nothing to learn here.
            return;
        }
        p.inflight = None;
        // Fast backtracking: skip the follower's whole conflicting term at once. If we have
        // entries of that term, resend from just past our last one; otherwise from the first
        // index the follower has for it (or its log's end).
        let mut next = match reply.conflict_term {
            Some(t) => match self.log.last_index_of_term(t) {
                Some(i) => i.next(),
                None => reply.conflict_index,
            },
            None => reply.conflict_index,
        };
        // Never below what the follower is known to have, never past our log.
        next = next.max(p.matched.next()).min(last.next()).max(LogIndex(1));
        if next < p.next {
            p.next = next;
            if !planted!(RetryWaitsForHeartbeat) {
                self.send_append(from);
            }
        }
        // SOLUTION END
    }

    /// A follower has the leader's log through `matched` (an AppendEntries or InstallSnapshot
    /// succeeded): advance its progress, try to commit, and keep a lagging follower streaming
    /// rather than waiting for the next heartbeat.
    pub(crate) fn acknowledge(&mut self, from: NodeId, matched: LogIndex) {
        // SOLUTION BEGIN: acknowledge: advance matchIndex (never backwards: replies may be reordered) and nextIndex, clear the in-flight mark once what was sent is acknowledged, try to commit, and send more if the follower is still behind
        let last = self.log.last_index();
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        // Replies may arrive out of order: progress only moves forward.
        p.matched = p.matched.max(matched.min(last));
        // A heartbeat's reply says nothing about entries sent after it.
        let was_inflight = p.inflight;
        if p.inflight.is_some_and(|through| p.matched >= through) {
            p.inflight = None;
        }
        if planted!(InflightNeverCleared) {
            p.inflight = was_inflight;
        }
        p.next = p.next.max(p.matched.next());
        let behind = p.next <= last;
        self.maybe_commit();
        if behind {
            self.send_more(from);
        }
        // SOLUTION END
    }

    /// `send_append` after an acknowledgement, less one waste: a follower that still needs
    /// the snapshot, with this very snapshot on its way, gets no second copy for each reply to
    /// an older request (the snapshot's reply, or the next heartbeat if it was lost, sends
    /// what follows; a newer snapshot goes at once). With a small `maxraftstate` the leader
    /// compacts often, and each reply used to resend the whole state. An economy, not a rule
    /// of Raft: `send_append` alone is correct too.
    pub(crate) fn send_more(&mut self, peer: NodeId) {
        let snapshot = self.log.snapshot_index();
        if self
            .progress
            .get(&peer)
            .is_some_and(|p| p.next <= snapshot && p.inflight == Some(snapshot))
        {
            return;
        }
        self.send_append(peer);
    }

    /// Section 5.3/5.4.2 and Figure 2, "Rules for Servers, Leaders": if there is an N >
    /// commitIndex such that a majority of matchIndex[i] >= N and log[N].term == currentTerm,
    /// set commitIndex = N. Entries of older terms are committed only indirectly, by a later
    /// entry of the current term (the Figure 8 rule).
    pub(crate) fn maybe_commit(&mut self) {
        // SOLUTION BEGIN: maybe_commit: commit the highest index N stored on a majority whose entry is of the current term (section 5.4.2, Figure 8)
        if self.role != Role::Leader {
            return;
        }
        // The highest index a majority of the configuration (of both halves while joint)
        // stores; the leader counts itself only if it is a voter.
        let (me, last) = (self.config.id, self.log.last_index());
        let stored = |id: NodeId| {
            if id == me {
                last
            } else {
                self.progress.get(&id).map_or(LogIndex(0), |p| p.matched)
            }
        };
        let n = if planted!(CommitWithoutMajority) {
            // One short of a majority.
            let mut matched: Vec<LogIndex> = self
                .membership()
                .voters
                .iter()
                .map(|id| stored(*id))
                .collect();
            matched.sort_unstable_by(|a, b| b.cmp(a));
            matched
                .get((matched.len() / 2).saturating_sub(1))
                .copied()
                .unwrap_or_default()
        } else {
            self.membership().quorum_value(stored).unwrap_or_default()
        };
        let own_term = self.log.term_at(n) == Some(self.term) || planted!(CommitOldTerm);
        if n > self.commit && own_term {
            self.advance_commit(if planted!(CommitOneAtATime) {
                self.commit.next()
            } else {
                n
            });
        }
        // SOLUTION END
    }
}

/// At most this many bytes of commands go in one AppendEntries (but always at least one entry),
/// so that catching up a far-behind follower is a stream of bounded messages.
pub const MAX_APPEND_BYTES: usize = 64 * 1024;

fn batch(entries: &[Entry]) -> &[Entry] {
    let mut bytes = 0;
    for (k, e) in entries.iter().enumerate() {
        bytes += e.command.len() + 8;
        if bytes > MAX_APPEND_BYTES && k > 0 {
            return &entries[..k];
        }
    }
    entries
}
