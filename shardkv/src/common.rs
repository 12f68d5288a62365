//! What clerks and groups say to each other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ctrler::NSHARDS;
use crate::shard::ShardData;

/// The shard a key belongs to: its first byte modulo [`NSHARDS`] (the empty key: shard 0), as
/// in the original lab.
pub fn key2shard(key: &str) -> usize {
    key.as_bytes()
        .first()
        .map_or(0, |&b| usize::from(b) % NSHARDS)
}

/// The three key/value operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpKind {
    Get,
    Put,
    Append,
}

/// One client operation. `(client_id, seq)` identifies it: a clerk numbers its operations 1, 2,
/// 3, ... and retries one with the same number, at whichever group serves its shard, until it is
/// answered; each shard carries the table of numbers applied to it from group to group, so a
/// write applies exactly once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub client_id: u64,
    pub seq: u64,
    pub kind: OpKind,
    pub key: String,
    pub value: String,
}

/// Why a group did not carry out a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum KvError {
    /// This group does not serve the key's shard now: it does not own it in its configuration,
    /// or owns it but has not received it yet. The clerk asks the controller for the latest
    /// configuration and tries again.
    #[error("wrong group")]
    WrongGroup,
    /// This server is not its group's leader (or lost office before the operation committed).
    #[error("wrong leader")]
    WrongLeader,
    /// The operation did not commit in time.
    #[error("timed out waiting for the operation to commit")]
    Timeout,
}

/// The reply to an [`Op`]: the value for a Get ("" for a missing key), "" otherwise.
pub type Reply = Result<String, KvError>;

/// A new owner asks the previous owner for shards it is to serve in configuration `config_num`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullArgs {
    pub config_num: u64,
    pub shards: Vec<usize>,
}

/// A new owner tells the previous owner that it has installed these shards of configuration
/// `config_num`, so the previous owner can delete them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteArgs {
    pub config_num: u64,
    pub shards: Vec<usize>,
}

/// Why a group did not answer a migration request. The asker tries again later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MigrationError {
    /// This server is not in the configuration the request is about (yet), or does not hold
    /// the shards as that configuration's previous owner.
    #[error("not at that configuration")]
    NotReady,
    #[error("wrong leader")]
    WrongLeader,
    #[error("timed out")]
    Timeout,
}

/// The reply to a [`PullArgs`]: each shard's data and duplicate table.
pub type PullReply = Result<BTreeMap<usize, ShardData>, MigrationError>;
/// The reply to a [`DeleteArgs`].
pub type DeleteReply = Result<(), MigrationError>;

/// The labrpc methods a group server serves.
pub const COMMAND_METHOD: &str = "ShardKV.Command";
pub const PULL_METHOD: &str = "ShardKV.PullShards";
pub const DELETE_METHOD: &str = "ShardKV.DeleteShards";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_of_a_key_is_its_first_byte_mod_10() {
        assert_eq!(key2shard("0"), 8); // '0' is 48
        assert_eq!(key2shard("1"), 9);
        assert_eq!(key2shard("2"), 0);
        assert_eq!(key2shard("9"), 7);
        assert_eq!(key2shard("10"), 9);
        assert_eq!(key2shard(""), 0);
    }
}
