//! Property tests of the trace readers ([`parse`], a trace's JSON lines, and
//! [`parse_narration`], a run's `RUST_LOG=info` output), with what the tools then do with a
//! file from outside: replay it ([`Model`]), check it ([`check::first_violation`]), describe
//! and render its events. Arbitrary text and edited valid traces never panic or hang, give an
//! error or events, and allocate at most a bounded amount (measured by a counting
//! allocator); valid traces and narrations give back the events written.
//! 256 cases per property; `PROPTEST_CASES=N` runs N.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

use super::{MAX_LOG_CELLS, Model, check, describe, diff, groups, parse, parse_narration, view};

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

/// What reading and replaying `len` bytes may allocate: the logs' cells (8 bytes each, a
/// vector at most doubling) and a small multiple of the text.
fn bound(len: usize) -> usize {
    // The replay's logs may legitimately hold MAX_LOG_CELLS terms of 8 bytes; a growing Vec
    // holds up to twice that, plus the old buffer while it moves: 4x, and some slack.
    4 * 8 * MAX_LOG_CELLS as usize + (1 << 20) + 256 * len
}

/// Everything the trace tools do with a file, under measurement.
fn check_trace(text: &str) -> Result<(), TestCaseError> {
    let (_, usage) = testalloc::measure(|| {
        let _ = parse_narration(text);
        let Ok(events) = parse(text) else { return };
        for g in groups(&events) {
            let mut m = Model::of_group(g);
            for e in &events {
                m.apply(e);
            }
        }
        for e in &events {
            let _ = describe(e);
            let _ = e.subject();
        }
        let _ = check::first_violation(&events);
        let _ = diff::first_difference(&events, &events);
        let _ = view::page(&events, "props");
    });
    prop_assert!(
        usage.peak <= bound(text.len()) && usage.largest <= bound(text.len()),
        "reading {} bytes used {usage:?}",
        text.len()
    );
    Ok(())
}

/// Numbers as traces have them, and the ones that break arithmetic.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![6 => 0..12u64, 1 => any::<u64>(), 1 => Just(u64::MAX), 1 => Just(1 << 60)]
}

/// One event of the node.* / test.* / rpc.* vocabulary, fields from the Model's.
fn event() -> impl Strategy<Value = Map<String, Value>> {
    let kind = proptest::sample::select(vec![
        "node.state",
        "node.log",
        "node.boot",
        "node.snapshot",
        "test.crash",
        "test.start",
        "test.connect",
        "test.disconnect",
        "test.begin",
        "test.violation",
        "rpc.call",
        "rpc.return",
        "kv.put",
        "other",
    ]);
    let role = proptest::sample::select(vec!["leader", "follower", "candidate", "precandidate"]);
    (
        kind,
        role,
        proptest::collection::vec(number(), 9),
        proptest::collection::vec(0..5u64, 0..6),
        proptest::option::of(proptest::sample::select(vec!["g0", "g1"])),
    )
        .prop_map(|(kind, role, n, terms, group)| {
            let mut v = Map::new();
            v.insert("t_us".into(), json!(n[0]));
            v.insert("kind".into(), json!(kind));
            if let Some(g) = group {
                v.insert("group".into(), json!(g));
            }
            // Node ids stay small, as in a run; the rest may be anything.
            let id = n[1] % 5;
            match kind {
                "node.state" => {
                    v.insert("id".into(), json!(id));
                    v.insert("role".into(), json!(role));
                    v.insert("term".into(), json!(n[2]));
                    v.insert("vote".into(), json!(n[3] % 5));
                    v.insert("leader".into(), json!(n[4] % 5));
                    v.insert("commit".into(), json!(n[5]));
                    v.insert("applied".into(), json!(n[6]));
                    v.insert("snap".into(), json!(n[7]));
                }
                "node.log" | "node.boot" => {
                    v.insert("id".into(), json!(id));
                    v.insert("from".into(), json!(n[2]));
                    v.insert("snap".into(), json!(n[3]));
                    v.insert("snap_term".into(), json!(n[4]));
                    v.insert("term".into(), json!(n[5]));
                    v.insert("terms".into(), json!(terms));
                }
                "node.snapshot" => {
                    v.insert("id".into(), json!(id));
                    v.insert("index".into(), json!(n[2]));
                    v.insert("term".into(), json!(n[3]));
                }
                "rpc.call" | "rpc.return" => {
                    let ty = ["AppendEntries", "RequestVote", "InstallSnapshot", "PreVote"]
                        [(n[2] % 4) as usize];
                    v.insert(
                        "msg".into(),
                        json!({"type": ty, "from": id, "to": n[3] % 5, "term": n[4],
                               "terms": terms, "commit": n[5], "round": n[6]}),
                    );
                }
                k if k.starts_with("test.") => {
                    v.insert("server".into(), json!(id));
                    v.insert("message".into(), json!("m"));
                }
                _ => {
                    v.insert("key".into(), json!(n[2]));
                }
            }
            v
        })
}

/// Keeps a generated trace's logs small (the parser refuses the huge ones: see below).
fn tame(mut v: Map<String, Value>) -> Map<String, Value> {
    for k in ["from", "snap", "index", "commit", "applied"] {
        if let Some(n) = v.get(k).and_then(Value::as_u64) {
            v.insert(k.into(), json!(n % 64));
        }
    }
    v
}

fn trace_text(events: &[Map<String, Value>]) -> String {
    events
        .iter()
        .map(|e| Value::Object(e.clone()).to_string() + "\n")
        .collect()
}

/// Damage to a valid trace: characters deleted or inserted, lines duplicated or cut, a number
/// replaced by a huge one.
#[derive(Clone, Debug)]
enum Edit {
    Delete(Index, usize),
    Insert(Index, char),
    DuplicateLine(Index),
    Truncate(Index),
    HugeNumber(Index, u64),
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = prop_oneof![
        proptest::sample::select(vec![
            '{', '}', '[', ']', '"', '\\', ':', ',', '\n', '-', '9', 'e'
        ]),
        any::<char>(),
    ];
    prop_oneof![
        (any::<Index>(), 1..6usize).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<Index>(), c).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<Index>().prop_map(Edit::DuplicateLine),
        any::<Index>().prop_map(Edit::Truncate),
        (
            any::<Index>(),
            prop_oneof![Just(u64::MAX), Just(1u64 << 60), Just(MAX_LOG_CELLS + 1)]
        )
            .prop_map(|(i, n)| Edit::HugeNumber(i, n)),
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
            Edit::DuplicateLine(i) => {
                let s: String = chars.iter().collect();
                let mut lines: Vec<&str> = s.lines().collect();
                if lines.is_empty() {
                    continue;
                }
                let a = i.index(lines.len());
                lines.insert(a, lines[a]);
                chars = lines.join("\n").chars().collect();
            }
            Edit::HugeNumber(i, n) => {
                // Replace the digits of one number in the text.
                let starts: Vec<usize> = (0..len)
                    .filter(|&k| {
                        chars[k].is_ascii_digit() && (k == 0 || !chars[k - 1].is_ascii_digit())
                    })
                    .collect();
                if starts.is_empty() {
                    continue;
                }
                let at = starts[i.index(starts.len())];
                let end = (at..len)
                    .find(|&k| !chars[k].is_ascii_digit())
                    .unwrap_or(len);
                chars.splice(at..end, n.to_string().chars());
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// A narration line's parts: seconds, level, message words, `key=value` fields.
fn narration_line() -> impl Strategy<Value = (u64, &'static str, Vec<String>, Vec<(String, String)>)>
{
    (
        0..10_000_000_000u64,
        proptest::sample::select(vec!["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]),
        proptest::collection::vec("[a-z0-9.,:()-]{1,8}", 0..6),
        proptest::collection::vec(("[a-z_][a-z0-9_]{0,6}", "[^\\s=\\x1b]{0,8}"), 0..4),
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn traces_parse_to_the_events_written(
        events in proptest::collection::vec(event().prop_map(tame), 0..30),
        blank in any::<Index>(),
    ) {
        let mut text = trace_text(&events);
        // A blank line anywhere is skipped.
        let at = text.char_indices().filter(|(_, c)| *c == '\n').map(|(k, _)| k + 1)
            .nth(blank.index(events.len().max(1))).unwrap_or(0);
        text.insert_str(at, "\n  \n");
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
        prop_assert_eq!(parsed.len(), events.len());
        for (k, (p, e)) in parsed.iter().zip(&events).enumerate() {
            prop_assert_eq!(p.n, k);
            prop_assert_eq!(Some(p.t_us), e["t_us"].as_u64());
            prop_assert_eq!(Some(p.kind.as_str()), e["kind"].as_str());
            prop_assert_eq!(&p.v, &Value::Object(e.clone()));
        }
        check_trace(&text)?;
    }

    #[test]
    fn narrations_parse_to_the_lines_written(
        lines in proptest::collection::vec(narration_line(), 0..12),
        colour in any::<bool>(),
    ) {
        let mut text = String::from("running 1 test\n");
        for (us, level, words, fields) in &lines {
            let secs = format!("{}.{:06}s", us / 1_000_000, us % 1_000_000);
            let (dim, off) = if colour { ("\u{1b}[2m", "\u{1b}[0m") } else { ("", "") };
            text.push_str(&format!("{dim}{secs}{off} {dim}{level}{off} {}", words.join(" ")));
            for (k, v) in fields {
                text.push_str(&format!(" {dim}{k}{off}{dim}={off}{v}"));
            }
            text.push('\n');
        }
        let events = parse_narration(&text);
        prop_assert_eq!(events.len(), lines.len());
        for (e, (us, level, words, fields)) in events.iter().zip(&lines) {
            prop_assert_eq!(e.t_us, *us);
            prop_assert_eq!(e.kind.as_str(), "log");
            prop_assert_eq!(e.str("level"), Some(*level));
            let message = words.join(" ");
            prop_assert_eq!(e.str("message"), Some(message.as_str()));
            for (k, v) in fields {
                // A repeated key keeps its last value.
                let last = fields.iter().rev().find(|(k2, _)| k2 == k).map(|(_, v)| v.as_str());
                prop_assert_eq!(e.str(k), last, "field {}={}", k, v);
            }
        }
    }

    #[test]
    fn arbitrary_text_reads_or_fails(text in any::<String>()) {
        check_trace(&text)?;
    }

    #[test]
    fn events_with_any_numbers_read_or_fail(
        events in proptest::collection::vec(event(), 0..20),
    ) {
        check_trace(&trace_text(&events))?;
    }

    #[test]
    fn edited_traces_read_or_fail(
        events in proptest::collection::vec(event().prop_map(tame), 1..20),
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        check_trace(&apply_edits(&trace_text(&events), &edits))?;
    }
}

#[test]
fn regression_a_log_index_of_2_pow_60_is_refused_not_allocated() {
    // Each of these asked the replay for 2^60 zeroed terms (8 EiB).
    for line in [
        r#"{"t_us":0,"kind":"node.log","id":0,"from":1152921504606846976,"terms":[1]}"#,
        r#"{"t_us":0,"kind":"node.boot","id":0,"snap":1152921504606846976,"snap_term":1}"#,
        r#"{"t_us":0,"kind":"node.snapshot","id":0,"index":1152921504606846976,"term":1}"#,
    ] {
        let (result, usage) = testalloc::measure(|| parse(line).map(|e| e.len()));
        let err = result.expect_err(line);
        assert!(format!("{err:#}").contains("entries in all"), "{err:#}");
        assert!(usage.peak < 1 << 20, "{usage:?}");
    }
    // Many nodes each a little under the limit add up past it.
    let per_node = MAX_LOG_CELLS / 4;
    let text: String = (0..5)
        .map(|id| format!("{{\"t_us\":0,\"kind\":\"node.snapshot\",\"id\":{id},\"index\":{per_node},\"term\":1}}\n"))
        .collect();
    assert!(parse(&text).is_err());
    // A trace within the limit replays.
    let ok = format!(
        "{{\"t_us\":0,\"kind\":\"node.snapshot\",\"id\":0,\"index\":{per_node},\"term\":1}}"
    );
    let events = parse(&ok).expect("within the limit");
    let m = Model::at(&events, 0);
    assert_eq!(m.nodes[&0].terms.len() as u64, per_node);
}

#[test]
fn regression_a_commit_index_of_2_pow_63_does_not_hang_the_check() {
    // check-trace walked every index from the last commit to this one: 2^63 iterations.
    let text = r#"{"t_us":0,"kind":"node.log","id":0,"from":1,"terms":[1,1]}
{"t_us":1,"kind":"node.state","id":0,"role":"leader","term":1,"commit":9223372036854775808}
{"t_us":2,"kind":"node.state","id":0,"role":"leader","term":1,"commit":18446744073709551615}
{"t_us":3,"kind":"node.state","id":0,"role":"leader","term":1,"commit":1}"#;
    let events = parse(text).expect("parses");
    let v = check::first_violation(&events).expect("the commit goes back");
    assert_eq!(v.property, "Monotonic commit");
    assert_eq!(v.event, 3);
}
