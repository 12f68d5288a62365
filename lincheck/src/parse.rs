//! Parsers for the two on-disk history formats (see `shared/testdata/README.md`):
//!
//! - porcupine's key/value logs, one event per line:
//!   `{:process 0, :type :invoke, :f :append, :key "4", :value "x 0 1 y"}`;
//! - Jepsen's etcd register logs: `INFO  jepsen.util - 3<TAB>:invoke<TAB>:cas<TAB>[1 4]`.
//!
//! The time of an event is its line number. Event types follow Jepsen: `:invoke` starts an operation of a
//! process, `:ok` completes it, `:fail` means it did not happen (dropped), `:info` means its outcome is
//! unknown: it stays pending forever ([`NEVER_RETURNED`]), except a read, which has no effect and is dropped.
//! An operation still open at the end of the log is treated like `:info`.

use std::collections::BTreeMap;

use crate::model::{NEVER_RETURNED, Operation};
use crate::models::kv::{KvInput, KvOp, KvOutput};
use crate::models::register::{RegisterInput, RegisterOutput};

/// A malformed history file. Line numbers start at 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line {line}: {what}")]
    Syntax { line: usize, what: String },
    #[error("line {line}: missing field :{field}")]
    MissingField { line: usize, field: &'static str },
    #[error("line {line}: unknown event type {found} (expected :invoke, :ok, :fail or :info)")]
    UnknownType { line: usize, found: String },
    #[error("line {line}: unknown operation {found} (expected one of {expected})")]
    UnknownFunction {
        line: usize,
        found: String,
        expected: &'static str,
    },
    #[error("line {line}: bad value {found} for :{f} (expected {expected})")]
    BadValue {
        line: usize,
        f: String,
        found: String,
        expected: &'static str,
    },
    #[error(
        "line {line}: process {process} invokes an operation while its operation from line {pending_line} is still pending"
    )]
    AlreadyPending {
        line: usize,
        process: u64,
        pending_line: usize,
    },
    #[error("line {line}: process {process} completes an operation it never invoked")]
    NotPending { line: usize, process: u64 },
    #[error(
        "line {line}: process {process} completes {found} but invoked {invoked} on line {invoke_line}"
    )]
    Mismatch {
        line: usize,
        process: u64,
        found: String,
        invoked: String,
        invoke_line: usize,
    },
}

/// Parses a porcupine key/value log.
pub fn parse_kv_log(text: &str) -> Result<Vec<Operation<KvInput, KvOutput>>, ParseError> {
    let mut history = HistoryBuilder::default();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let fields = parse_map(raw, line)?;
        let field = |name: &'static str| -> Result<&Value, ParseError> {
            fields
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
                .ok_or(ParseError::MissingField { line, field: name })
        };
        let process = as_process(field("process")?, line)?;
        let kind = as_kind(field("type")?, line)?;
        let f = match field("f")? {
            Value::Keyword("get") => KvOp::Get,
            Value::Keyword("put") => KvOp::Put,
            Value::Keyword("append") => KvOp::Append,
            other => {
                return Err(ParseError::UnknownFunction {
                    line,
                    found: other.to_string(),
                    expected: ":get, :put, :append",
                });
            }
        };
        let f_name = match f {
            KvOp::Get => ":get",
            KvOp::Put => ":put",
            KvOp::Append => ":append",
        };
        let key = match field("key")? {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            other => {
                return Err(ParseError::BadValue {
                    line,
                    f: "key".into(),
                    found: other.to_string(),
                    expected: "a string",
                });
            }
        };
        let value = field("value")?;
        let bad_value = |expected| ParseError::BadValue {
            line,
            f: f_name[1..].to_string(),
            found: value.to_string(),
            expected,
        };
        match kind {
            Kind::Invoke => {
                let value = match (f, value) {
                    (KvOp::Get, _) => String::new(),
                    (_, Value::Str(s)) => s.clone(),
                    _ => return Err(bad_value("a string")),
                };
                history.invoke(line, process, f_name, KvInput { op: f, key, value })?;
            }
            Kind::Ok => {
                let output = match (f, value) {
                    (KvOp::Get, Value::Str(s)) => KvOutput::Value(s.clone()),
                    // A missing key reads as the empty string in the 6.5840 KV service.
                    (KvOp::Get, Value::Nil) => KvOutput::Value(String::new()),
                    (KvOp::Get, _) => return Err(bad_value("a string or nil")),
                    _ => KvOutput::Done,
                };
                let (invoke_line, input) = history.complete(line, process, f_name)?;
                if input.key != key {
                    return Err(ParseError::Mismatch {
                        line,
                        process,
                        found: format!("key {key:?}"),
                        invoked: format!("key {:?}", input.key),
                        invoke_line,
                    });
                }
                history.push(process, invoke_line, input, output, line as u64);
            }
            Kind::Fail => {
                history.complete(line, process, f_name)?;
            }
            Kind::Info => {
                let (invoke_line, input) = history.complete(line, process, f_name)?;
                if input.op != KvOp::Get {
                    history.push(
                        process,
                        invoke_line,
                        input,
                        KvOutput::Unknown,
                        NEVER_RETURNED,
                    );
                }
            }
        }
    }
    Ok(history.finish(|input| (input.op != KvOp::Get).then_some(KvOutput::Unknown)))
}

/// Parses a Jepsen etcd register log.
pub fn parse_register_log(
    text: &str,
) -> Result<Vec<Operation<RegisterInput, RegisterOutput>>, ParseError> {
    let mut history = HistoryBuilder::default();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let syntax = |what: &str| ParseError::Syntax {
            line,
            what: what.to_string(),
        };
        // `INFO  jepsen.util - P	:type	:f	value`
        let mut p = Cursor::new(raw);
        for expected in ["INFO", "jepsen.util", "-"] {
            p.skip_ws();
            if p.word() != expected {
                return Err(syntax(&format!(
                    "expected a line like `INFO  jepsen.util - 3\t:invoke\t:cas\t[1 4]`, missing {expected:?}"
                )));
            }
        }
        let process = as_process(&p.value(line)?, line)?;
        let kind = as_kind(&p.value(line)?, line)?;
        let f = p.value(line)?;
        let value = p.value(line)?;
        p.skip_ws();
        if !p.at_end() {
            return Err(syntax("unexpected text after the value"));
        }
        let f_name = match f {
            Value::Keyword("read") => ":read",
            Value::Keyword("write") => ":write",
            Value::Keyword("cas") => ":cas",
            other => {
                return Err(ParseError::UnknownFunction {
                    line,
                    found: other.to_string(),
                    expected: ":read, :write, :cas",
                });
            }
        };
        let bad_value = |expected| ParseError::BadValue {
            line,
            f: f_name[1..].to_string(),
            found: value.to_string(),
            expected,
        };
        match kind {
            Kind::Invoke => {
                let input = match (f_name, &value) {
                    (":read", _) => RegisterInput::Read,
                    (":write", Value::Int(v)) => RegisterInput::Write(*v),
                    (":write", _) => return Err(bad_value("an integer")),
                    (_, Value::Vector(items)) => match items.as_slice() {
                        [Value::Int(from), Value::Int(to)] => RegisterInput::Cas {
                            from: *from,
                            to: *to,
                        },
                        _ => return Err(bad_value("[from to]")),
                    },
                    _ => return Err(bad_value("[from to]")),
                };
                history.invoke(line, process, f_name, input)?;
            }
            Kind::Ok => {
                let output = match (f_name, &value) {
                    (":read", Value::Nil) => RegisterOutput::Value(None),
                    (":read", Value::Int(v)) => RegisterOutput::Value(Some(*v)),
                    (":read", _) => return Err(bad_value("an integer or nil")),
                    _ => RegisterOutput::Done,
                };
                let (invoke_line, input) = history.complete(line, process, f_name)?;
                history.push(process, invoke_line, input, output, line as u64);
            }
            Kind::Fail => {
                history.complete(line, process, f_name)?;
            }
            Kind::Info => {
                let (invoke_line, input) = history.complete(line, process, f_name)?;
                if input != RegisterInput::Read {
                    history.push(
                        process,
                        invoke_line,
                        input,
                        RegisterOutput::Unknown,
                        NEVER_RETURNED,
                    );
                }
            }
        }
    }
    Ok(history.finish(|input| (*input != RegisterInput::Read).then_some(RegisterOutput::Unknown)))
}

/// Jepsen event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

fn as_kind(v: &Value, line: usize) -> Result<Kind, ParseError> {
    match v {
        Value::Keyword("invoke") => Ok(Kind::Invoke),
        Value::Keyword("ok") => Ok(Kind::Ok),
        Value::Keyword("fail") => Ok(Kind::Fail),
        Value::Keyword("info") => Ok(Kind::Info),
        other => Err(ParseError::UnknownType {
            line,
            found: other.to_string(),
        }),
    }
}

fn as_process(v: &Value, line: usize) -> Result<u64, ParseError> {
    match v {
        Value::Int(p) if *p >= 0 => Ok(*p as u64),
        other => Err(ParseError::BadValue {
            line,
            f: "process".into(),
            found: other.to_string(),
            expected: "a non-negative integer",
        }),
    }
}

/// An invocation waiting for its completion.
struct Pending<I> {
    line: usize,
    f: &'static str,
    input: I,
}

/// Pairs invocations with completions per process.
struct HistoryBuilder<I, O> {
    pending: BTreeMap<u64, Pending<I>>,
    ops: Vec<Operation<I, O>>,
}

impl<I, O> Default for HistoryBuilder<I, O> {
    fn default() -> Self {
        HistoryBuilder {
            pending: BTreeMap::new(),
            ops: Vec::new(),
        }
    }
}

impl<I, O> HistoryBuilder<I, O> {
    fn invoke(
        &mut self,
        line: usize,
        process: u64,
        f: &'static str,
        input: I,
    ) -> Result<(), ParseError> {
        if let Some(p) = self.pending.get(&process) {
            return Err(ParseError::AlreadyPending {
                line,
                process,
                pending_line: p.line,
            });
        }
        self.pending.insert(process, Pending { line, f, input });
        Ok(())
    }

    /// Closes the process's pending invocation: returns its line and input.
    fn complete(
        &mut self,
        line: usize,
        process: u64,
        f: &'static str,
    ) -> Result<(usize, I), ParseError> {
        let Some(p) = self.pending.remove(&process) else {
            return Err(ParseError::NotPending { line, process });
        };
        if p.f != f {
            return Err(ParseError::Mismatch {
                line,
                process,
                found: f.to_string(),
                invoked: p.f.to_string(),
                invoke_line: p.line,
            });
        }
        Ok((p.line, p.input))
    }

    fn push(&mut self, process: u64, call_line: usize, input: I, output: O, ret: u64) {
        self.ops.push(Operation {
            client_id: process,
            input,
            call: call_line as u64,
            output,
            ret,
        });
    }

    /// Operations still open at the end are of unknown outcome: `unknown` gives their output, or `None` to
    /// drop them (reads).
    fn finish(mut self, unknown: impl Fn(&I) -> Option<O>) -> Vec<Operation<I, O>> {
        let pending = std::mem::take(&mut self.pending);
        for (process, p) in pending {
            if let Some(output) = unknown(&p.input) {
                self.push(process, p.line, p.input, output, NEVER_RETURNED);
            }
        }
        // In call order, like the log.
        self.ops.sort_by_key(|op| op.call);
        self.ops
    }
}

/// An EDN-like value: just what the two formats use.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value<'a> {
    Nil,
    Int(i64),
    Keyword(&'a str),
    Str(String),
    Vector(Vec<Value<'a>>),
}

impl std::fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Keyword(k) => write!(f, ":{k}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Vector(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Parses `{:k v, :k v}` into its (keyword, value) pairs.
fn parse_map(raw: &str, line: usize) -> Result<Vec<(&str, Value<'_>)>, ParseError> {
    let mut p = Cursor::new(raw);
    p.skip_ws();
    if !p.eat(b'{') {
        return Err(ParseError::Syntax {
            line,
            what: "expected `{` at the start of the line".into(),
        });
    }
    let mut fields = Vec::new();
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = match p.value(line)? {
            Value::Keyword(k) => k,
            other => {
                return Err(ParseError::Syntax {
                    line,
                    what: format!("expected a :keyword as map key, found {other}"),
                });
            }
        };
        p.skip_ws();
        if p.peek() == Some(b'}') || p.at_end() {
            return Err(ParseError::Syntax {
                line,
                what: format!("missing value for :{key}"),
            });
        }
        let value = p.value(line)?;
        fields.push((key, value));
    }
    p.skip_ws();
    if !p.at_end() {
        return Err(ParseError::Syntax {
            line,
            what: "unexpected text after `}`".into(),
        });
    }
    Ok(fields)
}

/// How deep vectors may nest. The formats use one level (`[from to]`); this leaves room.
const MAX_DEPTH: usize = 32;

/// A byte cursor over one line.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Cursor<'a> {
        Cursor { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips whitespace; commas are whitespace in EDN.
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b',')) {
            self.pos += 1;
        }
    }

    /// A run of characters up to whitespace or a delimiter.
    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(
                b,
                b' ' | b'\t' | b'\r' | b',' | b'{' | b'}' | b'[' | b']' | b'"'
            ) {
                break;
            }
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    fn value(&mut self, line: usize) -> Result<Value<'a>, ParseError> {
        self.value_within(line, MAX_DEPTH)
    }

    /// A value with vectors nested at most `depth` deep: the recursion must not be able to
    /// overflow the stack, whatever the line (a line of a million `[` used to).
    fn value_within(&mut self, line: usize, depth: usize) -> Result<Value<'a>, ParseError> {
        let syntax = |what: String| ParseError::Syntax { line, what };
        self.skip_ws();
        match self.peek() {
            None => Err(syntax("unexpected end of line".into())),
            Some(b'"') => {
                self.pos += 1;
                let mut out = String::new();
                loop {
                    let rest = &self.s[self.pos..];
                    let Some(c) = rest.chars().next() else {
                        return Err(syntax("unterminated string".into()));
                    };
                    self.pos += c.len_utf8();
                    match c {
                        '"' => return Ok(Value::Str(out)),
                        '\\' => {
                            let Some(e) = self.s[self.pos..].chars().next() else {
                                return Err(syntax("unterminated string".into()));
                            };
                            self.pos += e.len_utf8();
                            out.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                other => other,
                            });
                        }
                        c => out.push(c),
                    }
                }
            }
            Some(b'[') => {
                if depth == 0 {
                    return Err(syntax(format!(
                        "vectors nested deeper than {MAX_DEPTH} at column {}",
                        self.pos + 1
                    )));
                }
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    if self.eat(b']') {
                        return Ok(Value::Vector(items));
                    }
                    if self.at_end() {
                        return Err(syntax("unterminated vector".into()));
                    }
                    items.push(self.value_within(line, depth - 1)?);
                }
            }
            Some(b':') => {
                self.pos += 1;
                let k = self.word();
                if k.is_empty() {
                    return Err(syntax("empty keyword".into()));
                }
                Ok(Value::Keyword(k))
            }
            Some(_) => {
                let w = self.word();
                if w == "nil" {
                    return Ok(Value::Nil);
                }
                w.parse::<i64>().map(Value::Int).map_err(|_| {
                    if w.is_empty() {
                        syntax(format!("unexpected character at column {}", self.pos + 1))
                    } else {
                        syntax(format!("expected a value, found {w:?}"))
                    }
                })
            }
        }
    }
}
