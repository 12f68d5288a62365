//! How long clients are without service when the leader stops answering: the leader is
//! SIGSTOPped, or cut off from every other node (its clients still reach it), while clients
//! put as fast as they can. A trial's outage is the time from the fault until every client
//! has completed an operation it issued after the fault; `raftlab bench` reports the
//! percentiles over many trials, and `raftlab chaos` the same measure for each leader fault.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use cluster::client::TcpClerk;
use cluster::faults::FaultTable;
use tokio::time::Instant;

use super::nemesis::tables;
use super::nodes::Nodes;
use super::workload::lock;

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
        LeaderFault::Isolate => {
            for i in 0..nodes.len() {
                let _ = nodes.set_faults(i, FaultTable::default()).await;
            }
        }
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
