//! DiskStorage: durability across reopen, snapshots, WAL rewrites, torn writes, corruption,
//! crash leftovers, the cluster id, and a random model test.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cluster::storage::{
    self, DiskStorage, Options, SNAPSHOT_FILE, SNAPSHOT_TMP, StorageError, Update, WAL_FILE,
    WAL_TMP,
};
use raft::log::RaftLog;
use raft::{
    ConfChange, ConfChangeError, Config, Entry, HardState, LogIndex, Membership, NodeId, Raft,
    Storage, Term,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A fresh directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("raftlab-storage-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn wal(&self) -> PathBuf {
        self.0.join(WAL_FILE)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn entry(term: u64, command: &str) -> Entry {
    Entry::new(Term(term), command.as_bytes().to_vec())
}

fn open(dir: &TempDir) -> DiskStorage {
    DiskStorage::open(dir.path()).expect("open")
}

fn load(s: &DiskStorage) -> (HardState, Vec<u8>) {
    Storage::load(s).expect("load")
}

fn hard_state(term: u64, vote: Option<u64>, base: (u64, u64), entries: &[Entry]) -> HardState {
    HardState {
        term: Term(term),
        voted_for: vote.map(NodeId),
        log: RaftLog::from_parts(LogIndex(base.0), Term(base.1), entries.to_vec()),
    }
}

fn append<'a>(term: u64, from: u64, entries: &'a [Entry]) -> Update<'a> {
    Update {
        term: Term(term),
        voted_for: Some(NodeId(0)),
        entries_from: Some(LogIndex(from)),
        entries,
        ..Update::default()
    }
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = fs::read(path).expect("read");
    bytes[at as usize] ^= 0x40;
    fs::write(path, bytes).expect("write");
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).expect("metadata").len()
}

#[test]
fn round_trip_of_term_vote_and_log_across_reopen() {
    let dir = TempDir::new("roundtrip");
    {
        let s = open(&dir);
        assert_eq!(load(&s), (HardState::default(), Vec::new()), "fresh dir");
    }
    let log = [entry(1, "a"), entry(1, "b"), entry(2, "c")];
    {
        let mut s = open(&dir);
        s.save_update(&Update {
            term: Term(1),
            voted_for: Some(NodeId(2)),
            ..Update::default()
        })
        .expect("vote");
        s.save_update(&append(2, 1, &log[..2])).expect("append");
        s.save_update(&append(2, 3, &log[2..])).expect("append");
        assert_eq!(load(&s).0, hard_state(2, Some(0), (0, 0), &log));
    }
    let s = open(&dir);
    assert_eq!(load(&s), (hard_state(2, Some(0), (0, 0), &log), Vec::new()));
}

#[test]
fn truncation_and_append_in_the_middle() {
    let dir = TempDir::new("truncate");
    let first: Vec<Entry> = (0..6).map(|i| entry(1, &format!("old{i}"))).collect();
    let second = [entry(3, "new4"), entry(3, "new5")];
    {
        let mut s = open(&dir);
        s.save_update(&append(1, 1, &first)).expect("append");
        // Replace entries 4..=6 by two new ones.
        s.save_update(&append(3, 4, &second))
            .expect("truncate + append");
        // Truncation alone: drop entry 5.
        s.save_update(&append(3, 5, &[])).expect("truncate");
    }
    let s = open(&dir);
    let mut want = first[..3].to_vec();
    want.push(second[0].clone());
    assert_eq!(load(&s).0, hard_state(3, Some(0), (0, 0), &want));
}

#[test]
fn impossible_updates_are_refused_without_writing() {
    let dir = TempDir::new("gap");
    let mut s = open(&dir);
    let before = s.stats();
    let e = [entry(1, "x")];
    let err = s.save_update(&append(1, 3, &e)).expect_err("gap");
    assert!(matches!(err, StorageError::Invalid(_)), "{err}");
    assert_eq!(s.stats(), before);
    // Compacting without a snapshot to cover the compacted entries.
    let err = s
        .save_update(&Update {
            snapshot_index: LogIndex(1),
            snapshot_term: Term(1),
            ..append(1, 1, &e)
        })
        .expect_err("no snapshot");
    assert!(matches!(err, StorageError::Invalid(_)), "{err}");
    assert_eq!(s.stats(), before);
    s.save_update(&append(1, 1, &e))
        .expect("still usable after a refused update");
}

#[test]
fn snapshot_and_compaction_across_reopen() {
    let dir = TempDir::new("snapshot");
    let log: Vec<Entry> = (1..=10)
        .map(|i| entry(i / 4 + 1, &format!("c{i}")))
        .collect();
    {
        let mut s = open(&dir);
        s.save_update(&append(3, 1, &log)).expect("append");
        // Snapshot through 6 (term 2): entries 7..=10 stay.
        s.save_update(&Update {
            term: Term(3),
            voted_for: Some(NodeId(0)),
            snapshot: Some(Arc::new(b"state@6".to_vec())),
            snapshot_index: LogIndex(6),
            snapshot_term: Term(2),
            ..Update::default()
        })
        .expect("snapshot");
        let more = [entry(3, "c11")];
        s.save_update(&Update {
            snapshot_index: LogIndex(6),
            snapshot_term: Term(2),
            ..append(3, 11, &more)
        })
        .expect("append after the snapshot");
    }
    let mut want = log[6..].to_vec();
    want.push(entry(3, "c11"));
    {
        let s = open(&dir);
        assert_eq!(
            load(&s),
            (hard_state(3, Some(0), (6, 2), &want), b"state@6".to_vec())
        );
    }
    // A snapshot from a leader that conflicts with the log replaces all of it (the core then
    // says the log is replaced from index + 1 by nothing).
    {
        let mut s = open(&dir);
        s.save_update(&Update {
            term: Term(5),
            voted_for: None,
            entries_from: Some(LogIndex(10)),
            entries: &[],
            snapshot: Some(Arc::new(b"state@9".to_vec())),
            snapshot_index: LogIndex(9),
            snapshot_term: Term(5),
            snapshot_membership: None,
        })
        .expect("installed snapshot");
    }
    let s = open(&dir);
    assert_eq!(
        load(&s),
        (hard_state(5, None, (9, 5), &[]), b"state@9".to_vec())
    );
}

#[test]
fn wal_rewrite_keeps_state() {
    let dir = TempDir::new("rewrite");
    let log: Vec<Entry> = (1..=50).map(|i| entry(1, &"x".repeat(i))).collect();
    let want;
    {
        let mut s = open(&dir);
        // Many overlapping rewrites of the same suffix make a WAL much larger than the log.
        for round in 0..20u64 {
            s.save_update(&append(round + 1, 1, &log)).expect("save");
        }
        want = load(&s);
        let big = file_len(&dir.wal());
        s.rewrite_wal().expect("rewrite");
        let small = file_len(&dir.wal());
        assert!(
            small * 10 < big,
            "rewrite shrinks the WAL: {big} -> {small}"
        );
        assert_eq!(load(&s), want);
        // Appends go to the new file.
        s.save_update(&append(21, 51, &[entry(21, "after")]))
            .expect("save after rewrite");
    }
    let s = open(&dir);
    let mut want_log = log.clone();
    want_log.push(entry(21, "after"));
    assert_eq!(load(&s).0, hard_state(21, Some(0), (0, 0), &want_log));
    assert!(!dir.path().join(WAL_TMP).exists());
}

#[test]
fn wal_is_rewritten_automatically_when_it_outgrows_the_state() {
    let dir = TempDir::new("autorewrite");
    let options = Options {
        rewrite_min_bytes: 4096,
        rewrite_ratio: 2,
    };
    let log: Vec<Entry> = (1..=20).map(|i| entry(1, &format!("entry{i}"))).collect();
    let mut s = DiskStorage::open_with(dir.path(), options).expect("open");
    for round in 0..200u64 {
        s.save_update(&append(round + 1, 1, &log)).expect("save");
    }
    assert!(s.stats().rewrites > 1, "{:?}", s.stats());
    assert!(file_len(&dir.wal()) < 8192, "{:?}", s.stats());
    let want = load(&s);
    drop(s);
    let s = DiskStorage::open_with(dir.path(), options).expect("reopen");
    assert_eq!(load(&s), want);
}

/// Three saves; returns the WAL length before the last one and the state before it.
fn three_saves(dir: &TempDir) -> (u64, HardState) {
    let mut s = open(dir);
    s.save_update(&append(1, 1, &[entry(1, "one")]))
        .expect("save 1");
    s.save_update(&append(1, 2, &[entry(1, "two")]))
        .expect("save 2");
    let before = s.stats().wal_bytes;
    let state = load(&s).0;
    s.save_update(&append(2, 3, &[entry(2, "three"), entry(2, "four")]))
        .expect("save 3");
    assert_eq!(file_len(&dir.wal()), s.stats().wal_bytes);
    (before, state)
}

/// After a torn final frame: the state before it, the file cut there, and later saves
/// appended after the cut.
fn check_repaired(dir: &TempDir, cut: u64, before: HardState) {
    {
        let mut s = open(dir);
        assert_eq!(load(&s).0, before);
        assert_eq!(
            file_len(&dir.wal()),
            cut,
            "file truncated at the torn frame"
        );
        s.save_update(&append(4, 3, &[entry(4, "again")]))
            .expect("save after repair");
        assert_eq!(s.stats().rewrites, 0, "appended, not rewritten");
    }
    let s = open(dir);
    let (hs, _) = load(&s);
    assert_eq!(hs.term, Term(4));
    assert_eq!(hs.log.entries().len(), 3);
    assert_eq!(hs.log.entries()[2], entry(4, "again"));
}

#[test]
fn torn_last_frame_cut_short_is_truncated() {
    // Inside the final frame's header, and inside its payload.
    for drop_bytes in [3, 15] {
        let dir = TempDir::new(&format!("torn-cut-{drop_bytes}"));
        let (cut, before) = three_saves(&dir);
        let len = file_len(&dir.wal());
        OpenOptions::new()
            .write(true)
            .open(dir.wal())
            .and_then(|f| f.set_len(len - drop_bytes))
            .expect("cut");
        check_repaired(&dir, cut, before);
    }
}

#[test]
fn torn_last_frame_with_a_flipped_byte_is_truncated() {
    // In the payload, the payload checksum, and the length of the final frame.
    for (name, at) in [("payload", None), ("crc", Some(5)), ("len", Some(0))] {
        let dir = TempDir::new(&format!("torn-flip-{name}"));
        let (cut, before) = three_saves(&dir);
        let at = at.map_or(file_len(&dir.wal()) - 1, |k| cut + k);
        flip_byte(&dir.wal(), at);
        check_repaired(&dir, cut, before);
    }
}

#[test]
fn corruption_in_the_middle_names_the_file_and_offset() {
    // In the second frame's payload, and in its length field.
    for (name, delta) in [("payload", 14), ("len", 1)] {
        let dir = TempDir::new(&format!("corrupt-{name}"));
        let second_frame;
        {
            let mut s = open(&dir);
            s.save_update(&append(1, 1, &[entry(1, "one")]))
                .expect("save 1");
            second_frame = s.stats().wal_bytes;
            s.save_update(&append(1, 2, &[entry(1, "two")]))
                .expect("save 2");
            s.save_update(&append(1, 3, &[entry(1, "three")]))
                .expect("save 3");
        }
        let len = file_len(&dir.wal());
        flip_byte(&dir.wal(), second_frame + delta);
        let err = DiskStorage::open(dir.path()).expect_err("corrupt WAL must not open");
        match &err {
            StorageError::Corrupt { path, offset, .. } => {
                assert_eq!(path, &dir.wal());
                assert_eq!(*offset, second_frame);
            }
            other => panic!("{name}: expected Corrupt, got {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(&dir.wal().display().to_string()), "{msg}");
        assert!(msg.contains(&format!("offset {second_frame}")), "{msg}");
        assert_eq!(file_len(&dir.wal()), len, "nothing was cut");
        // Through the trait boundary the message keeps file and offset.
        let persist: raft::PersistError = err.into();
        assert!(
            persist
                .to_string()
                .contains(&format!("offset {second_frame}"))
        );
    }
}

#[test]
fn corrupt_snapshot_file_names_it() {
    let dir = TempDir::new("corrupt-snapshot");
    {
        let mut s = open(&dir);
        s.save_update(&append(1, 1, &[entry(1, "a"), entry(1, "b")]))
            .expect("append");
        s.save_update(&Update {
            term: Term(1),
            voted_for: Some(NodeId(0)),
            snapshot: Some(Arc::new(vec![7; 100])),
            snapshot_index: LogIndex(2),
            snapshot_term: Term(1),
            ..Update::default()
        })
        .expect("snapshot");
    }
    let snap = dir.path().join(SNAPSHOT_FILE);
    flip_byte(&snap, file_len(&snap) - 10);
    let err = DiskStorage::open(dir.path()).expect_err("corrupt snapshot must not open");
    assert!(
        matches!(&err, StorageError::Corrupt { path, .. } if path == &snap),
        "{err}"
    );
    assert!(
        err.to_string().contains(&snap.display().to_string()),
        "{err}"
    );
}

#[test]
fn leftover_temporary_files_are_ignored_and_removed() {
    let dir = TempDir::new("leftovers");
    let want;
    {
        let mut s = open(&dir);
        s.save_update(&append(1, 1, &[entry(1, "a")]))
            .expect("save");
        want = load(&s);
    }
    fs::write(dir.path().join(WAL_TMP), b"half a wal").expect("write");
    fs::write(dir.path().join(SNAPSHOT_TMP), b"half a snapshot").expect("write");
    let s = open(&dir);
    assert_eq!(load(&s), want);
    assert!(!dir.path().join(WAL_TMP).exists());
    assert!(!dir.path().join(SNAPSHOT_TMP).exists());
}

#[test]
fn crash_after_snapshot_rename_before_wal_rewrite() {
    let dir = TempDir::new("snapshot-newer");
    let log: Vec<Entry> = (1..=8).map(|i| entry(1, &format!("c{i}"))).collect();
    let old_wal;
    {
        let mut s = open(&dir);
        s.save_update(&append(1, 1, &log)).expect("append");
        old_wal = fs::read(dir.wal()).expect("read");
        s.save_update(&Update {
            term: Term(1),
            voted_for: Some(NodeId(0)),
            snapshot: Some(Arc::new(b"s5".to_vec())),
            snapshot_index: LogIndex(5),
            snapshot_term: Term(1),
            ..Update::default()
        })
        .expect("snapshot");
    }
    // The WAL as it was before the save: the snapshot file is newer than the WAL's base.
    fs::write(dir.wal(), &old_wal).expect("restore");
    {
        let mut s = open(&dir);
        assert_eq!(
            load(&s),
            (hard_state(1, Some(0), (5, 1), &log[5..]), b"s5".to_vec())
        );
        // Later saves extend the compacted log, and survive another reopen.
        s.save_update(&Update {
            snapshot_index: LogIndex(5),
            snapshot_term: Term(1),
            ..append(1, 9, &[entry(1, "c9")])
        })
        .expect("append");
    }
    let s = open(&dir);
    let mut want = log[5..].to_vec();
    want.push(entry(1, "c9"));
    assert_eq!(load(&s).0, hard_state(1, Some(0), (5, 1), &want));
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = TempDir::new("lock");
    let _s = open(&dir);
    let err = DiskStorage::open(dir.path()).expect_err("locked");
    assert!(matches!(err, StorageError::Locked { .. }), "{err}");
}

#[test]
fn cluster_id_round_trip() {
    let dir = TempDir::new("cluster-id");
    assert_eq!(storage::read_cluster_id(dir.path()).expect("read"), None);
    storage::write_cluster_id(dir.path(), 0xdead_beef_0123_4567).expect("write");
    assert_eq!(
        storage::read_cluster_id(dir.path()).expect("read"),
        Some(0xdead_beef_0123_4567)
    );
    storage::write_cluster_id(dir.path(), 7).expect("overwrite");
    assert_eq!(storage::read_cluster_id(dir.path()).expect("read"), Some(7));
    assert!(!dir.path().join("cluster-id.tmp").exists());
    fs::write(dir.path().join(storage::CLUSTER_ID_FILE), "zzz\n").expect("write");
    let err = storage::read_cluster_id(dir.path()).expect_err("garbage");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
}

/// Node 0 with short timeouts (elections within tens of ticks) and bootstrap peers `peers`.
fn fast_config(peers: Vec<NodeId>) -> Config {
    Config {
        election_ticks: 5,
        heartbeat_ticks: 2,
        ..Config::lab(NodeId(0), peers)
    }
}

/// A fresh single-node cluster saving to `disk`, ticked until it elects itself.
fn single_node_leader(disk: &mut DiskStorage) -> Raft {
    let mut raft = Raft::with_state(
        fast_config(vec![NodeId(0)]),
        HardState::default(),
        Vec::new(),
        ChaCha8Rng::seed_from_u64(7),
    );
    for _ in 0..100 {
        raft.tick();
        raft.ready().persist(|p| disk.save(p)).expect("save");
        if raft.is_leader() {
            break;
        }
    }
    assert!(raft.is_leader());
    raft
}

/// The real core's `Persist`, through the `Storage` trait: a single-node cluster elects itself,
/// commits commands and snapshots; the reopened storage holds exactly the core's state.
#[test]
fn raft_core_state_survives_reopen() {
    let dir = TempDir::new("core");
    let mut disk = open(&dir);
    let mut raft = single_node_leader(&mut disk);
    for i in 0..30u32 {
        raft.propose(format!("cmd{i}").into_bytes())
            .expect("leader");
        if i % 7 == 0 {
            raft.ready().persist(|p| disk.save(p)).expect("save");
        }
    }
    raft.ready().persist(|p| disk.save(p)).expect("save");
    raft.compact(LogIndex(20), b"snap@20".to_vec());
    raft.ready().persist(|p| disk.save(p)).expect("save");
    raft.propose(b"last".to_vec()).expect("leader");
    raft.ready().persist(|p| disk.save(p)).expect("save");
    drop(disk);

    let disk = open(&dir);
    let (hs, snapshot) = load(&disk);
    let status = raft.status();
    assert_eq!(hs.term, status.term);
    assert_eq!(hs.voted_for, status.voted_for);
    assert_eq!(&hs.log, raft.log());
    assert_eq!(hs.log.snapshot_index(), LogIndex(20));
    assert_eq!(snapshot, b"snap@20".to_vec());
}

/// A single-node cluster adds a learner, snapshots past that configuration entry and goes on;
/// a core restarted from the reopened directory, with another bootstrap configuration, is in
/// the configuration the snapshot covers. Then a removal after the snapshot: the log's wins.
#[test]
fn restart_with_a_snapshot_past_a_configuration_change_keeps_the_configuration() {
    let dir = TempDir::new("membership");
    let mut disk = open(&dir);
    let mut raft = single_node_leader(&mut disk);
    let change = |raft: &mut Raft, disk: &mut DiskStorage, c: ConfChange| {
        for _ in 0..10 {
            match raft.change_membership(c.clone()) {
                Ok(_) => break,
                Err(ConfChangeError::NotCommittedInTerm | ConfChangeError::InProgress(_)) => {}
                Err(e) => panic!("{c:?}: {e}"),
            }
            raft.ready().persist(|p| disk.save(p)).expect("save");
        }
        raft.ready().persist(|p| disk.save(p)).expect("save");
    };
    change(&mut raft, &mut disk, ConfChange::AddLearner(NodeId(4)));
    raft.propose(b"x".to_vec()).expect("leader");
    raft.ready().persist(|p| disk.save(p)).expect("save");
    let applied = raft.status().applied;
    raft.compact(applied, b"snap".to_vec());
    raft.ready().persist(|p| disk.save(p)).expect("save");
    let want = Membership {
        learners: [NodeId(4)].into(),
        ..Membership::voters([NodeId(0)])
    };
    assert_eq!(raft.log().snapshot_membership(), Some(&want));
    drop(disk);

    let restart = |disk: &DiskStorage| {
        let (hs, snapshot) = load(disk);
        // A bootstrap configuration the snapshot must override.
        Raft::with_state(
            fast_config(vec![NodeId(0), NodeId(1), NodeId(2)]),
            hs,
            snapshot,
            ChaCha8Rng::seed_from_u64(8),
        )
    };
    let mut disk = open(&dir);
    let back = restart(&disk);
    assert_eq!(back.log().snapshot_membership(), Some(&want));
    assert_eq!(back.membership(), &want);
    assert_eq!(back.log(), raft.log());

    change(&mut raft, &mut disk, ConfChange::Remove(NodeId(4)));
    drop(disk);
    let disk = open(&dir);
    let back = restart(&disk);
    assert_eq!(back.membership(), &Membership::voters([NodeId(0)]));
    assert_eq!(back.log().snapshot_membership(), Some(&want));
}

#[test]
fn a_snapshot_file_with_a_damaged_configuration_is_corrupt() {
    let dir = TempDir::new("bad-conf");
    let m = Membership::voters([NodeId(0), NodeId(1)]);
    {
        let mut s = open(&dir);
        s.save_update(&append(1, 1, &[entry(1, "a")]))
            .expect("append");
        s.save_update(&Update {
            term: Term(1),
            voted_for: Some(NodeId(0)),
            snapshot: Some(Arc::new(b"data".to_vec())),
            snapshot_index: LogIndex(1),
            snapshot_term: Term(1),
            snapshot_membership: Some(&m),
            ..Update::default()
        })
        .expect("snapshot");
    }
    assert_eq!(load(&open(&dir)).0.log.snapshot_membership(), Some(&m));
    // A configuration that is not one (a node both voter and learner), with a valid checksum.
    let snap = dir.path().join(SNAPSHOT_FILE);
    let bytes = fs::read(&snap).expect("read");
    let conf_len = u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes")) as usize;
    let bad = Membership {
        learners: [NodeId(1)].into(),
        ..m.clone()
    }
    .encode();
    let mut out = bytes[..40].to_vec();
    out[24..28].copy_from_slice(&(bad.len() as u32).to_le_bytes());
    out.extend_from_slice(&bad);
    out.extend_from_slice(&bytes[40 + conf_len..]);
    let mut h = crc32fast::Hasher::new();
    h.update(&out[8..36]);
    h.update(&out[40..]);
    out[36..40].copy_from_slice(&h.finalize().to_le_bytes());
    fs::write(&snap, &out).expect("write");
    let err = DiskStorage::open(dir.path()).expect_err("a bad configuration must not open");
    assert!(
        matches!(&err, StorageError::Corrupt { path, offset: 40, .. } if path == &snap),
        "{err}"
    );
    // And a changed byte without a new checksum is caught by the checksum.
    fs::write(&snap, &bytes).expect("write");
    flip_byte(&snap, 41);
    assert!(matches!(
        DiskStorage::open(dir.path()),
        Err(StorageError::Corrupt { .. })
    ));
}

/// The same semantics as DiskStorage, kept plainly in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    term: u64,
    vote: Option<u64>,
    base: u64,
    base_term: u64,
    log: Vec<Entry>,
    snapshot: Vec<u8>,
}

impl Model {
    fn last(&self) -> u64 {
        self.base + self.log.len() as u64
    }

    fn term_at(&self, i: u64) -> Option<u64> {
        if i == self.base {
            return Some(self.base_term);
        }
        if i < self.base || i > self.last() {
            return None;
        }
        Some(self.log[(i - self.base - 1) as usize].term.0)
    }

    fn apply(&mut self, op: &Op) {
        self.term = op.term;
        self.vote = op.vote;
        if let Some(s) = &op.snapshot {
            self.snapshot = s.as_ref().clone();
        }
        if op.snapshot_index > self.base {
            if self.term_at(op.snapshot_index) == Some(op.snapshot_term) {
                self.log.drain(..(op.snapshot_index - self.base) as usize);
            } else {
                self.log.clear();
            }
            self.base = op.snapshot_index;
            self.base_term = op.snapshot_term;
        }
        if let Some(from) = op.entries_from {
            self.log.truncate((from - self.base - 1) as usize);
            self.log.extend(op.entries.iter().cloned());
        }
    }

    fn expected(&self) -> (HardState, Vec<u8>) {
        (
            hard_state(self.term, self.vote, (self.base, self.base_term), &self.log),
            self.snapshot.clone(),
        )
    }
}

/// An owned `Update`.
#[derive(Clone, Debug)]
struct Op {
    term: u64,
    vote: Option<u64>,
    entries_from: Option<u64>,
    entries: Vec<Entry>,
    snapshot: Option<Arc<Vec<u8>>>,
    snapshot_index: u64,
    snapshot_term: u64,
}

impl Op {
    fn update(&self) -> Update<'_> {
        Update {
            term: Term(self.term),
            voted_for: self.vote.map(NodeId),
            entries_from: self.entries_from.map(LogIndex),
            entries: &self.entries,
            snapshot: self.snapshot.clone(),
            snapshot_index: LogIndex(self.snapshot_index),
            snapshot_term: Term(self.snapshot_term),
            snapshot_membership: None,
        }
    }
}

fn random_entries(rng: &mut ChaCha8Rng, term: u64, max: usize) -> Vec<Entry> {
    let n = rng.random_range(0..=max);
    (0..n)
        .map(|_| {
            let len = rng.random_range(0..48);
            Entry::new(Term(term), (0..len).map(|_| rng.random()).collect())
        })
        .collect()
}

/// A change the core could ask for, given the state `m`.
fn random_op(rng: &mut ChaCha8Rng, m: &Model) -> Op {
    let mut op = Op {
        term: m.term,
        vote: m.vote,
        entries_from: None,
        entries: Vec::new(),
        snapshot: None,
        snapshot_index: m.base,
        snapshot_term: m.base_term,
    };
    if rng.random_bool(0.15) {
        op.term += 1;
        op.vote = rng.random_bool(0.5).then(|| rng.random_range(0..5));
    }
    match rng.random_range(0..10) {
        0 => {} // term and vote only (or nothing at all)
        1..=5 => {
            op.entries_from = Some(m.last() + 1);
            op.entries = random_entries(rng, op.term, 8);
        }
        6 | 7 => {
            op.entries_from = Some(rng.random_range(m.base + 1..=m.last() + 1));
            op.entries = random_entries(rng, op.term, 5);
        }
        _ => {
            let len = rng.random_range(0..64);
            op.snapshot = Some(Arc::new((0..len).map(|_| rng.random()).collect()));
            if m.last() > m.base && rng.random_bool(0.7) {
                // The service's own snapshot of applied entries: the rest of the log stays.
                op.snapshot_index = rng.random_range(m.base + 1..=m.last());
                op.snapshot_term = m.term_at(op.snapshot_index).unwrap_or_default();
            } else {
                // A leader's snapshot that the log does not match: the log is replaced.
                op.snapshot_index = m.last() + rng.random_range(0..4);
                op.snapshot_term = op.term;
                if op.snapshot_index <= m.base {
                    op.snapshot_index = m.base + 1;
                }
                if m.term_at(op.snapshot_index) != Some(op.snapshot_term) {
                    op.entries_from = Some(op.snapshot_index + 1);
                    if rng.random_bool(0.3) {
                        op.entries = random_entries(rng, op.term, 3);
                    }
                }
            }
        }
    }
    op
}

const SMALL: Options = Options {
    rewrite_min_bytes: 2048,
    rewrite_ratio: 2,
};

#[test]
fn random_operations_agree_with_a_model_across_reopens() {
    for seed in 0..8u64 {
        let dir = TempDir::new(&format!("model-{seed}"));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut model = Model::default();
        let mut disk = DiskStorage::open_with(dir.path(), SMALL).expect("open");
        let mut reopens = 0;
        for step in 0..400 {
            let op = random_op(&mut rng, &model);
            disk.save_update(&op.update())
                .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e} ({op:?})"));
            model.apply(&op);
            assert_eq!(load(&disk), model.expected(), "seed {seed} step {step}");
            if rng.random_bool(0.03) {
                disk.rewrite_wal().expect("rewrite");
            }
            if rng.random_bool(0.1) {
                drop(disk);
                reopens += 1;
                disk = DiskStorage::open_with(dir.path(), SMALL).expect("reopen");
                assert_eq!(
                    load(&disk),
                    model.expected(),
                    "seed {seed} step {step}, after reopen"
                );
            }
        }
        assert!(reopens > 10);
        drop(disk);
        let disk = DiskStorage::open_with(dir.path(), SMALL).expect("reopen");
        assert_eq!(load(&disk), model.expected(), "seed {seed} at the end");
    }
}

/// Crashes in the middle of an append, at random points: reopening gives the state before
/// that save, and the storage goes on from there.
#[test]
fn random_torn_appends_lose_exactly_the_last_save() {
    for seed in 100..106u64 {
        let dir = TempDir::new(&format!("crash-{seed}"));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut model = Model::default();
        let mut disk = DiskStorage::open_with(dir.path(), SMALL).expect("open");
        let mut crashes = 0;
        for step in 0..300 {
            let op = random_op(&mut rng, &model);
            let before = disk.stats();
            disk.save_update(&op.update())
                .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
            let after = disk.stats();
            let appended = after.rewrites == before.rewrites && after.wal_bytes > before.wal_bytes;
            if appended && rng.random_bool(0.2) {
                drop(disk);
                crashes += 1;
                let at = rng.random_range(before.wal_bytes..after.wal_bytes);
                if rng.random_bool(0.5) {
                    let f = OpenOptions::new()
                        .write(true)
                        .open(dir.wal())
                        .expect("open wal");
                    f.set_len(at).expect("cut");
                } else {
                    flip_byte(&dir.wal(), at);
                }
                disk = DiskStorage::open_with(dir.path(), SMALL)
                    .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
                assert_eq!(load(&disk), model.expected(), "seed {seed} step {step}");
                assert_eq!(file_len(&dir.wal()), before.wal_bytes);
            } else {
                model.apply(&op);
            }
        }
        assert!(crashes > 5, "seed {seed}: {crashes} crashes");
        drop(disk);
        let disk = DiskStorage::open_with(dir.path(), SMALL).expect("reopen");
        assert_eq!(load(&disk), model.expected(), "seed {seed} at the end");
    }
}
