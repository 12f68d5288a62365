//! The search: Wing & Gong's algorithm with Lowe's memoization, as porcupine implements it.
//!
//! Each partition's operations become a doubly linked list of call and return entries in time order. The
//! search repeatedly tries to linearize a call entry that precedes the first return entry (any such operation
//! may take effect next): if the model accepts it and the pair (set of linearized operations, model state) has
//! not been seen before, the call and its return are lifted out of the list and the search goes on from the
//! head. Reaching a return entry means that operation cannot be put off any longer, so the search backtracks:
//! the last linearized operation is unlifted and the next candidate after it is tried. The history is
//! linearizable once every return entry is gone; an operation with an unknown outcome has no return entry, so
//! it may be linearized anywhere after its call, or never.

use std::time::{Duration, Instant};

use crate::model::{Event, EventKind, Model, NEVER_RETURNED, Operation};

/// The checker's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckResult {
    Linearizable,
    NotLinearizable,
    /// The time budget ran out before a decision.
    Unknown,
}

impl CheckResult {
    /// Combines the verdicts of independent partitions: one bad partition makes the history bad; otherwise
    /// any undecided partition leaves the whole undecided.
    fn combine(self, other: CheckResult) -> CheckResult {
        use CheckResult::*;
        match (self, other) {
            (NotLinearizable, _) | (_, NotLinearizable) => NotLinearizable,
            (Unknown, _) | (_, Unknown) => Unknown,
            (Linearizable, Linearizable) => Linearizable,
        }
    }
}

impl std::fmt::Display for CheckResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CheckResult::Linearizable => "linearizable",
            CheckResult::NotLinearizable => "not linearizable",
            CheckResult::Unknown => "unknown (time budget exhausted)",
        })
    }
}

/// What the search found in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition's operations, as indices into [`LinearizationInfo::history`], in the model's order.
    pub ops: Vec<usize>,
    /// A name for the partition from [`Model::describe_partition`] (e.g. the key), possibly empty.
    pub name: String,
    pub result: CheckResult,
    /// Distinct partial linearizations (indices into the history, in linearization order), longest first.
    /// For a linearizable partition the first one is a complete linearization; operations with an unknown
    /// outcome that never took effect do not appear in it.
    pub partial_linearizations: Vec<Vec<usize>>,
    /// For each operation of `ops` (same positions): index into `partial_linearizations` of the longest one
    /// found that contains it, if any.
    pub longest_containing: Vec<Option<usize>>,
}

impl PartitionInfo {
    /// The longest linearizable prefix the search found (empty if none).
    pub fn longest_prefix(&self) -> &[usize] {
        self.partial_linearizations
            .first()
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// A verdict with the history it is about and, per partition, the partial linearizations found: what
/// [`crate::visualize()`] draws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearizationInfo<I, O> {
    pub history: Vec<Operation<I, O>>,
    pub partitions: Vec<PartitionInfo>,
    pub result: CheckResult,
}

/// Malformed event-style history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("event {position}: operation id {id} is called twice")]
    DuplicateCall { position: usize, id: u64 },
    #[error("event {position}: operation id {id} returns but was never called")]
    ReturnWithoutCall { position: usize, id: u64 },
    #[error("event {position}: operation id {id} returns twice")]
    DuplicateReturn { position: usize, id: u64 },
    #[error(
        "operation id {id} is called but never returns (record an EventKind::Unknown if its outcome is unknown)"
    )]
    MissingReturn { id: u64 },
}

/// Checks whether `history` is linearizable with respect to `model`, giving up with
/// [`CheckResult::Unknown`] after `budget` (no limit if `None`). Stops at the first bad partition.
pub fn check_operations<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: Option<Duration>,
) -> CheckResult {
    let parts = model.partition(history);
    run_partitions(model, history, &parts, budget, false).0
}

/// Like [`check_operations`], but keeps the partial linearizations found, for [`crate::visualize()`]. After a
/// bad partition is found the others get a bounded number of further steps; one still undecided then is
/// reported as [`CheckResult::Unknown`] in its [`PartitionInfo`] (the overall verdict stays
/// `NotLinearizable`).
pub fn check_with_info<M>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: Option<Duration>,
) -> LinearizationInfo<M::Input, M::Output>
where
    M: Model,
    M::Input: Clone,
    M::Output: Clone,
{
    let parts: Vec<Vec<usize>> = model
        .partition(history)
        .into_iter()
        .map(|part| part.into_iter().filter(|&i| i < history.len()).collect())
        .collect();
    let (result, outcomes) = run_partitions(model, history, &parts, budget, true);
    let partitions = parts
        .into_iter()
        .zip(outcomes)
        .map(|(part, outcome)| {
            let ops: Vec<&Operation<M::Input, M::Output>> =
                part.iter().filter_map(|&i| history.get(i)).collect();
            // Local ids (positions in `part`) back to indices into the whole history.
            let to_global = |seq: &Vec<u32>| -> Vec<usize> {
                seq.iter()
                    .filter_map(|&local| part.get(local as usize).copied())
                    .collect()
            };
            PartitionInfo {
                name: model.describe_partition(&ops),
                result: outcome.result,
                partial_linearizations: outcome.partials.iter().map(to_global).collect(),
                longest_containing: outcome.longest,
                ops: part,
            }
        })
        .collect();
    LinearizationInfo {
        history: history.to_vec(),
        partitions,
        result,
    }
}

/// Turns an event-style history (events in time order) into operations whose times are event positions.
pub fn operations_from_events<I, O>(
    events: Vec<Event<I, O>>,
) -> Result<Vec<Operation<I, O>>, HistoryError> {
    use std::collections::{BTreeMap, BTreeSet};
    // Calls waiting for their return: id -> (position, client, input).
    let mut open: BTreeMap<u64, (usize, u64, I)> = BTreeMap::new();
    // Ids whose operation has completed, so a second call or return with the same id is reported.
    let mut done: BTreeSet<u64> = BTreeSet::new();
    let mut ops = Vec::new();
    for (position, event) in events.into_iter().enumerate() {
        let id = event.id;
        let (output, ret) = match event.kind {
            EventKind::Call(input) => {
                if open.contains_key(&id) || done.contains(&id) {
                    return Err(HistoryError::DuplicateCall { position, id });
                }
                open.insert(id, (position, event.client_id, input));
                continue;
            }
            EventKind::Return(output) => (output, position as u64),
            EventKind::Unknown(output) => (output, NEVER_RETURNED),
        };
        let Some((call, client_id, input)) = open.remove(&id) else {
            return Err(if done.contains(&id) {
                HistoryError::DuplicateReturn { position, id }
            } else {
                HistoryError::ReturnWithoutCall { position, id }
            });
        };
        done.insert(id);
        ops.push((
            call,
            Operation {
                client_id,
                input,
                call: call as u64,
                output,
                ret,
            },
        ));
    }
    if let Some((&id, _)) = open.iter().next() {
        return Err(HistoryError::MissingReturn { id });
    }
    // In call order, like the events.
    ops.sort_by_key(|(call, _)| *call);
    Ok(ops.into_iter().map(|(_, op)| op).collect())
}

/// [`check_operations`] for an event-style history (porcupine's `CheckEvents`).
pub fn check_events<M: Model>(
    model: &M,
    events: Vec<Event<M::Input, M::Output>>,
    budget: Option<Duration>,
) -> Result<CheckResult, HistoryError> {
    let ops = operations_from_events(events)?;
    Ok(check_operations(model, &ops, budget))
}

/// [`check_with_info`] for an event-style history.
pub fn check_events_with_info<M>(
    model: &M,
    events: Vec<Event<M::Input, M::Output>>,
    budget: Option<Duration>,
) -> Result<LinearizationInfo<M::Input, M::Output>, HistoryError>
where
    M: Model,
    M::Input: Clone,
    M::Output: Clone,
{
    let ops = operations_from_events(events)?;
    Ok(check_with_info(model, &ops, budget))
}

/// The wall clock, read only here.
// The checker never runs inside a simulated cluster: it checks a finished history, and its time budget is
// meant in real seconds, so the determinism rule against `Instant::now` does not apply.
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_clock_now() -> Instant {
    Instant::now()
}

/// The time budget, shared by all partitions of one check. Reads the clock only every few thousand steps:
/// a step is far cheaper than a clock read.
struct Deadline {
    at: Option<Instant>,
    counter: u32,
    expired: bool,
}

impl Deadline {
    fn new(budget: Option<Duration>) -> Deadline {
        let at = budget.map(|b| {
            let now = wall_clock_now();
            // A budget too large to represent is no budget.
            now.checked_add(b)
                .unwrap_or(now + Duration::from_secs(365 * 24 * 3600))
        });
        Deadline {
            at,
            counter: 0,
            expired: false,
        }
    }

    fn expired(&mut self) -> bool {
        let Some(at) = self.at else { return false };
        if self.expired {
            return true;
        }
        self.counter = self.counter.wrapping_add(1);
        if self.counter % 2048 == 1 {
            self.expired = wall_clock_now() >= at;
        }
        self.expired
    }
}

/// What the search found in one partition, in local ids (positions in the partition).
struct Outcome {
    result: CheckResult,
    /// Distinct partial linearizations, longest first (only when asked for).
    partials: Vec<Vec<u32>>,
    /// Per local op: index into `partials` of the longest one containing it.
    longest: Vec<Option<usize>>,
}

/// No node: end of list, or an operation without a return entry.
const NIL: u32 = u32::MAX;
/// The list's sentinel head node.
const HEAD: u32 = 0;

/// The entry list: node 0 is the head; every other node is a call or return entry of one operation.
struct EntryList {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Operation (local id) of each node.
    op: Vec<u32>,
    is_call: Vec<bool>,
    /// Per operation: its return node, or NIL if it never returns.
    ret_node: Vec<u32>,
}

impl EntryList {
    fn new<I, O>(ops: &[&Operation<I, O>]) -> EntryList {
        // (time, is_return, op): at equal times calls sort first, so the operations count as overlapping.
        let mut entries: Vec<(u64, bool, u32)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            entries.push((op.call, false, i as u32));
            if !op.is_pending() {
                // A return before its call is malformed; treating it as instantaneous keeps the list sound.
                entries.push((op.ret.max(op.call), true, i as u32));
            }
        }
        entries.sort_unstable();
        let len = entries.len() + 1;
        let mut list = EntryList {
            next: Vec::with_capacity(len),
            prev: Vec::with_capacity(len),
            op: Vec::with_capacity(len),
            is_call: Vec::with_capacity(len),
            ret_node: vec![NIL; ops.len()],
        };
        list.next.push(if entries.is_empty() { NIL } else { 1 });
        list.prev.push(NIL);
        list.op.push(NIL);
        list.is_call.push(false);
        for (k, &(_, is_return, op)) in entries.iter().enumerate() {
            let node = (k + 1) as u32;
            list.prev.push(node - 1);
            list.next.push(if k + 2 < len { node + 1 } else { NIL });
            list.op.push(op);
            list.is_call.push(!is_return);
            if is_return {
                list.ret_node[op as usize] = node;
            }
        }
        list
    }

    fn unlink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    /// Relinks a node removed by `unlink`: its own links still name its old neighbours.
    fn relink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = node;
        if n != NIL {
            self.prev[n as usize] = node;
        }
    }

    /// Removes a call entry and its return entry.
    fn lift(&mut self, call: u32) {
        self.unlink(call);
        let ret = self.ret_node[self.op[call as usize] as usize];
        if ret != NIL {
            self.unlink(ret);
        }
    }

    /// Undoes `lift` (in reverse order of lifts).
    fn unlift(&mut self, call: u32) {
        let ret = self.ret_node[self.op[call as usize] as usize];
        if ret != NIL {
            self.relink(ret);
        }
        self.relink(call);
    }
}

/// The memo of configurations already explored: (linearized set, state). An open-addressing table of
/// indices, with the bitsets in one flat arena so that an entry costs no allocation of its own.
struct Cache<S> {
    /// Entry index + 1, or 0 for an empty slot. Length is a power of two.
    slots: Vec<u32>,
    keys: Vec<u64>,
    states: Vec<S>,
    bits: Vec<u64>,
    words: usize,
}

impl<S: Clone> Cache<S> {
    fn new(words: usize) -> Cache<S> {
        Cache {
            slots: vec![0; 1024],
            keys: Vec::new(),
            states: Vec::new(),
            bits: Vec::new(),
            words,
        }
    }

    /// Inserts the configuration unless an equal one is present; true if inserted.
    fn insert_if_absent(
        &mut self,
        key: u64,
        bits: &[u64],
        state: &S,
        eq: impl Fn(&S, &S) -> bool,
    ) -> bool {
        if (self.keys.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = (key as usize) & mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                break;
            }
            let e = (slot - 1) as usize;
            if self.keys[e] == key
                && self.bits[e * self.words..(e + 1) * self.words] == *bits
                && eq(&self.states[e], state)
            {
                return false;
            }
            i = (i + 1) & mask;
        }
        self.slots[i] = (self.keys.len() + 1) as u32;
        self.keys.push(key);
        self.states.push(state.clone());
        self.bits.extend_from_slice(bits);
        true
    }

    fn grow(&mut self) {
        let size = self.slots.len() * 2;
        let mask = size - 1;
        let mut slots = vec![0u32; size];
        for (e, &key) in self.keys.iter().enumerate() {
            let mut i = (key as usize) & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = (e + 1) as u32;
        }
        self.slots = slots;
    }
}

/// A 64-bit mixer (splitmix64's finalizer): spreads ids and combined hashes over all bits.
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A linearized operation on the search stack, with what to restore when it is undone.
struct Frame<S> {
    node: u32,
    state: S,
    state_hash: u64,
    set_hash: u64,
}

/// The search over one partition, resumable so that partitions can take turns (see [`run_partitions`]).
struct Search<'a, M: Model> {
    model: &'a M,
    ops: Vec<&'a Operation<M::Input, M::Output>>,
    list: EntryList,
    linearized: Vec<u64>,
    /// Zobrist hashing: the set's hash is the XOR of its members' random codes, updated in O(1).
    codes: Vec<u64>,
    set_hash: u64,
    state: M::State,
    state_hash: u64,
    cache: Cache<M::State>,
    calls: Vec<Frame<M::State>>,
    /// Return entries left: the partition is linearized when none remain.
    remaining: usize,
    /// The entry to consider next.
    entry: u32,
    compute_partial: bool,
    partials: Vec<Vec<u32>>,
    longest: Vec<Option<usize>>,
    longest_len: Vec<usize>,
    result: Option<CheckResult>,
}

impl<'a, M: Model> Search<'a, M> {
    fn new(
        model: &'a M,
        ops: Vec<&'a Operation<M::Input, M::Output>>,
        compute_partial: bool,
    ) -> Self {
        let n = ops.len();
        let list = EntryList::new(&ops);
        let words = n.div_ceil(64).max(1);
        let state = model.init();
        let state_hash = model.state_hash(&state);
        let remaining = list.ret_node.iter().filter(|&&r| r != NIL).count();
        let entry = list.next[HEAD as usize];
        Search {
            model,
            list,
            linearized: vec![0u64; words],
            codes: (0..n as u64)
                .map(|i| mix64(i.wrapping_add(0x9e37_79b9_7f4a_7c15)))
                .collect(),
            set_hash: 0,
            state,
            state_hash,
            cache: Cache::new(words),
            calls: Vec::new(),
            remaining,
            entry,
            compute_partial,
            partials: Vec::new(),
            longest: vec![None; n],
            longest_len: vec![0; n],
            result: None,
            ops,
        }
    }

    /// Runs at most `steps` steps; returns the verdict once there is one.
    fn run(&mut self, steps: u64, deadline: &mut Deadline) -> Option<CheckResult> {
        if self.result.is_some() {
            return self.result;
        }
        let model = self.model;
        let list = &mut self.list;
        let mut entry = self.entry;
        let mut result = None;
        for _ in 0..steps {
            if self.remaining == 0 {
                result = Some(CheckResult::Linearizable);
                break;
            }
            if deadline.expired() {
                result = Some(CheckResult::Unknown);
                break;
            }
            // While a return entry remains the scan meets it before the end of the list.
            if entry == NIL {
                result = Some(CheckResult::NotLinearizable);
                break;
            }
            let e = entry as usize;
            let op = list.op[e] as usize;
            if list.is_call[e] {
                let o = self.ops[op];
                if let Some(new_state) = model.step(&self.state, &o.input, &o.output) {
                    let new_state_hash = model.state_hash(&new_state);
                    let new_set_hash = self.set_hash ^ self.codes[op];
                    self.linearized[op / 64] |= 1 << (op % 64);
                    let key = mix64(new_set_hash ^ mix64(new_state_hash));
                    if self
                        .cache
                        .insert_if_absent(key, &self.linearized, &new_state, |a, b| {
                            model.state_eq(a, b)
                        })
                    {
                        let old = std::mem::replace(&mut self.state, new_state);
                        self.calls.push(Frame {
                            node: entry,
                            state: old,
                            state_hash: self.state_hash,
                            set_hash: self.set_hash,
                        });
                        self.state_hash = new_state_hash;
                        self.set_hash = new_set_hash;
                        list.lift(entry);
                        if list.ret_node[op] != NIL {
                            self.remaining -= 1;
                        }
                        entry = list.next[HEAD as usize];
                        continue;
                    }
                    self.linearized[op / 64] &= !(1 << (op % 64));
                }
                entry = list.next[e];
            } else {
                // This operation must have taken effect by now, and nothing tried so far allows it: undo
                // the last choice.
                if self.compute_partial {
                    record_partial(
                        &self.calls,
                        list,
                        &mut self.partials,
                        &mut self.longest,
                        &mut self.longest_len,
                    );
                }
                let Some(frame) = self.calls.pop() else {
                    result = Some(CheckResult::NotLinearizable);
                    break;
                };
                let op = list.op[frame.node as usize] as usize;
                self.state = frame.state;
                self.state_hash = frame.state_hash;
                self.set_hash = frame.set_hash;
                self.linearized[op / 64] &= !(1 << (op % 64));
                list.unlift(frame.node);
                if list.ret_node[op] != NIL {
                    self.remaining += 1;
                }
                entry = list.next[frame.node as usize];
            }
        }
        self.entry = entry;
        self.result = result;
        result
    }

    /// The verdict (`Unknown` if the search was stopped undecided) and the partial linearizations.
    fn finish(mut self) -> Outcome {
        let result = self.result.unwrap_or(CheckResult::Unknown);
        if !self.compute_partial {
            return Outcome {
                result,
                partials: Vec::new(),
                longest: Vec::new(),
            };
        }
        let list = &self.list;
        if result == CheckResult::Linearizable {
            let seq: Vec<u32> = self
                .calls
                .iter()
                .map(|f| list.op[f.node as usize])
                .collect();
            self.partials.push(seq.clone());
            let idx = self.partials.len() - 1;
            for &op in &seq {
                self.longest[op as usize] = Some(idx);
                self.longest_len[op as usize] = seq.len();
            }
        } else {
            record_partial(
                &self.calls,
                list,
                &mut self.partials,
                &mut self.longest,
                &mut self.longest_len,
            );
        }
        // Keep only the partial linearizations some operation still points at, longest first.
        let mut used: Vec<usize> = self.longest.iter().flatten().copied().collect();
        used.sort_unstable();
        used.dedup();
        used.sort_by_key(|&i| std::cmp::Reverse(self.partials[i].len()));
        let mut renumber = vec![usize::MAX; self.partials.len()];
        for (new, &old) in used.iter().enumerate() {
            renumber[old] = new;
        }
        let kept: Vec<Vec<u32>> = used
            .iter()
            .map(|&i| std::mem::take(&mut self.partials[i]))
            .collect();
        Outcome {
            result,
            partials: kept,
            longest: self
                .longest
                .iter()
                .map(|l| l.map(|i| renumber[i]))
                .collect(),
        }
    }
}

/// Steps each partition's search gets per turn.
const SLICE: u64 = 4096;

/// Checks the partitions in turns of [`SLICE`] steps each, as porcupine checks them in parallel: a partition
/// that is quick to refute is found without waiting for a hard one. Without `complete`, stops at the first
/// bad partition. With it, keeps going after that so the report shows every partition, but gives the
/// undecided ones only a bounded number of further steps (deterministic, unlike a second time limit), since
/// a hard partition can take far longer than the one that already settled the verdict.
fn run_partitions<'a, M: Model>(
    model: &'a M,
    history: &'a [Operation<M::Input, M::Output>],
    parts: &[Vec<usize>],
    budget: Option<Duration>,
    complete: bool,
) -> (CheckResult, Vec<Outcome>) {
    let mut deadline = Deadline::new(budget);
    let mut searches: Vec<Search<'a, M>> = parts
        .iter()
        .map(|part| {
            let ops = part.iter().filter_map(|&i| history.get(i)).collect();
            Search::new(model, ops, complete)
        })
        .collect();
    let mut active: Vec<usize> = (0..searches.len()).collect();
    let mut found_bad = false;
    let mut steps_taken: u64 = 0;
    // Steps still allowed after a bad partition was found (only with `complete`).
    let mut grace: Option<u64> = None;
    while !active.is_empty() {
        let mut still = Vec::with_capacity(active.len());
        for &i in &active {
            match searches[i].run(SLICE, &mut deadline) {
                None => still.push(i),
                Some(CheckResult::NotLinearizable) => found_bad = true,
                Some(_) => {}
            }
            steps_taken += SLICE;
        }
        active = still;
        if found_bad {
            if !complete {
                break;
            }
            let left = grace.get_or_insert(steps_taken.saturating_mul(4).max(1 << 20));
            *left = left.saturating_sub(SLICE * active.len() as u64);
            if *left == 0 {
                break;
            }
        }
        if deadline.expired() {
            break;
        }
    }
    let outcomes: Vec<Outcome> = searches.into_iter().map(Search::finish).collect();
    let result = if found_bad {
        CheckResult::NotLinearizable
    } else {
        outcomes
            .iter()
            .fold(CheckResult::Linearizable, |acc, o| acc.combine(o.result))
    };
    (result, outcomes)
}

/// Remembers the current stack as the longest partial linearization of each operation on it that has not
/// been part of a longer one yet.
fn record_partial<S>(
    calls: &[Frame<S>],
    list: &EntryList,
    partials: &mut Vec<Vec<u32>>,
    longest: &mut [Option<usize>],
    longest_len: &mut [usize],
) {
    let depth = calls.len();
    let mut idx = None;
    for f in calls {
        let op = list.op[f.node as usize] as usize;
        if longest_len[op] < depth {
            let i = *idx.get_or_insert_with(|| {
                partials.push(calls.iter().map(|f| list.op[f.node as usize]).collect());
                partials.len() - 1
            });
            longest[op] = Some(i);
            longest_len[op] = depth;
        }
    }
}
