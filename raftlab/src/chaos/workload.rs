//! The clients: N concurrent clerks doing puts, appends and linearizable gets over a bounded
//! key set, each operation with a deadline, paced to a total rate and bounded in number. A
//! write that fails or times out is recorded as unknown (Jepsen's `:info`: it may still take
//! effect), and its client continues as a new process, as Jepsen's do. Every written value is
//! a unique token ending in `;` (`P3.17;` for a put, `A3.18;` for an append), so a final
//! value tells which writes it holds.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::client::TcpClerk;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Get,
    Put,
    Append,
}

/// One operation of the history. Times are seconds since the run started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpRecord {
    /// Jepsen's process: a client gets a new one after an operation of unknown outcome.
    pub process: u64,
    pub client: usize,
    pub op: Op,
    pub key: String,
    /// The written value (empty for a get).
    pub value: String,
    pub invoke: f64,
    pub complete: f64,
    /// True: acknowledged (`:ok`); false: unknown outcome (`:info`).
    pub ok: bool,
    /// A get's result.
    pub read: Option<String>,
    /// A final read, made after everything healed and converged.
    #[serde(default)]
    pub final_read: bool,
    /// Why the outcome is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub type History = Arc<Mutex<Vec<OpRecord>>>;

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Workload {
    pub addrs: Vec<SocketAddr>,
    pub clients: usize,
    pub keys: usize,
    /// Operations per second in all (0: as fast as the clients go).
    pub rate: f64,
    pub max_ops: u64,
    pub op_timeout: Duration,
    pub seed: u64,
    pub start: Instant,
}

pub fn key_name(k: usize) -> String {
    format!("k{k}")
}

impl Workload {
    /// Runs the clients until `stop` is set or `max_ops` operations were started; every
    /// operation started finishes (or times out) before this returns.
    pub async fn run(&self, history: History, stop: Arc<AtomicBool>) {
        let started = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for c in 0..self.clients {
            let addrs = self.addrs.clone();
            let history = history.clone();
            let stop = stop.clone();
            let started = started.clone();
            let (clients, keys, max_ops, timeout, start) = (
                self.clients,
                self.keys,
                self.max_ops,
                self.op_timeout,
                self.start,
            );
            let interval = if self.rate > 0.0 {
                Duration::from_secs_f64(self.clients as f64 / self.rate)
            } else {
                Duration::ZERO
            };
            let mut rng = ChaCha8Rng::seed_from_u64(
                self.seed ^ (c as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            );
            tasks.push(tokio::spawn(async move {
                let mut clerk = TcpClerk::new(addrs);
                let mut process = c as u64;
                let mut seq = 0u64;
                // Spread the clients' first operations over one interval.
                let mut next = Instant::now() + interval.mul_f64(c as f64 / clients as f64);
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep_until(next).await;
                    next = (next + interval).max(Instant::now());
                    if started.fetch_add(1, Ordering::Relaxed) >= max_ops {
                        break;
                    }
                    let key = key_name(rng.random_range(0..keys));
                    let roll = rng.random_range(0..100);
                    let op = match roll {
                        0..50 => Op::Get,
                        50..75 => Op::Put,
                        _ => Op::Append,
                    };
                    seq += 1;
                    let value = match op {
                        Op::Get => String::new(),
                        Op::Put => format!("P{c}.{seq};"),
                        Op::Append => format!("A{c}.{seq};"),
                    };
                    let rec = run_op(&mut clerk, process, c, op, key, value, timeout, start).await;
                    let unknown = !rec.ok;
                    lock(&history).push(rec);
                    if unknown {
                        process += clients as u64;
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// One operation with its deadline.
#[allow(clippy::too_many_arguments)]
pub async fn run_op(
    clerk: &mut TcpClerk,
    process: u64,
    client: usize,
    op: Op,
    key: String,
    value: String,
    timeout: Duration,
    start: Instant,
) -> OpRecord {
    let invoke = start.elapsed().as_secs_f64();
    let outcome = match op {
        Op::Get => clerk.get(&key, timeout).await.map(Some),
        Op::Put => clerk.put(&key, &value, timeout).await.map(|()| None),
        Op::Append => clerk.append(&key, &value, timeout).await.map(|()| None),
    };
    let complete = start.elapsed().as_secs_f64();
    let (ok, read, error) = match outcome {
        Ok(read) => (true, read, None),
        // Every failure of a write may hide an attempt that took effect: unknown.
        Err(e) => (false, None, Some(e.to_string())),
    };
    OpRecord {
        process,
        client,
        op,
        key,
        value,
        invoke,
        complete,
        ok,
        read,
        final_read: false,
        error,
    }
}
