//! Scenario scripts with golden output (`raft/testdata/*.txt`).
//!
//! Each script drives a cluster of protocol cores over an in-memory network in which nothing
//! moves unless the script says so: messages wait in one queue until `deliver`ed. A script is a
//! sequence of commands, each followed by `----` and the output it must produce (like etcd's
//! datadriven tests). Run with `UPDATE_GOLDEN=1` to rewrite the expected output after a change;
//! review the diff before keeping it. The language is described in `raft/README.md`.
//!
//! Besides comparing output, the harness checks on every apply that each node applies indices
//! in order, exactly once, and that no two nodes ever apply different commands at the same
//! index (State Machine Safety, Figure 3): a violation fails the test whatever the golden says.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use raft::message::AppendEntries;
use raft::{Apply, Config, Entry, Envelope, LogIndex, Message, NodeId, Raft, Role, Term};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------------------------------------
// The scripts

const SCRIPTS: &[&str] = &[
    "election.txt",
    "split_vote.txt",
    "figure7.txt",
    "figure8.txt",
    "snapshot.txt",
];

#[test]
fn election() {
    run_script("election.txt");
}

#[test]
fn split_vote() {
    run_script("split_vote.txt");
}

#[test]
fn figure7() {
    run_script("figure7.txt");
}

#[test]
fn figure8() {
    run_script("figure8.txt");
}

#[test]
fn snapshot() {
    run_script("snapshot.txt");
}

#[test]
fn every_script_in_testdata_is_run() {
    let mut found: Vec<String> = std::fs::read_dir(testdata())
        .expect("testdata")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    found.sort();
    let mut listed: Vec<String> = SCRIPTS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed, "add a #[test] for every script in testdata/");
}

#[test]
fn harness_detects_a_wrong_golden_output() {
    let script = "nodes 1\n----\n1: follower term=0 commit=0 applied=0 log=[]\n\n\
                  campaign 1\n----\nthis is not what happens\n";
    let failure = run_text(script, false).expect_err("a mismatch must fail");
    assert!(failure.contains("this is not what happens"), "{failure}");
}

// ---------------------------------------------------------------------------------------------
// Golden files

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

enum Item {
    /// A comment or blank line, kept as is.
    Text(String),
    Case {
        line: usize,
        command: String,
        expected: Vec<String>,
    },
}

fn parse(text: &str) -> Vec<Item> {
    let lines: Vec<&str> = text.lines().collect();
    let mut items = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.trim().is_empty() || l.starts_with('#') {
            items.push(Item::Text(l.to_string()));
            i += 1;
            continue;
        }
        let line = i + 1;
        let command = l.trim().to_string();
        i += 1;
        let mut expected = Vec::new();
        if i < lines.len() && lines[i] == "----" {
            i += 1;
            while i < lines.len() && !lines[i].trim().is_empty() {
                expected.push(lines[i].to_string());
                i += 1;
            }
            // The blank line that ends the output belongs to the case.
            if i < lines.len() {
                i += 1;
            }
        }
        items.push(Item::Case {
            line,
            command,
            expected,
        });
    }
    items
}

/// Runs a script; returns the rewritten text, or the first mismatch.
fn run_text(text: &str, update: bool) -> Result<String, String> {
    let mut cluster = Cluster::default();
    let mut rewritten = String::new();
    for item in parse(text) {
        match item {
            Item::Text(t) => {
                rewritten.push_str(&t);
                rewritten.push('\n');
            }
            Item::Case {
                line,
                command,
                expected,
            } => {
                let mut actual = cluster.run(&command);
                if actual.is_empty() {
                    actual.push("ok".to_string());
                }
                if !update && actual != expected {
                    return Err(format!(
                        "line {line}: `{command}`\n--- expected\n{}\n--- actual\n{}\n",
                        expected.join("\n"),
                        actual.join("\n")
                    ));
                }
                let _ = writeln!(rewritten, "{command}\n----\n{}\n", actual.join("\n"));
            }
        }
    }
    Ok(rewritten)
}

fn run_script(name: &str) {
    let path = testdata().join(name);
    let text = std::fs::read_to_string(&path).expect("read script");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    match run_text(&text, update) {
        Ok(rewritten) => {
            if update && rewritten != text {
                std::fs::write(&path, rewritten).expect("write script");
            }
        }
        Err(e) => {
            panic!("{name}: output differs (UPDATE_GOLDEN=1 rewrites it; review the diff)\n{e}")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The simulated cluster

/// Stable storage of one node: what its last `persist` saved.
#[derive(Default)]
struct Disk {
    raft_state: Vec<u8>,
    snapshot: Vec<u8>,
}

/// A toy service: the list of commands applied, in order. Its snapshot is that list, comma
/// separated.
#[derive(Default)]
struct Service {
    commands: Vec<String>,
}

impl Service {
    fn from_snapshot(data: &[u8]) -> Service {
        let text = String::from_utf8_lossy(data);
        Service {
            commands: text
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

/// The node id the `log` command sends its setup AppendEntries from: not a cluster member.
const SETUP: u64 = 0;

#[derive(Default)]
struct Cluster {
    ids: Vec<u64>,
    /// `None` while crashed.
    nodes: BTreeMap<u64, Option<Raft>>,
    disks: BTreeMap<u64, Disk>,
    services: BTreeMap<u64, Service>,
    boots: BTreeMap<u64, u64>,
    /// Messages sent and not yet delivered, oldest first.
    queue: Vec<Envelope>,
    /// When partitioned: the group of each node.
    partition: Option<BTreeMap<u64, usize>>,
    /// Every (term, command) applied at each index, by any node.
    applied: BTreeMap<u64, (u64, String)>,
}

fn rng(id: u64, boot: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(id * 1000 + boot)
}

fn node_id(s: &str) -> u64 {
    s.parse().unwrap_or_else(|_| panic!("bad node id {s:?}"))
}

fn fmt_msg(env: &Envelope) -> String {
    let body = match &env.msg {
        Message::RequestVote(m) => format!(
            "term={} last=({},{})",
            m.term, m.last_log_index, m.last_log_term
        ),
        Message::RequestVoteReply(m) => format!(
            "term={} {}",
            m.term,
            if m.vote_granted { "granted" } else { "refused" }
        ),
        Message::AppendEntries(m) => format!(
            "term={} prev=({},{}) entries=[{}] commit={}",
            m.term,
            m.prev_log_index,
            m.prev_log_term,
            m.entries
                .iter()
                .map(|e| e.term.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            m.leader_commit
        ),
        Message::AppendEntriesReply(m) if m.success => {
            format!("term={} ok match={}", m.term, m.match_index)
        }
        Message::AppendEntriesReply(m) => match m.conflict_term {
            Some(t) => format!(
                "term={} reject conflict_term={} conflict_index={}",
                m.term, t, m.conflict_index
            ),
            None => format!("term={} reject conflict_index={}", m.term, m.conflict_index),
        },
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

enum Applied {
    Command(LogIndex, String),
    Snapshot(String),
}

fn fmt_applied(id: u64, (first, last, commands): (LogIndex, LogIndex, Vec<String>)) -> String {
    let range = if first == last {
        first.to_string()
    } else {
        format!("{first}..{last}")
    };
    format!("{id}: apply index={range} [{}]", commands.join(" "))
}

/// Which queued messages a `deliver` or `drop` applies to.
struct Filter {
    from: Option<u64>,
    to: Option<u64>,
    kind: Option<String>,
}

impl Filter {
    fn parse(args: &[&str]) -> Filter {
        let mut f = Filter {
            from: None,
            to: None,
            kind: None,
        };
        for a in args {
            if *a == "all" {
                continue;
            }
            if let Some((from, to)) = a.split_once("->") {
                f.from = (from != "*").then(|| node_id(from));
                f.to = (to != "*").then(|| node_id(to));
            } else {
                f.kind = Some(a.to_string());
            }
        }
        f
    }

    fn matches(&self, env: &Envelope) -> bool {
        self.from.is_none_or(|f| env.from.0 == f)
            && self.to.is_none_or(|t| env.to.0 == t)
            && self.kind.as_deref().is_none_or(|k| env.msg.kind() == k)
    }
}

impl Cluster {
    fn run(&mut self, command: &str) -> Vec<String> {
        let words: Vec<&str> = command.split_whitespace().collect();
        let before: BTreeMap<u64, String> = self
            .ids
            .iter()
            .map(|id| (*id, self.state_line(*id)))
            .collect();
        let mut out = Vec::new();
        let mut print_all = false;
        match words.as_slice() {
            ["nodes", n] => {
                let n: u64 = n.parse().expect("node count");
                *self = Cluster::default();
                self.ids = (1..=n).collect();
                for id in self.ids.clone() {
                    self.disks.insert(id, Disk::default());
                    self.boots.insert(id, 0);
                    self.boot(id);
                }
                print_all = true;
            }
            ["tick", n, targets @ ..] => {
                let n: u32 = n.parse().expect("tick count");
                let targets = self.targets(targets);
                for _ in 0..n {
                    for id in &targets {
                        if let Some(Some(r)) = self.nodes.get_mut(id) {
                            r.tick();
                            self.flush(*id, &mut out);
                        }
                    }
                }
            }
            ["campaign", id] => {
                let id = node_id(id);
                self.node(id).campaign();
                self.flush(id, &mut out);
            }
            ["deliver", filter @ ..] => self.deliver(&Filter::parse(filter), &mut out),
            ["stabilize"] => {
                let mut rounds = 0;
                while !self.queue.is_empty() {
                    rounds += 1;
                    assert!(rounds < 100, "no quiescence after 100 rounds");
                    self.deliver(&Filter::parse(&[]), &mut out);
                }
            }
            ["drop", filter @ ..] => {
                let f = Filter::parse(filter);
                let (dropped, kept) = std::mem::take(&mut self.queue)
                    .into_iter()
                    .partition(|e| f.matches(e));
                self.queue = kept;
                for e in dropped {
                    out.push(format!("dropped {}", fmt_msg(&e)));
                }
            }
            ["queue"] => {
                for e in &self.queue {
                    out.push(fmt_msg(e));
                }
            }
            ["partition", ..] => {
                let spec = words[1..].join(" ");
                let mut groups = BTreeMap::new();
                for (g, part) in spec.split('|').enumerate() {
                    for id in part.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        groups.insert(node_id(id), g);
                    }
                }
                self.partition = Some(groups);
            }
            ["heal"] => self.partition = None,
            ["propose", id, cmd] => {
                let id = node_id(id);
                match self.node(id).propose(cmd.as_bytes().to_vec()) {
                    Ok((index, term)) => {
                        out.push(format!("{id}: propose {cmd} -> index={index} term={term}"))
                    }
                    Err(e) => out.push(format!(
                        "{id}: propose {cmd} -> not leader (hint: {})",
                        e.leader.map_or("none".to_string(), |l| l.to_string())
                    )),
                }
                self.flush(id, &mut out);
            }
            ["crash", id] => {
                let id = node_id(id);
                self.nodes.insert(id, None);
                self.services.remove(&id);
                let (lost, kept) = std::mem::take(&mut self.queue)
                    .into_iter()
                    .partition(|e| e.from.0 == id || e.to.0 == id);
                self.queue = kept;
                let lost: Vec<Envelope> = lost;
                for e in lost {
                    out.push(format!("lost {}", fmt_msg(&e)));
                }
            }
            ["restart", id] => {
                let id = node_id(id);
                assert!(
                    matches!(self.nodes.get(&id), Some(None)),
                    "restart {id}: not crashed"
                );
                self.boot(id);
                self.flush(id, &mut out);
            }
            ["compact", id, index] => {
                let id = node_id(id);
                let index: u64 = index.parse().expect("index");
                let service = self.services.get(&id).expect("live service");
                let data = service
                    .commands
                    .iter()
                    .take(index as usize)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(",");
                self.node(id).compact(LogIndex(index), data.into_bytes());
                self.flush(id, &mut out);
            }
            ["log", id, rest @ ..] => {
                let id = node_id(id);
                self.set_log(id, rest);
            }
            ["status"] => print_all = true,
            _ => panic!("unknown command: {command}"),
        }
        for id in self.ids.clone() {
            let line = self.state_line(id);
            if print_all || before.get(&id) != Some(&line) {
                out.push(line);
                if print_all {
                    out.extend(self.progress_line(id));
                }
            }
        }
        out
    }

    fn boot(&mut self, id: u64) {
        let boot = self.boots.entry(id).or_default();
        *boot += 1;
        let boot = *boot;
        let disk = &self.disks[&id];
        let config = Config::lab(NodeId(id), self.ids.iter().map(|i| NodeId(*i)).collect());
        let r = Raft::new(
            config,
            &disk.raft_state,
            disk.snapshot.clone(),
            rng(id, boot),
        )
        .expect("restart from disk");
        self.services
            .insert(id, Service::from_snapshot(&disk.snapshot));
        self.nodes.insert(id, Some(r));
    }

    fn node(&mut self, id: u64) -> &mut Raft {
        match self.nodes.get_mut(&id) {
            Some(Some(r)) => r,
            _ => panic!("node {id} is not running"),
        }
    }

    fn targets(&self, args: &[&str]) -> Vec<u64> {
        if args.is_empty() {
            self.ids.clone()
        } else {
            args.iter().map(|a| node_id(a)).collect()
        }
    }

    fn connected(&self, a: u64, b: u64) -> bool {
        match &self.partition {
            None => true,
            // A node left out of every group is alone.
            Some(g) => g.get(&a).is_some() && g.get(&a) == g.get(&b),
        }
    }

    /// Collects a node's Ready: saves its state to its disk, queues its messages and replies,
    /// applies its committed entries.
    fn flush(&mut self, id: u64, out: &mut Vec<String>) {
        let Some(Some(r)) = self.nodes.get_mut(&id) else {
            return;
        };
        let disk = self.disks.get_mut(&id).expect("disk");
        let done = r
            .ready()
            .persist(|p| {
                disk.raft_state = p.raft_state();
                if let Some(s) = &p.snapshot {
                    disk.snapshot = s.as_ref().clone();
                }
                Ok::<(), ()>(())
            })
            .expect("persist");
        for env in done.replies.into_iter().chain(done.messages) {
            if env.to.0 == SETUP {
                continue;
            }
            if !matches!(self.nodes.get(&env.to.0), Some(Some(_))) {
                out.push(format!("{} (lost: {} is down)", fmt_msg(&env), env.to));
            } else if self.connected(env.from.0, env.to.0) {
                out.push(fmt_msg(&env));
                self.queue.push(env);
            } else {
                out.push(format!("{} (lost: partition)", fmt_msg(&env)));
            }
        }
        // Consecutive commands are shown on one line: `N: apply index=A..B [commands]`.
        let mut run: Option<(LogIndex, LogIndex, Vec<String>)> = None;
        for a in done.apply {
            match self.apply(id, a) {
                Applied::Command(index, command) => match &mut run {
                    Some((_, last, commands)) => {
                        *last = index;
                        commands.push(command);
                    }
                    None => run = Some((index, index, vec![command])),
                },
                Applied::Snapshot(line) => {
                    out.extend(run.take().map(|r| fmt_applied(id, r)));
                    out.push(line);
                }
            }
        }
        out.extend(run.map(|r| fmt_applied(id, r)));
    }

    /// Hands an entry to the node's service, checking order and State Machine Safety.
    fn apply(&mut self, id: u64, a: Apply) -> Applied {
        let service = self.services.get_mut(&id).expect("service");
        match a {
            Apply::Command {
                index,
                term,
                command,
            } => {
                let command = String::from_utf8_lossy(&command).into_owned();
                assert_eq!(
                    index.0,
                    service.commands.len() as u64 + 1,
                    "node {id} applies index {index} out of order"
                );
                service.commands.push(command.clone());
                let prior = self
                    .applied
                    .entry(index.0)
                    .or_insert((term.0, command.clone()));
                assert_eq!(
                    *prior,
                    (term.0, command.clone()),
                    "State Machine Safety: node {id} applies a different entry at {index}"
                );
                Applied::Command(index, command)
            }
            Apply::Snapshot { index, term, data } => {
                assert!(
                    index.0 > service.commands.len() as u64,
                    "node {id}: snapshot {index} rolls the service back"
                );
                *service = Service::from_snapshot(&data);
                assert_eq!(service.commands.len() as u64, index.0, "snapshot contents");
                for (k, c) in service.commands.iter().enumerate() {
                    if let Some((_, prior)) = self.applied.get(&(k as u64 + 1)) {
                        assert_eq!(prior, c, "State Machine Safety: snapshot of node {id}");
                    }
                }
                Applied::Snapshot(format!(
                    "{id}: apply snapshot index={index} term={term} data=\"{}\"",
                    String::from_utf8_lossy(&data)
                ))
            }
        }
    }

    fn deliver(&mut self, f: &Filter, out: &mut Vec<String>) {
        let (now, kept) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|e| f.matches(e));
        self.queue = kept;
        let now: Vec<Envelope> = now;
        for env in now {
            let to = env.to.0;
            if !self.connected(env.from.0, to) {
                out.push(format!("dropped {} (partition)", fmt_msg(&env)));
                continue;
            }
            let Some(Some(r)) = self.nodes.get_mut(&to) else {
                unreachable!("messages to a crashed node are never queued");
            };
            r.step(env);
            self.flush(to, out);
        }
    }

    /// `log N [term=T] t1 t2 ...`: gives a fresh node a log with entries of the given terms,
    /// as if a leader of term T (default: the last entry's term) had sent them, then restarts it
    /// so that it remembers no leader. Commands are named `i<index>t<term>`.
    fn set_log(&mut self, id: u64, args: &[&str]) {
        let mut term = None;
        let mut terms = Vec::new();
        for a in args {
            if let Some(t) = a.strip_prefix("term=") {
                term = Some(t.parse::<u64>().expect("term"));
            } else {
                terms.push(a.parse::<u64>().expect("entry term"));
            }
        }
        let term = term.or(terms.last().copied()).unwrap_or(0);
        let r = self.node(id);
        assert_eq!(
            r.log().last_index(),
            LogIndex(0),
            "log {id}: only on an empty log"
        );
        let entries = terms
            .iter()
            .enumerate()
            .map(|(k, t)| Entry {
                term: Term(*t),
                command: format!("i{}t{}", k + 1, t).into_bytes(),
            })
            .collect();
        r.step(Envelope {
            from: NodeId(SETUP),
            to: NodeId(id),
            msg: Message::AppendEntries(AppendEntries {
                term: Term(term),
                prev_log_index: LogIndex(0),
                prev_log_term: Term(0),
                entries,
                leader_commit: LogIndex(0),
            }),
        });
        let mut ignored = Vec::new();
        self.flush(id, &mut ignored);
        self.nodes.insert(id, None);
        self.boot(id);
    }

    fn state_line(&self, id: u64) -> String {
        let Some(Some(r)) = self.nodes.get(&id) else {
            return format!("{id}: crashed");
        };
        let s = r.status();
        let role = match s.role {
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        };
        let mut line = format!("{id}: {role} term={}", s.term);
        if let Some(v) = s.voted_for {
            let _ = write!(line, " vote={v}");
        }
        if s.role == Role::Follower
            && let Some(l) = s.leader
        {
            let _ = write!(line, " leader={l}");
        }
        let _ = write!(line, " commit={} applied={} log=[", s.commit, s.applied);
        let log = r.log();
        if log.snapshot_index() > LogIndex(0) {
            let _ = write!(
                line,
                "snap({},{}) |",
                log.snapshot_index(),
                log.snapshot_term()
            );
            if !log.entries().is_empty() {
                line.push(' ');
            }
        }
        let terms: Vec<String> = log.entries().iter().map(|e| e.term.to_string()).collect();
        line.push_str(&terms.join(" "));
        line.push(']');
        line
    }

    fn progress_line(&self, id: u64) -> Option<String> {
        let Some(Some(r)) = self.nodes.get(&id) else {
            return None;
        };
        if !r.is_leader() {
            return None;
        }
        let parts: Vec<String> = r
            .progress()
            .iter()
            .map(|(peer, p)| {
                format!(
                    "{peer}:match={},next={}{}",
                    p.matched,
                    p.next,
                    if p.inflight.is_some() {
                        ",inflight"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        Some(format!("   progress {}", parts.join(" ")))
    }
}
