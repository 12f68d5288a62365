//! Property tests of the history parsers ([`parse_kv_log`], porcupine's key/value logs, and
//! [`parse_register_log`], Jepsen's etcd register logs, an EDN subset), the readers of files
//! from outside: arbitrary text and mutated valid logs never panic or overflow the stack, give
//! a [`ParseError`] or a history, and allocate at most a bounded amount (measured by a
//! counting allocator); valid logs give back exactly the operations written.
//! 256 cases per property; `PROPTEST_CASES=N` runs N.

use lincheck::models::kv::{KvInput, KvOp, KvOutput};
use lincheck::models::register::{RegisterInput, RegisterOutput};
use lincheck::{Format, NEVER_RETURNED, Operation, ParseError, parse_kv_log, parse_register_log};
use proptest::prelude::*;
use proptest::sample::Index;

#[global_allocator]
static ALLOC: testalloc::Tracking = testalloc::Tracking;

/// 256 cases unless `PROPTEST_CASES` says otherwise.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = match std::env::var_os("PROPTEST_CASES") {
        Some(_) => default.cases,
        None => 256,
    };
    ProptestConfig { cases, ..default }
}

/// What parsing `len` bytes may allocate: a history is a small multiple of its text.
fn bound(len: usize) -> usize {
    (1 << 20) + 64 * len
}

/// Parses `text` both ways (and guesses its format) under measurement.
fn check_parse(text: &str) -> Result<(), TestCaseError> {
    let (_, usage) = testalloc::measure(|| {
        let _ = Format::guess(text);
        let kv: Result<_, ParseError> = parse_kv_log(text);
        let register: Result<_, ParseError> = parse_register_log(text);
        (kv.is_ok(), register.is_ok())
    });
    prop_assert!(
        usage.peak <= bound(text.len()) && usage.largest <= bound(text.len()),
        "parsing {} bytes used {usage:?}",
        text.len()
    );
    Ok(())
}

/// Outcomes of an operation, as Jepsen writes them.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    Ok,
    Fail,
    Info,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![3 => Just(Outcome::Ok), 1 => Just(Outcome::Fail), 1 => Just(Outcome::Info)]
}

/// A string as Clojure prints it: quotes, backslashes and control characters escaped.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One step of a key/value history: process `p` invokes (if idle) or completes (if busy).
#[derive(Clone, Debug)]
struct KvStep {
    process: u64,
    op: KvOp,
    /// A string key, or a numeric one written without quotes.
    key: Result<String, u32>,
    value: String,
    outcome: Outcome,
    /// A get's result: `None` is nil.
    read: Option<String>,
    /// Fields rotated by this much (the parser finds them by name); a blank line before.
    rotate: usize,
    blank: bool,
}

fn kv_step() -> impl Strategy<Value = KvStep> {
    (
        0..4u64,
        prop_oneof![Just(KvOp::Get), Just(KvOp::Put), Just(KvOp::Append)],
        prop_oneof![any::<String>().prop_map(Ok), any::<u32>().prop_map(Err)],
        any::<String>(),
        outcome(),
        proptest::option::of(any::<String>()),
        0..5usize,
        proptest::bool::weighted(0.1),
    )
        .prop_map(
            |(process, op, key, value, outcome, read, rotate, blank)| KvStep {
                process,
                op,
                key,
                value,
                outcome,
                read,
                rotate,
                blank,
            },
        )
}

/// A valid key/value log and the operations it must parse to.
fn kv_log(steps: &[KvStep]) -> (String, Vec<Operation<KvInput, KvOutput>>) {
    let mut text = String::new();
    let mut line = 0u64;
    // Per process: the invocation waiting for its completion (line, input, key as written).
    let mut pending: std::collections::BTreeMap<u64, (u64, KvInput, String)> = Default::default();
    let mut ops = Vec::new();
    for s in steps {
        if s.blank {
            text.push('\n');
            line += 1;
        }
        line += 1;
        let (kind, f, key_text, value_text);
        match pending.remove(&s.process) {
            None => {
                let key = match &s.key {
                    Ok(k) => k.clone(),
                    Err(n) => n.to_string(),
                };
                let written = match &s.key {
                    Ok(k) => quoted(k),
                    Err(n) => n.to_string(),
                };
                let value = if s.op == KvOp::Get {
                    String::new()
                } else {
                    s.value.clone()
                };
                value_text = if s.op == KvOp::Get {
                    "nil".to_owned()
                } else {
                    quoted(&value)
                };
                kind = ":invoke";
                f = s.op;
                key_text = written.clone();
                pending.insert(
                    s.process,
                    (
                        line,
                        KvInput {
                            op: s.op,
                            key,
                            value,
                        },
                        written,
                    ),
                );
            }
            Some((call, input, written)) => {
                f = input.op;
                key_text = written;
                match s.outcome {
                    Outcome::Ok => {
                        kind = ":ok";
                        let output = match (input.op, &s.read) {
                            (KvOp::Get, Some(v)) => {
                                value_text = quoted(v);
                                KvOutput::Value(v.clone())
                            }
                            (KvOp::Get, None) => {
                                value_text = "nil".to_owned();
                                KvOutput::Value(String::new())
                            }
                            _ => {
                                value_text = quoted(&input.value);
                                KvOutput::Done
                            }
                        };
                        ops.push(Operation {
                            client_id: s.process,
                            input,
                            call,
                            output,
                            ret: line,
                        });
                    }
                    Outcome::Fail => {
                        kind = ":fail";
                        value_text = "nil".to_owned();
                    }
                    Outcome::Info => {
                        kind = ":info";
                        value_text = "nil".to_owned();
                        if input.op != KvOp::Get {
                            ops.push(Operation {
                                client_id: s.process,
                                input,
                                call,
                                output: KvOutput::Unknown,
                                ret: NEVER_RETURNED,
                            });
                        }
                    }
                }
            }
        }
        let f_text = match f {
            KvOp::Get => ":get",
            KvOp::Put => ":put",
            KvOp::Append => ":append",
        };
        let mut fields = [
            format!(":process {}", s.process),
            format!(":type {kind}"),
            format!(":f {f_text}"),
            format!(":key {key_text}"),
            format!(":value {value_text}"),
        ];
        fields.rotate_left(s.rotate);
        text.push_str(&format!("{{{}}}\n", fields.join(", ")));
    }
    for (process, (call, input, _)) in pending {
        if input.op != KvOp::Get {
            ops.push(Operation {
                client_id: process,
                input,
                call,
                output: KvOutput::Unknown,
                ret: NEVER_RETURNED,
            });
        }
    }
    ops.sort_by_key(|op| op.call);
    (text, ops)
}

#[derive(Clone, Debug)]
struct RegisterStep {
    process: u64,
    /// 0 read, 1 write, 2 cas.
    f: u8,
    a: i64,
    b: i64,
    outcome: Outcome,
    read: Option<i64>,
}

fn register_step() -> impl Strategy<Value = RegisterStep> {
    (
        0..4u64,
        0..3u8,
        any::<i64>(),
        any::<i64>(),
        outcome(),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(|(process, f, a, b, outcome, read)| RegisterStep {
            process,
            f,
            a,
            b,
            outcome,
            read,
        })
}

/// A valid Jepsen register log and the operations it must parse to.
fn register_log(steps: &[RegisterStep]) -> (String, Vec<Operation<RegisterInput, RegisterOutput>>) {
    let mut text = String::new();
    let mut pending: std::collections::BTreeMap<u64, (u64, RegisterInput)> = Default::default();
    let mut ops = Vec::new();
    let value_of = |input: &RegisterInput| match input {
        RegisterInput::Read => "nil".to_owned(),
        RegisterInput::Write(v) => v.to_string(),
        RegisterInput::Cas { from, to } => format!("[{from} {to}]"),
    };
    let f_of = |input: &RegisterInput| match input {
        RegisterInput::Read => ":read",
        RegisterInput::Write(_) => ":write",
        RegisterInput::Cas { .. } => ":cas",
    };
    for (i, s) in steps.iter().enumerate() {
        let line = i as u64 + 1;
        let (kind, input, value) = match pending.remove(&s.process) {
            None => {
                let input = match s.f {
                    0 => RegisterInput::Read,
                    1 => RegisterInput::Write(s.a),
                    _ => RegisterInput::Cas { from: s.a, to: s.b },
                };
                pending.insert(s.process, (line, input));
                (":invoke", input, value_of(&input))
            }
            Some((call, input)) => match s.outcome {
                Outcome::Ok => {
                    let (output, value) = match input {
                        RegisterInput::Read => (
                            RegisterOutput::Value(s.read),
                            s.read.map_or("nil".to_owned(), |v| v.to_string()),
                        ),
                        _ => (RegisterOutput::Done, value_of(&input)),
                    };
                    ops.push(Operation {
                        client_id: s.process,
                        input,
                        call,
                        output,
                        ret: line,
                    });
                    (":ok", input, value)
                }
                Outcome::Fail => (":fail", input, value_of(&input)),
                Outcome::Info => {
                    if input != RegisterInput::Read {
                        ops.push(Operation {
                            client_id: s.process,
                            input,
                            call,
                            output: RegisterOutput::Unknown,
                            ret: NEVER_RETURNED,
                        });
                    }
                    (":info", input, value_of(&input))
                }
            },
        };
        text.push_str(&format!(
            "INFO  jepsen.util - {}\t{kind}\t{}\t{value}\n",
            s.process,
            f_of(&input)
        ));
    }
    for (process, (call, input)) in pending {
        if input != RegisterInput::Read {
            ops.push(Operation {
                client_id: process,
                input,
                call,
                output: RegisterOutput::Unknown,
                ret: NEVER_RETURNED,
            });
        }
    }
    ops.sort_by_key(|op| op.call);
    (text, ops)
}

/// Text made of the formats' own tokens, so that arbitrary input gets past the first check.
fn soup() -> impl Strategy<Value = String> {
    let tokens = [
        "{",
        "}",
        "[",
        "]",
        "\"",
        "\\",
        ":",
        " ",
        ",",
        "\t",
        "\n",
        "\r",
        "0",
        "7",
        "-",
        "-1",
        "9223372036854775808",
        "nil",
        ":process",
        ":type",
        ":invoke",
        ":ok",
        ":fail",
        ":info",
        ":f",
        ":get",
        ":put",
        ":append",
        ":read",
        ":write",
        ":cas",
        ":key",
        ":value",
        "INFO",
        "jepsen.util",
        "é",
        "\u{1b}",
    ];
    proptest::collection::vec(proptest::sample::select(tokens.to_vec()), 0..200)
        .prop_map(|t| t.concat())
}

/// Damage to a valid log: characters deleted or inserted, lines duplicated, swapped or cut.
#[derive(Clone, Debug)]
enum Edit {
    Delete(Index, usize),
    Insert(Index, char),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = prop_oneof![
        proptest::sample::select(
            &['{', '}', '[', ']', '"', '\\', ':', ' ', ',', '\n', '-', '9'][..]
        ),
        any::<char>(),
    ];
    prop_oneof![
        (any::<Index>(), 1..6usize).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<Index>(), c).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<Index>().prop_map(Edit::DuplicateLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply_edits(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let len = chars.len();
        match e {
            Edit::Delete(i, n) if len > 0 => {
                let at = i.index(len);
                chars.drain(at..(at + n).min(len));
            }
            Edit::Insert(i, c) => chars.insert(i.index(len + 1), *c),
            Edit::Truncate(i) => chars.truncate(i.index(len + 1)),
            Edit::DuplicateLine(i) | Edit::SwapLines(i, _) => {
                let s: String = chars.iter().collect();
                let mut lines: Vec<&str> = s.lines().collect();
                if lines.is_empty() {
                    continue;
                }
                let a = i.index(lines.len());
                match e {
                    Edit::SwapLines(_, j) => {
                        let b = j.index(lines.len());
                        lines.swap(a, b);
                    }
                    _ => lines.insert(a, lines[a]),
                }
                chars = lines.join("\n").chars().collect();
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn kv_logs_parse_to_the_operations_written(
        steps in proptest::collection::vec(kv_step(), 0..40),
    ) {
        let (text, ops) = kv_log(&steps);
        let parsed = parse_kv_log(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(parsed, ops);
    }

    #[test]
    fn register_logs_parse_to_the_operations_written(
        steps in proptest::collection::vec(register_step(), 0..40),
    ) {
        let (text, ops) = register_log(&steps);
        let parsed =
            parse_register_log(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(parsed, ops);
    }

    #[test]
    fn arbitrary_text_parses_or_fails(text in any::<String>()) {
        check_parse(&text)?;
    }

    #[test]
    fn token_soup_parses_or_fails(text in soup()) {
        check_parse(&text)?;
    }

    #[test]
    fn edited_kv_logs_parse_or_fail(
        steps in proptest::collection::vec(kv_step(), 1..16),
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let (text, _) = kv_log(&steps);
        check_parse(&apply_edits(&text, &edits))?;
    }

    #[test]
    fn edited_register_logs_parse_or_fail(
        steps in proptest::collection::vec(register_step(), 1..16),
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let (text, _) = register_log(&steps);
        check_parse(&apply_edits(&text, &edits))?;
    }
}

/// Runs `f` on a thread with a small stack, as a test thread may have: deep recursion shows.
fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

#[test]
fn regression_deeply_nested_vectors_are_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(1_000_000);
    let kv = format!("{{:process 0, :type :invoke, :f :put, :key \"k\", :value {deep}}}");
    let register = format!("INFO  jepsen.util - 0\t:invoke\t:cas\t{deep}");
    let (kv, register) = on_small_stack(move || {
        (
            parse_kv_log(&kv).map(|_| ()),
            parse_register_log(&register).map(|_| ()),
        )
    });
    assert!(
        matches!(kv, Err(ParseError::Syntax { line: 1, .. })),
        "{kv:?}"
    );
    assert!(
        matches!(register, Err(ParseError::Syntax { line: 1, .. })),
        "{register:?}"
    );
    // Nesting within the limit is parsed (and refused for its meaning, not its depth).
    let nested = format!(
        "INFO  jepsen.util - 0\t:invoke\t:cas\t{}{}",
        "[".repeat(8),
        "]".repeat(8)
    );
    let err = parse_register_log(&nested).expect_err("not [from to]");
    assert!(matches!(err, ParseError::BadValue { .. }), "{err:?}");
}
