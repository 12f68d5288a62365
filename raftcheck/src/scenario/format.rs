//! How scripts write messages, entries, applied commands and membership changes, and the
//! message filters of `deliver`, `drop` and `duplicate`.

use raft::{ConfChange, Entry, EntryKind, Envelope, LogIndex, Message, NodeId};

/// A message as scripts print it, e.g. `1->2 AppendEntries term=2 prev=(3,1) entries=[2 2]
/// commit=3`.
pub fn fmt_msg(env: &Envelope) -> String {
    let body = match &env.msg {
        Message::RequestVote(m) | Message::PreVote(m) => format!(
            "term={} last=({},{}){}",
            m.term,
            m.last_log_index,
            m.last_log_term,
            if m.transfer { " transfer" } else { "" }
        ),
        Message::TimeoutNow(m) => format!("term={} last={}", m.term, m.last_log_index),
        Message::TimeoutNowReply(m) => format!(
            "term={} {}",
            m.term,
            if m.campaigning {
                "campaigning"
            } else {
                "ignored"
            }
        ),
        Message::RequestVoteReply(m) | Message::PreVoteReply(m) => format!(
            "term={} {}",
            m.term,
            if m.vote_granted { "granted" } else { "refused" }
        ),
        Message::AppendEntries(m) => {
            format!(
                "term={} prev=({},{}) entries=[{}] commit={}",
                m.term,
                m.prev_log_index,
                m.prev_log_term,
                m.entries
                    .iter()
                    .map(fmt_entry)
                    .collect::<Vec<_>>()
                    .join(" "),
                m.leader_commit
            ) + &round(m.round)
        }
        Message::AppendEntriesReply(m) if m.success => {
            format!("term={} ok match={}", m.term, m.match_index) + &round(m.round)
        }
        Message::AppendEntriesReply(m) => {
            let body = match m.conflict_term {
                Some(t) => format!(
                    "term={} reject conflict_term={} conflict_index={}",
                    m.term, t, m.conflict_index
                ),
                None => format!("term={} reject conflict_index={}", m.term, m.conflict_index),
            };
            body + &round(m.round)
        }
        Message::InstallSnapshot(m) => format!(
            "term={} last=({},{}) data=\"{}\"",
            m.term,
            m.last_included_index,
            m.last_included_term,
            String::from_utf8_lossy(&m.data)
        ),
        Message::InstallSnapshotReply(m) => {
            format!("term={} last={}", m.term, m.last_included_index)
        }
    };
    format!("{}->{} {} {}", env.from, env.to, env.msg.kind(), body)
}

/// An entry as scripts show it: its term, marked `c` for a configuration entry.
pub(super) fn fmt_entry(e: &Entry) -> String {
    match e.kind {
        EntryKind::Command => e.term.to_string(),
        EntryKind::Membership => format!("{}c", e.term),
    }
}

/// A membership change as scripts write it: `add-voter N`, `add-learner N`, `remove N`,
/// `replace V,V,.. [learners L,L,..]`.
pub(super) fn parse_change(words: &[&str]) -> Result<ConfChange, String> {
    let ids = |list: &str| -> Result<std::collections::BTreeSet<NodeId>, String> {
        list.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| num(s, "node id").map(NodeId))
            .collect()
    };
    match words {
        ["add-voter", n] => Ok(ConfChange::AddVoter(NodeId(num(n, "node id")?))),
        ["add-learner", n] => Ok(ConfChange::AddLearner(NodeId(num(n, "node id")?))),
        ["remove", n] => Ok(ConfChange::Remove(NodeId(num(n, "node id")?))),
        ["replace", voters] => Ok(ConfChange::Replace {
            voters: ids(voters)?,
            learners: Default::default(),
        }),
        ["replace", voters, "learners", learners] => Ok(ConfChange::Replace {
            voters: ids(voters)?,
            learners: ids(learners)?,
        }),
        _ => Err(format!(
            "conf: expected add-voter N, add-learner N, remove N or replace V,V [learners L,L], got {:?}",
            words.join(" ")
        )),
    }
}

/// A read round, shown only when there is one (ReadIndex).
pub(super) fn round(r: u64) -> String {
    if r == 0 {
        String::new()
    } else {
        format!(" round={r}")
    }
}

pub(super) enum Applied {
    Command(LogIndex, String),
    Snapshot(String),
}

pub(super) fn fmt_applied(
    id: u64,
    (first, last, commands): (LogIndex, LogIndex, Vec<String>),
) -> String {
    let range = if first == last {
        first.to_string()
    } else {
        format!("{first}..{last}")
    };
    format!("{id}: apply index={range} [{}]", commands.join(" "))
}

/// Which queued messages a `deliver`, `drop` or `duplicate` applies to: `[FROM->TO] [Kind]
/// [#N]`, where `#N` picks only the N-th oldest match.
pub(super) struct Filter {
    from: Option<u64>,
    to: Option<u64>,
    kind: Option<String>,
    nth: Option<usize>,
}

impl Filter {
    pub(super) fn parse(args: &[&str]) -> Result<Filter, String> {
        let mut f = Filter {
            from: None,
            to: None,
            kind: None,
            nth: None,
        };
        for a in args {
            if *a == "all" {
                continue;
            }
            if let Some(n) = a.strip_prefix('#') {
                f.nth = Some(num(n, "message number")?);
            } else if let Some((from, to)) = a.split_once("->") {
                f.from = if from == "*" {
                    None
                } else {
                    Some(num(from, "node id")?)
                };
                f.to = if to == "*" {
                    None
                } else {
                    Some(num(to, "node id")?)
                };
            } else {
                f.kind = Some(a.to_string());
            }
        }
        Ok(f)
    }

    pub(super) fn matches(&self, env: &Envelope) -> bool {
        self.from.is_none_or(|f| env.from.0 == f)
            && self.to.is_none_or(|t| env.to.0 == t)
            && self.kind.as_deref().is_none_or(|k| env.msg.kind() == k)
    }

    /// Positions in `queue` this filter selects, oldest first.
    pub(super) fn select(&self, queue: &[Envelope]) -> Vec<usize> {
        let all = queue
            .iter()
            .enumerate()
            .filter(|(_, e)| self.matches(e))
            .map(|(k, _)| k);
        match self.nth {
            None => all.collect(),
            Some(n) => all.skip(n.saturating_sub(1)).take(1).collect(),
        }
    }
}

pub(super) fn num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("bad {what} {s:?}"))
}
