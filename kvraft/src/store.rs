//! The replicated state machine: the key/value map. Every replica applies the same commands in
//! the same order, so every replica holds the same store. Exactly-once writes are the `rsm`
//! layer's job (its sessions), not the store's; a snapshot is this struct, encoded.

use std::collections::BTreeMap;

use rsm::{CorruptSnapshot, StateMachine};
use serde::{Deserialize, Serialize};

use crate::common::{KvCommand, OpKind};

/// The key/value map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    data: BTreeMap<String, String>,
}

impl Store {
    /// The value of `key` ("" if none).
    pub fn get(&self, key: &str) -> String {
        self.data.get(key).cloned().unwrap_or_default()
    }

    /// How many keys the store holds.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl StateMachine for Store {
    type Command = KvCommand;
    /// A Get's value; "" for Put and Append.
    type Output = String;

    fn apply(&mut self, cmd: KvCommand) -> String {
        // SOLUTION BEGIN: apply: Put replaces the key's value, Append adds to it, Get returns the current value ("" if none); writes return ""
        match cmd.kind {
            OpKind::Get => return self.get(&cmd.key),
            OpKind::Put => {
                self.data.insert(cmd.key, cmd.value);
            }
            OpKind::Append => self.data.entry(cmd.key).or_default().push_str(&cmd.value),
        }
        String::new()
        // SOLUTION END
    }

    fn snapshot(&self) -> Vec<u8> {
        rsm::encode_state(self)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), CorruptSnapshot> {
        *self = rsm::decode_state(bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(kind: OpKind, key: &str, value: &str) -> KvCommand {
        KvCommand {
            kind,
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn put_replaces_append_adds_get_reads() {
        let mut s = Store::default();
        s.apply(cmd(OpKind::Put, "k", "a"));
        s.apply(cmd(OpKind::Append, "k", "b"));
        s.apply(cmd(OpKind::Append, "j", "c"));
        assert_eq!(s.apply(cmd(OpKind::Get, "k", "")), "ab");
        assert_eq!(s.apply(cmd(OpKind::Get, "j", "")), "c");
        assert_eq!(s.get("missing"), "");
        let bytes = s.snapshot();
        let mut back = Store::default();
        back.restore(&bytes).expect("round trip");
        assert_eq!(back, s);
        assert!(back.restore(&bytes[..bytes.len() - 1]).is_err());
    }
}
