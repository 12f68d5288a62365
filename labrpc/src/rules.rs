//! Targeted fault rules: hold, release, duplicate or drop one specific message.
//!
//! The network's own faults ([`Network::set_reliable`] and friends) hit calls at random. A rule
//! hits the calls its predicate picks, so an adversarial test can stage an exact schedule: hold
//! a leader's AppendEntries, let a new leader take over, then deliver the stale request.
//!
//! A rule looks at a call at one [`Phase`]: its request as it enters the network, or its reply
//! once the handler has returned. Rules are checked in the order they were added, and the first
//! rule whose predicate matches applies its [`Action`]. A held message waits in
//! [`Network::held`] until the test releases it ([`Network::release`]) or loses it
//! ([`Network::drop_held`]). The methods live on [`Network`]; this module has their types.
//!
//! [`Network`]: crate::Network
//! [`Network::set_reliable`]: crate::Network::set_reliable
//! [`Network::held`]: crate::Network::held
//! [`Network::release`]: crate::Network::release
//! [`Network::drop_held`]: crate::Network::drop_held

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::network::{RpcError, Server, decode};

/// Where a rule looks at a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// The request, when it enters the network: its route is known (the end is enabled and
    /// connected to an existing server), before the latency and the unreliable network's drop.
    /// Calls that have no route fail with [`RpcError::Disconnected`] and never meet a rule.
    Request,
    /// The reply, after the handler returned it (and the server was still alive), before the
    /// unreliable network's reply drop and the long-reordering delay. Handler errors
    /// ([`RpcError::Codec`], [`RpcError::UnknownMethod`]) never meet a rule.
    Reply,
}

impl Phase {
    /// `"request"` or `"reply"`, as in traces.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Request => "request",
            Phase::Reply => "reply",
        }
    }
}

/// What a rule's predicate sees of a call.
#[derive(Clone, Copy, Debug)]
pub struct CallInfo<'a> {
    /// The client end's name.
    pub end: &'a str,
    /// The server the end is connected to.
    pub server: &'a str,
    /// `"Service.method"`.
    pub method: &'a str,
    /// The encoded arguments.
    pub request: &'a [u8],
    /// The encoded reply: `Some` in [`Phase::Reply`], `None` in [`Phase::Request`].
    pub reply: Option<&'a [u8]>,
}

impl CallInfo<'_> {
    /// The decoded arguments (an `Err` when they are not a `T`).
    pub fn request_as<T: DeserializeOwned>(&self) -> Result<T, RpcError> {
        decode(self.request)
    }

    /// The decoded reply: `None` in the request phase, or when it is not a `T`.
    pub fn reply_as<T: DeserializeOwned>(&self) -> Option<T> {
        self.reply.and_then(|r| decode(r).ok())
    }
}

/// What a matching rule does to the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Keep the message until [`Network::release`] or [`Network::drop_held`]. A held request
    /// has not reached the server; a held reply's handler has run.
    ///
    /// [`Network::release`]: crate::Network::release
    /// [`Network::drop_held`]: crate::Network::drop_held
    Hold,
    /// Request phase only: deliver the request twice. The copy travels on its own (its own
    /// latency and, on an unreliable network, its own chance of being dropped) and its reply is
    /// discarded; the caller gets the original's reply. [`Network::add_rule`] panics on a
    /// reply-phase `Duplicate`: a caller takes one reply, so a second would go nowhere.
    ///
    /// [`Network::add_rule`]: crate::Network::add_rule
    Duplicate,
    /// Lose the message: the caller gets [`RpcError::Dropped`]. A dropped request never reaches
    /// the server, and the caller learns of it after the call's latency (as with the unreliable
    /// network's drops, so a retry loop cannot spin at one instant); a dropped reply's handler
    /// has run, and the caller learns of it at once.
    Drop,
}

/// A rule's name, returned by [`Network::add_rule`](crate::Network::add_rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleId(pub(crate) u64);

impl RuleId {
    /// The number traces show for this rule (1 for the network's first rule, and so on).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {}", self.0)
    }
}

/// A held message's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HeldId(pub(crate) u64);

impl HeldId {
    /// The number traces show for this message (1 for the network's first held message, ...).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for HeldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "held {}", self.0)
    }
}

/// A message a rule holds, as [`Network::held`](crate::Network::held) lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub id: HeldId,
    /// The rule that holds it.
    pub rule: RuleId,
    pub phase: Phase,
    pub end: String,
    pub server: String,
    pub method: String,
    pub request: Vec<u8>,
    /// `Some` for a held reply.
    pub reply: Option<Vec<u8>>,
}

impl Held {
    /// The message as a predicate saw it (for `request_as` and `reply_as`).
    pub fn info(&self) -> CallInfo<'_> {
        CallInfo {
            end: &self.end,
            server: &self.server,
            method: &self.method,
            request: &self.request,
            reply: self.reply.as_deref(),
        }
    }
}

pub(crate) type Predicate = Arc<dyn Fn(&CallInfo<'_>) -> bool + Send + Sync>;

pub(crate) struct Rule {
    pub(crate) id: RuleId,
    pub(crate) phase: Phase,
    pub(crate) predicate: Predicate,
    pub(crate) action: Action,
    /// Matching calls it still applies to (`None`: forever). Never `Some(0)`: an exhausted rule
    /// is removed.
    pub(crate) remaining: Option<u32>,
}

/// What happens to a held call, sent to the waiting caller.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Go on along the normal path.
    Release,
    /// Released, but its server was killed (or its end disabled) while it was held.
    Killed,
    /// Lost.
    Drop,
}

/// Where a request goes once it is on the wire: the server it was routed to when it entered
/// the network, and the network's settings then.
#[derive(Clone)]
pub(crate) struct Delivery {
    pub(crate) generation: u64,
    pub(crate) server: Arc<Server>,
    pub(crate) latency: (u64, u64),
    pub(crate) reliable: bool,
}

pub(crate) struct HeldEntry {
    pub(crate) held: Held,
    pub(crate) tx: oneshot::Sender<Verdict>,
    /// For a held request: where it goes when released (also when its caller is gone).
    pub(crate) delivery: Option<Delivery>,
    /// A held request whose end was disabled or deleted, or whose server was deleted or
    /// replaced, at some moment while it was held: it fails when released.
    pub(crate) killed: bool,
}

#[derive(Default)]
pub(crate) struct Rules {
    pub(crate) rules: Vec<Rule>,
    pub(crate) held: BTreeMap<HeldId, HeldEntry>,
    pub(crate) next_rule: u64,
    pub(crate) next_held: u64,
}
