//! `kvraft`: a linearizable key/value service replicated with Raft (Get/Put/Append with
//! exactly-once clerks and snapshots).
//!
//! This crate is a shell for now: the kvraft issue fills it. It exists so that the workspace has
//! its final shape and the lab's layout is visible from the start.
