//! Watching a node from outside: the hooks a safety monitor uses.
//!
//! A driver (the async [`Node`](crate::driver::Node), the scenario runner, the model checker)
//! calls an [`Observer`] at every point where a node's state can change or leave it: when the
//! core is created from storage, before and after every input, when state is saved, and when
//! messages, replies and applied entries are released. The observer sees the core itself, so it
//! can check the paper's invariants at every step rather than sampling them; it lives in the
//! harness, so the code under test cannot switch it off.

use crate::core::{Persist, Persisted, Raft};
use crate::message::Envelope;
use crate::types::NodeId;

/// Receives a node's events, in the order they happen. Every method defaults to doing nothing.
pub trait Observer: Send + Sync + 'static {
    /// The core was just created from what storage holds (first boot or restart).
    fn boot(&self, _core: &Raft) {}
    /// `env` is about to be stepped; `core` is the state it will be stepped in.
    fn before_step(&self, _core: &Raft, _env: &Envelope) {}
    /// An input (a message, a tick, a proposal, a compaction) was handled.
    fn after_input(&self, _core: &Raft) {}
    /// `p` was saved to stable storage, before anything of the same `Ready` is released.
    fn persisted(&self, _node: NodeId, _p: &Persist<'_>) {}
    /// The messages, replies and entries of a `Ready` are leaving the node now.
    fn released(&self, _core: &Raft, _out: &Persisted) {}
}
