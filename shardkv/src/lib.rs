//! `shardkv`: a shard controller (Join/Leave/Move/Query) and a sharded key/value service that
//! migrates shards between Raft groups.
//!
//! This crate is a shell for now: the shardkv issue fills it.
