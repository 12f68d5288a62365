//! The nemesis: on a schedule drawn from the seed (ChaCha8), one fault at a time, each
//! followed by its heal: kill -9 and restart a node; SIGSTOP a node for longer than an
//! election timeout and SIGCONT it; partitions through the nodes' fault tables (one node
//! isolated, a majority/minority split, a bridge: two halves that both reach one middle node)
//! and heal. The seed fixes the kinds, the durations and the random choices; which node leads
//! at a given moment is up to the run (a fault aimed at "the leader" asks the nodes).

use std::sync::{Arc, Mutex};

use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;

use cluster::faults::FaultTable;
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::nodes::Nodes;

/// The fault kinds `--faults` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FaultKind {
    Kill,
    Pause,
    Partition,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
        }
    }
}

/// Parses `kill,pause,partition` or `all`.
pub fn parse_faults(s: &str) -> Result<Vec<FaultKind>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "all" => out.extend([FaultKind::Kill, FaultKind::Pause, FaultKind::Partition]),
            "kill" => out.push(FaultKind::Kill),
            "pause" => out.push(FaultKind::Pause),
            "partition" => out.push(FaultKind::Partition),
            "none" => {}
            other => {
                return Err(format!(
                    "unknown fault {other:?} (expected kill, pause, partition, all or none)"
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// One fault, from when it was applied to when it was healed (seconds since the start).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NemesisEvent {
    pub kind: FaultKind,
    /// e.g. `kill -9 node 2 (the leader)`, `bridge {0,1} <-> 4 <-> {2,3}`.
    pub what: String,
    pub nodes: Vec<usize>,
    /// The fault hit the node that led when it began (kill, pause or isolation of the leader).
    #[serde(default)]
    pub leader: bool,
    pub start: f64,
    pub end: Option<f64>,
    /// Something that did not go as planned (e.g. a node that could not be restarted).
    pub trouble: Option<String>,
}

pub type Events = Arc<Mutex<Vec<NemesisEvent>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn set_of(v: &[usize]) -> String {
    let items: Vec<String> = v.iter().map(|i| i.to_string()).collect();
    format!("{{{}}}", items.join(","))
}

/// Which pairs of nodes can talk: a partition as groups that each are fully connected.
pub(super) fn tables(n: usize, groups: &[Vec<usize>]) -> Vec<FaultTable> {
    (0..n)
        .map(|i| {
            FaultTable::blocking(
                (0..n)
                    .filter(|&j| j != i && !groups.iter().any(|g| g.contains(&i) && g.contains(&j)))
                    .map(|j| j as u64),
            )
        })
        .collect()
}

pub struct Nemesis {
    pub rng: ChaCha8Rng,
    pub kinds: Vec<FaultKind>,
    pub start: Instant,
    pub events: Events,
}

impl Nemesis {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn secs(&mut self, lo: f64, hi: f64) -> Duration {
        Duration::from_secs_f64(self.rng.random_range(lo..hi))
    }

    fn begin(&self, kind: FaultKind, what: String, nodes: Vec<usize>, leader: bool) -> usize {
        println!("{:>7.2}s nemesis: {what}", self.now());
        let mut ev = lock(&self.events);
        ev.push(NemesisEvent {
            kind,
            what,
            nodes,
            leader,
            start: self.now(),
            end: None,
            trouble: None,
        });
        ev.len() - 1
    }

    fn end(&self, k: usize, trouble: Option<String>) {
        let now = self.now();
        let mut ev = lock(&self.events);
        if let Some(e) = ev.get_mut(k) {
            println!("{now:>7.2}s nemesis: healed: {}", e.what);
            e.end = Some(now);
            if trouble.is_some() {
                e.trouble = trouble;
            }
        }
    }

    /// A node to hit: the leader half of the time (if one answers), else any node.
    async fn target(&mut self, nodes: &AsyncMutex<Nodes>) -> (usize, bool) {
        let aim_at_leader = self.rng.random_bool(0.5);
        let any = self.rng.random_range(0..nodes.lock().await.len());
        if aim_at_leader {
            let leader = nodes.lock().await.leader().await;
            if let Some(l) = leader {
                return (l, true);
            }
        }
        (any, false)
    }

    /// Runs faults until `until` (a fault that would end later is cut short).
    pub async fn run(mut self, nodes: Arc<AsyncMutex<Nodes>>, until: Instant) {
        if self.kinds.is_empty() {
            tokio::time::sleep_until(until).await;
            return;
        }
        loop {
            let gap = self.secs(1.0, 3.0);
            if Instant::now() + gap >= until {
                tokio::time::sleep_until(until).await;
                return;
            }
            tokio::time::sleep(gap).await;
            let kind = self.kinds[self.rng.random_range(0..self.kinds.len())];
            let hold = match kind {
                FaultKind::Kill => self.secs(1.0, 4.0),
                // Longer than the longest election timeout (0.6 s).
                FaultKind::Pause => self.secs(1.0, 3.5),
                FaultKind::Partition => self.secs(2.0, 5.0),
            };
            let hold_until = (Instant::now() + hold).min(until);
            match kind {
                FaultKind::Kill => self.kill(&nodes, hold_until).await,
                FaultKind::Pause => self.pause(&nodes, hold_until).await,
                FaultKind::Partition => self.partition(&nodes, hold_until).await,
            }
        }
    }

    async fn kill(&mut self, nodes: &AsyncMutex<Nodes>, until: Instant) {
        let (i, leader) = self.target(nodes).await;
        let k = self.begin(
            FaultKind::Kill,
            format!(
                "kill -9 node {i}{}",
                if leader { " (the leader)" } else { "" }
            ),
            vec![i],
            leader,
        );
        nodes.lock().await.kill(i);
        tokio::time::sleep_until(until).await;
        let trouble = nodes
            .lock()
            .await
            .restart(i)
            .err()
            .map(|e| format!("cannot restart node {i}: {e:#}"));
        self.end(k, trouble);
    }

    async fn pause(&mut self, nodes: &AsyncMutex<Nodes>, until: Instant) {
        let (i, leader) = self.target(nodes).await;
        let k = self.begin(
            FaultKind::Pause,
            format!(
                "SIGSTOP node {i}{}",
                if leader { " (the leader)" } else { "" }
            ),
            vec![i],
            leader,
        );
        let ok = nodes.lock().await.pause(i);
        tokio::time::sleep_until(until).await;
        nodes.lock().await.resume(i);
        self.end(
            k,
            (!ok).then(|| format!("node {i} could not be stopped (down?)")),
        );
    }

    async fn partition(&mut self, nodes: &AsyncMutex<Nodes>, until: Instant) {
        let n = nodes.lock().await.len();
        let mut perm: Vec<usize> = (0..n).collect();
        perm.shuffle(&mut self.rng);
        let variant = self.rng.random_range(0..3);
        let (what, groups, hit, leader) = match variant {
            0 => {
                let (i, leader) = self.target(nodes).await;
                let rest: Vec<usize> = (0..n).filter(|&j| j != i).collect();
                (
                    format!(
                        "isolate node {i}{}",
                        if leader { " (the leader)" } else { "" }
                    ),
                    vec![vec![i], rest],
                    vec![i],
                    leader,
                )
            }
            1 => {
                let minority = perm[..(n - 1) / 2].to_vec();
                let mut majority = perm[(n - 1) / 2..].to_vec();
                let mut minority_sorted = minority.clone();
                minority_sorted.sort_unstable();
                majority.sort_unstable();
                (
                    format!(
                        "split majority {} | minority {}",
                        set_of(&majority),
                        set_of(&minority_sorted)
                    ),
                    vec![majority, minority_sorted.clone()],
                    minority_sorted,
                    false,
                )
            }
            _ => {
                // Two halves of about (n-1)/2 nodes around the middle one.
                let mid = (n - 1) / 2;
                let m = perm[mid];
                let mut a = perm[..mid].to_vec();
                let mut b = perm[mid + 1..].to_vec();
                a.sort_unstable();
                b.sort_unstable();
                let mut left = a.clone();
                left.push(m);
                let mut right = b.clone();
                right.push(m);
                (
                    format!("bridge {} <-> {m} <-> {}", set_of(&a), set_of(&b)),
                    vec![left, right],
                    vec![m],
                    false,
                )
            }
        };
        // A split hits the leader when it leaves it in the minority.
        let leader = leader
            || variant == 1 && {
                let l = nodes.lock().await.leader().await;
                l.is_some_and(|l| hit.contains(&l))
            };
        let k = self.begin(FaultKind::Partition, what, hit, leader);
        let tables = tables(n, &groups);
        let mut trouble = Vec::new();
        for (i, t) in tables.into_iter().enumerate() {
            let g = nodes.lock().await;
            if g.is_up(i)
                && !g.is_paused(i)
                && let Err(e) = g.set_faults(i, t).await
            {
                trouble.push(e);
            }
        }
        tokio::time::sleep_until(until).await;
        nodes.lock().await.clear_faults().await;
        self.end(k, (!trouble.is_empty()).then(|| trouble.join("; ")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_cuts_only_the_links_between_the_halves() {
        // {0,1} <-> 2 <-> {3,4}
        let t = tables(5, &[vec![0, 1, 2], vec![3, 4, 2]]);
        assert_eq!(t[0].blocked(), vec![3, 4]);
        assert_eq!(t[2].blocked(), Vec::<u64>::new());
        assert_eq!(t[4].blocked(), vec![0, 1]);
    }

    #[test]
    fn faults_parse() {
        assert_eq!(
            parse_faults("all"),
            Ok(vec![
                FaultKind::Kill,
                FaultKind::Pause,
                FaultKind::Partition
            ])
        );
        assert_eq!(parse_faults("pause"), Ok(vec![FaultKind::Pause]));
        assert!(parse_faults("flood").is_err());
    }
}
