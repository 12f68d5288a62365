//! `raftlab check-trace`: Raft's safety properties from a trace alone.
//!
//! Replays the `node.*` events and checks, at every event:
//! - Election Safety: at most one node becomes leader in a term;
//! - Log Matching: two logs with an entry of the same index and term agree up to it;
//! - State Machine Safety: no index is committed with two different terms;
//! - Leader Completeness: a new leader's log holds every entry committed in earlier terms;
//! - monotonic commit: a node's commit index does not go back within one incarnation.
//!
//! A `test.violation` event (the harness's safety monitor, which also sees votes, saves and
//! replies) counts as well. The first violation comes with the messages that led to it (the last ones to or from the
//! nodes involved).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::{Event, Model, describe, load};

/// A broken property at an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub event: usize,
    pub property: &'static str,
    pub message: String,
    pub nodes: Vec<u64>,
}

/// The first violation in `events` (of any Raft group), if any.
pub fn first_violation(events: &[Event]) -> Option<Violation> {
    // The harness's safety monitor watched every step (votes, saves, replies): what it
    // reported (`test.violation`) is a violation too, usually before its consequences show.
    let monitored = events
        .iter()
        .find(|e| e.kind == "test.violation")
        .map(|e| Violation {
            event: e.n,
            property: "Safety monitor",
            message: e.str("message").unwrap_or("").to_owned(),
            nodes: Vec::new(),
        });
    super::groups(events)
        .into_iter()
        .filter_map(|g| first_violation_in(events, g))
        .chain(monitored)
        .min_by_key(|v| v.event)
}

/// The first violation of one Raft group.
fn first_violation_in(events: &[Event], group: Option<String>) -> Option<Violation> {
    let mut model = Model::of_group(group.clone());
    let mut leaders: BTreeMap<u64, u64> = BTreeMap::new();
    // index -> (term, node that committed it first)
    let mut committed: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut last_commit: BTreeMap<u64, (u64, u64)> = BTreeMap::new(); // node -> (boots, commit)
    for e in events {
        if e.kind.starts_with("node.") && e.str("group") != group.as_deref() {
            continue;
        }
        if e.kind == "test.begin" {
            // A new test (a fresh cluster): the history of an earlier one does not constrain it.
            leaders.clear();
            committed.clear();
            last_commit.clear();
        }
        let before = model.nodes.get(&e.subject().unwrap_or(u64::MAX)).cloned();
        model.apply(e);
        let Some(id) = e.u64("id") else { continue };
        let v = |property: &'static str, message: String, nodes: Vec<u64>| Violation {
            event: e.n,
            property,
            message,
            nodes,
        };
        match e.kind.as_str() {
            "node.state" => {
                let n = &model.nodes[&id];
                if n.role == "leader" {
                    match leaders.get(&n.term) {
                        Some(&other) if other != id => {
                            return Some(v(
                                "Election Safety",
                                format!(
                                    "nodes {other} and {id} are both leaders of term {}{}",
                                    n.term,
                                    group_note(&group)
                                ),
                                vec![other, id],
                            ));
                        }
                        Some(_) => {}
                        None => {
                            leaders.insert(n.term, id);
                            // A new leader: it must hold every entry committed in earlier terms.
                            for (&index, &(term, by)) in &committed {
                                if term >= n.term || index <= n.snap {
                                    continue;
                                }
                                let has = n.terms.get(index as usize - 1).copied();
                                if has != Some(term) && has != Some(0) {
                                    return Some(v(
                                        "Leader Completeness",
                                        format!(
                                            "node {id} leads term {} without entry {index} of term {term}, committed by node {by}",
                                            n.term
                                        ),
                                        vec![id, by],
                                    ));
                                }
                            }
                        }
                    }
                }
                let boots = n.boots;
                if let Some(&(b, c)) = last_commit.get(&id)
                    && b == boots
                    && n.commit < c
                {
                    return Some(v(
                        "Monotonic commit",
                        format!(
                            "node {id}'s commit index went back from {c} to {}",
                            n.commit
                        ),
                        vec![id],
                    ));
                }
                last_commit.insert(id, (boots, n.commit));
                let prev_commit = before.map_or(0, |b| b.commit);
                // Only indices the log holds can be checked: a commit index far past its end
                // (2^63 in a damaged trace) must not make this loop run for ever.
                let upto = n.commit.min(n.terms.len() as u64);
                for index in prev_commit.saturating_add(1)..=upto {
                    let Some(&term) = n.terms.get(index as usize - 1) else {
                        continue;
                    };
                    if term == 0 {
                        continue;
                    }
                    match committed.get(&index) {
                        Some(&(t, by)) if t != term => {
                            return Some(v(
                                "State Machine Safety",
                                format!(
                                    "index {index} is committed with term {t} on node {by} and with term {term} on node {id}"
                                ),
                                vec![by, id],
                            ));
                        }
                        Some(_) => {}
                        None => {
                            committed.insert(index, (term, id));
                        }
                    }
                }
            }
            "node.log" | "node.snapshot" => {
                let a = &model.nodes[&id];
                for (&other, b) in &model.nodes {
                    if other == id {
                        continue;
                    }
                    if let Some(index) = log_mismatch(&a.terms, &b.terms) {
                        return Some(v(
                            "Log Matching",
                            format!(
                                "nodes {id} and {other} hold an entry of the same index and term at {index}, but their logs differ before it"
                            ),
                            vec![id, other],
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

fn group_note(group: &Option<String>) -> String {
    group
        .as_ref()
        .map_or(String::new(), |g| format!(" (group {g})"))
}

/// The highest index at which two logs hold the same term although they differ somewhere
/// before it (unknown terms, 0, match anything).
fn log_mismatch(a: &[u64], b: &[u64]) -> Option<usize> {
    let len = a.len().min(b.len());
    let differs_at = (0..len).find(|&i| a[i] != 0 && b[i] != 0 && a[i] != b[i])?;
    (differs_at + 1..len)
        .rev()
        .find(|&i| a[i] != 0 && a[i] == b[i])
        .map(|i| i + 1)
}

/// The last `k` messages to or from `nodes` before event `at`.
pub fn chain<'a>(events: &'a [Event], at: usize, nodes: &[u64], k: usize) -> Vec<&'a Event> {
    let mut out: Vec<&Event> = events[..at.min(events.len())]
        .iter()
        .rev()
        .filter(|e| e.kind == "rpc.call" || e.kind == "rpc.return")
        .filter(|e| {
            let m = e.v.get("msg");
            let end = |k: &str| m.and_then(|m| m.get(k)).and_then(serde_json::Value::as_u64);
            [end("from"), end("to")]
                .iter()
                .any(|x| x.is_some_and(|x| nodes.contains(&x)))
        })
        .take(k)
        .collect();
    out.reverse();
    out
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The trace (RAFTLAB_TRACE) to check.
    trace: PathBuf,
}

pub fn run(args: CheckArgs) -> Result<ExitCode> {
    let events = load(&args.trace)?;
    let Some(v) = first_violation(&events) else {
        println!(
            "{}: {} events, no violation of Election Safety, Log Matching, Leader Completeness, \
             State Machine Safety or monotonic commit",
            args.trace.display(),
            events.len()
        );
        return Ok(ExitCode::SUCCESS);
    };
    println!(
        "{}: {} violated at event #{} (t={:.3}s): {}",
        args.trace.display(),
        v.property,
        v.event,
        events[v.event].t_us as f64 / 1e6,
        v.message
    );
    println!("the messages that led to it:");
    let nodes = if v.nodes.is_empty() {
        // The monitor's message names its nodes in prose: take every node.
        events
            .iter()
            .filter_map(Event::subject)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    } else {
        v.nodes.clone()
    };
    for e in chain(&events, v.event, &nodes, 12) {
        println!(
            "  #{:<6} {:>9.3}s  {}",
            e.n,
            e.t_us as f64 / 1e6,
            describe(e)
        );
    }
    println!(
        "see it: raftlab view {} -o run.html, then open run.html#ev={}",
        args.trace.display(),
        v.event
    );
    Ok(ExitCode::from(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::parse;

    #[test]
    fn two_leaders_in_one_term_are_flagged() {
        let text = r#"{"t_us":0,"kind":"node.state","id":0,"role":"leader","term":2,"commit":0,"applied":0,"snap":0}
{"t_us":1,"kind":"node.state","id":1,"role":"leader","term":2,"commit":0,"applied":0,"snap":0}"#;
        let v = first_violation(&parse(text).unwrap()).expect("a violation");
        assert_eq!((v.property, v.event), ("Election Safety", 1));
    }

    #[test]
    fn conflicting_commits_and_logs_are_flagged() {
        let text = r#"{"t_us":0,"kind":"node.log","id":0,"from":1,"terms":[1,1]}
{"t_us":1,"kind":"node.log","id":1,"from":1,"terms":[1,2]}
{"t_us":2,"kind":"node.state","id":0,"role":"follower","term":2,"commit":2,"applied":2,"snap":0}
{"t_us":3,"kind":"node.state","id":1,"role":"follower","term":2,"commit":2,"applied":2,"snap":0}"#;
        let v = first_violation(&parse(text).unwrap()).expect("a violation");
        assert_eq!((v.property, v.event), ("State Machine Safety", 3));
        let text = r#"{"t_us":0,"kind":"node.log","id":0,"from":1,"terms":[1,1,3]}
{"t_us":1,"kind":"node.log","id":1,"from":1,"terms":[1,2,3]}"#;
        let v = first_violation(&parse(text).unwrap()).expect("a violation");
        assert_eq!(v.property, "Log Matching");
    }

    #[test]
    fn a_clean_history_passes() {
        let text = r#"{"t_us":0,"kind":"node.state","id":0,"role":"leader","term":1,"commit":0,"applied":0,"snap":0}
{"t_us":1,"kind":"node.log","id":0,"from":1,"terms":[1]}
{"t_us":2,"kind":"node.log","id":1,"from":1,"terms":[1]}
{"t_us":3,"kind":"node.state","id":0,"role":"leader","term":1,"commit":1,"applied":1,"snap":0}
{"t_us":4,"kind":"node.state","id":1,"role":"leader","term":2,"commit":1,"applied":1,"snap":0}"#;
        assert_eq!(first_violation(&parse(text).unwrap()), None);
    }
}
