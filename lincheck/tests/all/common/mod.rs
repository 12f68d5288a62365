//! Helpers shared by the integration tests: where the test data lives, and two reference checkers written
//! independently of the library's search (no entry list, no memo of the library's kind) to cross-check it.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use lincheck::{Model, Operation};

/// `shared/testdata` next to the repository (the repo's parent directory holds `shared/`).
pub const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/testdata");

/// The test data directory; fails the test with a clear message if it is missing (CI always has it).
pub fn testdata() -> PathBuf {
    let dir = PathBuf::from(TESTDATA);
    assert!(
        dir.join("porcupine-kv").is_dir() && dir.join("etcd-jepsen").is_dir(),
        "lincheck test data not found: looked for porcupine-kv/ and etcd-jepsen/ in {} \
         (the shared/testdata directory next to the repository)",
        dir.display()
    );
    dir
}

/// Reads a test data file, failing the test with the path on error.
pub fn read(path: &std::path::Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}

/// Straight from the definition: tries every order of the operations that respects real time (an
/// operation may come next unless another one that must still be placed returned before it was called),
/// where operations that never returned may also be left out. Exponential: tiny histories only.
pub fn brute_force<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> bool {
    fn go<M: Model>(
        model: &M,
        h: &[Operation<M::Input, M::Output>],
        placed: &mut Vec<bool>,
        state: &M::State,
    ) -> bool {
        let must_remain = |i: usize, placed: &Vec<bool>| !placed[i] && !h[i].is_pending();
        if (0..h.len()).all(|i| !must_remain(i, placed)) {
            return true;
        }
        for y in 0..h.len() {
            if placed[y] {
                continue;
            }
            let blocked =
                (0..h.len()).any(|z| z != y && must_remain(z, placed) && h[z].ret < h[y].call);
            if blocked {
                continue;
            }
            if let Some(next) = model.step(state, &h[y].input, &h[y].output) {
                placed[y] = true;
                let ok = go(model, h, placed, &next);
                placed[y] = false;
                if ok {
                    return true;
                }
            }
        }
        false
    }
    let mut placed = vec![false; history.len()];
    go(model, history, &mut placed, &model.init())
}

/// Outcome of [`config_check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    Linearizable,
    NotLinearizable,
    /// The configuration sets grew past the cap: no answer.
    TooBig,
}

/// A second, independent algorithm (Knossos' "linear" style, just-in-time linearization): walks the
/// history's events in time order keeping the set of reachable configurations (operations linearized but
/// not yet returned, model state). At each return of an operation `x`, every configuration is extended by
/// sequences of open operations ending with `x`; configurations that cannot linearize `x` die. The
/// history is linearizable iff some configuration survives. Works on the whole history (no partitioning).
pub fn config_check<M>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    cap: usize,
) -> Reference
where
    M: Model,
    M::State: Ord,
{
    // (time, is_return, op): calls first at equal times (overlapping), as in the library's convention.
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, op) in history.iter().enumerate() {
        events.push((op.call, false, i));
        if !op.is_pending() {
            events.push((op.ret, true, i));
        }
    }
    events.sort();
    // A configuration: sorted ids of open operations already linearized, and the state.
    type Config<S> = (Vec<usize>, S);
    let mut configs: BTreeSet<Config<M::State>> = BTreeSet::new();
    configs.insert((Vec::new(), model.init()));
    let mut open: BTreeSet<usize> = BTreeSet::new();
    for (_, is_return, x) in events {
        if !is_return {
            open.insert(x);
            continue;
        }
        let mut next: BTreeSet<Config<M::State>> = BTreeSet::new();
        // Intermediate configurations seen while extending: explores each once.
        let mut seen: BTreeSet<Config<M::State>> = BTreeSet::new();
        let mut stack: Vec<Config<M::State>> = configs.into_iter().collect();
        while let Some((mut lin, state)) = stack.pop() {
            if seen.len() > cap || next.len() > cap {
                return Reference::TooBig;
            }
            if let Ok(at) = lin.binary_search(&x) {
                // x already took effect earlier: it just leaves the configuration.
                lin.remove(at);
                next.insert((lin, state));
                continue;
            }
            if !seen.insert((lin.clone(), state.clone())) {
                continue;
            }
            // Finish with x...
            if let Some(s) = model.step(&state, &history[x].input, &history[x].output) {
                // x returns now: it leaves the open set, so it leaves the configuration too.
                next.insert((lin.clone(), s));
            }
            // ...or first linearize another open operation.
            for &y in &open {
                if y == x || lin.binary_search(&y).is_ok() {
                    continue;
                }
                if let Some(s) = model.step(&state, &history[y].input, &history[y].output) {
                    let mut l = lin.clone();
                    let at = l.binary_search(&y).unwrap_or_else(|e| e);
                    l.insert(at, y);
                    stack.push((l, s));
                }
            }
        }
        open.remove(&x);
        if next.is_empty() {
            return Reference::NotLinearizable;
        }
        configs = next;
    }
    Reference::Linearizable
}

/// A small deterministic generator (xorshift64*), so random tests replay.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
