//! `labrpc`: a deterministic, fault-injecting, in-process RPC network that runs in virtual time.
//!
//! It has the semantics of MIT 6.5840's labrpc (unreliable delivery, long delays, long
//! reordering, connect/disconnect, servers killed and replaced mid-call) and runs inside the
//! [`sim`] simulator, so one seed replays a whole run event for event.
//!
//! ```
//! use labrpc::{Network, Server, Service, sim};
//!
//! sim::run(sim::Config::new(1), |sim| async move {
//!     let net = Network::new(sim.rng("net", 0));
//!     let mut server = Server::new();
//!     server.add_service(Service::new("Echo").method("Upper", |s: String| async move {
//!         s.to_uppercase()
//!     }));
//!     net.add_server("0", server);
//!     let end = net.make_end("client->0");
//!     net.connect("client->0", "0");
//!     net.enable("client->0", true);
//!     let reply: String = end.call("Echo.Upper", &"hi".to_string()).await.unwrap();
//!     assert_eq!(reply, "HI");
//!     assert_eq!(net.count("0"), 1);
//! });
//! ```

pub mod network;
pub mod persister;
pub mod planted;
pub mod rules;
pub mod sim;

pub use network::{ClientEnd, Network, RpcError, Server, Service};
pub use persister::Persister;
pub use rules::{Action, CallInfo, Held, HeldId, Phase, RuleId};
pub use sim::{Sim, TaskGroup};
