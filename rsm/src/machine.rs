//! What a service implements to be replicated.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A state machine that a [`crate::Rsm`] replicates.
pub trait StateMachine: Send + 'static {
    /// What goes into the log.
    type Command: Serialize + DeserializeOwned + Send;
    /// What applying a command returns to its submitter. Kept (per client session) to answer
    /// retries, and snapshotted with the sessions, hence `Serialize` and `Clone`.
    type Output: Serialize + DeserializeOwned + Clone + Send + 'static;

    /// Applies one committed command. Must be deterministic: every replica calls it with the same
    /// commands in the same order.
    fn apply(&mut self, command: Self::Command) -> Self::Output;

    /// The whole state, encoded.
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the state with a snapshot made by [`StateMachine::snapshot`].
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), CorruptSnapshot>;
}

/// A machine's state as snapshot bytes (postcard). Serializing into memory cannot fail for the
/// plain data a machine holds; a type that cannot be serialized gives an empty snapshot.
pub fn encode_state<T: Serialize>(state: &T) -> Vec<u8> {
    postcard::to_stdvec(state).unwrap_or_default()
}

/// The state [`encode_state`] wrote, or why the bytes are not one.
pub fn decode_state<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CorruptSnapshot> {
    postcard::from_bytes(bytes).map_err(|e| CorruptSnapshot::new(bytes, e))
}

/// A snapshot that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("corrupt snapshot ({len} bytes): {reason}")]
pub struct CorruptSnapshot {
    pub len: usize,
    pub reason: String,
}

impl CorruptSnapshot {
    pub fn new(bytes: &[u8], reason: impl ToString) -> Self {
        CorruptSnapshot {
            len: bytes.len(),
            reason: reason.to_string(),
        }
    }
}
