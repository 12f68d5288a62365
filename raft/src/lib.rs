//! Raft, as a pure state machine with a thin async driver.
//!
//! - [`core::Raft`] is the protocol: ticks and messages in, a [`core::Ready`] out (state to
//!   persist, messages to send, entries to apply). No I/O, no clock, no threads; unit tests drive
//!   it message by message. The rules live in [`election`], [`replication`] and [`snapshot`];
//!   the log in [`log`], stable state in [`persist`], the wire messages in [`message`].
//!   The production extensions, each off unless switched on in [`Features`]: [`prevote`],
//!   [`checkquorum`], [`transfer`] (leadership transfer) and [`read_index`] (linearizable reads
//!   without a log entry).
//! - [`driver::Node`] runs a core on tokio over a [`driver::Transport`] (labrpc in the labs) and
//!   a [`persist::Storage`], with the lab's API.
//!
//! ```
//! use labrpc::{Network, Persister, Server, TaskGroup, sim};
//! use raft::{Apply, Config, LabrpcTransport, Node, NodeId, Options};
//!
//! sim::run(sim::Config::new(3), |sim| async move {
//!     let net = Network::new(sim.rng("net", 0));
//!     let n = 3;
//!     let mut nodes = Vec::new();
//!     let mut applied = Vec::new();
//!     for i in 0..n {
//!         let ends = (0..n).map(|j| {
//!             let name = format!("{i}->{j}");
//!             let end = net.make_end(name.clone());
//!             net.connect(&name, j.to_string());
//!             net.enable(&name, true);
//!             end
//!         }).collect();
//!         let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
//!         let peers = (0..n).map(|p| NodeId(p as u64)).collect();
//!         let node = Node::start(Config::lab(NodeId(i as u64), peers), LabrpcTransport::new(ends),
//!             Persister::new(), tx, sim.rng("node", i as u64), TaskGroup::new(), Options::default())
//!             .unwrap();
//!         let mut server = Server::new();
//!         server.add_service(node.service());
//!         net.add_server(i.to_string(), server);
//!         nodes.push(node);
//!         applied.push(rx);
//!     }
//!     tokio::time::sleep(std::time::Duration::from_secs(2)).await;
//!     let leader = nodes.iter().find(|n| n.state().1).expect("a leader within 2 s");
//!     let (index, _term) = leader.start_command(b"hello".to_vec()).await.unwrap();
//!     for rx in &mut applied {
//!         match rx.recv().await {
//!             Some(Apply::Command { index: i, command, .. }) => {
//!                 assert_eq!((i, command.as_slice()), (index, &b"hello"[..]));
//!             }
//!             other => panic!("unexpected {other:?}"),
//!         }
//!     }
//! });
//! ```

// Student code lives in this crate: no unsafe code, so it cannot reach into the harness's
// memory or run before main (`#[no_mangle]`, `#[link_section]` are unsafe attributes).
#![forbid(unsafe_code)]

pub mod checkquorum;
pub mod configuration;
pub mod core;
pub mod driver;
pub mod election;
pub mod events;
pub mod log;
pub mod membership;
pub mod message;
pub mod observe;
pub mod persist;
pub mod prevote;
pub mod read_index;
pub mod replication;
pub mod snapshot;
pub mod stores;
pub mod trace;
pub mod transfer;
pub mod types;

pub use crate::core::{
    Apply, Config, Features, LEASE_DRIFT, NotLeader, Persist, Persisted, Raft, ReadState, Ready,
    Role, Status,
};
pub use configuration::{ConfChange, ConfChangeError, EntryKind, Membership};
pub use driver::{LabrpcTransport, Node, Options, Transport};
pub use events::{Event, Subscription};
pub use log::Entry;
pub use message::{Envelope, Message};
pub use observe::{Input, Observer};
pub use persist::{HardState, PersistError, Storage};
pub use transfer::TransferError;
pub use types::{LogIndex, NodeId, Term};
