//! Raft (in progress).
