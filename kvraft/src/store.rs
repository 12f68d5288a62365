//! The replicated state machine: the key/value map and the table that makes writes
//! exactly-once. Every replica applies the same operations in the same order, so every replica
//! holds the same store; a snapshot is this struct, encoded.

use std::collections::BTreeMap;

use labrpc::planted;
use serde::{Deserialize, Serialize};

use crate::common::{Op, OpKind};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    data: BTreeMap<String, String>,
    /// The highest operation number applied for each client. Clerks issue one operation at a
    /// time, so an operation numbered at or below it is a retry of one already applied.
    pub(crate) last_seq: BTreeMap<u64, u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("corrupt KV snapshot ({len} bytes): {reason}")]
pub struct CorruptSnapshot {
    pub len: usize,
    pub reason: String,
}

impl Store {
    /// Applies `op` unless it is a duplicate; returns what the client should see.
    pub fn apply(&mut self, op: &Op) -> String {
        // SOLUTION BEGIN: apply: apply a write once per (client, seq) and record it in the duplicate table; a Get returns the current value ("" if none)
        if op.kind == OpKind::Get {
            // Reads change nothing, so re-executing a retried Get is harmless (and gives the
            // value as of this point in the log, where the Get is linearized).
            return self.get(&op.key);
        }
        if self.is_duplicate(op.client_id, op.seq) && !planted!(KvNoDuplicateDetection) {
            return String::new();
        }
        self.last_seq.insert(op.client_id, op.seq);
        match op.kind {
            OpKind::Put => {
                self.data.insert(op.key.clone(), op.value.clone());
            }
            OpKind::Append => self
                .data
                .entry(op.key.clone())
                .or_default()
                .push_str(&op.value),
            OpKind::Get => {}
        }
        String::new()
        // SOLUTION END
    }

    pub fn get(&self, key: &str) -> String {
        self.data.get(key).cloned().unwrap_or_default()
    }

    /// True when this client's operation `seq` was already applied.
    pub fn is_duplicate(&self, client_id: u64, seq: u64) -> bool {
        self.last_seq.get(&client_id).is_some_and(|s| seq <= *s)
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serializing maps of strings and integers into memory cannot fail.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Store, CorruptSnapshot> {
        if bytes.is_empty() {
            return Ok(Store::default());
        }
        postcard::from_bytes(bytes).map_err(|e| CorruptSnapshot {
            len: bytes.len(),
            reason: e.to_string(),
        })
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client_id: u64, seq: u64, kind: OpKind, key: &str, value: &str) -> Op {
        Op {
            client_id,
            seq,
            kind,
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn writes_apply_once_reads_always() {
        let mut s = Store::default();
        s.apply(&op(1, 1, OpKind::Put, "k", "a"));
        s.apply(&op(1, 2, OpKind::Append, "k", "b"));
        s.apply(&op(1, 2, OpKind::Append, "k", "b")); // a retry
        s.apply(&op(2, 1, OpKind::Append, "k", "c"));
        assert_eq!(s.apply(&op(1, 3, OpKind::Get, "k", "")), "abc");
        assert_eq!(s.apply(&op(1, 3, OpKind::Get, "k", "")), "abc");
        assert_eq!(s.get("missing"), "");
        let bytes = s.encode();
        assert_eq!(Store::decode(&bytes).expect("round trip"), s);
        assert!(Store::decode(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(Store::decode(&[]).expect("empty"), Store::default());
    }
}
