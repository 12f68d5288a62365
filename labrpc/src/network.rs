//! The simulated network, with the semantics of MIT 6.5840's `labrpc`.
//!
//! A [`Network`] holds named servers, each with named [`Service`]s, and named client ends. A
//! [`ClientEnd`] is connected to at most one server and can be enabled or disabled; a call goes
//! through the network, which may delay it, drop the request, drop the reply, or hold the reply
//! back for a long time, exactly as the original does (the constants are the original's).
//! Arguments and replies are serialized on every call, so no memory is ever shared between a
//! caller and a handler, and byte counts are real.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use crate::rules::{
    Action, CallInfo, Delivery, Held, HeldEntry, HeldId, Phase, Predicate, Rule, RuleId, Rules,
    Verdict,
};
use crate::sim;

tokio::task_local! {
    /// The id of the call the current task is making (for the trace).
    static CALL_ID: u64;
}

/// Records a network event; `rpc.*` events made while a call is in progress carry its `id`, so
/// a trace links a call's send, delivery or loss, and reply.
fn trace_event(node: Option<&str>, kind: &str, fields: impl FnOnce() -> serde_json::Value) {
    sim::trace_event(node, kind, || {
        let mut v = fields();
        if kind.starts_with("rpc.")
            && let Ok(id) = CALL_ID.try_with(|id| *id)
            && let serde_json::Value::Object(o) = &mut v
        {
            o.insert("id".into(), json!(id));
        }
        v
    });
}

/// Why a call failed. A Raft implementation treats all of them as "no reply".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The unreliable network dropped the request or the reply.
    #[error("the network dropped the request or its reply")]
    Dropped,
    /// The end is disabled, not connected, or its server does not exist.
    #[error("no connection to the server")]
    Disconnected,
    /// The server was deleted or replaced, or the end disabled, while the call was in progress.
    #[error("the server was killed during the call")]
    ServerKilled,
    /// The server has no such service or method.
    #[error("unknown method {0:?} (expected \"Service.method\")")]
    UnknownMethod(String),
    /// Arguments or reply could not be (de)serialized.
    #[error("malformed message: {0}")]
    Codec(String),
    /// The caller's own deadline passed (the network itself never times out a call).
    #[error("timed out")]
    Timeout,
}

/// The latency of a delivered call by default, in microseconds: uniform in 1-10 ms (tokio's
/// timers fire on whole milliseconds).
///
/// The original network has no explicit latency, but there every call takes real time to run.
/// In virtual time nothing takes time unless it sleeps: without a latency a tester loop that
/// polls for a commit right after `Start` could see it committed at the same instant and spin
/// forever without the clock moving, and clients would complete operations far faster than any
/// real deployment (and than the lab's timings assume). 1-10 ms, as other simulators use, puts
/// a client operation at about 10 ms, close to what the Go labs see in real time.
pub const DEFAULT_LATENCY_MICROS: (u64, u64) = (1000, 10000);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// A handler hands the request bytes back with its reply, so a reply-phase rule can see them
/// without a copy of every request.
type HandlerOutput = (Vec<u8>, Result<Vec<u8>, RpcError>);
type Handler = Arc<dyn Fn(Vec<u8>) -> BoxFuture<HandlerOutput> + Send + Sync>;

/// A named set of methods, e.g. service `"Raft"` with methods `"RequestVote"` and `"AppendEntries"`.
#[derive(Clone)]
pub struct Service {
    name: String,
    methods: BTreeMap<String, Handler>,
}

impl Service {
    pub fn new(name: impl Into<String>) -> Self {
        Service {
            name: name.into(),
            methods: BTreeMap::new(),
        }
    }

    /// Adds a method. The handler receives decoded arguments and returns the reply; malformed
    /// argument bytes are answered with [`RpcError::Codec`] without calling it.
    pub fn method<A, R, F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let h: Handler = Arc::new(move |bytes: Vec<u8>| {
            let handler = handler.clone();
            Box::pin(async move {
                let reply = match decode::<A>(&bytes) {
                    Ok(args) => encode(&handler(args).await),
                    Err(e) => Err(e),
                };
                (bytes, reply)
            })
        });
        self.methods.insert(name.to_owned(), h);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A server: a set of services plus a count of the RPCs that reached it.
pub struct Server {
    services: BTreeMap<String, Service>,
    count: AtomicU64,
}

impl Server {
    pub fn new() -> Self {
        Server {
            services: BTreeMap::new(),
            count: AtomicU64::new(0),
        }
    }

    pub fn add_service(&mut self, svc: Service) {
        self.services.insert(svc.name.clone(), svc);
    }

    /// RPCs that reached this server (delivered to a handler or rejected as unknown).
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn handler(&self, method: &str) -> Result<Handler, RpcError> {
        let unknown = || RpcError::UnknownMethod(method.to_owned());
        let (svc, meth) = method.split_once('.').ok_or_else(unknown)?;
        let svc = self.services.get(svc).ok_or_else(unknown)?;
        svc.methods.get(meth).cloned().ok_or_else(unknown)
    }
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, RpcError> {
    postcard::to_stdvec(v).map_err(|e| RpcError::Codec(e.to_string()))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RpcError> {
    postcard::from_bytes(bytes).map_err(|e| RpcError::Codec(e.to_string()))
}

#[derive(Clone, Default)]
struct EndInfo {
    enabled: bool,
    server: Option<String>,
}

struct State {
    /// Every delivered call first takes a latency in `latency.0..latency.1` microseconds.
    latency: (u64, u64),
    reliable: bool,
    long_delays: bool,
    long_reordering: bool,
    ends: BTreeMap<String, EndInfo>,
    /// Each server with a generation number: a replaced server is a different server.
    servers: BTreeMap<String, (u64, Arc<Server>)>,
    next_generation: u64,
    rng: ChaCha8Rng,
}

struct Inner {
    state: Mutex<State>,
    /// Notified on every change that can kill an in-flight call (disable, delete, replace).
    /// Not a `watch` channel: `watch` spreads its waiters over shards picked by tokio's
    /// OS-seeded generator, so their wake order (and so the run) would differ between runs.
    changed: Notify,
    total_rpcs: AtomicU64,
    total_bytes: AtomicU64,
    /// Fault rules and held messages ([`crate::rules`]). A lock of its own: never held while a
    /// predicate runs or while `state` is locked.
    rules: Mutex<Rules>,
}

/// The simulated network. Cheap to clone; all clones are the same network.
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

/// What a call needs to know about its end at the moment it enters the network.
struct Route {
    latency: (u64, u64),
    enabled: bool,
    server: Option<(String, u64, Arc<Server>)>,
    reliable: bool,
    long_delays: bool,
    long_reordering: bool,
}

impl Network {
    /// A reliable network whose random choices come from `rng` (derive it with
    /// `sim.rng("net", 0)`).
    pub fn new(rng: ChaCha8Rng) -> Self {
        Network {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    latency: DEFAULT_LATENCY_MICROS,
                    reliable: true,
                    long_delays: false,
                    long_reordering: false,
                    ends: BTreeMap::new(),
                    servers: BTreeMap::new(),
                    next_generation: 0,
                    rng,
                }),
                changed: Notify::new(),
                total_rpcs: AtomicU64::new(0),
                total_bytes: AtomicU64::new(0),
                rules: Mutex::new(Rules::default()),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding this lock; recover the data if something ever did.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rules(&self) -> MutexGuard<'_, Rules> {
        self.inner.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.inner.changed.notify_waiters();
        self.mark_killed_held();
    }

    /// Sets the latency every delivered call takes before its handler runs: uniform in
    /// `[min, max)` (`min == max` for a fixed latency, zero for none).
    pub fn set_latency(&self, min: Duration, max: Duration) {
        let lo = u64::try_from(min.as_micros()).unwrap_or(u64::MAX);
        let hi = u64::try_from(max.as_micros()).unwrap_or(u64::MAX).max(lo);
        self.lock().latency = (lo, hi);
        trace_event(
            None,
            "net.latency",
            || json!({ "min_us": lo, "max_us": hi }),
        );
    }

    /// Unreliable mode: each call waits 0-26 ms, then the request is dropped with p=1/10, and the
    /// reply is dropped with p=1/10.
    pub fn set_reliable(&self, yes: bool) {
        self.lock().reliable = yes;
        trace_event(None, "net.reliable", || json!({ "on": yes }));
    }

    /// Calls on disabled or unconnected ends fail after 0-6999 ms instead of 0-99 ms.
    pub fn set_long_delays(&self, yes: bool) {
        self.lock().long_delays = yes;
        trace_event(None, "net.long_delays", || json!({ "on": yes }));
    }

    /// With p=2/3 a reply is held back 200-2200 ms, so replies arrive out of order.
    pub fn set_long_reordering(&self, yes: bool) {
        self.lock().long_reordering = yes;
        trace_event(None, "net.long_reordering", || json!({ "on": yes }));
    }

    /// Creates a client end (disabled and unconnected until told otherwise).
    ///
    /// # Panics
    /// When an end with this name exists: that is a bug in the tester.
    pub fn make_end(&self, name: impl Into<String>) -> ClientEnd {
        let name = name.into();
        let mut st = self.lock();
        assert!(
            !st.ends.contains_key(&name),
            "make_end: end {name:?} already exists"
        );
        st.ends.insert(name.clone(), EndInfo::default());
        ClientEnd {
            name,
            net: self.clone(),
        }
    }

    /// Forgets an end; calls on it fail as disconnected.
    pub fn delete_end(&self, name: &str) {
        self.lock().ends.remove(name);
        self.bump();
    }

    /// Connects an end to a server (by name; the server may be added later).
    pub fn connect(&self, end: &str, server: impl Into<String>) {
        let server = server.into();
        trace_event(Some(&server), "net.connect", || json!({ "end": end }));
        self.lock().ends.entry(end.to_owned()).or_default().server = Some(server);
        self.bump();
    }

    /// Enables or disables an end. A disabled end's calls fail, in flight ones included.
    pub fn enable(&self, end: &str, enabled: bool) {
        trace_event(None, "net.enable", || json!({ "end": end, "on": enabled }));
        self.lock().ends.entry(end.to_owned()).or_default().enabled = enabled;
        self.bump();
    }

    /// Adds a server, replacing (and so killing) any server of the same name.
    pub fn add_server(&self, name: impl Into<String>, server: Server) {
        let name = name.into();
        trace_event(Some(&name), "net.add_server", || json!({}));
        let mut st = self.lock();
        st.next_generation += 1;
        let generation = st.next_generation;
        st.servers.insert(name, (generation, Arc::new(server)));
        drop(st);
        self.bump();
    }

    /// Deletes a server: calls to it fail, and calls in progress fail even if their handler
    /// finishes, so no caller sees a reply whose effects went to a superseded persister.
    pub fn delete_server(&self, name: &str) {
        trace_event(Some(name), "net.delete_server", || json!({}));
        self.lock().servers.remove(name);
        self.bump();
    }

    /// RPCs that reached the named server (0 if it does not exist).
    pub fn count(&self, server: &str) -> u64 {
        self.lock()
            .servers
            .get(server)
            .map_or(0, |(_, s)| s.count())
    }

    /// Every call that entered the network.
    pub fn total_count(&self) -> u64 {
        self.inner.total_rpcs.load(Ordering::Relaxed)
    }

    /// Request bytes of every call plus reply bytes of every delivered reply.
    pub fn total_bytes(&self) -> u64 {
        self.inner.total_bytes.load(Ordering::Relaxed)
    }

    fn route(&self, end: &str) -> Route {
        let st = self.lock();
        let info = st.ends.get(end).cloned().unwrap_or_default();
        let server = info.server.as_ref().and_then(|name| {
            st.servers
                .get(name)
                .map(|(g, s)| (name.clone(), *g, s.clone()))
        });
        Route {
            latency: st.latency,
            enabled: info.enabled,
            server,
            reliable: st.reliable,
            long_delays: st.long_delays,
            long_reordering: st.long_reordering,
        }
    }

    fn rand_below(&self, n: u64) -> u64 {
        self.lock().rng.random_range(0..n)
    }

    /// The original's `isServerDead`: the end was disabled, or the server deleted or replaced.
    fn is_server_dead(&self, end: &str, server: &str, generation: u64) -> bool {
        let st = self.lock();
        let enabled = st.ends.get(end).is_some_and(|e| e.enabled);
        let same = st
            .servers
            .get(server)
            .is_some_and(|(g, _)| *g == generation);
        !enabled || !same
    }

    async fn wait_server_dead(&self, end: &str, server: &str, generation: u64) {
        loop {
            // Created before the check, so it sees every change made after the check.
            let changed = self.inner.changed.notified();
            if self.is_server_dead(end, server, generation) {
                return;
            }
            changed.await;
        }
    }

    fn latency_us(&self, (lo, hi): (u64, u64)) -> u64 {
        if hi > lo {
            lo + self.rand_below(hi - lo)
        } else {
            lo
        }
    }

    /// The request's trip from the wire to the server: the latency, the unreliable network's
    /// drop, then the handler, started in a task of its own.
    async fn to_server(
        &self,
        end: &str,
        name: &str,
        method: &str,
        req: Vec<u8>,
        d: &Delivery,
    ) -> Result<JoinHandle<HandlerOutput>, RpcError> {
        let us = self.latency_us(d.latency);
        if us > 0 {
            tokio::time::sleep(Duration::from_micros(us)).await;
        }
        if !d.reliable {
            // Short delay, then maybe drop the request.
            let ms = self.rand_below(27);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if self.rand_below(1000) < 100 {
                trace_event(Some(name), "rpc.drop_request", || json!({ "end": end }));
                return Err(RpcError::Dropped);
            }
        }
        d.server.count.fetch_add(1, Ordering::Relaxed);
        let handler = match d.server.handler(method) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(server = %name, method, "labrpc: call to an unknown method");
                return Err(e);
            }
        };
        trace_event(
            Some(name),
            "rpc.deliver",
            || json!({ "end": end, "method": method }),
        );
        // Run the handler in a task of its own, as the original runs it in a goroutine of its own:
        // it runs to its end even when the caller stops waiting (server killed, caller's deadline,
        // caller's node killed).
        Ok(tokio::spawn(handler(req)))
    }

    /// Sends a request on its way to the server with nobody waiting for the reply: a duplicate,
    /// or a released request whose caller is gone.
    fn deliver_detached(
        &self,
        end: String,
        server: String,
        method: String,
        req: Vec<u8>,
        d: Delivery,
    ) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let net = self.clone();
        // The handler's task runs on by itself; its reply goes nowhere.
        drop(rt.spawn(async move {
            let _ = net.to_server(&end, &server, &method, req, &d).await;
        }));
    }

    async fn process(&self, end: &str, method: &str, req: Vec<u8>) -> Result<Vec<u8>, RpcError> {
        self.inner.total_rpcs.fetch_add(1, Ordering::Relaxed);
        self.inner
            .total_bytes
            .fetch_add(req.len() as u64, Ordering::Relaxed);
        let route = self.route(end);
        let server = match (&route.server, route.enabled) {
            (Some(server), true) => server.clone(),
            _ => {
                // Simulate no reply and an eventual timeout.
                let ms = if route.long_delays {
                    self.rand_below(7000)
                } else {
                    self.rand_below(100)
                };
                trace_event(
                    None,
                    "rpc.no_route",
                    || json!({ "end": end, "method": method, "fail_after_ms": ms }),
                );
                tokio::time::sleep(Duration::from_millis(ms)).await;
                return Err(RpcError::Disconnected);
            }
        };
        let (name, generation, server) = server;
        trace_event(
            Some(&name),
            "rpc.send",
            || json!({ "end": end, "method": method, "bytes": req.len() }),
        );
        let delivery = Delivery {
            generation,
            server,
            latency: route.latency,
            reliable: route.reliable,
        };
        let info = CallInfo {
            end,
            server: &name,
            method,
            request: &req,
            reply: None,
        };
        if let Some((rule, action)) = self.match_rule(Phase::Request, &info) {
            match action {
                Action::Hold => {
                    let verdict = self.hold(rule, Phase::Request, &info, Some(delivery.clone()));
                    wait_verdict(verdict).await?;
                }
                Action::Duplicate => {
                    trace_event(
                        Some(&name),
                        "rpc.duplicate",
                        || json!({ "rule": rule.0, "end": end, "method": method }),
                    );
                    self.deliver_detached(
                        end.to_owned(),
                        name.clone(),
                        method.to_owned(),
                        req.clone(),
                        delivery.clone(),
                    );
                }
                Action::Drop => {
                    trace_event(
                        Some(&name),
                        "rpc.rule_drop",
                        || json!({ "rule": rule.0, "phase": "request", "end": end, "method": method }),
                    );
                    // Lost on the wire: the caller learns of it after the latency.
                    let us = self.latency_us(delivery.latency);
                    if us > 0 {
                        tokio::time::sleep(Duration::from_micros(us)).await;
                    }
                    return Err(RpcError::Dropped);
                }
            }
        }
        // Give up waiting for the handler as soon as the server is killed: the original polls
        // every 100 ms; here the network wakes the call on each change instead.
        let mut handler_task = self.to_server(end, &name, method, req, &delivery).await?;
        let (req, reply) = tokio::select! {
            biased;
            joined = &mut handler_task => match joined {
                Ok(out) => out,
                // The handler panicked: panic in the caller, as it would have inline.
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Cancelled: the runtime is shutting down.
                Err(_) => return Err(RpcError::ServerKilled),
            },
            () = self.wait_server_dead(end, &name, generation) => {
                trace_event(Some(&name), "rpc.server_killed", || json!({ "end": end }));
                return Err(RpcError::ServerKilled);
            }
        };
        let reply = reply?;
        if self.is_server_dead(end, &name, generation) {
            trace_event(Some(&name), "rpc.server_killed", || json!({ "end": end }));
            return Err(RpcError::ServerKilled);
        }
        let info = CallInfo {
            end,
            server: &name,
            method,
            request: &req,
            reply: Some(&reply),
        };
        if let Some((rule, action)) = self.match_rule(Phase::Reply, &info) {
            match action {
                Action::Hold => {
                    let verdict = self.hold(rule, Phase::Reply, &info, None);
                    wait_verdict(verdict).await?;
                }
                Action::Drop => {
                    trace_event(
                        Some(&name),
                        "rpc.rule_drop",
                        || json!({ "rule": rule.0, "phase": "reply", "end": end, "method": method }),
                    );
                    return Err(RpcError::Dropped);
                }
                // `add_rule` refuses reply-phase duplicates.
                Action::Duplicate => {}
            }
        }
        if !route.reliable && self.rand_below(1000) < 100 {
            trace_event(Some(&name), "rpc.drop_reply", || json!({ "end": end }));
            return Err(RpcError::Dropped);
        }
        if route.long_reordering && self.rand_below(900) < 600 {
            // Delay the reply a long time, so replies arrive out of order.
            let upper = self.rand_below(2000) + 1;
            let ms = 200 + self.rand_below(upper);
            trace_event(
                Some(&name),
                "rpc.delay_reply",
                || json!({ "end": end, "ms": ms }),
            );
            self.inner
                .total_bytes
                .fetch_add(reply.len() as u64, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return Ok(reply);
        }
        self.inner
            .total_bytes
            .fetch_add(reply.len() as u64, Ordering::Relaxed);
        trace_event(
            Some(&name),
            "rpc.reply",
            || json!({ "end": end, "bytes": reply.len() }),
        );
        Ok(reply)
    }
}

/// Fault rules (see [`crate::rules`]).
impl Network {
    /// Adds a rule: `action` applies to the next `times` calls (`None`: every call) that
    /// `predicate` matches at `phase`. Rules are checked in the order they were added and only
    /// the first matching one applies (a matching rule used up by `times` no longer counts).
    ///
    /// Predicates run outside the network's locks and draw no randomness, and adding or
    /// removing a rule traces nothing, so a rule that matches nothing leaves a run unchanged.
    ///
    /// # Panics
    /// On [`Phase::Reply`] with [`Action::Duplicate`]: a caller takes one reply, so a
    /// duplicated reply would go nowhere. That is a bug in the tester.
    pub fn add_rule(
        &self,
        phase: Phase,
        predicate: impl Fn(&CallInfo<'_>) -> bool + Send + Sync + 'static,
        action: Action,
        times: Option<u32>,
    ) -> RuleId {
        assert!(
            !(phase == Phase::Reply && action == Action::Duplicate),
            "add_rule: a reply cannot be duplicated (duplicate the request instead)"
        );
        let mut rules = self.rules();
        rules.next_rule += 1;
        let id = RuleId(rules.next_rule);
        if times != Some(0) {
            rules.rules.push(Rule {
                id,
                phase,
                predicate: Arc::new(predicate),
                action,
                remaining: times,
            });
        }
        id
    }

    /// Removes a rule; returns false if it was not there (removed, or used up). Messages it
    /// holds stay held.
    pub fn remove_rule(&self, id: RuleId) -> bool {
        let mut rules = self.rules();
        let before = rules.rules.len();
        rules.rules.retain(|r| r.id != id);
        rules.rules.len() != before
    }

    /// The messages rules hold, in the order they were held.
    pub fn held(&self) -> Vec<Held> {
        self.rules().held.values().map(|h| h.held.clone()).collect()
    }

    /// Delivers a held message now; returns false if `id` is not held.
    ///
    /// A held request goes on along the normal path from where it stopped (the latency, the
    /// unreliable network's drop, the handler, the reply's path), with the settings the network
    /// had when the call entered it. Like any call that is in progress, it is bound to the
    /// server it was routed to: if its end was disabled or deleted, or its server deleted or
    /// replaced, at any moment while it was held, it fails with [`RpcError::ServerKilled`] and
    /// never reaches a server (re-enabling the end does not rescue it). If its caller is gone
    /// (deadline passed, node killed), the request still reaches the server and its reply goes
    /// nowhere, as a late message would.
    ///
    /// A held reply goes on along the reply's path (the unreliable network's reply drop and the
    /// long-reordering delay, when they are on) to the caller, if it is still waiting. It is
    /// delivered even if the server died meanwhile, as a reply held back by long reordering
    /// is: it left the server while the server was alive.
    pub fn release(&self, id: HeldId) -> bool {
        let Some(entry) = self.rules().held.remove(&id) else {
            return false;
        };
        let HeldEntry {
            held,
            tx,
            delivery,
            killed,
        } = entry;
        let killed = killed
            || delivery
                .as_ref()
                .is_some_and(|d| self.is_server_dead(&held.end, &held.server, d.generation));
        let caller_gone = tx.is_closed();
        trace_event(Some(&held.server), "rpc.release", || {
            let mut v = held_fields(&held);
            v["caller_gone"] = json!(caller_gone);
            v
        });
        if killed {
            trace_event(
                Some(&held.server),
                "rpc.server_killed",
                || json!({ "end": held.end }),
            );
            let _ = tx.send(Verdict::Killed);
        } else if tx.send(Verdict::Release).is_err()
            && let Some(d) = delivery
        {
            self.deliver_detached(held.end, held.server, held.method, held.request, d);
        }
        true
    }

    /// Releases every held message, in the order they were held; returns how many.
    pub fn release_all(&self) -> usize {
        let ids: Vec<HeldId> = self.rules().held.keys().copied().collect();
        ids.into_iter().filter(|id| self.release(*id)).count()
    }

    /// Loses a held message: its caller gets [`RpcError::Dropped`] (a held request then never
    /// reaches the server). Returns false if `id` is not held.
    pub fn drop_held(&self, id: HeldId) -> bool {
        let Some(entry) = self.rules().held.remove(&id) else {
            return false;
        };
        let held = &entry.held;
        trace_event(Some(&held.server), "rpc.drop_held", || held_fields(held));
        let _ = entry.tx.send(Verdict::Drop);
        true
    }

    /// The first rule of `phase` whose predicate matches `info`, counted as applied once.
    fn match_rule(&self, phase: Phase, info: &CallInfo<'_>) -> Option<(RuleId, Action)> {
        let candidates: Vec<(RuleId, Predicate)> = {
            let rules = self.rules();
            if rules.rules.is_empty() {
                return None;
            }
            rules
                .rules
                .iter()
                .filter(|r| r.phase == phase)
                .map(|r| (r.id, r.predicate.clone()))
                .collect()
        };
        // Without the lock: a predicate may call the network, even remove its own rule.
        for (id, predicate) in candidates {
            if !predicate(info) {
                continue;
            }
            let mut rules = self.rules();
            let Some(i) = rules.rules.iter().position(|r| r.id == id) else {
                continue;
            };
            let rule = &mut rules.rules[i];
            let action = rule.action;
            if let Some(n) = &mut rule.remaining {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    rules.rules.remove(i);
                }
            }
            return Some((id, action));
        }
        None
    }

    fn hold(
        &self,
        rule: RuleId,
        phase: Phase,
        info: &CallInfo<'_>,
        delivery: Option<Delivery>,
    ) -> oneshot::Receiver<Verdict> {
        let (tx, rx) = oneshot::channel();
        let mut rules = self.rules();
        rules.next_held += 1;
        let id = HeldId(rules.next_held);
        let held = Held {
            id,
            rule,
            phase,
            end: info.end.to_owned(),
            server: info.server.to_owned(),
            method: info.method.to_owned(),
            request: info.request.to_vec(),
            reply: info.reply.map(<[u8]>::to_vec),
        };
        trace_event(Some(info.server), "rpc.hold", || held_fields(&held));
        rules.held.insert(
            id,
            HeldEntry {
                held,
                tx,
                delivery,
                killed: false,
            },
        );
        drop(rules);
        rx
    }

    /// After a change that can kill calls: marks the held requests it killed, so they fail
    /// when released even if the change is undone meanwhile (an end enabled again).
    fn mark_killed_held(&self) {
        let live: Vec<(HeldId, String, String, u64)> = self
            .rules()
            .held
            .iter()
            .filter(|(_, h)| !h.killed)
            .filter_map(|(id, h)| {
                let d = h.delivery.as_ref()?;
                Some((*id, h.held.end.clone(), h.held.server.clone(), d.generation))
            })
            .collect();
        if live.is_empty() {
            return;
        }
        let dead: Vec<HeldId> = live
            .into_iter()
            .filter(|(_, end, server, generation)| self.is_server_dead(end, server, *generation))
            .map(|(id, ..)| id)
            .collect();
        let mut rules = self.rules();
        for id in dead {
            if let Some(h) = rules.held.get_mut(&id) {
                h.killed = true;
            }
        }
    }
}

/// Waits for a held call's verdict.
async fn wait_verdict(verdict: oneshot::Receiver<Verdict>) -> Result<(), RpcError> {
    match verdict.await {
        Ok(Verdict::Release) => Ok(()),
        Ok(Verdict::Killed) => Err(RpcError::ServerKilled),
        // The network never drops a held call without a verdict; count that as lost anyway.
        Ok(Verdict::Drop) | Err(_) => Err(RpcError::Dropped),
    }
}

/// The caller's side of a connection. Cheap to clone.
#[derive(Clone)]
pub struct ClientEnd {
    name: String,
    net: Network,
}

impl ClientEnd {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls `"Service.method"` on the connected server. Returns the decoded reply or why there
    /// is none; the network never times out a call by itself (wrap it in `tokio::time::timeout`).
    pub async fn call<A, R>(&self, method: &str, args: &A) -> Result<R, RpcError>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        self.call_described(
            method,
            args,
            || serde_json::Value::Null,
            |_| serde_json::Value::Null,
        )
        .await
    }

    /// Like [`ClientEnd::call`], and when the run records a trace, the request's description
    /// (`rpc.call`, with the call's id) and the reply's (`rpc.return`) go into it: a service
    /// knows what its messages mean, the network does not.
    pub async fn call_described<A, R>(
        &self,
        method: &str,
        args: &A,
        describe_request: impl FnOnce() -> serde_json::Value,
        describe_reply: impl FnOnce(&R) -> serde_json::Value,
    ) -> Result<R, RpcError>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        let req = encode(args)?;
        let id = call_id();
        let end = self.name.as_str();
        CALL_ID
            .scope(id, async move {
                trace_event(
                    None,
                    "rpc.call",
                    || json!({ "end": end, "method": method, "msg": describe_request() }),
                );
                let out = match self.net.process(end, method, req).await {
                    Ok(reply) => decode(&reply),
                    Err(e) => Err(e),
                };
                match &out {
                    Ok(r) => {
                        trace_event(None, "rpc.return", || json!({ "msg": describe_reply(r) }))
                    }
                    Err(e) => trace_event(None, "rpc.fail", || json!({ "error": e.to_string() })),
                }
                out
            })
            .await
    }

    /// Calls with raw bytes (what a malformed client would send).
    pub async fn call_bytes(&self, method: &str, req: Vec<u8>) -> Result<Vec<u8>, RpcError> {
        CALL_ID
            .scope(call_id(), self.net.process(&self.name, method, req))
            .await
    }
}

/// A held message's fields in the trace (`rpc.release`, `rpc.drop_held`).
fn held_fields(held: &Held) -> serde_json::Value {
    json!({
        "held": held.id.0,
        "rule": held.rule.0,
        "phase": held.phase.as_str(),
        "end": held.end,
        "method": held.method,
    })
}

/// The next call id of the run (for the trace).
fn call_id() -> u64 {
    sim::next_trace_id()
}

/// The node id string labrpc uses for a server index in traces and `connect` calls.
pub fn server_name(i: usize) -> String {
    i.to_string()
}

/// Convenience for tests: virtual milliseconds since the run started.
pub fn now_ms() -> u64 {
    sim::now_micros() / 1000
}
