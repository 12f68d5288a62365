//! Watching a node from outside: the hooks a safety monitor uses.
//!
//! A driver (the async [`Node`](crate::driver::Node), the scenario runner, the model checker)
//! calls an [`Observer`] at every point where a node's state can change or leave it: when the
//! core is created from storage, before and after every input, when state is saved, and when
//! messages, replies and applied entries are released. The observer sees the core itself, so it
//! can check the paper's invariants and rules at every step rather than sampling them; it lives
//! in the harness, so the code under test cannot switch it off.

use crate::configuration::ConfChange;
use crate::core::{Persist, Persisted, Raft};
use crate::message::Envelope;
use crate::types::{LogIndex, NodeId};

/// The input a node is about to handle: which rules apply to the step depends on it (a timer
/// may fire only on a tick, a vote is granted only to a request, and so on).
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// One unit of time passes ([`Raft::tick`]).
    Tick,
    /// The harness fires the node's election timer now ([`Raft::campaign`]: scenario scripts'
    /// `campaign` and the model checker's election timeouts, which stand for the ticks that
    /// would have elapsed).
    Timeout,
    /// A message from another node ([`Raft::step`]).
    Step(&'a Envelope),
    /// A command to append ([`Raft::propose`]).
    Propose,
    /// The service's snapshot through this index ([`Raft::compact`]).
    Compact(LogIndex),
    /// A linearizable read with this id ([`Raft::read_index`]).
    Read(u64),
    /// A leadership transfer to this node ([`Raft::transfer_leadership`]).
    Transfer(NodeId),
    /// A configuration change ([`Raft::change_membership`]).
    ChangeMembership(&'a ConfChange),
}

/// Receives a node's events, in the order they happen. Every method defaults to doing nothing.
pub trait Observer: Send + Sync + 'static {
    /// The core was just created from what storage holds (first boot or restart).
    fn boot(&self, _core: &Raft) {}
    /// `input` is about to be handled; `core` is the state it will be handled in.
    fn before_input(&self, _core: &Raft, _input: Input<'_>) {}
    /// The input announced by the last `before_input` was handled.
    fn after_input(&self, _core: &Raft) {}
    /// `p` was saved to stable storage, before anything of the same `Ready` is released.
    fn persisted(&self, _node: NodeId, _p: &Persist<'_>) {}
    /// The messages, replies and entries of a `Ready` are leaving the node now.
    fn released(&self, _core: &Raft, _out: &Persisted) {}
}
