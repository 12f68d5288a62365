//! `cluster`: the same Raft core and kvraft service as the labs, run for real: separate
//! processes talking over TCP (tarpc with a bincode codec), with their state durable on disk.
//!
//! - [`storage`]: a write-ahead log and snapshot files implementing [`raft::Storage`].
//! - [`rpc`]: the service nodes serve (Raft messages, client operations, reads without log
//!   entries, leadership transfer, status), with the cluster id on every call.
//! - [`transport`]: Raft's [`raft::Transport`] over TCP, obeying the node's fault table.
//! - [`faults`]: the fault table (dropped and delayed links between nodes) that a chaos
//!   nemesis sets through an admin RPC on nodes started with fault injection allowed.
//! - [`server`]: one node process ([`server::run_node`]), with pre-vote and check-quorum on.
//! - [`wire`]: the bytes on the wire (bincode frames) and the server's codec.
//! - [`client`]: [`client::TcpClerk`], the lab's clerk over TCP (Get by ReadIndex).
//!
//! The `raftlab` binary drives these: `raftlab node`, `raftlab cluster
//! start|stop|status|transfer`, `raftlab kv get|put|append`.

pub mod client;
pub mod faults;
pub mod rpc;
pub mod server;
pub mod storage;
pub mod transport;
pub mod wire;
