//! What a node puts into a simulated run's trace (`RAFTLAB_TRACE`, see labrpc's README for the
//! schema): its messages, described field by field, and its state as it changes.
//!
//! - `rpc.call` / `rpc.return` (through labrpc, with the call's id): [`describe`] of the request
//!   and of the reply.
//! - `node.state`: role, term, vote, leader, commit, applied, last index, snapshot index (and
//!   `config`, once the log or snapshot holds a configuration), each time one of them changes
//!   (after the node handled what it had, and saved it).
//! - `node.log`: the saved log changed: from index `from` on it is `terms` (a truncation, an
//!   append, or both).
//! - `node.boot`: the node (re)starts from its storage, with the log it loaded.
//! - `node.snapshot`: a snapshot was saved (taken, or installed from the leader), through
//!   `index` of `term`.

use serde_json::{Value, json};

use crate::core::{Persist, Role, Status};
use crate::message::{Envelope, Message};

/// A message's fields, for the trace. Entries are summarized as their index range and terms.
pub fn describe(env: &Envelope) -> Value {
    let (kind, fields) = match &env.msg {
        Message::RequestVote(m) | Message::PreVote(m) => (
            env.msg.kind(),
            json!({ "term": m.term.0, "last_index": m.last_log_index.0, "last_term": m.last_log_term.0, "transfer": m.transfer }),
        ),
        Message::RequestVoteReply(m) | Message::PreVoteReply(m) => (
            env.msg.kind(),
            json!({ "term": m.term.0, "granted": m.vote_granted }),
        ),
        Message::TimeoutNow(m) => (
            "TimeoutNow",
            json!({ "term": m.term.0, "last_index": m.last_log_index.0 }),
        ),
        Message::TimeoutNowReply(m) => (
            "TimeoutNowReply",
            json!({ "term": m.term.0, "campaigning": m.campaigning }),
        ),
        Message::AppendEntries(m) => {
            let mut f = json!({
                "term": m.term.0,
                "prev_index": m.prev_log_index.0,
                "prev_term": m.prev_log_term.0,
                "first": m.prev_log_index.0 + 1,
                "terms": m.entries.iter().map(|e| e.term.0).collect::<Vec<_>>(),
                "commit": m.leader_commit.0,
                "round": m.round,
            });
            // Configuration entries, by index, when the request carries any.
            let configs: Vec<Value> = m
                .entries
                .iter()
                .enumerate()
                .filter_map(|(k, e)| {
                    e.membership().map(|c| {
                        json!({ "index": m.prev_log_index.0 + 1 + k as u64, "config": c.to_string() })
                    })
                })
                .collect();
            if let (false, Value::Object(o)) = (configs.is_empty(), &mut f) {
                o.insert("configs".into(), Value::Array(configs));
            }
            ("AppendEntries", f)
        }
        Message::AppendEntriesReply(m) => (
            "AppendEntriesReply",
            json!({
                "term": m.term.0,
                "success": m.success,
                "match": m.match_index.0,
                "conflict_term": m.conflict_term.map(|t| t.0),
                "conflict_index": m.conflict_index.0,
            }),
        ),
        Message::InstallSnapshot(m) => (
            "InstallSnapshot",
            json!({
                "term": m.term.0,
                "index": m.last_included_index.0,
                "snap_term": m.last_included_term.0,
                "bytes": m.data.len(),
            }),
        ),
        Message::InstallSnapshotReply(m) => (
            "InstallSnapshotReply",
            json!({ "term": m.term.0, "index": m.last_included_index.0 }),
        ),
    };
    let mut v = json!({ "from": env.from.0, "to": env.to.0, "type": kind });
    if let (Value::Object(o), Value::Object(f)) = (&mut v, fields) {
        o.extend(f);
    }
    v
}

/// The parts of a node's status the trace follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Traced {
    role: Role,
    term: u64,
    vote: Option<u64>,
    leader: Option<u64>,
    commit: u64,
    applied: u64,
    last: u64,
    snap: u64,
    /// The configuration, once the log or snapshot has one (`voters {0,1,2} learners {3}`).
    config: Option<String>,
}

impl Traced {
    pub(crate) fn of(s: &Status) -> Traced {
        Traced {
            role: s.role,
            term: s.term.0,
            vote: s.voted_for.map(|v| v.0),
            leader: s.leader.map(|l| l.0),
            commit: s.commit.0,
            applied: s.applied.0,
            last: s.last_index.0,
            snap: s.snapshot_index.0,
            config: (s.membership_index.0 > 0).then(|| s.membership.to_string()),
        }
    }

    /// Records `node.state` when the status differs from `before`.
    pub(crate) fn record(&self, node: u64, group: Option<&str>, before: Option<&Traced>) {
        if before == Some(self) {
            return;
        }
        let name = node.to_string();
        labrpc::sim::trace_event(Some(&name), "node.state", || {
            let mut v = json!({
                "id": node,
                "group": group,
                "role": format!("{:?}", self.role).to_lowercase(),
                "term": self.term,
                "vote": self.vote,
                "leader": self.leader,
                "commit": self.commit,
                "applied": self.applied,
                "last": self.last,
                "snap": self.snap,
            });
            if let (Some(c), Value::Object(o)) = (&self.config, &mut v) {
                o.insert("config".into(), json!(c));
            }
            v
        });
    }
}

/// Records that a node (re)starts from its storage (`node.boot`), with the log it loaded: a
/// new incarnation, whose commit index starts again from its snapshot.
pub(crate) fn record_boot(core: &crate::core::Raft, group: Option<&str>) {
    if !labrpc::sim::tracing_enabled() {
        return;
    }
    let id = core.id().0;
    let log = core.log();
    labrpc::sim::trace_event(Some(&id.to_string()), "node.boot", || {
        json!({
            "id": id,
            "group": group,
            "term": core.term().0,
            "snap": log.snapshot_index().0,
            "snap_term": log.snapshot_term().0,
            "first": log.snapshot_index().0 + 1,
            "terms": log.entries().iter().map(|e| e.term.0).collect::<Vec<_>>(),
        })
    });
}

/// Records what a save changes in the log and the snapshot.
pub(crate) fn record_persist(node: u64, group: Option<&str>, p: &Persist<'_>) {
    if !labrpc::sim::tracing_enabled() {
        return;
    }
    let name = node.to_string();
    if p.snapshot.is_some() {
        labrpc::sim::trace_event(
            Some(&name),
            "node.snapshot",
            || json!({ "id": node, "group": group, "index": p.snapshot_index.0, "term": p.snapshot_term.0 }),
        );
    }
    if let Some(from) = p.entries_from {
        labrpc::sim::trace_event(Some(&name), "node.log", || {
            json!({
                "id": node,
                "group": group,
                "from": from.0,
                "terms": p.entries.iter().map(|e| e.term.0).collect::<Vec<_>>(),
            })
        });
    }
}
