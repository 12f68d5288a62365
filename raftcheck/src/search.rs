//! Exhaustive search (model checking) over the pure core, in the spirit of DSLabs' search tests.
//!
//! Starting from a fresh cluster, [`search`] explores, breadth-first, every sequence of events
//! within [`Bounds`]: deliver any queued message (in any order), drop or duplicate one, let a
//! node's election timer fire, let a leader send its heartbeats, propose a command, crash a node
//! and restart it, compact a node's log; with the extensions on, ask a leader for a read or a
//! leadership transfer, or run out its check-quorum timer. The safety [`Monitor`](crate::Monitor) judges every
//! state reached. States already seen (by [`Cluster::fingerprint`], which includes the
//! monitor's history and the budget left) are not explored again.
//!
//! Every event is a command of the scenario language, so a violation comes back as the shortest
//! script that reproduces it ([`Outcome::Violation`]), with the output of each command: it
//! replays with the scenario runner and reads as a story.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use crate::monitor::Violation;
use crate::scenario::Cluster;

/// How far the search goes. Budgets are totals along one path (one run).
#[derive(Clone, Debug, Hash)]
pub struct Bounds {
    pub nodes: u64,
    /// Options of the `nodes` command: the extensions the cores run with, e.g. `prevote
    /// checkquorum` (empty: the labs' Raft).
    pub options: String,
    /// Scenario commands run before the search starts (after `nodes N`), to bring the cluster
    /// to the situation worth exploring, as DSLabs' search tests start from a set-up state.
    pub setup: Vec<String>,
    /// Election timeouts fire only on nodes whose term is below this.
    pub max_term: u64,
    /// Commands proposed (named `a`, `b`, ...).
    pub proposals: u32,
    pub crashes: u32,
    pub drops: u32,
    pub duplicates: u32,
    /// Deliveries out of order: a message overtaking an older one on the same channel (from
    /// one node to another). Without them every channel is FIFO (but channels interleave
    /// freely).
    pub reorders: u32,
    /// Heartbeat rounds a leader is made to send (beyond the ones a new leader sends at once).
    pub heartbeats: u32,
    /// Snapshots a node's service takes (through everything it applied).
    pub compactions: u32,
    /// Reads (ReadIndex) a leader is asked for; the monitor checks every answer.
    pub reads: u32,
    /// Leadership transfers a leader is asked for (to any other node).
    pub transfers: u32,
    /// Times a leader's check-quorum timer is made to run out (an election timeout of ticks).
    pub quorum_checks: u32,
    /// Configuration changes a leader is asked for, as the scenario language's `conf` command
    /// writes them (`remove 3`, `replace 1,2,4`, ...): any leader, any of them, at any time.
    pub changes: Vec<String>,
    /// How many of those a run may make (only a change the leader accepts counts; a refused
    /// one, e.g. before an entry of its term committed, is an event like any other).
    pub conf_changes: u32,
    /// Also check at every state that any two configurations running nodes act on at the
    /// same time have intersecting majorities (see [`overlap_violation`]).
    pub check_configurations: bool,
    /// Longest path explored (events after `nodes N`).
    pub max_depth: usize,
    /// Stop (unfinished) after this many distinct states.
    pub max_states: usize,
    /// Stop (unfinished) after this much wall-clock time.
    pub time_limit: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            nodes: 3,
            options: String::new(),
            setup: Vec::new(),
            max_term: 3,
            proposals: 1,
            crashes: 1,
            drops: 1,
            duplicates: 1,
            reorders: 1,
            heartbeats: 1,
            compactions: 0,
            reads: 0,
            transfers: 0,
            quorum_checks: 0,
            changes: Vec::new(),
            conf_changes: 0,
            check_configurations: false,
            max_depth: usize::MAX,
            max_states: 2_000_000,
            time_limit: Duration::from_secs(60),
        }
    }
}

/// What is left of the budgets on one path.
#[derive(Clone, Copy, Debug, Default, Hash)]
struct Left {
    proposals: u32,
    crashes: u32,
    drops: u32,
    duplicates: u32,
    reorders: u32,
    heartbeats: u32,
    compactions: u32,
    reads: u32,
    transfers: u32,
    quorum_checks: u32,
    conf_changes: u32,
}

/// A state on the frontier: the cluster, what budget it has left, and how it was reached.
#[derive(Clone)]
struct State {
    cluster: Cluster,
    left: Left,
    /// Index into `Search::trail`.
    id: u32,
}

/// How a search ended, with its statistics.
#[derive(Debug)]
pub enum Outcome {
    /// Every state within the bounds (depth included) was explored; none broke an invariant.
    Exhausted(Stats),
    /// A budget (states, time) ran out first: the space was not fully explored.
    Unfinished(Stats),
    /// A setup command could not run.
    Setup(String),
    /// A reachable state breaks an invariant; `script` is the shortest path to it, as a
    /// scenario script with golden output.
    Violation {
        violation: Violation,
        script: String,
        stats: Stats,
    },
}

impl Outcome {
    pub fn stats(&self) -> Option<&Stats> {
        match self {
            Outcome::Exhausted(s) | Outcome::Unfinished(s) => Some(s),
            Outcome::Violation { stats, .. } => Some(stats),
            Outcome::Setup(_) => None,
        }
    }
}

/// Counters of a search.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Distinct states reached (the initial one included).
    pub states: usize,
    /// Transitions tried (successors computed, repeats included).
    pub transitions: usize,
    /// Deepest level completely explored.
    pub depth: usize,
    pub elapsed: Duration,
}

impl Stats {
    pub fn states_per_second(&self) -> f64 {
        self.states as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} states ({} transitions) to depth {} in {:.2} s ({:.0} states/s)",
            self.states,
            self.transitions,
            self.depth,
            self.elapsed.as_secs_f64(),
            self.states_per_second()
        )
    }
}

/// A state's identity: a 64-bit hash of everything that decides its future. Two distinct
/// states collide with probability about n²/2⁶⁵ over n states (below 10⁻⁵ for ten million).
fn fingerprint(cluster: &Cluster, left: &Left) -> u64 {
    let mut h = DefaultHasher::new();
    cluster.fingerprint(&mut h);
    left.hash(&mut h);
    h.finish()
}

/// The events possible in `s`, as scenario commands with the budget they use.
fn events(s: &State, bounds: &Bounds) -> Vec<(String, Left)> {
    let c = &s.cluster;
    let left = s.left;
    let mut out = Vec::new();
    for &id in c.ids() {
        match c.node(id) {
            Some(r) => {
                if r.is_leader() {
                    if left.proposals > 0 {
                        let name = (b'a' + (bounds.proposals - left.proposals) as u8) as char;
                        let l = Left {
                            proposals: left.proposals - 1,
                            ..left
                        };
                        out.push((format!("propose {id} {name}"), l));
                    }
                    if left.heartbeats > 0 {
                        let l = Left {
                            heartbeats: left.heartbeats - 1,
                            ..left
                        };
                        let ticks = r.config().heartbeat_ticks;
                        out.push((format!("tick {ticks} {id}"), l));
                    }
                    if left.reads > 0 {
                        let l = Left {
                            reads: left.reads - 1,
                            ..left
                        };
                        out.push((format!("read {id}"), l));
                    }
                    if left.transfers > 0 {
                        let l = Left {
                            transfers: left.transfers - 1,
                            ..left
                        };
                        for &to in c.ids().iter().filter(|t| **t != id) {
                            out.push((format!("transfer {id} {to}"), l));
                        }
                    }
                    if left.conf_changes > 0 {
                        let l = Left {
                            conf_changes: left.conf_changes - 1,
                            ..left
                        };
                        for change in &bounds.changes {
                            out.push((format!("conf {id} {change}"), l));
                        }
                    }
                    if left.quorum_checks > 0 {
                        let l = Left {
                            quorum_checks: left.quorum_checks - 1,
                            ..left
                        };
                        let ticks = r.config().election_ticks;
                        out.push((format!("tick {ticks} {id}"), l));
                    }
                } else if r.term().0 < bounds.max_term {
                    out.push((format!("campaign {id}"), left));
                }
                let s = r.status();
                if left.compactions > 0 && s.applied > s.snapshot_index {
                    let l = Left {
                        compactions: left.compactions - 1,
                        ..left
                    };
                    out.push((format!("compact {id} {}", s.applied), l));
                }
                if left.crashes > 0 {
                    let l = Left {
                        crashes: left.crashes - 1,
                        ..left
                    };
                    out.push((format!("crash {id}"), l));
                }
            }
            None => out.push((format!("restart {id}"), left)),
        }
    }
    let queue = c.queue();
    for (k, env) in queue.iter().enumerate() {
        // The k-th message as a filter the script language understands.
        let nth = queue[..k]
            .iter()
            .filter(|e| e.from == env.from && e.to == env.to && e.msg.kind() == env.msg.kind())
            .count()
            + 1;
        let target = format!("{}->{} {} #{nth}", env.from, env.to, env.msg.kind());
        let overtakes = queue[..k]
            .iter()
            .any(|e| e.from == env.from && e.to == env.to);
        if !overtakes {
            out.push((format!("deliver {target}"), left));
        } else if left.reorders > 0 {
            let l = Left {
                reorders: left.reorders - 1,
                ..left
            };
            out.push((format!("deliver {target}"), l));
        }
        if left.drops > 0 {
            let l = Left {
                drops: left.drops - 1,
                ..left
            };
            out.push((format!("drop {target}"), l));
        }
        if left.duplicates > 0 {
            let l = Left {
                duplicates: left.duplicates - 1,
                ..left
            };
            out.push((format!("duplicate {target}"), l));
        }
    }
    out
}

/// Explores every run within `bounds` breadth-first. `progress` is called after each level with
/// the statistics so far.
#[allow(clippy::disallowed_methods)] // the search budget is wall-clock time; no simulation runs here
pub fn search(bounds: &Bounds, mut progress: impl FnMut(&Stats)) -> Outcome {
    let started = std::time::Instant::now();
    let mut stats = Stats::default();
    let nodes = format!("nodes {} {}", bounds.nodes, bounds.options)
        .trim_end()
        .to_string();
    let mut trail: Vec<(u32, String)> = vec![(0, nodes.clone())];
    let mut root = Cluster::quiet();
    for (k, command) in std::iter::once(nodes)
        .chain(bounds.setup.iter().cloned())
        .enumerate()
    {
        if let Err(e) = root.run(&command) {
            return Outcome::Setup(format!("`{command}`: {e}"));
        }
        if k > 0 {
            trail.push((trail.len() as u32 - 1, command));
        }
    }
    let root_id = (trail.len() - 1) as u32;
    if let Some(v) = root.violation() {
        let violation = v.clone();
        return Outcome::Violation {
            script: replay(&trail, root_id, &violation),
            violation,
            stats,
        };
    }
    let left = Left {
        proposals: bounds.proposals,
        crashes: bounds.crashes,
        drops: bounds.drops,
        duplicates: bounds.duplicates,
        reorders: bounds.reorders,
        heartbeats: bounds.heartbeats,
        compactions: bounds.compactions,
        reads: bounds.reads,
        transfers: bounds.transfers,
        quorum_checks: bounds.quorum_checks,
        conf_changes: bounds.conf_changes,
    };
    let mut seen = BTreeSet::new();
    seen.insert(fingerprint(&root, &left));
    stats.states = 1;
    let mut frontier = vec![State {
        cluster: root,
        left,
        id: root_id,
    }];
    let mut depth = 0;
    while !frontier.is_empty() && depth < bounds.max_depth {
        let mut next = Vec::new();
        // States of the last level are checked but never expanded: nothing of them is kept
        // (the last level is the largest; keeping it would multiply the memory by the
        // branching factor).
        let last = depth + 1 == bounds.max_depth;
        for s in &frontier {
            for (command, mut left) in events(s, bounds) {
                stats.transitions += 1;
                let mut cluster = s.cluster.clone();
                if cluster.run(&command).is_err() {
                    continue; // not possible here (e.g. a message to a node that is down)
                }
                if command.starts_with("conf ") && !conf_accepted(&s.cluster, &cluster, &command) {
                    // Refused: the run may still make its change.
                    left.conf_changes = s.left.conf_changes;
                }
                let fp = fingerprint(&cluster, &left);
                if !seen.insert(fp) {
                    continue;
                }
                stats.states += 1;
                let overlap = if bounds.check_configurations {
                    overlap_violation(&cluster)
                } else {
                    None
                };
                if let Some(v) = cluster.violation().cloned().or(overlap) {
                    trail.push((s.id, command));
                    let id = (trail.len() - 1) as u32;
                    stats.elapsed = started.elapsed();
                    let violation = v;
                    return Outcome::Violation {
                        script: replay(&trail, id, &violation),
                        violation,
                        stats,
                    };
                }
                if stats.states >= bounds.max_states || started.elapsed() > bounds.time_limit {
                    stats.elapsed = started.elapsed();
                    return Outcome::Unfinished(stats);
                }
                if !last {
                    trail.push((s.id, command));
                    let id = (trail.len() - 1) as u32;
                    next.push(State { cluster, left, id });
                }
            }
        }
        depth += 1;
        stats.depth = depth;
        stats.elapsed = started.elapsed();
        progress(&stats);
        frontier = next;
    }
    // Every state within `max_depth` events (or every reachable state) was explored.
    stats.elapsed = started.elapsed();
    Outcome::Exhausted(stats)
}

/// Did the leader of `conf ID ...` accept the change (a configuration entry was appended)?
fn conf_accepted(before: &Cluster, after: &Cluster, command: &str) -> bool {
    let Some(id) = command
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.parse::<u64>().ok())
    else {
        return false;
    };
    let index = |c: &Cluster| c.node(id).map(|r| r.status().membership_index);
    index(before) != index(after)
}

/// Thesis 4.1 across nodes: any two configurations that running nodes act on at the same
/// time have intersecting majorities, so no two leaders can be elected, nor two different
/// entries committed at one index, by disjoint sets of nodes. The one exception is the two ends
/// of a joint change, C_old and C_new: C_new is appended only once C_old,new has committed (a
/// majority of C_old stores it, so a node still on C_old cannot win a majority of C_old), which
/// the monitor checks; the pair is exempt when some running node's log holds C_old,new with
/// those halves. With one change per run (single-server or joint) nothing else may fail.
pub fn overlap_violation(cluster: &Cluster) -> Option<Violation> {
    use raft::Membership;
    let running: Vec<(u64, Membership)> = cluster
        .ids()
        .iter()
        .filter_map(|&id| cluster.node(id).map(|r| (id, r.membership().clone())))
        .collect();
    let joint_between = |old: &Membership, new: &Membership| {
        running.iter().any(|(id, _)| {
            cluster.node(*id).is_some_and(|r| {
                let log = r.log();
                log.membership_changes()
                    .iter()
                    .map(|(_, m)| m)
                    .chain(log.snapshot_membership())
                    .any(|j| j.outgoing == old.voters && j.voters == new.voters)
            })
        })
    };
    for (k, (a_id, a)) in running.iter().enumerate() {
        for (b_id, b) in &running[k + 1..] {
            if a.voters.is_empty() && a.outgoing.is_empty()
                || b.voters.is_empty() && b.outgoing.is_empty()
            {
                continue; // a node that has not joined yet decides nothing
            }
            let Some((qa, qb)) = crate::monitor::disjoint_majorities(a, b) else {
                continue;
            };
            if joint_between(a, b) || joint_between(b, a) {
                continue;
            }
            let set = |q: &[raft::NodeId]| {
                let v: Vec<String> = q.iter().map(|n| n.to_string()).collect();
                format!("{{{}}}", v.join(","))
            };
            return Some(Violation {
                property: crate::monitor::Property::Membership,
                nodes: vec![raft::NodeId(*a_id), raft::NodeId(*b_id)],
                detail: format!(
                    "node {a_id} acts on {a} while node {b_id} acts on {b}: their majorities {} and {} do not intersect (two leaders could be elected, two entries committed at one index)",
                    set(&qa),
                    set(&qb)
                ),
            });
        }
    }
    None
}

/// The commands leading to state `id`, replayed on a cluster that prints, as a script.
fn replay(trail: &[(u32, String)], id: u32, violation: &Violation) -> String {
    let mut commands = Vec::new();
    let mut at = id;
    loop {
        let (parent, command) = &trail[at as usize];
        commands.push(command.clone());
        if at == 0 {
            break;
        }
        at = *parent;
    }
    commands.reverse();
    let mut script = format!(
        "# Found by raftcheck's search: the shortest run to a state that breaks an invariant.\n# {violation}\n\n"
    );
    let mut cluster = Cluster::default();
    for command in commands {
        let mut out = cluster
            .run(&command)
            .unwrap_or_else(|e| vec![format!("error: {e}")]);
        if out.is_empty() {
            out.push("ok".into());
        }
        let _ = writeln!(script, "{command}\n----\n{}\n", out.join("\n"));
    }
    script
}
