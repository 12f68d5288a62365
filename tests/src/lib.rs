//! The graded suites' shared code: the harness each lab's tests run on.
//!
//! - [`raft_harness`]: the Raft lab's tester (6.5840's `config.go`), used by `tests/raft.rs`.
//! - [`kv_harness`]: the kvraft lab's tester, with history recording and the linearizability
//!   check, used by `tests/kvraft.rs`.
//! - [`shardctrler_harness`] and [`shardkv_harness`]: the sharded lab's testers (the shard
//!   controller, and replica groups with shard migration), used by `tests/shardctrler.rs` and
//!   `tests/shardkv.rs`.
//!
//! Every suite is one test binary (`cargo test -p tests --test raft`); test names end with the
//! lab part, so `cargo test -p tests --test raft 3b` runs part 3B. Each test takes its seed from
//! `RAFTLAB_SEED` and prints the command that replays it when it fails.

pub mod kv_harness;
pub mod raft_harness;
pub mod shardctrler_harness;
pub mod shardkv_harness;
