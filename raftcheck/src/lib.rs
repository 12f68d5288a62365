//! Checks for Raft that live outside the code under test.
//!
//! - [`monitor`]: the safety monitor. It watches every step of every node of a group (through
//!   [`raft::Observer`] in the async driver, or directly in the runners below) and reports the
//!   first broken invariant: Election Safety, Log Matching, Leader Completeness, State Machine
//!   Safety, monotonic terms and indices, one vote per term, the election restriction, the
//!   commitment rule, persistence before replying, and honest acknowledgements.
//! - [`rules`]: the rule monitor, run by the safety monitor beside its invariants: every rule of
//!   Figure 2, Figure 13 and the thesis's extensions that applies to a step (timers, the term
//!   rule for requests and replies, the exact commit rules, votes and pre-votes, check-quorum,
//!   transfers, reads, membership), judged at that step.
//! - [`scenario`]: the scenario-script language of `raft/testdata` (commands with golden
//!   output), run over an in-memory network where nothing moves unless the script says so, with
//!   the monitor watching.
//! - [`search`]: a breadth-first model checker over the pure core: every interleaving of
//!   deliveries, drops, duplications, timeouts, proposals, crashes and restarts within bounds,
//!   the monitor judging every state; a violation comes back as the shortest scenario script
//!   that reproduces it.

pub mod conformance;
pub mod monitor;
pub mod rules;
pub mod scenario;
pub mod search;

pub use monitor::{Monitor, Property, SharedMonitor, Violation};
