//! Throughput of `DiskStorage::save` (one write and one fsync each) with 1 and 64 entries of
//! 100 bytes per save, against raw fsyncs on the same filesystem.
//!
//! `cargo bench -p cluster --bench wal` (set TMPDIR to measure another disk).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use cluster::storage::{DiskStorage, Update};
use raft::{Entry, LogIndex, NodeId, Term};

const COMMAND: usize = 100;

#[allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall-clock time; it is not part of a simulated run"
)]
fn now() -> Instant {
    Instant::now()
}

fn per_second(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn bench_saves(dir: &Path, per_save: usize, saves: u64) -> Result<(), Box<dyn std::error::Error>> {
    let _ = fs::remove_dir_all(dir);
    let mut disk = DiskStorage::open(dir)?;
    let batch: Vec<Entry> = (0..per_save)
        .map(|i| Entry::new(Term(1), vec![i as u8; COMMAND]))
        .collect();
    let mut next = 1u64;
    let start = now();
    for _ in 0..saves {
        disk.save_update(&Update {
            term: Term(1),
            voted_for: Some(NodeId(0)),
            entries_from: Some(LogIndex(next)),
            entries: &batch,
            ..Update::default()
        })?;
        next += per_save as u64;
    }
    let elapsed = start.elapsed();
    println!(
        "save, {per_save:>2} entr{} of {COMMAND} B: {:>8.0} saves/s, {:>9.0} entries/s ({:.1} us/save, WAL {} KiB)",
        if per_save == 1 { "y " } else { "ies" },
        per_second(saves, elapsed),
        per_second(saves * per_save as u64, elapsed),
        elapsed.as_secs_f64() * 1e6 / saves as f64,
        disk.stats().wal_bytes / 1024,
    );
    Ok(())
}

fn bench_fsync(dir: &Path, n: u64) -> Result<(), Box<dyn std::error::Error>> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("raw"))?;
    let record = [0u8; COMMAND];
    let start = now();
    for _ in 0..n {
        f.write_all(&record)?;
        f.sync_data()?;
    }
    let elapsed = start.elapsed();
    println!(
        "raw append + fdatasync of {COMMAND} B:     {:>8.0} fsyncs/s ({:.1} us each)",
        per_second(n, elapsed),
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; there is nothing to select.
    let dir = std::env::temp_dir().join(format!("raftlab-wal-bench-{}", std::process::id()));
    println!("directory: {}", dir.display());
    let result = (|| {
        bench_fsync(&dir, 5000)?;
        bench_saves(&dir, 1, 5000)?;
        bench_saves(&dir, 64, 2000)?;
        Ok(())
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}
