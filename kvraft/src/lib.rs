//! `kvraft`: a linearizable key/value service replicated with Raft (the 6.5840 KV lab).
//!
//! - [`Clerk`]: `get`, `put`, `append` on the `rsm` layer's generic clerk, which finds the
//!   leader, retries across failures, and numbers operations so each takes effect once.
//! - [`KvServer`]: the [`Store`] (a `rsm::StateMachine`) replicated by `rsm::Rsm`: an operation
//!   goes through the Raft log as the client's session and the command, the layer answers when
//!   the operation's own entry commits and snapshots past `maxraftstate`. Reads go through the
//!   log too, so they are linearizable.
//!
//! ```
//! use kvraft::{Clerk, KvServer, ServerOptions};
//! use labrpc::{Network, Persister, Server, TaskGroup, sim};
//!
//! sim::run(sim::Config::new(5), |sim| async move {
//!     let net = Network::new(sim.rng("net", 0));
//!     let n = 3;
//!     let mut servers = Vec::new();
//!     for i in 0..n {
//!         let peers = (0..n).map(|j| {
//!             let name = format!("{i}->{j}");
//!             let end = net.make_end(name.clone());
//!             net.connect(&name, j.to_string());
//!             net.enable(&name, true);
//!             end
//!         }).collect();
//!         let kv = KvServer::start(peers, i, Persister::new(), ServerOptions::default(),
//!             sim.rng("kv", i as u64), TaskGroup::new()).unwrap();
//!         let mut server = Server::new();
//!         for svc in kv.services() {
//!             server.add_service(svc);
//!         }
//!         net.add_server(i.to_string(), server);
//!         servers.push(kv);
//!     }
//!     let ends = (0..n).map(|j| {
//!         let name = format!("clerk->{j}");
//!         let end = net.make_end(name.clone());
//!         net.connect(&name, j.to_string());
//!         net.enable(&name, true);
//!         end
//!     }).collect();
//!     let mut ck = Clerk::new(ends, 1);
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
pub mod server;
pub mod store;

pub use client::Clerk;
pub use common::{COMMAND_METHOD, KvError, Op, OpKind, Reply};
pub use server::{KvServer, ServerOptions, StartError};
pub use store::Store;
