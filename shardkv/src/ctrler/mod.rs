//! The shard controller: a Raft-replicated sequence of configurations.
//!
//! Each configuration assigns the [`NSHARDS`] shards to replica groups and names each group's
//! servers. An administrator (the tester) changes it with Join, Leave and Move; groups and clerks
//! read it with Query. Join and Leave rebalance: every group ends up with the same number of
//! shards, give or take one, and as few shards move as possible ([`rebalance`]).
//!
//! - [`common`]: [`Config`] and the RPC types.
//! - [`rebalance`]: the deterministic, minimal rebalancing.
//! - [`state`]: the replicated state machine (the configurations and the duplicate table).
//! - [`server`]: [`CtrlerServer`], a replica.
//! - [`client`]: [`Clerk`], with exactly-once Join, Leave and Move.

pub mod client;
pub mod common;
pub mod rebalance;
pub mod server;
pub mod state;

pub use client::Clerk;
pub use common::{
    CTRLER_METHOD, Config, CtrlerError, CtrlerOp, CtrlerReply, Gid, NSHARDS, Request,
};
pub use server::CtrlerServer;
