//! A key/value store with Get, Put and Append (the 6.5840 KV service), partitioned by key.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::{Model, Operation};

/// Which key/value operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvOp {
    Get,
    Put,
    Append,
}

/// A key/value operation: `value` is the argument of Put/Append (empty for Get).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KvInput {
    pub op: KvOp,
    pub key: String,
    pub value: String,
}

/// What a key/value operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// A Get's result (a missing key reads as "").
    Value(String),
    /// A Put or Append completed.
    Done,
    /// The outcome is unknown (the operation never returned).
    Unknown,
}

/// The key/value model: one partition per key, whose state is that key's value.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvModel;

impl Model for KvModel {
    // Shared so that a Get, which leaves the value as it is, copies a pointer rather than the string.
    type State = Arc<str>;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> Arc<str> {
        Arc::from("")
    }

    fn step(&self, state: &Arc<str>, input: &KvInput, output: &KvOutput) -> Option<Arc<str>> {
        match (input.op, output) {
            (KvOp::Get, KvOutput::Value(v)) => (**state == **v).then(|| state.clone()),
            // A Get whose result nobody saw constrains nothing.
            (KvOp::Get, KvOutput::Unknown) => Some(state.clone()),
            (KvOp::Get, KvOutput::Done) => None,
            (KvOp::Put, KvOutput::Done | KvOutput::Unknown) => {
                Some(Arc::from(input.value.as_str()))
            }
            (KvOp::Append, KvOutput::Done | KvOutput::Unknown) => {
                let mut s = String::with_capacity(state.len() + input.value.len());
                s.push_str(state);
                s.push_str(&input.value);
                Some(Arc::from(s))
            }
            (KvOp::Put | KvOp::Append, KvOutput::Value(_)) => None,
        }
    }

    fn partition(&self, history: &[Operation<KvInput, KvOutput>]) -> Vec<Vec<usize>> {
        let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, op) in history.iter().enumerate() {
            by_key.entry(op.input.key.as_str()).or_default().push(i);
        }
        by_key.into_values().collect()
    }

    fn describe_partition(&self, ops: &[&Operation<KvInput, KvOutput>]) -> String {
        ops.first()
            .map(|op| format!("key {:?}", op.input.key))
            .unwrap_or_default()
    }

    fn describe_operation(&self, input: &KvInput, output: &KvOutput) -> String {
        match (input.op, output) {
            (KvOp::Get, KvOutput::Value(v)) => format!("get({:?}) -> {v:?}", input.key),
            (KvOp::Get, _) => format!("get({:?}) -> ?", input.key),
            (KvOp::Put, KvOutput::Unknown) => format!("put({:?}, {:?}) ?", input.key, input.value),
            (KvOp::Put, _) => format!("put({:?}, {:?})", input.key, input.value),
            (KvOp::Append, KvOutput::Unknown) => {
                format!("append({:?}, {:?}) ?", input.key, input.value)
            }
            (KvOp::Append, _) => format!("append({:?}, {:?})", input.key, input.value),
        }
    }

    // Values grow long under appends: hash eight bytes at a time rather than FNV's one.
    fn state_hash(&self, state: &Arc<str>) -> u64 {
        let bytes = state.as_bytes();
        let mut h = (bytes.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h ^ u64::from_le_bytes(w))
                .wrapping_mul(0xff51_afd7_ed55_8ccd)
                .rotate_left(29);
        }
        for &b in chunks.remainder() {
            h = (h ^ u64::from(b)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        }
        h ^ (h >> 32)
    }

    fn describe_state(&self, state: &Arc<str>) -> String {
        format!("{:?}", &**state)
    }
}
