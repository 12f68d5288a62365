//! The labs' `Persister`: where a Raft node keeps its state and its snapshot "on disk".
//!
//! Both are saved together, atomically, as the original's `Save(raftstate, snapshot)`. The tester
//! gives a restarted node a [`Persister::copy`] of its old persister, so a killed instance that is
//! still running somewhere cannot overwrite what the new instance starts from.

use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default, Clone)]
struct Saved {
    raft_state: Arc<Vec<u8>>,
    snapshot: Arc<Vec<u8>>,
}

/// In-memory persistent storage for one node. Clones share the same storage.
#[derive(Clone, Default)]
pub struct Persister {
    saved: Arc<Mutex<Saved>>,
}

impl Persister {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Saved> {
        self.saved.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new persister holding the same contents, independent from now on.
    pub fn copy(&self) -> Persister {
        Persister {
            saved: Arc::new(Mutex::new(self.lock().clone())),
        }
    }

    /// Saves Raft state and snapshot together, atomically.
    pub fn save(&self, raft_state: Vec<u8>, snapshot: Vec<u8>) {
        let mut s = self.lock();
        s.raft_state = Arc::new(raft_state);
        s.snapshot = Arc::new(snapshot);
    }

    /// [`Persister::save`] with a snapshot the caller shares (no copy of its bytes).
    pub fn save_shared(&self, raft_state: Vec<u8>, snapshot: Arc<Vec<u8>>) {
        let mut s = self.lock();
        s.raft_state = Arc::new(raft_state);
        s.snapshot = snapshot;
    }

    /// Saves Raft state and keeps the current snapshot (it did not change).
    pub fn save_raft_state(&self, raft_state: Vec<u8>) {
        self.lock().raft_state = Arc::new(raft_state);
    }

    pub fn read_raft_state(&self) -> Vec<u8> {
        self.lock().raft_state.as_ref().clone()
    }

    pub fn read_snapshot(&self) -> Vec<u8> {
        self.lock().snapshot.as_ref().clone()
    }

    pub fn raft_state_size(&self) -> usize {
        self.lock().raft_state.len()
    }

    pub fn snapshot_size(&self) -> usize {
        self.lock().snapshot.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_is_atomic_and_copy_is_independent() {
        let p = Persister::new();
        assert_eq!(p.raft_state_size(), 0);
        p.save(vec![1, 2, 3], vec![9; 10]);
        assert_eq!(p.read_raft_state(), vec![1, 2, 3]);
        assert_eq!(p.snapshot_size(), 10);
        let q = p.copy();
        p.save(vec![4], vec![]);
        assert_eq!(
            q.read_raft_state(),
            vec![1, 2, 3],
            "copy must not see later saves"
        );
        assert_eq!(q.read_snapshot(), vec![9; 10]);
        assert_eq!(p.read_snapshot(), Vec::<u8>::new());
        p.save_raft_state(vec![5, 6]);
        assert_eq!(p.raft_state_size(), 2);
        assert_eq!(p.snapshot_size(), 0);
        let shared = p.clone();
        shared.save_raft_state(vec![7]);
        assert_eq!(p.read_raft_state(), vec![7], "clones share storage");
    }

    #[test]
    fn a_shared_snapshot_is_saved_without_a_copy_and_copies_keep_theirs() {
        let p = Persister::new();
        p.save(vec![1], vec![9; 10]);
        let q = p.copy();
        let snap = Arc::new(vec![7u8; 4]);
        p.save_shared(vec![8], snap.clone());
        assert_eq!(
            (p.read_raft_state(), p.read_snapshot()),
            (vec![8], vec![7; 4])
        );
        assert_eq!(Arc::strong_count(&snap), 2, "held, not copied");
        assert_eq!(
            q.read_snapshot(),
            vec![9; 10],
            "a copy keeps its own snapshot"
        );
    }
}
