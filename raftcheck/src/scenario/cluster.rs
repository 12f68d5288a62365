//! The simulated cluster scripts run on: nodes, their disks and services, and the queue of
//! messages that moves only when a command says so.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use raft::message::AppendEntries;
use raft::{
    Apply, Config, Entry, Envelope, Features, Input, LogIndex, Message, NodeId, Raft, Role, Term,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::format::{Applied, Filter, fmt_applied, fmt_entry, fmt_msg, num, parse_change};
use crate::monitor::{Monitor, Violation};

/// Stable storage of one node: what its last `persist` saved.
#[derive(Clone, Default)]
struct Disk {
    raft_state: Vec<u8>,
    snapshot: Vec<u8>,
}

/// A toy service: the list of commands applied, in order. Its snapshot is that list, comma
/// separated.
#[derive(Clone, Default, Hash)]
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

/// Where a command's output goes. Quiet clusters (the model checker's) format nothing.
struct Out {
    quiet: bool,
    lines: Vec<String>,
}

impl Out {
    fn push(&mut self, line: impl FnOnce() -> String) {
        if !self.quiet {
            self.lines.push(line());
        }
    }
}

/// Nodes 1..N over a queue of messages that moves only when told (see the module docs).
#[derive(Clone, Default)]
pub struct Cluster {
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
    monitor: Monitor,
    /// Set once the monitor's first violation was printed.
    reported: bool,
    quiet: bool,
    /// Also shown every save (node, what it saves): the storage conformance suite's hook.
    tee: Option<Tee>,
    /// The extensions the nodes run with (`nodes N prevote checkquorum lease`).
    features: Features,
    /// The last read id given out (`read N`).
    reads: u64,
    /// The bootstrap voters (`nodes N voters=1,2,3`); the other nodes start without a
    /// configuration and wait to be added. `None`: every node.
    voters: Option<Vec<u64>>,
}

/// A hook that sees every save of every node.
pub type Tee = std::sync::Arc<dyn Fn(u64, &raft::Persist<'_>) + Send + Sync>;

fn running(nodes: &mut BTreeMap<u64, Option<Raft>>, id: u64) -> Result<&mut Raft, String> {
    match nodes.get_mut(&id) {
        Some(Some(r)) => Ok(r),
        _ => Err(format!("node {id} is not running")),
    }
}

fn rng(id: u64, boot: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(id * 1000 + boot)
}

impl Cluster {
    /// A cluster that formats no output (for the model checker).
    pub fn quiet() -> Cluster {
        Cluster {
            quiet: true,
            ..Cluster::default()
        }
    }

    /// Shows every save to `tee` from now on (see [`Tee`]).
    pub fn set_tee(&mut self, tee: Tee) {
        self.tee = Some(tee);
    }

    /// A quiet cluster that shows every save to `tee` (see [`Tee`]).
    pub fn with_tee(tee: Tee) -> Cluster {
        Cluster {
            tee: Some(tee),
            ..Cluster::quiet()
        }
    }

    /// The monitor watching this cluster.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    pub fn violation(&self) -> Option<&Violation> {
        self.monitor.violation()
    }

    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// Node `id`'s core, if it is running.
    pub fn node(&self, id: u64) -> Option<&Raft> {
        self.nodes.get(&id).and_then(|n| n.as_ref())
    }

    /// The messages waiting for delivery, oldest first.
    pub fn queue(&self) -> &[Envelope] {
        &self.queue
    }

    /// Feeds everything that decides the cluster's future to `h` (the model checker's state
    /// identity): cores, disks, services, the queue as a multiset, the partition and the
    /// monitor's history.
    pub fn fingerprint<H: std::hash::Hasher>(&self, h: &mut H) {
        use std::hash::Hash;
        for (id, n) in &self.nodes {
            id.hash(h);
            match n {
                Some(r) => r.fingerprint(h),
                None => 0u8.hash(h),
            }
        }
        for d in self.disks.values() {
            d.raft_state.hash(h);
            d.snapshot.hash(h);
        }
        self.services.hash(h);
        // Channels (sender, receiver) in order, each a sequence: the model checker's network is
        // FIFO per channel unless it spends a reorder.
        let mut queue: Vec<&Envelope> = self.queue.iter().collect();
        queue.sort_by_key(|e| (e.from, e.to));
        queue.hash(h);
        self.partition.hash(h);
        self.monitor.hash(h);
    }

    /// Runs one command and returns its output lines (empty when it printed nothing), or an
    /// error for a command that cannot run (unknown, malformed, or about a node that is down).
    pub fn run(&mut self, command: &str) -> Result<Vec<String>, String> {
        let words: Vec<&str> = command.split_whitespace().collect();
        let before: BTreeMap<u64, String> = if self.quiet {
            BTreeMap::new()
        } else {
            self.ids
                .iter()
                .map(|id| (*id, self.state_line(*id)))
                .collect()
        };
        let mut out = Out {
            quiet: self.quiet,
            lines: Vec::new(),
        };
        let mut print_all = false;
        match words.as_slice() {
            ["nodes", n, options @ ..] => {
                let n: u64 = num(n, "node count")?;
                let mut features = Features::default();
                let mut voters = None;
                for o in options {
                    match *o {
                        "prevote" => features.pre_vote = true,
                        "checkquorum" => features.check_quorum = true,
                        "lease" => features.lease_reads = true,
                        o if o.starts_with("voters=") => {
                            let list: Result<Vec<u64>, String> = o["voters=".len()..]
                                .split(',')
                                .map(|v| num(v, "node id"))
                                .collect();
                            voters = Some(list?);
                        }
                        _ => {
                            return Err(format!(
                                "nodes: unknown option {o:?} (prevote, checkquorum, lease, voters=1,2,..)"
                            ));
                        }
                    }
                }
                let quiet = self.quiet;
                let tee = self.tee.take();
                *self = Cluster::default();
                self.quiet = quiet;
                self.tee = tee;
                self.features = features;
                self.voters = voters;
                self.ids = (1..=n).collect();
                for id in self.ids.clone() {
                    self.disks.insert(id, Disk::default());
                    self.boots.insert(id, 0);
                    self.boot(id)?;
                }
                print_all = true;
            }
            ["tick", n, targets @ ..] => {
                let n: u32 = num(n, "tick count")?;
                let targets = self.targets(targets)?;
                for _ in 0..n {
                    for id in &targets {
                        if let Some(Some(r)) = self.nodes.get_mut(id) {
                            self.monitor.before_input(r, Input::Tick);
                            r.tick();
                            self.monitor.after_input(r);
                            self.flush(*id, &mut out);
                        }
                    }
                }
            }
            ["campaign", id] => {
                let id = num(id, "node id")?;
                let r = running(&mut self.nodes, id)?;
                self.monitor.before_input(r, Input::Timeout);
                r.campaign();
                self.monitor.after_input(r);
                self.flush(id, &mut out);
            }
            ["deliver", filter @ ..] => {
                let f = Filter::parse(filter)?;
                self.deliver(&f, &mut out);
            }
            ["stabilize"] => {
                let mut rounds = 0;
                while !self.queue.is_empty() {
                    rounds += 1;
                    if rounds >= 100 {
                        return Err("no quiescence after 100 rounds".into());
                    }
                    self.deliver(&Filter::parse(&[])?, &mut out);
                }
            }
            ["drop", filter @ ..] => {
                let f = Filter::parse(filter)?;
                for env in self.take(&f) {
                    out.push(|| format!("dropped {}", fmt_msg(&env)));
                }
            }
            ["duplicate", filter @ ..] => {
                let f = Filter::parse(filter)?;
                let copies: Vec<Envelope> = f
                    .select(&self.queue)
                    .into_iter()
                    .map(|k| self.queue[k].clone())
                    .collect();
                for env in copies {
                    out.push(|| format!("duplicated {}", fmt_msg(&env)));
                    self.queue.push(env);
                }
            }
            ["queue"] => {
                for e in &self.queue {
                    out.push(|| fmt_msg(e));
                }
            }
            ["partition", ..] => {
                let spec = words[1..].join(" ");
                let mut groups = BTreeMap::new();
                for (g, part) in spec.split('|').enumerate() {
                    for id in part.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        groups.insert(num(id, "node id")?, g);
                    }
                }
                self.partition = Some(groups);
            }
            ["heal"] => self.partition = None,
            ["propose", id, cmd] => {
                let id = num(id, "node id")?;
                let r = running(&mut self.nodes, id)?;
                self.monitor.before_input(r, Input::Propose);
                let result = r.propose(cmd.as_bytes().to_vec());
                self.monitor.after_input(r);
                match result {
                    Ok((index, term)) => {
                        out.push(|| format!("{id}: propose {cmd} -> index={index} term={term}"))
                    }
                    Err(e) => out.push(|| {
                        format!(
                            "{id}: propose {cmd} -> not leader (hint: {})",
                            e.leader.map_or("none".to_string(), |l| l.to_string())
                        )
                    }),
                }
                self.flush(id, &mut out);
            }
            ["crash", id] => {
                let id = num(id, "node id")?;
                running(&mut self.nodes, id)?;
                self.nodes.insert(id, None);
                self.services.remove(&id);
                let (lost, kept): (Vec<Envelope>, Vec<Envelope>) = std::mem::take(&mut self.queue)
                    .into_iter()
                    .partition(|e| e.from.0 == id || e.to.0 == id);
                self.queue = kept;
                for e in lost {
                    out.push(|| format!("lost {}", fmt_msg(&e)));
                }
            }
            ["restart", id] => {
                let id = num(id, "node id")?;
                if !matches!(self.nodes.get(&id), Some(None)) {
                    return Err(format!("restart {id}: not crashed"));
                }
                self.boot(id)?;
                self.flush(id, &mut out);
            }
            ["compact", id, index] => {
                let id = num(id, "node id")?;
                let index: u64 = num(index, "index")?;
                let service = self
                    .services
                    .get(&id)
                    .ok_or_else(|| format!("node {id} is not running"))?;
                let data = service
                    .commands
                    .iter()
                    .take(index as usize)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(",");
                let r = running(&mut self.nodes, id)?;
                self.monitor
                    .before_input(r, Input::Compact(LogIndex(index)));
                r.compact(LogIndex(index), data.into_bytes());
                self.monitor.after_input(r);
                self.flush(id, &mut out);
            }
            ["log", id, rest @ ..] => {
                let id = num(id, "node id")?;
                self.set_log(id, rest)?;
            }
            ["transfer", id, to] => {
                let id = num(id, "node id")?;
                let to: u64 = num(to, "node id")?;
                let r = running(&mut self.nodes, id)?;
                self.monitor.before_input(r, Input::Transfer(NodeId(to)));
                let result = r.transfer_leadership(NodeId(to));
                self.monitor.after_input(r);
                match result {
                    Ok(()) => out.push(|| format!("{id}: transfer to {to}")),
                    Err(e) => out.push(|| format!("{id}: transfer to {to} refused: {e}")),
                }
                self.flush(id, &mut out);
            }
            ["conf", id, change @ ..] => {
                let id = num(id, "node id")?;
                let change = parse_change(change)?;
                let r = running(&mut self.nodes, id)?;
                self.monitor
                    .before_input(r, Input::ChangeMembership(&change));
                let result = r.change_membership(change);
                self.monitor.after_input(r);
                let words = words[2..].join(" ");
                match result {
                    Ok((index, term)) => {
                        out.push(|| format!("{id}: conf {words} -> index={index} term={term}"))
                    }
                    Err(e) => out.push(|| format!("{id}: conf {words} refused: {e}")),
                }
                self.flush(id, &mut out);
            }
            ["read", id] => {
                let id = num(id, "node id")?;
                self.reads += 1;
                let read = self.reads;
                let r = running(&mut self.nodes, id)?;
                self.monitor.before_input(r, Input::Read(read));
                let result = r.read_index(read);
                self.monitor.after_input(r);
                if let Err(e) = result {
                    out.push(|| {
                        format!(
                            "{id}: read #{read} -> not leader (hint: {})",
                            e.leader.map_or("none".to_string(), |l| l.to_string())
                        )
                    });
                }
                self.flush(id, &mut out);
            }
            ["status"] => print_all = true,
            _ => return Err(format!("unknown command: {command}")),
        }
        if !self.quiet {
            for id in self.ids.clone() {
                let line = self.state_line(id);
                if print_all || before.get(&id) != Some(&line) {
                    out.lines.push(line);
                    if print_all {
                        out.lines.extend(self.progress_line(id));
                    }
                }
            }
        }
        if !self.reported
            && let Some(v) = self.monitor.violation()
        {
            self.reported = true;
            let line = v.to_string();
            out.push(|| line);
        }
        Ok(out.lines)
    }

    fn boot(&mut self, id: u64) -> Result<(), String> {
        let boot = self.boots.entry(id).or_default();
        *boot += 1;
        let boot = *boot;
        let disk = self.disks.get(&id).ok_or_else(|| format!("no node {id}"))?;
        let peers: Vec<NodeId> = match &self.voters {
            None => self.ids.iter().map(|i| NodeId(*i)).collect(),
            Some(v) if v.contains(&id) => v.iter().map(|i| NodeId(*i)).collect(),
            // Not in the bootstrap configuration: it joins when a leader adds it.
            Some(_) => Vec::new(),
        };
        let config = Config::lab(NodeId(id), peers).with(self.features);
        let r = Raft::new(
            config,
            &disk.raft_state,
            disk.snapshot.clone(),
            rng(id, boot),
        )
        .map_err(|e| format!("restart {id} from disk: {e}"))?;
        self.monitor.boot(&r);
        self.services
            .insert(id, Service::from_snapshot(&disk.snapshot));
        self.nodes.insert(id, Some(r));
        Ok(())
    }

    fn targets(&self, args: &[&str]) -> Result<Vec<u64>, String> {
        if args.is_empty() {
            Ok(self.ids.clone())
        } else {
            args.iter().map(|a| num(a, "node id")).collect()
        }
    }

    fn connected(&self, a: u64, b: u64) -> bool {
        match &self.partition {
            None => true,
            // A node left out of every group is alone.
            Some(g) => g.get(&a).is_some() && g.get(&a) == g.get(&b),
        }
    }

    /// Removes and returns the queued messages `f` selects, oldest first.
    fn take(&mut self, f: &Filter) -> Vec<Envelope> {
        let picked = f.select(&self.queue);
        let mut taken = Vec::with_capacity(picked.len());
        for k in picked.into_iter().rev() {
            taken.push(self.queue.remove(k));
        }
        taken.reverse();
        taken
    }

    /// Collects a node's Ready: saves its state to its disk, queues its messages and replies,
    /// applies its committed entries.
    fn flush(&mut self, id: u64, out: &mut Out) {
        let Some(Some(r)) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(disk) = self.disks.get_mut(&id) else {
            return;
        };
        let monitor = &mut self.monitor;
        let tee = &self.tee;
        let saved = r.ready().persist(|p| {
            disk.raft_state = p.raft_state();
            if let Some(s) = &p.snapshot {
                disk.snapshot = s.as_ref().clone();
            }
            monitor.persisted(NodeId(id), p);
            if let Some(t) = tee {
                t(id, p);
            }
            Ok::<(), std::convert::Infallible>(())
        });
        let Ok(done) = saved;
        self.monitor.released(r, &done);
        for env in done.replies.into_iter().chain(done.messages) {
            if env.to.0 == SETUP {
                continue;
            }
            if !matches!(self.nodes.get(&env.to.0), Some(Some(_))) {
                out.push(|| format!("{} (lost: {} is down)", fmt_msg(&env), env.to));
            } else if self.connected(env.from.0, env.to.0) {
                out.push(|| fmt_msg(&env));
                self.queue.push(env);
            } else {
                out.push(|| format!("{} (lost: partition)", fmt_msg(&env)));
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
                    if let Some(r) = run.take() {
                        out.push(|| fmt_applied(id, r));
                    }
                    out.push(|| line);
                }
            }
        }
        if let Some(r) = run {
            out.push(|| fmt_applied(id, r));
        }
        for r in done.reads {
            out.push(|| match r.index {
                Ok(index) => format!("{id}: read #{} at index={index}", r.id),
                Err(_) => format!("{id}: read #{} failed: not leader", r.id),
            });
        }
    }

    /// Hands an entry to the node's service (the monitor judges order and agreement).
    fn apply(&mut self, id: u64, a: Apply) -> Applied {
        let service = self.services.entry(id).or_default();
        match a {
            Apply::Command { index, command, .. } => {
                let command = String::from_utf8_lossy(&command).into_owned();
                service.commands.push(command.clone());
                Applied::Command(index, command)
            }
            Apply::Membership { index, .. } => {
                // Kept in the service's list so that snapshots stay aligned with indices.
                service.commands.push("conf".to_string());
                Applied::Command(index, "conf".to_string())
            }
            Apply::Snapshot { index, term, data } => {
                *service = Service::from_snapshot(&data);
                Applied::Snapshot(format!(
                    "{id}: apply snapshot index={index} term={term} data=\"{}\"",
                    String::from_utf8_lossy(&data)
                ))
            }
        }
    }

    fn deliver(&mut self, f: &Filter, out: &mut Out) {
        for env in self.take(f) {
            let to = env.to.0;
            if !self.connected(env.from.0, to) {
                out.push(|| format!("dropped {} (partition)", fmt_msg(&env)));
                continue;
            }
            // Messages to a crashed node are never queued; a node may crash after its
            // messages were: they were dropped with it.
            let Some(Some(r)) = self.nodes.get_mut(&to) else {
                continue;
            };
            self.monitor.before_input(r, Input::Step(&env));
            r.step(env);
            self.monitor.after_input(r);
            self.flush(to, out);
        }
    }

    /// `log N [term=T] t1 t2 ...`: gives a fresh node a log with entries of the given terms,
    /// as if a leader of term T (default: the last entry's term) had sent them, then restarts it
    /// so that it remembers no leader. Commands are named `i<index>t<term>`.
    fn set_log(&mut self, id: u64, args: &[&str]) -> Result<(), String> {
        let mut term = None;
        let mut terms = Vec::new();
        for a in args {
            if let Some(t) = a.strip_prefix("term=") {
                term = Some(num::<u64>(t, "term")?);
            } else {
                terms.push(num::<u64>(a, "entry term")?);
            }
        }
        let term = term.or(terms.last().copied()).unwrap_or(0);
        let r = running(&mut self.nodes, id)?;
        if r.log().last_index() != LogIndex(0) {
            return Err(format!("log {id}: only on an empty log"));
        }
        let entries = terms
            .iter()
            .enumerate()
            .map(|(k, t)| Entry::new(Term(*t), format!("i{}t{}", k + 1, t).into_bytes()))
            .collect();
        let env = Envelope {
            from: NodeId(SETUP),
            to: NodeId(id),
            msg: Message::AppendEntries(AppendEntries {
                term: Term(term),
                prev_log_index: LogIndex(0),
                prev_log_term: Term(0),
                entries,
                leader_commit: LogIndex(0),
                round: 0,
            }),
        };
        self.monitor.before_input(r, Input::Step(&env));
        r.step(env);
        self.monitor.after_input(r);
        let mut ignored = Out {
            quiet: true,
            lines: Vec::new(),
        };
        self.flush(id, &mut ignored);
        self.nodes.insert(id, None);
        self.boot(id)
    }

    fn state_line(&self, id: u64) -> String {
        let Some(Some(r)) = self.nodes.get(&id) else {
            return format!("{id}: crashed");
        };
        let s = r.status();
        let role = match s.role {
            Role::Follower => "follower",
            Role::PreCandidate => "precandidate",
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
        if let Some(t) = s.transferring_to {
            let _ = write!(line, " transfer={t}");
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
        let terms: Vec<String> = log.entries().iter().map(fmt_entry).collect();
        line.push_str(&terms.join(" "));
        line.push(']');
        if self.voters.is_some() || log.membership().is_some() {
            let _ = write!(line, " config=[{}]", r.membership());
        }
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
