//! How long clients are without service when the leader stops answering: the leader is
//! SIGSTOPped, or cut off from every other node (its clients still reach it), while clients
//! put as fast as they can. A trial's outage is the time from the fault until every client
//! has completed an operation it issued after the fault; `raftlab bench` reports the
//! percentiles over many trials. For `raftlab chaos`'s report, from its history: the same
//! measure for each fault that hit the leader ([`leader_outages`]), and the p99 away from
//! faults before and after the first of them ([`tail`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use cluster::client::TcpClerk;
use tokio::time::Instant;

use serde::Serialize;

use super::nemesis::{NemesisEvent, tables};
use super::nodes::Nodes;
use super::report::percentile;
use super::workload::{Op, OpRecord, lock};

/// What happens to the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderFault {
    /// SIGSTOP (SIGCONT to heal): the process answers nothing, its connections stay open.
    Pause,
    /// Every link between the leader and the other nodes cut; clients still reach it.
    Isolate,
}

impl LeaderFault {
    pub fn name(self) -> &'static str {
        match self {
            LeaderFault::Pause => "SIGSTOP leader",
            LeaderFault::Isolate => "isolate leader",
        }
    }
}

/// The longest a fault is held while waiting for the clients to come back.
const HOLD: Duration = Duration::from_secs(5);
/// How long the clients run before the fault (they learn the leader).
const WARM: Duration = Duration::from_millis(300);

/// One trial: `clients` clerks put in a loop; the leader gets `fault` and keeps it until every
/// client is back (or `HOLD` passed); then it is healed and the cluster converges. Returns the
/// outage.
pub async fn trial(
    nodes: &mut Nodes,
    fault: LeaderFault,
    clients: usize,
) -> anyhow::Result<Duration> {
    nodes
        .converge(Duration::from_secs(20))
        .await
        .context("the cluster did not converge before a trial")?;
    let leader = nodes.leader().await.context("no leader before a trial")?;
    let stop = Arc::new(AtomicBool::new(false));
    let fault_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    // The completion time of each client's first operation issued after the fault.
    let back: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; clients]));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let addrs = nodes.addrs.clone();
        let (stop, fault_at, back) = (stop.clone(), fault_at.clone(), back.clone());
        tasks.push(tokio::spawn(async move {
            let mut ck = TcpClerk::new(addrs);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let issued = Instant::now();
                let ok = ck
                    .put(
                        &format!("outage-{c}"),
                        &i.to_string(),
                        Duration::from_secs(30),
                    )
                    .await
                    .is_ok();
                let done = Instant::now();
                if ok
                    && let Some(f) = *lock(&fault_at)
                    && issued >= f
                {
                    lock(&back)[c].get_or_insert(done);
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(WARM).await;
    let t0 = Instant::now();
    match fault {
        LeaderFault::Pause => {
            if !nodes.pause(leader) {
                anyhow::bail!("node {leader} could not be stopped");
            }
        }
        LeaderFault::Isolate => {
            let rest: Vec<usize> = (0..nodes.len()).filter(|&j| j != leader).collect();
            for (i, table) in tables(nodes.len(), &[vec![leader], rest])
                .into_iter()
                .enumerate()
            {
                nodes
                    .set_faults(i, table)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot cut node {i}'s links: {e}"))?;
            }
        }
    }
    // Operations issued from now on cannot be answered by the old leader.
    *lock(&fault_at) = Some(Instant::now());
    let all_back = |back: &Mutex<Vec<Option<Instant>>>| lock(back).iter().all(Option::is_some);
    while !all_back(&back) && t0.elapsed() < HOLD {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    match fault {
        LeaderFault::Pause => nodes.resume(leader),
        LeaderFault::Isolate => nodes.clear_faults().await,
    }
    while !all_back(&back) && t0.elapsed() < HOLD * 6 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.context("a client task failed")?;
    }
    let outage = lock(&back)
        .iter()
        .map(|b| b.map(|b| b.saturating_duration_since(t0)))
        .collect::<Option<Vec<_>>>()
        .context("a client never came back after the fault was healed")?
        .into_iter()
        .max()
        .unwrap_or_default();
    Ok(outage)
}

/// The clients' goal after a leader fault: service back within a second (about two election
/// timeouts: one for the followers to notice, one for the clerks and the election).
pub const OUTAGE_GOAL_S: f64 = 1.0;

/// Service after a fault that hit the leader: the time from the fault to the completion of
/// the first acknowledged operation invoked after it.
#[derive(Debug, Clone, Serialize)]
pub struct LeaderOutage {
    pub what: String,
    pub start: f64,
    /// `None`: no operation invoked after the fault was acknowledged before the run ended.
    pub back_after: Option<f64>,
}

pub fn leader_outages(history: &[OpRecord], nemesis: &[NemesisEvent]) -> Vec<LeaderOutage> {
    nemesis
        .iter()
        .filter(|e| e.leader)
        .map(|e| LeaderOutage {
            what: e.what.clone(),
            start: e.start,
            back_after: history
                .iter()
                .filter(|r| r.ok && !r.final_read && r.invoke >= e.start)
                .map(|r| r.complete - e.start)
                .min_by(f64::total_cmp),
        })
        .collect()
}

/// The p99 latency of one kind of operation away from faults (none active, none healed in
/// the last second), before the first fault that hit the leader and after it: the tail must
/// come back down once leadership has moved.
#[derive(Debug, Clone, Serialize)]
pub struct Tail {
    /// "gets" or "writes" (puts and appends).
    pub ops: String,
    pub before_p99_ms: f64,
    pub before_n: usize,
    pub after_p99_ms: f64,
    pub after_n: usize,
}

/// How long after a fault ends its effects are left out of the fault-free tail.
pub const SETTLE_S: f64 = 1.0;

pub fn tail(history: &[OpRecord], nemesis: &[NemesisEvent]) -> Vec<Tail> {
    let Some(first) = nemesis
        .iter()
        .filter(|e| e.leader)
        .map(|e| e.start)
        .min_by(f64::total_cmp)
    else {
        return Vec::new();
    };
    let quiet = |r: &OpRecord| {
        !nemesis.iter().any(|e| {
            let end = e.end.unwrap_or(f64::INFINITY) + SETTLE_S;
            e.start <= r.complete && r.invoke <= end
        })
    };
    let p99 = |gets: bool, before: bool| {
        let mut l: Vec<f64> = history
            .iter()
            .filter(|r| r.ok && !r.final_read && (r.op == Op::Get) == gets && quiet(r))
            .filter(|r| (r.invoke < first) == before)
            .map(|r| (r.complete - r.invoke) * 1000.0)
            .collect();
        l.sort_by(f64::total_cmp);
        (percentile(&l, 0.99), l.len())
    };
    [("gets", true), ("writes", false)]
        .into_iter()
        .map(|(name, gets)| {
            let (before_p99_ms, before_n) = p99(gets, true);
            let (after_p99_ms, after_n) = p99(gets, false);
            Tail {
                ops: name.to_owned(),
                before_p99_ms,
                before_n,
                after_p99_ms,
                after_n,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::nemesis::FaultKind;

    fn op(op: Op, invoke: f64, complete: f64) -> OpRecord {
        OpRecord {
            process: 0,
            client: 0,
            op,
            key: "k".into(),
            value: String::new(),
            invoke,
            complete,
            ok: true,
            read: None,
            final_read: false,
            error: None,
        }
    }

    fn fault(leader: bool, start: f64, end: f64) -> NemesisEvent {
        NemesisEvent {
            kind: FaultKind::Pause,
            what: format!("SIGSTOP at {start}"),
            nodes: vec![0],
            leader,
            start,
            end: Some(end),
            trouble: None,
        }
    }

    #[test]
    fn service_is_back_with_the_first_acknowledged_operation_invoked_after_a_leader_fault() {
        let history = vec![
            op(Op::Put, 0.9, 1.2),  // invoked before the fault
            op(Op::Get, 1.1, 1.45), // the first invoked after it
            op(Op::Put, 1.05, 1.5),
        ];
        let outages = leader_outages(&history, &[fault(false, 0.5, 0.6), fault(true, 1.0, 3.0)]);
        assert_eq!(outages.len(), 1, "only the leader's fault counts");
        let back = outages[0].back_after.expect("back");
        assert!((back - 0.45).abs() < 1e-9, "{back}");
        let none = leader_outages(&[op(Op::Put, 0.1, 0.2)], &[fault(true, 1.0, 2.0)]);
        assert_eq!(none[0].back_after, None);
    }

    #[test]
    fn the_tail_leaves_out_operations_near_a_fault() {
        let mut history = vec![op(Op::Get, 0.1, 0.101)];
        // Slow during the fault and the second after it heals: left out.
        history.push(op(Op::Get, 2.5, 2.9));
        history.push(op(Op::Get, 3.5, 3.9));
        // Fault-free after it.
        history.push(op(Op::Get, 5.0, 5.002));
        history.push(op(Op::Put, 5.0, 5.003));
        let t = tail(&history, &[fault(true, 2.0, 3.0)]);
        let gets = &t[0];
        assert_eq!(
            (gets.ops.as_str(), gets.before_n, gets.after_n),
            ("gets", 1, 1)
        );
        assert!((gets.before_p99_ms - 1.0).abs() < 1e-6, "{gets:?}");
        assert!((gets.after_p99_ms - 2.0).abs() < 1e-6, "{gets:?}");
        assert_eq!((t[1].ops.as_str(), t[1].after_n), ("writes", 1));
        assert!(
            tail(&history, &[fault(false, 2.0, 3.0)]).is_empty(),
            "no leader fault"
        );
    }
}
