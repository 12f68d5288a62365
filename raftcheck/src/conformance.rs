//! A conformance suite for [`raft::Storage`] implementations: any store, the write-ahead log,
//! the labs' persister or three small stores ([`raft::stores`]), must give back exactly what
//! the Raft core saved.
//!
//! [`check_storage`] runs a scenario on three cores (the scenario language of
//! `raft/testdata`) in which node 3 goes through every kind of save: term and vote changes,
//! appends, a truncation of a conflicting suffix, a compaction of its own, a snapshot installed
//! by the leader, and a crash and restart. Every save of node 3 also goes to the store under
//! test, which is then closed and opened again (`reopen`), as after a crash, and must load the
//! same term, vote, log (snapshot index, term and configuration, entries) and snapshot as the
//! core's own copy of its state.
//!
//! Then node 3 goes on alone from what the store holds, as a one-voter cluster: it adds a
//! learner, snapshots past that configuration entry, removes the learner again (an entry after
//! the snapshot) and compacts once more; after each save the store is reopened and compared as
//! above, and finally a core restarted from the store, with a bootstrap configuration that is
//! deliberately wrong, must act on the configuration it had (thesis 4.1: the latest in its log
//! or snapshot).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use raft::persist::decode;
use raft::{
    ConfChange, ConfChangeError, Config, HardState, LogIndex, NodeId, Persist, Raft, Storage,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::scenario::Cluster;

/// The node whose saves go to the store under test.
const NODE: u64 = 3;

/// The scenario: node 3's saves cover every kind of change.
const SCRIPT: &str = "
nodes 3
log 1 1 1 3
log 2 1 1 3
log 3 1 2 2
campaign 1
stabilize
propose 1 a
stabilize
propose 1 b
propose 1 c
stabilize
compact 3 5
partition 1,2 | 3
propose 1 d
propose 1 e
stabilize
compact 1 8
heal
propose 1 f
tick 10 1
stabilize
crash 3
restart 3
propose 1 g
stabilize
";

/// What a conformance run checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Saves of node 3 that went to the store and were loaded back after a reopen.
    pub saves: usize,
    /// Of those, saves that truncated entries the store held.
    pub truncations: usize,
    /// Of those, saves with a snapshot (a compaction or an installed snapshot).
    pub snapshots: usize,
    /// Of those, saves whose snapshot covers a configuration entry.
    pub snapshot_configurations: usize,
}

struct Under<S> {
    store: Option<S>,
    reopen: Box<dyn FnMut(S) -> S + Send>,
    snapshot: Vec<u8>,
    last_index: u64,
    checked: Checked,
    error: Option<String>,
}

/// Runs the suite against the store `open()` makes (empty), closing and reopening it with
/// `reopen` after every save. Returns what was checked, or the first difference.
pub fn check_storage<S: Storage>(
    open: impl FnOnce() -> S,
    reopen: impl FnMut(S) -> S + Send + 'static,
) -> Result<Checked, String> {
    let under = Arc::new(Mutex::new(Under {
        store: Some(open()),
        reopen: Box::new(reopen),
        snapshot: Vec::new(),
        last_index: 0,
        checked: Checked::default(),
        error: None,
    }));
    let seen = under.clone();
    let tee: crate::scenario::Tee = Arc::new(move |id, p: &Persist<'_>| {
        if id != NODE {
            return;
        }
        let mut u = seen.lock().unwrap_or_else(|e| e.into_inner());
        if u.error.is_some() {
            return;
        }
        if let Err(e) = check_one(&mut u, p) {
            u.error = Some(format!("save {}: {e}", u.checked.saves + 1));
        }
    });
    let mut cluster = Cluster::with_tee(tee);
    for line in SCRIPT.lines().map(str::trim).filter(|l| !l.is_empty()) {
        cluster
            .run(line)
            .map_err(|e| format!("the conformance scenario failed at {line:?}: {e}"))?;
    }
    let mut u = under.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = &u.error {
        return Err(e.clone());
    }
    check_configurations(&mut u, &cluster).map_err(|e| format!("configuration part: {e}"))?;
    Ok(u.checked)
}

/// The learner the cluster adds and removes in the configuration part.
const LEARNER: NodeId = NodeId(7);

/// The three nodes go on from where the script left them (copies of the cores), with every
/// message delivered at once: configuration entries, and snapshots of node 3 covering them.
fn check_configurations<S: Storage>(u: &mut Under<S>, cluster: &Cluster) -> Result<(), String> {
    let mut nodes = BTreeMap::new();
    for &id in cluster.ids() {
        let raft = cluster.node(id).ok_or(format!("node {id} is down"))?;
        nodes.insert(id, raft.clone());
    }
    let leader =
        |nodes: &BTreeMap<u64, Raft>| nodes.iter().find(|(_, r)| r.is_leader()).map(|(id, _)| *id);
    for _ in 0..300 {
        if leader(&nodes).is_some() {
            break;
        }
        for raft in nodes.values_mut() {
            raft.tick();
        }
        pump(&mut nodes, u)?;
    }
    let Some(lead) = leader(&nodes) else {
        return Err("no leader".into());
    };
    let change = |nodes: &mut BTreeMap<u64, Raft>, u: &mut Under<S>, c: ConfChange| {
        for _ in 0..10 {
            let raft = nodes.get_mut(&lead).ok_or("the leader is gone")?;
            match raft.change_membership(c.clone()) {
                Ok(_) => return pump(nodes, u),
                Err(ConfChangeError::NotCommittedInTerm | ConfChangeError::InProgress(_)) => {
                    pump(nodes, u)?
                }
                Err(e) => return Err(format!("{c:?} refused: {e}")),
            }
        }
        Err(format!("{c:?} never accepted"))
    };
    let propose = |nodes: &mut BTreeMap<u64, Raft>, u: &mut Under<S>, what: &str| {
        let raft = nodes.get_mut(&lead).ok_or("the leader is gone")?;
        raft.propose(what.as_bytes().to_vec())
            .map_err(|e| format!("propose: {e}"))?;
        pump(nodes, u)
    };
    let compact = |nodes: &mut BTreeMap<u64, Raft>, u: &mut Under<S>| -> Result<(), String> {
        let raft = nodes.get_mut(&NODE).ok_or("node 3 is gone")?;
        let applied = raft.applied_index();
        raft.compact(applied, format!("snapshot@{applied}").into_bytes());
        pump(nodes, u)
    };
    change(&mut nodes, u, ConfChange::AddLearner(LEARNER))?;
    propose(&mut nodes, u, "after the learner")?;
    compact(&mut nodes, u)?;
    change(&mut nodes, u, ConfChange::Remove(LEARNER))?;
    propose(&mut nodes, u, "after the removal")?;
    let node = nodes.get(&NODE).ok_or("node 3 is gone")?;
    if node
        .log()
        .snapshot_membership()
        .is_none_or(|m| !m.learners.contains(&LEARNER))
    {
        return Err(format!(
            "node 3's snapshot does not cover the learner's addition: {:?}",
            node.log().snapshot_membership().map(ToString::to_string)
        ));
    }
    // A restart: the configuration is the log's (the removal), over the snapshot's.
    let restarted = restart(u)?;
    if restarted.membership() != node.membership() {
        return Err(format!(
            "restarted in the configuration {}, was in {}",
            restarted.membership(),
            node.membership()
        ));
    }
    compact(&mut nodes, u)?;
    let node = nodes.get(&NODE).ok_or("node 3 is gone")?;
    let restarted = restart(u)?;
    if restarted.membership() != node.membership()
        || restarted.log().snapshot_membership() != node.log().snapshot_membership()
    {
        return Err(format!(
            "restarted from a snapshot covering the removal in the configuration {}, was in {}",
            restarted.membership(),
            node.membership()
        ));
    }
    Ok(())
}

/// Delivers every message until none is left; node 3's saves are checked.
fn pump<S: Storage>(nodes: &mut BTreeMap<u64, Raft>, u: &mut Under<S>) -> Result<(), String> {
    for _ in 0..100 {
        let mut queue = Vec::new();
        for (id, raft) in nodes.iter_mut() {
            let mut result = Ok(());
            let persisted = raft
                .ready()
                .persist(|p| -> Result<(), ()> {
                    if *id == NODE {
                        if p.snapshot.is_some() && p.snapshot_membership.is_some() {
                            u.checked.snapshot_configurations += 1;
                        }
                        result = check_one(u, p);
                    }
                    Ok(())
                })
                .map_err(|()| "a save failed".to_owned())?;
            result?;
            queue.extend(persisted.messages);
            queue.extend(persisted.replies);
        }
        if queue.is_empty() {
            return Ok(());
        }
        for env in queue {
            if let Some(raft) = nodes.get_mut(&env.to.0) {
                raft.step(env);
            }
        }
    }
    Err("messages never stopped".into())
}

fn check_one<S: Storage>(u: &mut Under<S>, p: &Persist<'_>) -> Result<(), String> {
    let expected: HardState = decode(&p.raft_state()).map_err(|e| e.to_string())?;
    if let Some(s) = &p.snapshot {
        u.snapshot = s.as_ref().clone();
        u.checked.snapshots += 1;
    }
    if p.entries_from.is_some_and(|f| f.0 <= u.last_index) {
        u.checked.truncations += 1;
    }
    u.last_index = expected.log.last_index().0;
    let mut store = u
        .store
        .take()
        .ok_or("the store was lost by an earlier reopen")?;
    store.save(p).map_err(|e| format!("save failed: {e}"))?;
    let store = (u.reopen)(store);
    let loaded = store
        .load()
        .map_err(|e| format!("load after reopen failed: {e}"));
    u.store = Some(store);
    let (state, snapshot) = loaded?;
    if state.term != expected.term || state.voted_for != expected.voted_for {
        return Err(format!(
            "loaded term {:?} vote {:?}, saved term {:?} vote {:?}",
            state.term, state.voted_for, expected.term, expected.voted_for
        ));
    }
    let (a, b) = (&state.log, &expected.log);
    if a.snapshot_index() != b.snapshot_index()
        || a.snapshot_term() != b.snapshot_term()
        || a.entries() != b.entries()
    {
        return Err(format!(
            "loaded log after ({:?}, {:?}) with {} entries {:?}, saved after ({:?}, {:?}) with {} entries {:?}",
            a.snapshot_index(),
            a.snapshot_term(),
            a.entries().len(),
            a.entries().iter().map(|e| e.term.0).collect::<Vec<_>>(),
            b.snapshot_index(),
            b.snapshot_term(),
            b.entries().len(),
            b.entries().iter().map(|e| e.term.0).collect::<Vec<_>>(),
        ));
    }
    if a.snapshot_membership() != b.snapshot_membership() {
        return Err(format!(
            "loaded the snapshot's configuration {:?}, saved {:?}",
            a.snapshot_membership().map(ToString::to_string),
            b.snapshot_membership().map(ToString::to_string),
        ));
    }
    if snapshot != u.snapshot {
        return Err(format!(
            "loaded a snapshot of {} bytes, saved {} bytes",
            snapshot.len(),
            u.snapshot.len()
        ));
    }
    u.checked.saves += 1;
    Ok(())
}

/// A core restarted from the store, with a bootstrap configuration the log overrides.
fn restart<S: Storage>(u: &mut Under<S>) -> Result<Raft, String> {
    let store = u.store.as_ref().ok_or("the store was lost")?;
    let (state, snapshot) = store.load().map_err(|e| format!("load failed: {e}"))?;
    if state.log.snapshot_index() == LogIndex(0) {
        return Err("no snapshot to restart from".into());
    }
    let config = Config {
        election_ticks: 5,
        heartbeat_ticks: 2,
        ..Config::lab(NodeId(NODE), vec![NodeId(NODE), NodeId(8), NodeId(9)])
    };
    Ok(Raft::with_state(
        config,
        state,
        snapshot,
        ChaCha8Rng::seed_from_u64(NODE),
    ))
}
