//! Histories (operations and events) and the `Model` trait a sequential specification implements.

use std::fmt::Debug;
use std::hash::{Hash, Hasher};

/// Return time of an operation whose outcome is unknown (Jepsen's `:info`): it stays pending forever, so it
/// may be linearized anywhere after its call, or never.
pub const NEVER_RETURNED: u64 = u64::MAX;

/// One completed (or forever pending) operation of a concurrent history.
///
/// Times are ordinals or virtual microseconds: only their order matters. Two operations overlap when neither
/// returned strictly before the other was called (equal times count as overlapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client (Jepsen "process") that issued the operation; only used for display.
    pub client_id: u64,
    pub input: I,
    /// Time the operation was invoked.
    pub call: u64,
    /// What the operation returned. For an operation with an unknown outcome this is whatever the model
    /// should be given if the checker decides the operation did take effect (e.g. `RegisterOutput::Unknown`).
    pub output: O,
    /// Time the operation returned, or [`NEVER_RETURNED`] if its outcome is unknown.
    pub ret: u64,
}

impl<I, O> Operation<I, O> {
    /// True if the operation never returned (unknown outcome): it may or may not have taken effect.
    pub fn is_pending(&self) -> bool {
        self.ret == NEVER_RETURNED
    }
}

/// What happened at one point of an event-style history (porcupine's `CheckEvents`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind<I, O> {
    /// The operation `id` was invoked with this input.
    Call(I),
    /// The operation `id` returned this output.
    Return(O),
    /// The operation `id` ended with an unknown outcome (Jepsen's `:info`): it stays pending forever and the
    /// model is given this output if the checker linearizes it.
    Unknown(O),
}

/// One event of an event-style history: events are given in time order, the position is the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<I, O> {
    pub client_id: u64,
    /// Matches a `Return`/`Unknown` event to its `Call`; unique per operation.
    pub id: u64,
    pub kind: EventKind<I, O>,
}

/// A sequential specification: the checker searches for an order of the history's operations that this
/// model accepts, consistent with real time.
pub trait Model {
    /// The state of the specified object (for a partitioned model: of one partition).
    type State: Clone + Eq + Hash + Debug;
    type Input: Debug;
    type Output: Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Applies `input` with observed `output` to `state`: `None` if the model cannot produce that output in
    /// that state, else the state afterwards.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;

    /// Splits the history into independent parts (P-compositionality: the history is linearizable iff every
    /// part is), as lists of indices into `history`. The default keeps everything together.
    fn partition(&self, history: &[Operation<Self::Input, Self::Output>]) -> Vec<Vec<usize>> {
        vec![(0..history.len()).collect()]
    }

    /// A short name for the partition holding these operations (e.g. its key), shown in the HTML report.
    fn describe_partition(&self, _ops: &[&Operation<Self::Input, Self::Output>]) -> String {
        String::new()
    }

    /// State equality used by the memoization cache; override if `Eq` is too strict (e.g. unordered sets).
    fn state_eq(&self, a: &Self::State, b: &Self::State) -> bool {
        a == b
    }

    /// State hash used by the memoization cache: must agree with [`Model::state_eq`].
    fn state_hash(&self, state: &Self::State) -> u64 {
        let mut hasher = FnvHasher::default();
        state.hash(&mut hasher);
        hasher.finish()
    }

    /// Text for an operation in the HTML report.
    fn describe_operation(&self, input: &Self::Input, output: &Self::Output) -> String {
        format!("{input:?} -> {output:?}")
    }

    /// Text for a state in the HTML report.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}

/// FNV-1a: a fixed, seedless hash, so the checker behaves the same in every run (no `RandomState`).
#[derive(Debug, Clone, Copy)]
pub struct FnvHasher(u64);

impl Default for FnvHasher {
    fn default() -> Self {
        FnvHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}
