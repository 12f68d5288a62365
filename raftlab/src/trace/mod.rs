//! Reading a run's trace (`RAFTLAB_TRACE`, JSON lines) and replaying it: the state of every
//! node at any event. The web page (`raftlab view`), the terminal log (`raftlab log`) and the
//! checks (`raftlab check-trace`) all number events the same way: event `#N` is line N of the
//! file, counting from 0.

pub mod check;
pub mod diff;
pub mod log;
pub mod scenario;
pub mod view;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// One event of a trace.
#[derive(Clone, Debug)]
pub struct Event {
    /// Its number: the line of the file, from 0.
    pub n: usize,
    pub t_us: u64,
    pub kind: String,
    pub v: Value,
}

impl Event {
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.v.get(key).and_then(Value::as_u64)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.v.get(key).and_then(Value::as_str)
    }

    /// The `terms` list of a `node.log` or `node.boot` event.
    pub fn terms(&self) -> Vec<u64> {
        self.v
            .get("terms")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    }

    /// The Raft node an event is about, if it is about one.
    pub fn subject(&self) -> Option<u64> {
        if self.kind.starts_with("node.") {
            return self.u64("id");
        }
        if self.kind.starts_with("test.") {
            return self.u64("server");
        }
        if self.kind == "rpc.call" || self.kind == "rpc.return" {
            return self
                .v
                .get("msg")
                .and_then(|m| m.get("from"))
                .and_then(Value::as_u64);
        }
        self.str("node").and_then(|s| s.parse().ok())
    }
}

/// Reads a trace file. A line that is not a JSON object with `t_us` and `kind` is an error that
/// names the line.
pub fn load(path: &Path) -> Result<Vec<Event>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the trace {}", path.display()))?;
    parse(&text).with_context(|| format!("in the trace {}", path.display()))
}

/// Reads a trace, or a run's output with `RUST_LOG=info` narration (see [`parse_narration`]).
pub fn load_trace_or_narration(path: &Path) -> Result<Vec<Event>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if first.trim_start().starts_with('{') {
        return parse(&text).with_context(|| format!("in the trace {}", path.display()));
    }
    let events = parse_narration(&text);
    if events.is_empty() {
        bail!(
            "{}: neither a trace (JSON lines) nor a run's RUST_LOG=info output",
            path.display()
        );
    }
    Ok(events)
}

/// Events from a run's `RUST_LOG=info` output: lines `<secs>s <LEVEL> <message> key=value...`
/// (colours and other lines are skipped) become `log` events with the node of `node=N`.
pub fn parse_narration(text: &str) -> Vec<Event> {
    let mut out = Vec::new();
    for line in text.lines() {
        let plain = strip_ansi(line);
        let mut words = plain.split_whitespace();
        let Some(secs) = words
            .next()
            .and_then(|w| w.strip_suffix('s'))
            .and_then(|w| w.parse::<f64>().ok())
        else {
            continue;
        };
        let Some(level) = words.next() else { continue };
        if !["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level) {
            continue;
        }
        let mut message = Vec::new();
        let mut fields = serde_json::Map::new();
        for w in words {
            match w.split_once('=') {
                Some((k, v))
                    if !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_') =>
                {
                    fields.insert(k.to_owned(), Value::from(v));
                }
                _ => message.push(w),
            }
        }
        let mut v = serde_json::Map::new();
        v.insert("kind".into(), Value::from("log"));
        v.insert("level".into(), Value::from(level));
        v.insert("message".into(), Value::from(message.join(" ")));
        if let Some(n) = fields.remove("node") {
            v.insert("node".into(), n);
        }
        v.extend(fields);
        out.push(Event {
            n: out.len(),
            t_us: (secs * 1e6).round() as u64,
            kind: "log".into(),
            v: Value::Object(v),
        });
    }
    out
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... final byte in @..~
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How many log entries the logs of a trace may reach in all (summed over its nodes): what
/// [`Model`] allocates for them. A lab run's trace reaches a few thousand per node; without a
/// limit one line (`"node.log"` from index 2^60) would ask for exabytes.
pub const MAX_LOG_CELLS: u64 = 1 << 22;

/// Reads a trace's JSON lines. Besides malformed lines, refuses a trace whose log indices
/// would make its logs hold more than [`MAX_LOG_CELLS`] entries in all.
pub fn parse(text: &str) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    // Per (group, node): the furthest index an event moves its log to; and their sum.
    let mut reach: BTreeMap<(Option<String>, u64), u64> = BTreeMap::new();
    let mut cells = 0u64;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("line {}: not a JSON event", i + 1))?;
        let (Some(t_us), Some(kind)) = (
            v.get("t_us").and_then(Value::as_u64),
            v.get("kind").and_then(Value::as_str).map(str::to_owned),
        ) else {
            bail!("line {}: an event needs \"t_us\" and \"kind\"", i + 1);
        };
        let moves_to = |field: &str| v.get(field).and_then(Value::as_u64).unwrap_or(0);
        let to = match kind.as_str() {
            "node.log" => moves_to("from").saturating_sub(1),
            "node.boot" => moves_to("snap"),
            "node.snapshot" => moves_to("index"),
            _ => 0,
        };
        if let Some(id) = v.get("id").and_then(Value::as_u64).filter(|_| to > 0) {
            let group = v.get("group").and_then(Value::as_str).map(str::to_owned);
            let furthest = reach.entry((group, id)).or_insert(0);
            if to > *furthest {
                cells = cells.saturating_add(to - *furthest);
                *furthest = to;
            }
            if cells > MAX_LOG_CELLS {
                bail!(
                    "line {}: node {id}'s log reaches index {to}: the trace's logs would hold more than {MAX_LOG_CELLS} entries in all",
                    i + 1
                );
            }
        }
        events.push(Event {
            n: events.len(),
            t_us,
            kind,
            v,
        });
    }
    Ok(events)
}

/// One node as the trace shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeState {
    pub role: String,
    pub term: u64,
    pub vote: Option<u64>,
    pub leader: Option<u64>,
    pub commit: u64,
    pub applied: u64,
    pub snap: u64,
    /// `terms[i - 1]`: the term of the entry at index i; 0 where unknown (inside a snapshot
    /// installed from another log).
    pub terms: Vec<u64>,
    pub up: bool,
    pub connected: bool,
    /// Incarnation: counts restarts.
    pub boots: u64,
}

/// Every node's state, replayed event by event.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub nodes: BTreeMap<u64, NodeState>,
    /// The Raft group followed (`node.*` events of other groups are skipped).
    pub group: Option<String>,
}

/// The Raft groups a trace has `node.*` events of (`None`: events without a group), in order
/// of first appearance.
pub fn groups(events: &[Event]) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = Vec::new();
    for e in events.iter().filter(|e| e.kind.starts_with("node.")) {
        let g = e.str("group").map(str::to_owned);
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

impl Model {
    fn node(&mut self, id: u64) -> &mut NodeState {
        self.nodes.entry(id).or_insert_with(|| NodeState {
            role: "follower".into(),
            up: true,
            connected: true,
            ..NodeState::default()
        })
    }

    /// A model following one Raft group.
    pub fn of_group(group: Option<String>) -> Model {
        Model {
            group,
            ..Model::default()
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, e: &Event) {
        if e.kind.starts_with("node.") && e.str("group") != self.group.as_deref() {
            return;
        }
        if e.kind.starts_with("test.") && self.group.is_some() {
            return;
        }
        match e.kind.as_str() {
            "node.state" => {
                let Some(id) = e.u64("id") else { return };
                let n = self.node(id);
                n.role = e.str("role").unwrap_or("follower").to_owned();
                n.term = e.u64("term").unwrap_or(0);
                n.vote = e.u64("vote");
                n.leader = e.u64("leader");
                n.commit = e.u64("commit").unwrap_or(0);
                n.applied = e.u64("applied").unwrap_or(0);
                n.snap = e.u64("snap").unwrap_or(0);
                n.up = true;
            }
            "node.log" => {
                let Some(id) = e.u64("id") else { return };
                let from = e.u64("from").unwrap_or(1).max(1) as usize;
                let terms = e.terms();
                let n = self.node(id);
                n.terms.resize(from - 1, 0);
                n.terms.extend(terms);
            }
            "node.boot" => {
                let Some(id) = e.u64("id") else { return };
                let snap = e.u64("snap").unwrap_or(0) as usize;
                let snap_term = e.u64("snap_term").unwrap_or(0);
                let terms = e.terms();
                let n = self.node(id);
                n.boots += 1;
                n.up = true;
                n.role = "follower".into();
                n.term = e.u64("term").unwrap_or(n.term);
                n.commit = snap as u64;
                n.applied = snap as u64;
                n.snap = snap as u64;
                // What it loaded: unknown terms inside the snapshot unless the trace knew them.
                if n.terms.len() < snap || (snap > 0 && n.terms[snap - 1] != snap_term) {
                    n.terms = vec![0; snap];
                    if snap > 0 {
                        n.terms[snap - 1] = snap_term;
                    }
                } else {
                    n.terms.truncate(snap);
                }
                n.terms.extend(terms);
            }
            "node.snapshot" => {
                let Some(id) = e.u64("id") else { return };
                let index = e.u64("index").unwrap_or(0) as usize;
                let term = e.u64("term").unwrap_or(0);
                let n = self.node(id);
                if index == 0 {
                    return;
                }
                if n.terms.get(index - 1) != Some(&term) {
                    // Installed from another log: what this node had before is not known to match.
                    n.terms.clear();
                    n.terms.resize(index, 0);
                    n.terms[index - 1] = term;
                }
                n.snap = n.snap.max(index as u64);
            }
            "test.crash" => {
                if let Some(id) = e.u64("server") {
                    let n = self.node(id);
                    n.up = false;
                    n.role = "down".into();
                }
            }
            "test.start" => {
                if let Some(id) = e.u64("server") {
                    self.node(id).up = true;
                }
            }
            "test.connect" | "test.disconnect" => {
                if let Some(id) = e.u64("server") {
                    self.node(id).connected = e.kind == "test.connect";
                }
            }
            _ => {}
        }
    }

    /// The state after events `0..=n`.
    #[cfg(test)]
    pub fn at(events: &[Event], n: usize) -> Model {
        let mut m = Model::default();
        for e in events.iter().take(n.saturating_add(1)) {
            m.apply(e);
        }
        m
    }

    /// The leader of the highest term any node leads, if any.
    #[cfg(test)]
    pub fn leader(&self) -> Option<(u64, u64)> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.up && n.role == "leader")
            .max_by_key(|(_, n)| n.term)
            .map(|(id, n)| (*id, n.term))
    }
}

/// A short human description of an event (the terminal log and the page's event list).
pub fn describe(e: &Event) -> String {
    let msg = |m: &Value| -> String {
        let ty = m.get("type").and_then(Value::as_str).unwrap_or("?");
        let g = |k: &str| match m.get(k) {
            Some(Value::Array(a)) => runs(a),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        let body = match ty {
            "RequestVote" | "PreVote" => format!(
                "term={} last=({},{}){}",
                g("term"),
                g("last_index"),
                g("last_term"),
                if m.get("transfer") == Some(&Value::Bool(true)) {
                    " transfer"
                } else {
                    ""
                }
            ),
            "RequestVoteReply" | "PreVoteReply" => {
                format!("term={} granted={}", g("term"), g("granted"))
            }
            "TimeoutNow" => format!("term={} last={}", g("term"), g("last_index")),
            "TimeoutNowReply" => format!("term={} campaigning={}", g("term"), g("campaigning")),
            "AppendEntries" => format!(
                "term={} prev=({},{}) entries={} commit={}{}",
                g("term"),
                g("prev_index"),
                g("prev_term"),
                g("terms"),
                g("commit"),
                match m.get("round").and_then(Value::as_u64) {
                    Some(r) if r > 0 => format!(" round={r}"),
                    _ => String::new(),
                }
            ),
            "AppendEntriesReply" => format!(
                "term={} success={} match={} conflict=({},{})",
                g("term"),
                g("success"),
                g("match"),
                g("conflict_term"),
                g("conflict_index")
            ),
            "InstallSnapshot" => format!(
                "term={} last=({},{})",
                g("term"),
                g("index"),
                g("snap_term")
            ),
            "InstallSnapshotReply" => format!("term={} index={}", g("term"), g("index")),
            _ => String::new(),
        };
        format!("{}->{} {ty} {body}", g("from"), g("to"))
    };
    match e.kind.as_str() {
        "node.state" => format!(
            "{} term={} vote={} leader={} commit={} applied={}",
            e.str("role").unwrap_or("?"),
            e.u64("term").unwrap_or(0),
            e.u64("vote").map_or("-".into(), |v| v.to_string()),
            e.u64("leader").map_or("-".into(), |v| v.to_string()),
            e.u64("commit").unwrap_or(0),
            e.u64("applied").unwrap_or(0)
        ),
        "node.log" => format!(
            "log from {}: {}",
            e.u64("from").unwrap_or(0),
            e.v.get("terms").map(|t| t.to_string()).unwrap_or_default()
        ),
        "node.snapshot" => format!(
            "snapshot through ({}, {})",
            e.u64("index").unwrap_or(0),
            e.u64("term").unwrap_or(0)
        ),
        "rpc.call" => format!("send {}", e.v.get("msg").map(msg).unwrap_or_default()),
        "rpc.return" => match e.v.get("msg") {
            Some(m) if !m.is_null() => format!("reply {}", msg(m)),
            _ => "reply (none)".into(),
        },
        "log" => e.str("message").unwrap_or("").to_owned(),
        k if k.starts_with("test.")
            || k.starts_with("kv.")
            || k.starts_with("rpc.")
            || k.starts_with("net.") =>
        {
            let mut v = e.v.clone();
            if let Some(o) = v.as_object_mut() {
                for k in ["t_us", "kind", "node"] {
                    o.remove(k);
                }
            }
            format!("{} {}", e.kind, v)
        }
        _ => e.kind.clone(),
    }
}

/// Terms as runs: `[1x40 2 3x2]`.
fn runs(a: &[Value]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < a.len() {
        let mut j = i;
        while j + 1 < a.len() && a[j + 1] == a[i] {
            j += 1;
        }
        out.push(if j > i {
            format!("{}x{}", a[i], j - i + 1)
        } else {
            a[i].to_string()
        });
        i = j + 1;
    }
    format!("[{}]", out.join(" "))
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narration_lines_become_log_events() {
        let text = "running 1 test\n\u{1b}[2m   0.420000s\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m node 0 starts an election for term 1 \u{1b}[3mnode\u{1b}[0m\u{1b}[2m=\u{1b}[0m0 \u{1b}[3mterm\u{1b}[0m\u{1b}[2m=\u{1b}[0m1\n";
        let ev = parse_narration(text);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].t_us, 420_000);
        assert_eq!(
            ev[0].str("message"),
            Some("node 0 starts an election for term 1")
        );
        assert_eq!(ev[0].subject(), Some(0));
    }

    #[test]
    fn terms_print_as_runs() {
        let a: Vec<Value> = [1, 1, 1, 2, 3, 3].iter().map(|&x| Value::from(x)).collect();
        assert_eq!(runs(&a), "[1x3 2 3x2]");
    }

    #[test]
    fn replays_state_log_and_snapshots() {
        let text = r#"{"t_us":0,"kind":"node.state","id":0,"role":"leader","term":2,"vote":0,"leader":0,"commit":1,"applied":1,"snap":0}
{"t_us":1,"kind":"node.log","id":0,"from":1,"terms":[1,2,2]}
{"t_us":2,"kind":"node.log","id":0,"from":3,"terms":[3]}
{"t_us":3,"kind":"node.snapshot","id":1,"index":2,"term":2}
{"t_us":4,"kind":"test.crash","server":0}"#;
        let events = parse(text).unwrap();
        let m = Model::at(&events, 2);
        assert_eq!(m.nodes[&0].terms, vec![1, 2, 3]);
        assert_eq!(m.leader(), Some((0, 2)));
        let m = Model::at(&events, 4);
        assert_eq!(m.nodes[&1].terms, vec![0, 2]);
        assert!(!m.nodes[&0].up);
        assert!(parse("{\"kind\":\"x\"}").is_err());
        assert!(parse("not json").is_err());
    }
}
