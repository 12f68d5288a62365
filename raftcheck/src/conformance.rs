//! A conformance suite for [`raft::Storage`] implementations: any store, the write-ahead log,
//! the labs' persister or three small stores ([`raft::stores`]), must give back exactly what
//! the Raft core saved.
//!
//! [`check_storage`] runs a scenario on three cores (the scenario language of
//! `raft/testdata`) in which node 3 goes through every kind of save: term and vote changes,
//! appends, a truncation of a conflicting suffix, a compaction of its own, a snapshot installed
//! by the leader, and a crash and restart. Every save of node 3 also goes to the store under
//! test, which is then closed and opened again (`reopen`), as after a crash, and must load the
//! same term, vote, log (snapshot index and term, entries) and snapshot as the core's own copy
//! of its state.

use std::sync::{Arc, Mutex};

use raft::persist::decode;
use raft::{HardState, Persist, Storage};

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
    let u = under.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = &u.error {
        return Err(e.clone());
    }
    Ok(u.checked)
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
