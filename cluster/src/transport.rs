//! Raft's transport over TCP: one tarpc connection per peer, opened on first use and reopened
//! after a failure. tarpc's deadlines are wall-clock values carried in the request; the
//! timeouts that matter here are enforced locally with `tokio::time::timeout`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::driver::BoxFuture;
use raft::{Envelope, NodeId, Transport};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::{client, context};

use crate::faults::{Faults, Outgoing};
use crate::rpc::RaftKvClient;

/// How long to wait for a TCP connection to a peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
/// How long to wait for a peer's reply to one Raft message.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// The largest frame a node accepts (a snapshot travels in one frame).
pub const MAX_FRAME: usize = 64 << 20;

/// Opens a tarpc client connection to `addr`, or `None` if it cannot within the timeout.
pub async fn connect(addr: SocketAddr) -> Option<RaftKvClient> {
    let mut connecting = tarpc::serde_transport::tcp::connect(addr, Bincode::default);
    connecting.config_mut().max_frame_length(MAX_FRAME);
    let transport = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .ok()?
        .ok()?;
    // Small messages (heartbeats, a read's confirmation round, their replies) go out at once,
    // not held back by Nagle's algorithm until the previous one is acknowledged.
    let _ = transport.get_ref().set_nodelay(true);
    Some(RaftKvClient::new(client::Config::default(), transport).spawn())
}

/// A request context whose deadline is far enough not to interfere with local timeouts.
// Real time, outside any simulation: tarpc's deadlines are wall-clock instants.
#[allow(clippy::disallowed_methods)]
pub fn ctx() -> context::Context {
    let mut ctx = context::current();
    ctx.deadline = std::time::Instant::now() + Duration::from_secs(60);
    ctx
}

/// Raft messages to peers over TCP.
pub struct TcpTransport {
    cluster: u64,
    book: AddressBook,
    faults: Faults,
}

/// The peers' addresses a transport sends to, shared with whoever learns new ones (the node's
/// `add_peer` admin call, when a node joins the cluster). Changing an address drops the
/// connection to the old one.
#[derive(Clone, Debug, Default)]
pub struct AddressBook {
    addrs: Arc<Mutex<BTreeMap<NodeId, SocketAddr>>>,
    conns: Arc<Mutex<BTreeMap<NodeId, RaftKvClient>>>,
}

impl AddressBook {
    /// Node `id` is at `addr` from now on.
    pub fn set(&self, id: NodeId, addr: SocketAddr) {
        let old = self
            .addrs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, addr);
        if old != Some(addr) {
            self.conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
    }

    pub fn get(&self, id: NodeId) -> Option<SocketAddr> {
        self.addrs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied()
    }

    /// Every known node and its address, in id order.
    pub fn all(&self) -> Vec<(NodeId, SocketAddr)> {
        self.addrs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, a)| (*id, *a))
            .collect()
    }
}

impl TcpTransport {
    /// `peers[i]` is node i's address.
    pub fn new(cluster: u64, peers: &[SocketAddr]) -> Self {
        TcpTransport::with_faults(cluster, peers, Faults::default())
    }

    /// A transport that drops and delays messages as `faults` says (an outgoing message to a
    /// blocked peer fails at once, as if its connection were down).
    pub fn with_faults(cluster: u64, peers: &[SocketAddr], faults: Faults) -> Self {
        let book = AddressBook::default();
        for (i, a) in peers.iter().enumerate() {
            book.set(NodeId(i as u64), *a);
        }
        TcpTransport {
            cluster,
            book,
            faults,
        }
    }

    /// The addresses this transport sends to (shared: a change applies to the next message).
    pub fn addresses(&self) -> AddressBook {
        self.book.clone()
    }
}

impl Transport for TcpTransport {
    fn call(&self, to: NodeId, env: Envelope) -> BoxFuture<Option<Envelope>> {
        let addr = self.book.get(to);
        let conns = self.book.conns.clone();
        let cluster = self.cluster;
        let fault = self.faults.outgoing(to.0);
        Box::pin(async move {
            match fault {
                Outgoing::Send => {}
                Outgoing::Drop => return None,
                Outgoing::Delay(d) => tokio::time::sleep(d).await,
            }
            let cached = conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&to)
                .cloned();
            let client = match cached {
                Some(c) => c,
                None => {
                    let c = connect(addr?).await?;
                    conns
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(to, c.clone());
                    c
                }
            };
            match tokio::time::timeout(CALL_TIMEOUT, client.step(ctx(), cluster, env)).await {
                Ok(Ok(Ok(reply))) => reply,
                Ok(Ok(Err(wrong))) => {
                    tracing::warn!(peer = to.0, "peer refused our message: {wrong}");
                    None
                }
                Ok(Err(_)) => {
                    // The connection broke: open a new one next time.
                    conns.lock().unwrap_or_else(|p| p.into_inner()).remove(&to);
                    None
                }
                Err(_) => None,
            }
        })
    }
}
