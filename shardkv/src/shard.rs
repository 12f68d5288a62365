//! One shard as a group holds it: its keys, its duplicate table, and where it stands in the
//! current configuration change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::common::{Op, OpKind};

/// Where a shard stands for this group in its current configuration (relative to the previous
/// one). A group moves to the next configuration only when every shard is `Serving` or `Absent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardStatus {
    /// Not ours, and we hold nothing of it.
    Absent,
    /// Ours, and we serve it.
    Serving,
    /// Ours now, but its data is still at the previous owner: not served until it arrives.
    Pulling,
    /// Ours, arrived and served; the previous owner still has to be told it may delete its copy.
    Collecting,
    /// Ours in the previous configuration, not in this one: frozen until the new owner has it.
    Leaving,
}

impl ShardStatus {
    /// True for the shards whose keys this group reads and writes.
    pub fn serves(self) -> bool {
        matches!(self, ShardStatus::Serving | ShardStatus::Collecting)
    }

    /// True when nothing remains to be done for this shard in the current configuration.
    pub fn settled(self) -> bool {
        matches!(self, ShardStatus::Serving | ShardStatus::Absent)
    }
}

/// What moves between groups: the keys and the duplicate table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardData {
    pub kv: BTreeMap<String, String>,
    /// The highest operation number applied to this shard for each client. A clerk has one
    /// operation outstanding at a time, so a write numbered at or below it is a retry.
    pub last_seq: BTreeMap<u64, u64>,
}

impl ShardData {
    /// Applies a client operation unless it is a duplicate write; returns what the client sees.
    pub fn apply(&mut self, op: &Op) -> String {
        if op.kind == OpKind::Get {
            return self.kv.get(&op.key).cloned().unwrap_or_default();
        }
        if self
            .last_seq
            .get(&op.client_id)
            .is_some_and(|s| op.seq <= *s)
        {
            return String::new();
        }
        self.last_seq.insert(op.client_id, op.seq);
        match op.kind {
            OpKind::Put => {
                self.kv.insert(op.key.clone(), op.value.clone());
            }
            OpKind::Append => self
                .kv
                .entry(op.key.clone())
                .or_default()
                .push_str(&op.value),
            OpKind::Get => {}
        }
        String::new()
    }

    pub fn is_duplicate(&self, client_id: u64, seq: u64) -> bool {
        self.last_seq.get(&client_id).is_some_and(|s| seq <= *s)
    }
}

/// One shard of a group's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub status: ShardStatus,
    pub data: ShardData,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            status: ShardStatus::Absent,
            data: ShardData::default(),
        }
    }
}
