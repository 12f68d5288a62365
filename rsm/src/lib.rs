//! A replicated state machine on Raft: the layer every service of the labs runs on.
//!
//! A service is a [`StateMachine`] (apply a command and return its output; snapshot; restore).
//! [`Rsm`] runs one over a Raft node: [`Rsm::submit`] puts a command through the log and returns
//! what applying it returned, once the entry committed at the index Raft gave it *in the term it
//! gave* (by Log Matching, index and term identify the entry, so it is this command and not
//! another leader's). Every replica applies the same commands in the same order.
//!
//! - **Exactly once.** A command submitted with a [`Session`] (client id, sequence number) is
//!   applied at most once: the layer keeps each client's last sequence number and output, answers
//!   a retry with the output of the first application, and snapshots the table with the
//!   machine. Services do not deduplicate themselves (shardkv's groups, whose duplicate tables
//!   travel with their shards, submit without a session).
//! - **Snapshots.** Past `maxraftstate` bytes of Raft state the layer hands Raft a snapshot of
//!   the machine and the sessions; a restarted replica, or one Raft installs a snapshot on,
//!   restores both.
//! - **Clients.** [`Clerk`] is the one client of every service: it numbers requests, remembers
//!   the leader and retries across servers until one answers.
//!
//! The same layer runs in the simulator (labrpc, [`Rsm::start`]) and over any
//! [`raft::Transport`] and [`raft::Storage`] ([`Rsm::start_with`], the real cluster).

// Student code lives in this crate: no unsafe code, so it cannot reach into the harness's
// memory or run before main (`#[no_mangle]`, `#[link_section]` are unsafe attributes).
#![forbid(unsafe_code)]

mod clerk;
mod machine;
mod replica;
mod session;

pub use clerk::{Clerk, Retry};
pub use machine::{CorruptSnapshot, StateMachine, decode_state, encode_state};
pub use replica::{Rsm, RsmOptions, StartError, SubmitError};
pub use session::Session;
