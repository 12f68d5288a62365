//! The safety monitors of a simulated test run.
//!
//! Every Raft group a tester builds gets a [`raftcheck::SharedMonitor`] from [`monitor`], given
//! to each of its nodes' drivers as their observer: it sees every step of every node and
//! judges Raft's invariants there (see `raftcheck::monitor`). The first violation of the run
//! stops the test at that virtual instant ([`crate::sim_test`] waits for it beside the test
//! body), with the property, the nodes, the group, the virtual time and the seed. Nothing in the
//! code under test can turn this off: the monitor is built and wired by the tester.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use raftcheck::SharedMonitor;
use tokio::sync::Notify;

/// What the monitors of one run report to the test.
#[derive(Default)]
pub struct RunSafety {
    seed: u64,
    first: Mutex<Option<String>>,
    alarm: Notify,
}

impl RunSafety {
    pub fn new(seed: u64) -> Arc<RunSafety> {
        Arc::new(RunSafety {
            seed,
            ..RunSafety::default()
        })
    }

    /// The first violation of the run, as the test reports it.
    pub fn violation(&self) -> Option<String> {
        self.first.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Completes at the run's first violation (at once if it already happened).
    pub async fn violated(&self) -> String {
        loop {
            let notified = self.alarm.notified();
            if let Some(v) = self.violation() {
                return v;
            }
            notified.await;
        }
    }

    fn report(&self, group: &str, violation: &raftcheck::Violation) {
        let t = labrpc::sim::now_micros();
        let msg = format!(
            "{violation} [Raft group {group}, at {}.{:06}s of virtual time, seed {}]",
            t / 1_000_000,
            t % 1_000_000,
            self.seed
        );
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            eprintln!("{msg}");
            *first = Some(msg);
            self.alarm.notify_waiters();
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<RunSafety>>> = const { RefCell::new(None) };
}

/// Makes `run` the current run's safety report for this thread (a simulation is one thread)
/// until the guard is dropped.
pub fn install(run: Arc<RunSafety>) -> impl Drop {
    struct Guard(Option<Arc<RunSafety>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    Guard(CURRENT.with(|c| c.borrow_mut().replace(run)))
}

/// A monitor for one Raft group (named in its reports), reporting to the current run. Outside
/// a run it still records; the testers also check it at their own checkpoints.
pub fn monitor(group: &str) -> SharedMonitor {
    let run = CURRENT
        .with(|c| c.borrow().clone())
        .unwrap_or_else(|| RunSafety::new(0));
    let group = group.to_string();
    SharedMonitor::new(move |v| run.report(&group, v))
}

/// Driver options that make `monitor` watch the node.
pub fn observed(monitor: &SharedMonitor) -> raft::Options {
    raft::Options {
        observer: Some(Arc::new(monitor.clone())),
        ..raft::Options::default()
    }
}

/// Panics with the monitor's violation, if it saw one (a tester's checkpoint).
pub fn check(monitor: &SharedMonitor, group: &str) {
    if let Some(v) = monitor.violation() {
        panic!("{v} [Raft group {group}]");
    }
}
