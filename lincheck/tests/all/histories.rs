//! Hand-made histories with known answers, the event API, budgets, the HTML page, parser errors, and random
//! small histories cross-checked against a brute-force checker.

use crate::common;

use std::time::Duration;

use common::{Reference, Rng, brute_force, config_check};
use lincheck::models::kv::{KvInput, KvModel, KvOp, KvOutput};
use lincheck::models::register::{RegisterInput as In, RegisterModel, RegisterOutput as Out};
use lincheck::{
    CheckResult, Event, EventKind, HistoryError, NEVER_RETURNED, Operation, ParseError,
    check_events, check_operations, check_with_info, parse_kv_log, parse_register_log, visualize,
};

fn op<I, O>(client_id: u64, input: I, call: u64, output: O, ret: u64) -> Operation<I, O> {
    Operation {
        client_id,
        input,
        call,
        output,
        ret,
    }
}

fn check(history: &[Operation<In, Out>]) -> CheckResult {
    let result = check_operations(&RegisterModel::default(), history, None);
    // Every hand-made history is tiny: the brute force must agree.
    let expected = if brute_force(&RegisterModel::default(), history) {
        CheckResult::Linearizable
    } else {
        CheckResult::NotLinearizable
    };
    assert_eq!(
        result, expected,
        "checker and brute force disagree on {history:?}"
    );
    result
}

/// A read returns the new value, then a later read (starting after the first returned) the old one.
#[test]
fn stale_read_after_a_newer_read_is_not_linearizable() {
    let history = [
        op(0, In::Write(200), 0, Out::Done, 100),
        op(1, In::Read, 10, Out::Value(Some(200)), 30),
        op(2, In::Read, 40, Out::Value(None), 90),
    ];
    assert_eq!(check(&history), CheckResult::NotLinearizable);
}

/// Both reads overlap the write and each other: read nil, then the write, then read 100.
#[test]
fn concurrent_reads_of_old_and_new_value_are_linearizable() {
    let history = [
        op(0, In::Write(100), 0, Out::Done, 100),
        op(1, In::Read, 25, Out::Value(Some(100)), 75),
        op(2, In::Read, 30, Out::Value(None), 60),
    ];
    assert_eq!(check(&history), CheckResult::Linearizable);
}

/// Equal times count as overlapping (porcupine's convention): a zero-length read at the write's return
/// may still see the old value.
#[test]
fn touching_operations_overlap() {
    let history = [
        op(0, In::Write(1), 0, Out::Done, 10),
        op(1, In::Read, 10, Out::Value(None), 10),
    ];
    assert_eq!(check(&history), CheckResult::Linearizable);
    let history = [
        op(0, In::Write(1), 0, Out::Done, 10),
        op(1, In::Read, 11, Out::Value(None), 12),
    ];
    assert_eq!(check(&history), CheckResult::NotLinearizable);
}

/// A write with unknown outcome whose value is later read: it must be assumed to have happened.
#[test]
fn info_write_that_must_have_happened() {
    let history = [
        op(0, In::Write(1), 0, Out::Done, 1),
        op(1, In::Write(2), 2, Out::Unknown, NEVER_RETURNED),
        op(2, In::Read, 10, Out::Value(Some(2)), 11),
        op(2, In::Read, 12, Out::Value(Some(2)), 13),
    ];
    assert_eq!(check(&history), CheckResult::Linearizable);
    // The read cannot have seen 2 before the write was even called.
    let mut early = history.clone();
    early[2].call = 1;
    early[2].ret = 1;
    assert_eq!(check(&early[..3]), CheckResult::NotLinearizable);
}

/// A write with unknown outcome that no read ever sees: it must be assumed not to have happened (or to
/// have taken effect after everything else), which is fine.
#[test]
fn info_write_that_must_not_have_happened() {
    let history = [
        op(0, In::Write(1), 0, Out::Done, 1),
        op(1, In::Write(2), 2, Out::Unknown, NEVER_RETURNED),
        op(2, In::Read, 10, Out::Value(Some(1)), 11),
        op(2, In::Read, 20, Out::Value(Some(1)), 21),
    ];
    assert_eq!(check(&history), CheckResult::Linearizable);
    // Had the same write returned ok at time 5, the later reads of 1 would be stale.
    let mut returned = history.clone();
    returned[1].output = Out::Done;
    returned[1].ret = 5;
    assert_eq!(check(&returned), CheckResult::NotLinearizable);
}

/// "Or never": a pending operation that the model can accept nowhere is simply left out.
#[test]
fn pending_operation_may_never_take_effect() {
    let history = [
        op(0, In::Write(1), 0, Out::Done, 1),
        // Claims to have swapped 5 -> 6, but the value is never 5.
        op(1, In::Cas { from: 5, to: 6 }, 2, Out::Done, NEVER_RETURNED),
        op(2, In::Read, 10, Out::Value(Some(1)), 11),
    ];
    assert_eq!(check(&history), CheckResult::Linearizable);
}

/// Unknown-outcome compare-and-set: linearizable only if it took effect between the two reads.
#[test]
fn info_cas_between_reads() {
    let history = [
        op(0, In::Write(1), 0, Out::Done, 1),
        op(
            1,
            In::Cas { from: 1, to: 3 },
            2,
            Out::Unknown,
            NEVER_RETURNED,
        ),
        op(2, In::Read, 5, Out::Value(Some(1)), 6),
        op(2, In::Read, 7, Out::Value(Some(3)), 8),
        op(2, In::Read, 9, Out::Value(Some(3)), 10),
    ];
    assert_eq!(check(&history), CheckResult::Linearizable);
    let mut back = history.clone();
    back[4].output = Out::Value(Some(1));
    assert_eq!(check(&back), CheckResult::NotLinearizable);
}

#[test]
fn compare_and_set_outcomes() {
    let history = [
        op(0, In::Write(1), 0, Out::Done, 1),
        op(1, In::Cas { from: 2, to: 3 }, 2, Out::CasFailed, 3),
        op(1, In::Cas { from: 1, to: 4 }, 4, Out::Done, 5),
        op(2, In::Read, 6, Out::Value(Some(4)), 7),
    ];
    assert_eq!(check(&history), CheckResult::Linearizable);
    let mut wrong = history.clone();
    wrong[1].input = In::Cas { from: 1, to: 3 };
    assert_eq!(check(&wrong), CheckResult::NotLinearizable);
}

#[test]
fn empty_history_is_linearizable() {
    assert_eq!(check(&[]), CheckResult::Linearizable);
}

/// porcupine's README examples, as event histories.
#[test]
fn event_histories() {
    let call = |client_id, id, i| Event {
        client_id,
        id,
        kind: EventKind::Call(i),
    };
    let ret = |client_id, id, o| Event {
        client_id,
        id,
        kind: EventKind::Return(o),
    };
    let model = RegisterModel { initial: Some(0) };
    let good = vec![
        call(0, 0, In::Write(100)),
        call(1, 1, In::Read),
        call(2, 2, In::Read),
        ret(2, 2, Out::Value(Some(0))),
        ret(1, 1, Out::Value(Some(100))),
        ret(0, 0, Out::Done),
    ];
    assert_eq!(
        check_events(&model, good, None),
        Ok(CheckResult::Linearizable)
    );
    let bad = vec![
        call(0, 0, In::Write(200)),
        call(1, 1, In::Read),
        ret(1, 1, Out::Value(Some(200))),
        call(2, 2, In::Read),
        ret(2, 2, Out::Value(Some(0))),
        ret(0, 0, Out::Done),
    ];
    assert_eq!(
        check_events(&model, bad, None),
        Ok(CheckResult::NotLinearizable)
    );
    // An Unknown event leaves the write pending forever: the read of 7 is then explained.
    let info = vec![
        call(0, 0, In::Write(7)),
        Event {
            client_id: 0,
            id: 0,
            kind: EventKind::Unknown(Out::Unknown),
        },
        call(1, 1, In::Read),
        ret(1, 1, Out::Value(Some(7))),
    ];
    assert_eq!(
        check_events(&model, info, None),
        Ok(CheckResult::Linearizable)
    );
}

#[test]
fn malformed_event_histories_are_errors() {
    let model = RegisterModel::default();
    let e = |id, kind| Event {
        client_id: 0,
        id,
        kind,
    };
    assert_eq!(
        check_events(&model, vec![e(1, EventKind::Return(Out::Done))], None),
        Err(HistoryError::ReturnWithoutCall { position: 0, id: 1 })
    );
    assert_eq!(
        check_events(
            &model,
            vec![
                e(1, EventKind::Call(In::Read)),
                e(1, EventKind::Call(In::Read))
            ],
            None
        ),
        Err(HistoryError::DuplicateCall { position: 1, id: 1 })
    );
    assert_eq!(
        check_events(&model, vec![e(3, EventKind::Call(In::Read))], None),
        Err(HistoryError::MissingReturn { id: 3 })
    );
    assert_eq!(
        check_events(
            &model,
            vec![
                e(1, EventKind::Call(In::Write(1))),
                e(1, EventKind::Return(Out::Done)),
                e(1, EventKind::Return(Out::Done))
            ],
            None
        ),
        Err(HistoryError::DuplicateReturn { position: 2, id: 1 })
    );
}

fn kv(
    client: u64,
    op_: KvOp,
    key: &str,
    value: &str,
    call: u64,
    out: KvOutput,
    ret: u64,
) -> Operation<KvInput, KvOutput> {
    op(
        client,
        KvInput {
            op: op_,
            key: key.into(),
            value: value.into(),
        },
        call,
        out,
        ret,
    )
}

/// Partitions are checked independently: one bad key makes the history bad, and the report says which.
#[test]
fn kv_partitions() {
    let history = vec![
        kv(0, KvOp::Put, "a", "1", 0, KvOutput::Done, 1),
        kv(1, KvOp::Append, "b", "x", 0, KvOutput::Done, 3),
        kv(0, KvOp::Get, "a", "", 2, KvOutput::Value("1".into()), 3),
        kv(1, KvOp::Append, "b", "y", 4, KvOutput::Done, 5),
        kv(0, KvOp::Get, "b", "", 6, KvOutput::Value("yx".into()), 7),
    ];
    assert_eq!(
        check_operations(&KvModel, &history, None),
        CheckResult::NotLinearizable
    );
    let info = check_with_info(&KvModel, &history, None);
    assert_eq!(info.result, CheckResult::NotLinearizable);
    assert_eq!(info.partitions.len(), 2);
    let a = &info.partitions[0];
    assert_eq!(
        (a.name.as_str(), a.result),
        ("key \"a\"", CheckResult::Linearizable)
    );
    assert_eq!(a.longest_prefix(), &[0, 2]);
    let b = &info.partitions[1];
    assert_eq!(b.result, CheckResult::NotLinearizable);
    // Both appends linearize ("xy"); the get of "yx" cannot follow.
    assert_eq!(b.longest_prefix(), &[1, 3]);
    assert_eq!(b.longest_containing, vec![Some(0), Some(0), None]);

    let mut fixed = history.clone();
    fixed[4].output = KvOutput::Value("xy".into());
    assert_eq!(
        check_operations(&KvModel, &fixed, None),
        CheckResult::Linearizable
    );
    // A missing key reads as "".
    let empty = vec![kv(
        0,
        KvOp::Get,
        "z",
        "",
        0,
        KvOutput::Value(String::new()),
        1,
    )];
    assert_eq!(
        check_operations(&KvModel, &empty, None),
        CheckResult::Linearizable
    );
}

/// A zero budget on a history that needs search gives Unknown, not a wrong answer.
#[test]
fn exhausted_budget_is_unknown() {
    let mut history = Vec::new();
    // 14 concurrent writes: about 2^14 configurations to rule out before the read of 7 fails.
    for i in 0..14u64 {
        history.push(op(i, In::Write(i as i64 % 3), 0, Out::Done, 100));
    }
    history.push(op(99, In::Read, 101, Out::Value(Some(7)), 102));
    assert_eq!(
        check_operations(&RegisterModel::default(), &history, Some(Duration::ZERO)),
        CheckResult::Unknown
    );
    assert_eq!(
        check_operations(
            &RegisterModel::default(),
            &history,
            Some(Duration::from_secs(60))
        ),
        CheckResult::NotLinearizable
    );
}

/// The page shows the failing partition, its longest prefix and states, and escapes what it embeds.
#[test]
fn html_page_shows_the_failure_and_escapes_text() {
    let history = vec![
        kv(0, KvOp::Put, "</script><b>", "v", 0, KvOutput::Done, 1),
        kv(
            1,
            KvOp::Get,
            "</script><b>",
            "",
            2,
            KvOutput::Value("w".into()),
            3,
        ),
    ];
    let info = check_with_info(&KvModel, &history, None);
    assert_eq!(info.result, CheckResult::NotLinearizable);
    let mut page = Vec::new();
    visualize(&KvModel, &info, &mut page).unwrap_or_else(|e| panic!("{e}"));
    let page = String::from_utf8(page).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        page.matches("</script>").count(),
        1,
        "only the page's own closing tag"
    );
    assert!(page.contains("not linearizable"));
    assert!(page.contains("\\u003c/script\\u003e"));
    // The longest prefix is the put, with the state after it.
    assert!(
        page.contains("\"partials\":[[{\"op\":0,\"state\":\"\\\"v\\\"\"}]]"),
        "{page}"
    );
}

#[test]
fn kv_parser_errors_name_the_line() {
    let ok = "{:process 0, :type :invoke, :f :put, :key \"1\", :value \"a\"}\n\
              {:process 0, :type :ok, :f :put, :key \"1\", :value \"a\"}\n";
    assert_eq!(parse_kv_log(ok).map(|h| h.len()), Ok(1));
    type IsExpected = fn(&ParseError) -> bool;
    let cases: [(&str, IsExpected); 6] = [
        (
            "{:process 0, :type :invoke, :f :put, :key \"1\", :value \"a\"\n",
            |e| matches!(e, ParseError::Syntax { line: 1, .. }),
        ),
        (
            "{:process 0, :type :launch, :f :put, :key \"1\", :value \"a\"}",
            |e| matches!(e, ParseError::UnknownType { line: 1, .. }),
        ),
        (
            "{:process 0, :type :invoke, :f :cas, :key \"1\", :value \"a\"}",
            |e| matches!(e, ParseError::UnknownFunction { line: 1, .. }),
        ),
        ("{:process 0, :type :invoke, :f :put, :value \"a\"}", |e| {
            matches!(
                e,
                ParseError::MissingField {
                    line: 1,
                    field: "key"
                }
            )
        }),
        (
            "\n{:process 3, :type :ok, :f :get, :key \"1\", :value \"a\"}",
            |e| {
                matches!(
                    e,
                    ParseError::NotPending {
                        line: 2,
                        process: 3
                    }
                )
            },
        ),
        (
            "{:process 0, :type :invoke, :f :get, :key \"1\", :value nil}\n\
             {:process 0, :type :invoke, :f :get, :key \"1\", :value nil}",
            |e| {
                matches!(
                    e,
                    ParseError::AlreadyPending {
                        line: 2,
                        pending_line: 1,
                        ..
                    }
                )
            },
        ),
    ];
    for (text, is_expected) in cases {
        match parse_kv_log(text) {
            Err(e) => {
                assert!(is_expected(&e), "{text:?}: unexpected error {e}");
                assert!(e.to_string().starts_with("line "), "{e}");
            }
            Ok(h) => panic!("{text:?} parsed: {h:?}"),
        }
    }
}

#[test]
fn register_parser_semantics_and_errors() {
    let log = "INFO  jepsen.util - 0\t:invoke\t:write\t1\n\
               INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]\n\
               INFO  jepsen.util - 2\t:invoke\t:read\tnil\n\
               INFO  jepsen.util - 0\t:ok\t:write\t1\n\
               INFO  jepsen.util - 1\t:info\t:cas\t:timed-out\n\
               INFO  jepsen.util - 2\t:fail\t:read\t:timed-out\n\
               INFO  jepsen.util - 3\t:invoke\t:cas\t[5 6]\n\
               INFO  jepsen.util - 3\t:fail\t:cas\t[5 6]\n\
               INFO  jepsen.util - 4\t:invoke\t:read\tnil\n\
               INFO  jepsen.util - 4\t:ok\t:read\t2\n\
               INFO  jepsen.util - 5\t:invoke\t:read\tnil\n";
    let history = match parse_register_log(log) {
        Ok(h) => h,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        history,
        vec![
            op(0, In::Write(1), 1, Out::Done, 4),
            // :info -> pending forever.
            op(
                1,
                In::Cas { from: 1, to: 2 },
                2,
                Out::Unknown,
                NEVER_RETURNED
            ),
            // The failed read and cas are dropped, as is the read still open at the end.
            op(4, In::Read, 9, Out::Value(Some(2)), 10),
        ]
    );
    assert_eq!(
        check_operations(&RegisterModel::default(), &history, None),
        CheckResult::Linearizable
    );

    let bad = [
        ("WARN  jepsen.util - 0\t:invoke\t:read\tnil", "line 1"),
        (
            "INFO  jepsen.util - 0\t:invoke\t:cas\t[1]",
            "line 1: bad value [1] for :cas",
        ),
        (
            "INFO  jepsen.util - 0\t:invoke\t:cas\t[1 2",
            "line 1: unterminated vector",
        ),
        ("INFO  jepsen.util - x\t:invoke\t:read\tnil", "line 1"),
        (
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:write\t1",
            "line 2",
        ),
        (
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil extra",
            "line 1: unexpected text",
        ),
        (
            "INFO  jepsen.util - 0\t:invoke",
            "line 1: unexpected end of line",
        ),
    ];
    for (text, prefix) in bad {
        match parse_register_log(text) {
            Err(e) => assert!(e.to_string().starts_with(prefix), "{text:?}: {e}"),
            Ok(h) => panic!("{text:?} parsed: {h:?}"),
        }
    }
}

/// Garbage and truncated lines give errors, never panics.
#[test]
fn parsers_do_not_panic_on_garbage() {
    let samples = [
        "{:process 0, :type :invoke, :f :append, :key \"0\", :value \"x 0 0 y\"}",
        "INFO  jepsen.util - 3\t:invoke\t:cas\t[1 4]",
        "{\"é\\",
        "INFO  jepsen.util - 99999999999999999999\t:invoke\t:read\tnil",
        "{:process -1, :type :invoke, :f :get, :key \"0\", :value nil}",
    ];
    let mut rng = Rng::new(7);
    for s in samples {
        for cut in 0..=s.len() {
            let Some(prefix) = s.get(..cut) else { continue };
            let _ = parse_kv_log(prefix);
            let _ = parse_register_log(prefix);
        }
        for _ in 0..200 {
            let mut bytes = s.as_bytes().to_vec();
            let i = rng.below(bytes.len() as u64) as usize;
            let noise = b"{}[]\":, \t\\x0-";
            bytes[i] = noise[rng.below(noise.len() as u64) as usize];
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_kv_log(&text);
            let _ = parse_register_log(&text);
        }
    }
}

/// Random small register histories (with unknown outcomes): the checker, the brute force and the
/// configuration-set checker agree, and both verdicts occur.
#[test]
fn random_register_histories_agree_with_brute_force() {
    let mut rng = Rng::new(1);
    let (mut good, mut bad) = (0, 0);
    for _ in 0..3000 {
        let n = 1 + rng.below(7) as usize;
        let mut history = Vec::new();
        for i in 0..n {
            let call = rng.below(12);
            let ret = call + rng.below(6);
            let v = rng.below(3) as i64;
            let (input, output) = match rng.below(4) {
                0 | 1 => (In::Read, Out::Value(if v == 0 { None } else { Some(v) })),
                2 => (In::Write(v), Out::Done),
                _ => (
                    In::Cas {
                        from: v,
                        to: rng.below(3) as i64,
                    },
                    if rng.below(2) == 0 {
                        Out::Done
                    } else {
                        Out::CasFailed
                    },
                ),
            };
            let (output, ret) = if input != In::Read && rng.below(5) == 0 {
                (Out::Unknown, NEVER_RETURNED)
            } else {
                (output, ret)
            };
            history.push(op(i as u64, input, call, output, ret));
        }
        let model = RegisterModel::default();
        let expected = brute_force(&model, &history);
        let result = check_operations(&model, &history, None);
        assert_eq!(
            result,
            if expected {
                CheckResult::Linearizable
            } else {
                CheckResult::NotLinearizable
            },
            "{history:?}"
        );
        let reference = config_check(&model, &history, 1_000_000);
        assert_eq!(
            reference,
            if expected {
                Reference::Linearizable
            } else {
                Reference::NotLinearizable
            },
            "{history:?}"
        );
        // With info, the verdict is the same and a complete linearization is a valid one.
        let info = check_with_info(&model, &history, None);
        assert_eq!(info.result, result);
        if expected {
            let mut state = None;
            for &i in info.partitions[0].longest_prefix() {
                state =
                    lincheck::Model::step(&model, &state, &history[i].input, &history[i].output)
                        .unwrap_or_else(|| {
                            panic!("linearization rejected by the model: {history:?}")
                        });
            }
            good += 1;
        } else {
            bad += 1;
        }
    }
    assert!(good > 300 && bad > 300, "good {good}, bad {bad}");
}

/// Random small key/value histories over two keys: partitioned check equals brute force on the whole.
#[test]
fn random_kv_histories_agree_with_brute_force() {
    let mut rng = Rng::new(2);
    let (mut good, mut bad) = (0, 0);
    let keys = ["k", "q"];
    let vals = ["", "a", "b", "ab", "ba"];
    for _ in 0..2000 {
        let n = 1 + rng.below(7) as usize;
        let mut history = Vec::new();
        for i in 0..n {
            let call = rng.below(10);
            let ret = call + rng.below(5);
            let key = keys[rng.below(2) as usize];
            let (o, value, out) = match rng.below(3) {
                0 => (
                    KvOp::Get,
                    "",
                    KvOutput::Value(vals[rng.below(5) as usize].to_string()),
                ),
                1 => (KvOp::Put, vals[1 + rng.below(2) as usize], KvOutput::Done),
                _ => (
                    KvOp::Append,
                    vals[1 + rng.below(2) as usize],
                    KvOutput::Done,
                ),
            };
            history.push(kv(i as u64, o, key, value, call, out, ret));
        }
        // The brute force runs on the whole history with a model that keeps every key.
        let expected = brute_force(&WholeKv, &history);
        let result = check_operations(&KvModel, &history, None);
        assert_eq!(
            result,
            if expected {
                CheckResult::Linearizable
            } else {
                CheckResult::NotLinearizable
            },
            "{history:?}"
        );
        if expected { good += 1 } else { bad += 1 }
    }
    assert!(good > 200 && bad > 200, "good {good}, bad {bad}");
}

/// A key/value model over all keys at once (no partitioning), for the brute force.
struct WholeKv;

impl lincheck::Model for WholeKv {
    type State = std::collections::BTreeMap<String, String>;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> Self::State {
        Self::State::new()
    }

    fn step(&self, state: &Self::State, input: &KvInput, output: &KvOutput) -> Option<Self::State> {
        let cur = state.get(&input.key).cloned().unwrap_or_default();
        let mut next = state.clone();
        match (input.op, output) {
            (KvOp::Get, KvOutput::Value(v)) => return (cur == *v).then_some(next),
            (KvOp::Put, _) => {
                next.insert(input.key.clone(), input.value.clone());
            }
            (KvOp::Append, _) => {
                next.insert(input.key.clone(), cur + &input.value);
            }
            _ => return None,
        }
        Some(next)
    }
}
