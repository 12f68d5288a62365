//! The controller's data: configurations, and what its clerks and servers say to each other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The number of shards.
pub const NSHARDS: usize = 10;

/// A replica group's id. Group 0 is no group: a shard assigned to it is unassigned.
pub type Gid = u64;

/// One configuration: which group serves each shard, and the servers of each group.
///
/// Configurations are numbered 0, 1, 2, ...; configuration 0 has no groups and every shard
/// unassigned. A configuration never changes once created.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub num: u64,
    /// `shards[s]` is the group that serves shard `s` (0: none).
    pub shards: [Gid; NSHARDS],
    /// The server names of each group.
    pub groups: BTreeMap<Gid, Vec<String>>,
}

impl Config {
    /// The shards `gid` serves in this configuration, in order.
    pub fn shards_of(&self, gid: Gid) -> Vec<usize> {
        (0..NSHARDS).filter(|&s| self.shards[s] == gid).collect()
    }
}

/// What a controller clerk asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// New groups (or new server lists for groups already in): rebalance.
    Join(BTreeMap<Gid, Vec<String>>),
    /// These groups depart: rebalance their shards over the others.
    Leave(Vec<Gid>),
    /// Assign one shard to one group, without rebalancing.
    Move { shard: usize, gid: Gid },
    /// Configuration `num`, or the latest for `None` (or a number past the latest).
    Query(Option<u64>),
}

impl Request {
    /// True for the requests that change the configuration (and so must apply exactly once).
    pub fn is_write(&self) -> bool {
        !matches!(self, Request::Query(_))
    }
}

/// One clerk request, as it goes into the controller's log. `(client_id, seq)` identifies it,
/// as in kvraft: a clerk numbers its requests 1, 2, 3, ... and retries one with the same number
/// until it is answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtrlerOp {
    pub client_id: u64,
    pub seq: u64,
    pub request: Request,
}

/// Why a controller did not carry out a request. The clerk retries elsewhere on all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CtrlerError {
    #[error("wrong leader")]
    WrongLeader,
    #[error("timed out waiting for the request to commit")]
    Timeout,
    /// A `Move` named a shard that does not exist. Not retried: the clerk reports it.
    #[error("no such shard")]
    BadShard,
}

/// The reply to a [`CtrlerOp`]: the configuration for a Query, `None` otherwise.
pub type CtrlerReply = Result<Option<Config>, CtrlerError>;

/// The labrpc method a controller serves.
pub const CTRLER_METHOD: &str = "ShardCtrler.Command";
