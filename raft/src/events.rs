//! Subscriptions to a running node's events (in the spirit of hashicorp/raft's observers).
//!
//! [`Node::subscribe`](crate::driver::Node::subscribe) returns a [`Subscription`]: a bounded
//! channel of [`Event`]s. The driver never waits for a subscriber: when a subscription is full
//! the event is dropped and counted ([`Subscription::dropped`]), so a slow dashboard cannot
//! slow the node down. Events are derived from the node's state after each batch of work (one
//! per change, not one per message), and from its calls to peers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::info;

use crate::core::{Role, Status};
use crate::types::{LogIndex, NodeId, Term};

/// Something that happened to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The node learned of a new leader (or of none) in `term`.
    LeaderChanged { term: Term, leader: Option<NodeId> },
    /// The node's role or term changed.
    RoleChanged { role: Role, term: Term },
    /// The node voted for `candidate` in `term`.
    Voted { term: Term, candidate: NodeId },
    /// Entries through `index` are committed.
    Committed { index: LogIndex },
    /// The node's snapshot now covers the log through `index`.
    Snapshot { index: LogIndex },
    /// A call to `peer` got no answer (the first after contact).
    PeerUnreachable { peer: NodeId },
    /// `peer` answered again after being unreachable.
    PeerReachable { peer: NodeId },
    /// A leadership transfer to `to` started (`Some`) or ended (`None`).
    Transfer { to: Option<NodeId> },
}

/// The receiving end of [`Node::subscribe`](crate::driver::Node::subscribe).
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Event>,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    pub(crate) fn new(rx: mpsc::Receiver<Event>, dropped: Arc<AtomicU64>) -> Self {
        Subscription { rx, dropped }
    }

    /// The next event; `None` once the node stopped.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// An event already waiting, if any.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// Events the node dropped because this subscription was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What a node knows of its peers' reachability.
#[derive(Clone, Debug, Default)]
pub struct Contact {
    /// When each peer was last heard from (any message).
    pub last_heard: BTreeMap<NodeId, Instant>,
    /// Peers whose last call got no answer.
    pub unreachable: BTreeMap<NodeId, Instant>,
    /// The last AppendEntries or InstallSnapshot, and from whom.
    pub leader: Option<(NodeId, Instant)>,
}

impl Contact {
    /// Records a message from `peer`; true if it was unreachable until now.
    pub(crate) fn heard(&mut self, peer: NodeId, now: Instant) -> bool {
        self.last_heard.insert(peer, now);
        self.unreachable.remove(&peer).is_some()
    }

    /// Records a call to `peer` that got no answer; true if it was reachable until now.
    pub(crate) fn lost(&mut self, peer: NodeId, now: Instant) -> bool {
        if self.unreachable.contains_key(&peer) {
            return false;
        }
        self.unreachable.insert(peer, now);
        true
    }
}

/// The driver's side: subscribers and the last state they were told about.
pub(crate) struct Events {
    id: NodeId,
    last: Status,
    subscribers: Vec<(mpsc::Sender<Event>, Arc<AtomicU64>)>,
}

impl Events {
    pub(crate) fn new(id: NodeId, status: Status) -> Self {
        Events {
            id,
            last: status,
            subscribers: Vec::new(),
        }
    }

    pub(crate) fn subscribe(&mut self, tx: mpsc::Sender<Event>, dropped: Arc<AtomicU64>) {
        self.subscribers.push((tx, dropped));
    }

    fn emit(&mut self, event: Event) {
        self.subscribers
            .retain(|(tx, dropped)| match tx.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }

    pub(crate) fn unreachable(&mut self, peer: NodeId) {
        info!(
            node = self.id.0,
            peer = peer.0,
            "node {} cannot reach node {}",
            self.id,
            peer
        );
        self.emit(Event::PeerUnreachable { peer });
    }

    pub(crate) fn reachable(&mut self, peer: NodeId) {
        info!(
            node = self.id.0,
            peer = peer.0,
            "node {} reaches node {} again",
            self.id,
            peer
        );
        self.emit(Event::PeerReachable { peer });
    }

    /// Compares the node's new state with the last one and tells the subscribers what changed.
    pub(crate) fn changed(&mut self, now: &Status) {
        let last = std::mem::replace(&mut self.last, now.clone());
        if self.subscribers.is_empty() {
            return;
        }
        if now.role != last.role || now.term != last.term {
            self.emit(Event::RoleChanged {
                role: now.role,
                term: now.term,
            });
        }
        if now.leader != last.leader || (now.term != last.term && now.leader.is_some()) {
            self.emit(Event::LeaderChanged {
                term: now.term,
                leader: now.leader,
            });
        }
        if let Some(candidate) = now.voted_for
            && (now.voted_for != last.voted_for || now.term != last.term)
        {
            self.emit(Event::Voted {
                term: now.term,
                candidate,
            });
        }
        if now.commit > last.commit {
            self.emit(Event::Committed { index: now.commit });
        }
        if now.snapshot_index > last.snapshot_index {
            self.emit(Event::Snapshot {
                index: now.snapshot_index,
            });
        }
        if now.transferring_to != last.transferring_to {
            self.emit(Event::Transfer {
                to: now.transferring_to,
            });
        }
    }
}
