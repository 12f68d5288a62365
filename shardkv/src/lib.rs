//! `shardkv`: a shard controller and a sharded key/value service that migrates shards between
//! Raft groups (the 6.5840 sharded key/value lab, parts 5A and 5B, with both challenges).
//!
//! - [`ctrler`]: the shard controller, a Raft-replicated sequence of configurations that assign
//!   the [`NSHARDS`] shards to replica groups, changed by Join, Leave and Move with deterministic,
//!   balanced, minimal rebalancing.
//! - [`ShardKvServer`]: one replica of a group. Each group is a Raft group ([`rsm`]) that serves
//!   the shards its configuration gives it ([`state`]). Its leader polls the controller, takes
//!   configurations one at a time, in order, through the log, and pulls the shards it gains from
//!   their previous owners with their data and duplicate tables ([`migration`]); the previous
//!   owner deletes its copy once the new owner has it (challenge 1). A shard is served as soon as
//!   it arrives, and shards a change does not touch are served throughout (challenge 2).
//! - [`Clerk`]: `get`, `put`, `append`, routed by key ([`key2shard`]: first byte mod 10) to the
//!   group that serves the shard, exactly once across retries and migrations.
//!
//! ```
//! use std::sync::Arc;
//! use labrpc::{ClientEnd, Network, Persister, Server, TaskGroup, sim};
//! use shardkv::{Clerk, MakeEnd, ServerOptions, ShardKvServer, ctrler};
//!
//! sim::run(sim::Config::new(5), |sim| async move {
//!     let net = Network::new(sim.rng("net", 0));
//!     let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
//!     // An end to the server with this name (unique end names, as the tester makes them).
//!     let end = {
//!         let net = net.clone();
//!         move |server: &str| -> ClientEnd {
//!             let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!             let name = format!("end{n}");
//!             let e = net.make_end(name.clone());
//!             net.connect(&name, server);
//!             net.enable(&name, true);
//!             e
//!         }
//!     };
//!     let make_end: MakeEnd = Arc::new(end);
//!     // One controller replica and one group of one server.
//!     let ctrler = ctrler::CtrlerServer::start(vec![make_end("ctrler")], 0, Persister::new(),
//!         Default::default(), sim.rng("ctrler", 0), &TaskGroup::new()).unwrap();
//!     let mut srv = Server::new();
//!     for s in ctrler.services() { srv.add_service(s); }
//!     net.add_server("ctrler", srv);
//!     let kv = ShardKvServer::start(vec![make_end("server-100-0")], 0, Persister::new(),
//!         ServerOptions::default(), 100, vec![make_end("ctrler")], make_end.clone(),
//!         sim.rng("kv", 0), &TaskGroup::new()).unwrap();
//!     let mut srv = Server::new();
//!     for s in kv.services() { srv.add_service(s); }
//!     net.add_server("server-100-0", srv);
//!
//!     let mut admin = ctrler::Clerk::new(vec![make_end("ctrler")], 1);
//!     admin.join([(100, vec!["server-100-0".to_string()])].into_iter().collect()).await;
//!     let mut ck = Clerk::new(vec![make_end("ctrler")], make_end.clone(), 2);
//!     ck.put("k", "a").await;
//!     ck.append("k", "b").await;
//!     assert_eq!(ck.get("k").await, "ab");
//! });
//! ```

// Student code lives in this crate: no unsafe code, so it cannot reach into the harness's
// memory or run before main (`#[no_mangle]`, `#[link_section]` are unsafe attributes).
#![forbid(unsafe_code)]

pub mod client;
pub mod common;
pub mod ctrler;
pub mod migration;
pub mod server;
pub mod shard;
pub mod state;

pub use ::rsm;
pub use ::rsm::StartError;
pub use client::Clerk;
pub use common::{KvError, Op, OpKind, Reply, key2shard};
pub use ctrler::{Config, Gid, NSHARDS};
pub use server::{MakeEnd, ServerOptions, ShardKvServer};
