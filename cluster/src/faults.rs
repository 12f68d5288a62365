//! Network faults without root: each node's transport obeys a fault table, a list of peers
//! whose messages it drops (and links it slows down). A nemesis (`raftlab chaos`) sets the
//! table through the `set_faults` admin RPC, which a node serves only when it was started with
//! `--allow-fault-injection` ([`crate::server::NodeConfig::allow_fault_injection`]); otherwise
//! the call answers [`FaultInjectionDisabled`].
//!
//! A link is cut if either end's table says so: an outgoing `step` to a blocked peer fails at
//! once (as a dead connection would), and an incoming `step` from a blocked peer is refused
//! (answered with no reply). Setting the table on both ends is therefore not needed, but is
//! what the nemesis does, so that a restarted or paused node does not weaken a partition.
//! Client calls (`submit`, `read`, `status`) are never affected: the faults are between nodes.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What happens to the messages between this node and one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkFault {
    pub peer: u64,
    /// Drop every Raft message to and from the peer.
    pub drop: bool,
    /// Delay added to every outgoing Raft message to the peer (milliseconds).
    pub delay_ms: u64,
}

/// A node's fault table: one entry per faulty link; peers not listed are reachable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultTable {
    pub links: Vec<LinkFault>,
}

impl FaultTable {
    /// A table that drops every message to and from `peers`.
    pub fn blocking(peers: impl IntoIterator<Item = u64>) -> FaultTable {
        FaultTable {
            links: peers
                .into_iter()
                .map(|peer| LinkFault {
                    peer,
                    drop: true,
                    delay_ms: 0,
                })
                .collect(),
        }
    }

    /// The peers whose messages are dropped.
    pub fn blocked(&self) -> Vec<u64> {
        self.links
            .iter()
            .filter(|l| l.drop)
            .map(|l| l.peer)
            .collect()
    }
}

/// The refusal of a fault-table change by a node started without fault injection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error(
    "node {node} refuses fault injection: it was not started with --allow-fault-injection \
     (the admin RPC exists only for chaos testing)"
)]
pub struct FaultInjectionDisabled {
    pub node: u64,
}

/// What the transport does with one outgoing message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outgoing {
    Send,
    Drop,
    Delay(Duration),
}

/// The live fault table a node's transport and server share.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    links: Arc<RwLock<BTreeMap<u64, LinkFault>>>,
}

impl Faults {
    /// Replaces the table.
    pub fn set(&self, table: &FaultTable) {
        let mut links = self.links.write().unwrap_or_else(|p| p.into_inner());
        links.clear();
        for l in &table.links {
            links.insert(l.peer, *l);
        }
    }

    /// The current table.
    pub fn table(&self) -> FaultTable {
        let links = self.links.read().unwrap_or_else(|p| p.into_inner());
        FaultTable {
            links: links.values().copied().collect(),
        }
    }

    /// What to do with a message to `peer`.
    pub fn outgoing(&self, peer: u64) -> Outgoing {
        let links = self.links.read().unwrap_or_else(|p| p.into_inner());
        match links.get(&peer) {
            Some(l) if l.drop => Outgoing::Drop,
            Some(l) if l.delay_ms > 0 => Outgoing::Delay(Duration::from_millis(l.delay_ms)),
            _ => Outgoing::Send,
        }
    }

    /// True if messages from `peer` are refused.
    pub fn blocks_incoming(&self, peer: u64) -> bool {
        let links = self.links.read().unwrap_or_else(|p| p.into_inner());
        links.get(&peer).is_some_and(|l| l.drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_drops_and_delays_per_link() {
        let f = Faults::default();
        assert_eq!(f.outgoing(1), Outgoing::Send);
        f.set(&FaultTable {
            links: vec![
                LinkFault {
                    peer: 1,
                    drop: true,
                    delay_ms: 0,
                },
                LinkFault {
                    peer: 2,
                    drop: false,
                    delay_ms: 30,
                },
            ],
        });
        assert_eq!(f.outgoing(1), Outgoing::Drop);
        assert!(f.blocks_incoming(1));
        assert_eq!(f.outgoing(2), Outgoing::Delay(Duration::from_millis(30)));
        assert!(!f.blocks_incoming(2));
        assert_eq!(f.outgoing(3), Outgoing::Send);
        assert_eq!(f.table().blocked(), vec![1]);
        f.set(&FaultTable::default());
        assert_eq!(f.outgoing(1), Outgoing::Send);
        assert!(!f.blocks_incoming(1));
    }
}
