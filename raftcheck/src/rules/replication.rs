//! Replication as the follower sees it (Figure 2's AppendEntries receiver, Figure 13) and the
//! AppendEntries a node sends.

use raft::{Envelope, LogIndex, Message, Raft, Role};

use super::{Before, Rules, Seen, Was};
use crate::monitor::Property;

impl Rules {
    /// Figure 2, AppendEntries receiver, and Figure 13's InstallSnapshot receiver.
    pub(super) fn follower_append(
        &mut self,
        core: &Raft,
        b: &Before,
        s: &raft::Status,
        answered: &[Envelope],
    ) {
        let id = core.id();
        let log = core.log();
        match &b.seen {
            Seen::Append {
                from,
                term,
                prev,
                terms,
                leader_commit,
                matches,
                conflict,
            } if *term >= b.term => {
                let reply = answered.iter().find_map(|e| match &e.msg {
                    Message::AppendEntriesReply(r) => Some((r.success, r.match_index)),
                    _ => None,
                });
                let last_new = LogIndex(prev.0 + terms.len() as u64);
                let fail = |d: String| (Property::Replication, vec![id, *from], d);
                let mut found = Vec::new();
                match reply {
                    Some((true, m)) => {
                        if !matches {
                            found.push(fail(format!("node {id} accepted an AppendEntries whose prevLogIndex {prev} its log does not hold with that term (Figure 2, AppendEntries 2)")));
                        } else if m != last_new {
                            found.push(fail(format!("node {id} acknowledged index {m} to an AppendEntries whose last new entry is {last_new} (Figure 2: the reply speaks for what the request proved)")));
                        }
                        let missing = terms.iter().enumerate().find(|(k, t)| {
                            let i = LogIndex(prev.0 + 1 + *k as u64);
                            i > log.snapshot_index() && log.term_at(i) != Some(**t)
                        });
                        if let Some((k, t)) = missing {
                            found.push(fail(format!(
                                "node {id} accepted an AppendEntries but does not hold its entry {} (term {t}) (Figure 2, AppendEntries 3-4)",
                                prev.0 + 1 + k as u64
                            )));
                        }
                        if !conflict && log.last_index() < b.last.1 {
                            found.push(fail(format!(
                                "node {id} cut its log from {} to {} entries on an AppendEntries that conflicts with none of them: only a conflicting entry and those after it are deleted (Figure 2, AppendEntries 3)",
                                b.last.1, log.last_index()
                            )));
                        }
                        let expected = b.commit.max((*leader_commit).min(last_new));
                        if s.commit != expected {
                            found.push((Property::CommitRule, vec![id, *from], format!(
                                "node {id} set its commit index to {} on an AppendEntries with leaderCommit {leader_commit} whose last new entry is {last_new} (commit was {}): Figure 2, AppendEntries 5 says commitIndex = min(leaderCommit, index of last new entry) = {expected}",
                                s.commit, b.commit
                            )));
                        }
                    }
                    Some((false, _)) => {
                        if *matches {
                            found.push(fail(format!("node {id} refused an AppendEntries of its term whose prevLogIndex {prev} matches its log: a follower refuses only when it lacks the entry (Figure 2, AppendEntries 2)")));
                        } else if log.last_index() != b.last.1 || s.commit != b.commit {
                            found.push(fail(format!("node {id} refused an AppendEntries and still changed its log or commit index")));
                        }
                    }
                    None => found.push(fail(format!("node {id} did not answer an AppendEntries"))),
                }
                for (p, n, d) in found {
                    self.fail(p, &n, d);
                }
            }
            Seen::Snapshot {
                from,
                term,
                last_index,
            } if *term >= b.term
                && *last_index > b.commit
                && (log.snapshot_index() != *last_index || s.commit != *last_index) =>
            {
                self.fail(
                        Property::Replication,
                        &[id, *from],
                        format!(
                            "node {id} stepped an InstallSnapshot through {last_index} past its commit index {} and holds a snapshot through {} with commit {} (Figure 13: install it, reset the state machine)",
                            b.commit,
                            log.snapshot_index(),
                            s.commit
                        ),
                    );
            }
            _ => {}
        }
    }

    /// Every AppendEntries a node sends: it leads the term, and the request matches its log.
    pub(super) fn check_sent(&mut self, core: &Raft, was: Was, sent: &[Envelope]) {
        let b = was;
        let id = core.id();
        let log = core.log();
        let s_role = core.role();
        for e in sent {
            let Message::AppendEntries(m) = &e.msg else {
                if let Message::InstallSnapshot(m) = &e.msg
                    && !(m.term == core.term()
                        && (s_role == Role::Leader || b.role == Role::Leader))
                {
                    self.fail(Property::Replication, &[id], format!(
                        "node {id} sent an InstallSnapshot of term {} as {s_role:?} of term {}: only a leader of the term sends one", m.term, core.term()));
                }
                continue;
            };
            let leads = m.term == core.term() && (s_role == Role::Leader || b.role == Role::Leader);
            let prev_ok = log.term_at(m.prev_log_index) == Some(m.prev_log_term);
            let bad_entry = m.entries.iter().enumerate().find(|(k, en)| {
                let i = LogIndex(m.prev_log_index.0 + 1 + *k as u64);
                log.entry(i)
                    .is_none_or(|mine| mine.term != en.term || mine.command != en.command)
            });
            let commit = core.commit_index();
            let detail = if !leads {
                Some(format!(
                    "it is {s_role:?} of term {} (was {:?} of term {}): only the leader of the request's term sends AppendEntries",
                    core.term(),
                    b.role,
                    b.term
                ))
            } else if !prev_ok {
                Some(format!(
                    "prevLogTerm {} is not the term of its entry {} ({:?})",
                    m.prev_log_term,
                    m.prev_log_index,
                    log.term_at(m.prev_log_index)
                ))
            } else if let Some((k, _)) = bad_entry {
                Some(format!(
                    "entry {} is not the one in its log",
                    m.prev_log_index.0 + 1 + k as u64
                ))
            } else if m.leader_commit > commit || m.leader_commit < b.commit.min(commit) {
                Some(format!(
                    "leaderCommit is {}, its commitIndex {commit}",
                    m.leader_commit
                ))
            } else {
                None
            };
            if let Some(d) = detail {
                self.fail(Property::Replication, &[id, e.to], format!(
                    "node {id} sent {} an AppendEntries of term {} (prev {} term {}, {} entries, leaderCommit {}) that does not follow its log: {d} (Figure 2, AppendEntries arguments)",
                    e.to, m.term, m.prev_log_index, m.prev_log_term, m.entries.len(), m.leader_commit));
            }
        }
    }
}
