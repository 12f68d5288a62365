//! The checks of a chaos run's history: (a) linearizability with lincheck's KV model, the
//! history written as a Jepsen/porcupine key/value log and read back with lincheck's parser
//! (so an unknown write is what the parser makes of `:info`: pending forever, it may or may
//! not have taken effect; an unknown get constrains nothing and is dropped); (b) no
//! acknowledged write lost, from the final reads made after the cluster healed and converged.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use lincheck::models::kv::{KvInput, KvModel, KvOutput};
use lincheck::{LinearizationInfo, Operation};

use super::workload::{Op, OpRecord};

/// The history as a porcupine key/value log (`raftlab lincheck --model kv` reads it), one
/// event per line in time order. At equal times completions come first: an operation's
/// effect lies inside its recorded interval (the invocation is timed before the request
/// leaves, the completion after the answer came), so one that completed at t took effect
/// before one invoked at t. Each line carries `:time`, microseconds since the start.
pub fn to_edn(history: &[OpRecord]) -> String {
    // (time, 0 = completion / 1 = invocation, index)
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * history.len());
    for (i, r) in history.iter().enumerate() {
        events.push((micros(r.invoke), 1, i));
        events.push((micros(r.complete.max(r.invoke)), 0, i));
    }
    events.sort_unstable();
    let mut out = String::with_capacity(history.len() * 160);
    for (t, what, i) in events {
        let r = &history[i];
        let f = match r.op {
            Op::Get => "get",
            Op::Put => "put",
            Op::Append => "append",
        };
        let (kind, value) = match (what, r.op, r.ok) {
            (1, Op::Get, _) => ("invoke", "nil".to_owned()),
            (1, _, _) => ("invoke", quote(&r.value)),
            (_, Op::Get, true) => ("ok", quote(r.read.as_deref().unwrap_or(""))),
            (_, Op::Get, false) => ("info", "nil".to_owned()),
            (_, _, true) => ("ok", quote(&r.value)),
            (_, _, false) => ("info", quote(&r.value)),
        };
        let _ = writeln!(
            out,
            "{{:process {}, :type :{kind}, :f :{f}, :key {}, :value {value}, :time {t}}}",
            r.process,
            quote(&r.key)
        );
    }
    out
}

fn micros(secs: f64) -> u64 {
    (secs.max(0.0) * 1e6) as u64
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// lincheck's operations for the history (through its Jepsen parser).
pub fn operations(history: &[OpRecord]) -> anyhow::Result<Vec<Operation<KvInput, KvOutput>>> {
    lincheck::parse_kv_log(&to_edn(history))
        .map_err(|e| anyhow::anyhow!("the history does not parse as a key/value log: {e}"))
}

/// Checks linearizability, keeping what the visualizer shows.
pub fn linearizability(
    ops: &[Operation<KvInput, KvOutput>],
    budget: Option<Duration>,
) -> LinearizationInfo<KvInput, KvOutput> {
    lincheck::check_with_info(&KvModel, ops, budget)
}

/// What the final reads say about the acknowledged writes.
#[derive(Debug, Default)]
pub struct Durability {
    /// Acknowledged writes missing from the end state with nothing that may overwrite them.
    pub lost: Vec<String>,
    /// Tokens in a final value that no write wrote.
    pub phantom: Vec<String>,
    /// Keys whose final read did not answer.
    pub unread: Vec<String>,
    pub acknowledged_writes: usize,
}

impl Durability {
    pub fn ok(&self) -> bool {
        self.lost.is_empty() && self.phantom.is_empty() && self.unread.is_empty()
    }
}

/// Every acknowledged write must be in the final value of its key unless a put that may have
/// come after it (one that did not end before the write began) overwrote it. A final value
/// is the token of the put it starts from (if any) followed by append tokens.
pub fn durability(history: &[OpRecord]) -> Durability {
    let mut d = Durability::default();
    let mut by_key: BTreeMap<&str, Vec<&OpRecord>> = BTreeMap::new();
    for r in history {
        by_key.entry(r.key.as_str()).or_default().push(r);
    }
    for (key, ops) in by_key {
        let writes: Vec<&OpRecord> = ops.iter().copied().filter(|r| r.op != Op::Get).collect();
        d.acknowledged_writes += writes.iter().filter(|w| w.ok).count();
        let Some(fin) = ops.iter().rev().find(|r| r.final_read) else {
            if writes.iter().any(|w| w.ok) {
                d.unread.push(format!("key {key}: no final read"));
            }
            continue;
        };
        let Some(value) = fin.read.as_deref().filter(|_| fin.ok) else {
            d.unread.push(format!(
                "key {key}: the final read did not answer ({})",
                fin.error.as_deref().unwrap_or("no answer")
            ));
            continue;
        };
        let tokens: Vec<String> = value
            .split_inclusive(';')
            .map(str::to_owned)
            .filter(|t| !t.is_empty())
            .collect();
        let by_value: BTreeMap<&str, &OpRecord> =
            writes.iter().map(|w| (w.value.as_str(), *w)).collect();
        for (pos, t) in tokens.iter().enumerate() {
            match by_value.get(t.as_str()) {
                Some(w) if w.op == Op::Put && pos > 0 => d.phantom.push(format!(
                    "key {key}: put {t} appears after other writes in {value:?}"
                )),
                Some(_) => {}
                None => d.phantom.push(format!(
                    "key {key}: {t:?} in the final value {value:?} was never written"
                )),
            }
        }
        // The put the final value starts from, and when it ended (never, if unknown).
        let base = tokens
            .first()
            .and_then(|t| by_value.get(t.as_str()))
            .filter(|w| w.op == Op::Put);
        let base_end = base.map(|b| if b.ok { b.complete } else { f64::INFINITY });
        // A write is overwritten legitimately only if the base put may follow it.
        let overwritten = |w: &OpRecord| base_end.is_some_and(|end| end >= w.invoke);
        for w in writes.iter().filter(|w| w.ok) {
            let present = tokens.contains(&w.value);
            if !present && !overwritten(w) {
                d.lost.push(format!(
                    "key {key}: acknowledged {} {} (at {:.3}-{:.3} s) is missing from the \
                     final value {value:?}",
                    if w.op == Op::Put { "put" } else { "append" },
                    w.value,
                    w.invoke,
                    w.complete
                ));
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(op: Op, key: &str, value: &str, at: (f64, f64), ok: bool) -> OpRecord {
        OpRecord {
            process: 0,
            client: 0,
            op,
            key: key.into(),
            value: value.into(),
            invoke: at.0,
            complete: at.1,
            ok,
            read: None,
            final_read: false,
            error: None,
        }
    }

    fn final_read(key: &str, value: &str, at: f64) -> OpRecord {
        OpRecord {
            read: Some(value.into()),
            final_read: true,
            ..rec(Op::Get, key, "", (at, at + 0.1), true)
        }
    }

    #[test]
    fn a_missing_acknowledged_append_is_lost_unless_a_later_put_may_overwrite_it() {
        let h = vec![
            rec(Op::Put, "k", "P0.1;", (0.0, 0.1), true),
            rec(Op::Append, "k", "A0.2;", (0.2, 0.3), true),
            rec(Op::Append, "k", "A0.3;", (0.4, 0.5), true),
            final_read("k", "P0.1;A0.2;", 9.0),
        ];
        let d = durability(&h);
        assert_eq!(d.lost.len(), 1, "{d:?}");
        assert!(d.lost[0].contains("A0.3;"));
        // An unknown put concurrent with the append may have come after it.
        let mut h2 = h.clone();
        h2.insert(3, rec(Op::Put, "k", "P1.1;", (0.45, 3.0), false));
        h2[4] = final_read("k", "P1.1;", 9.0);
        let d2 = durability(&h2);
        assert!(d2.ok(), "{d2:?}");
    }

    #[test]
    fn an_acknowledged_put_overwritten_by_an_earlier_put_is_lost() {
        let h = vec![
            rec(Op::Put, "k", "P0.1;", (0.0, 0.1), true),
            rec(Op::Put, "k", "P0.2;", (0.2, 0.3), true),
            final_read("k", "P0.1;", 9.0),
        ];
        let d = durability(&h);
        assert_eq!(d.lost.len(), 1, "{d:?}");
        assert!(d.lost[0].contains("P0.2;"));
        let ops = operations(&h).expect("parses");
        let info = linearizability(&ops, None);
        assert_eq!(info.result, lincheck::CheckResult::NotLinearizable);
    }

    #[test]
    fn unknown_writes_may_or_may_not_have_happened() {
        let h = vec![
            rec(Op::Append, "k", "A0.1;", (0.0, 5.0), false),
            // Concurrent with the first: another process (a process has one operation at a
            // time, as in Jepsen; the workload gives a client a new process after an unknown).
            OpRecord {
                process: 1,
                client: 1,
                ..rec(Op::Append, "k", "A1.1;", (0.0, 5.0), false)
            },
            final_read("k", "A1.1;", 9.0),
        ];
        assert!(durability(&h).ok());
        let ops = operations(&h).expect("parses");
        assert!(ops.iter().filter(|o| o.is_pending()).count() == 2);
        assert_eq!(
            linearizability(&ops, None).result,
            lincheck::CheckResult::Linearizable
        );
    }
}
