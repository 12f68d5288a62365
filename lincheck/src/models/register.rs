//! A single register with read, write and compare-and-set (Jepsen's etcd test), whose operations may have
//! unknown outcomes.

use crate::model::Model;

/// A register operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterInput {
    Read,
    Write(i64),
    /// Set to `to` if the value is `from`.
    Cas {
        from: i64,
        to: i64,
    },
}

/// What a register operation returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterOutput {
    /// A read's result; `None` is nil (never written).
    Value(Option<i64>),
    /// A write, or a compare-and-set that found `from` and swapped.
    Done,
    /// A compare-and-set that found another value and did nothing (an observation, unlike Jepsen's `:fail`,
    /// which the parser drops as "did not happen").
    CasFailed,
    /// Unknown outcome (Jepsen's `:info`): pair it with a return time of `NEVER_RETURNED`.
    Unknown,
}

/// The register model; `None` is nil.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegisterModel {
    /// The value before any operation (nil for Jepsen's etcd test).
    pub initial: Option<i64>,
}

impl Model for RegisterModel {
    type State = Option<i64>;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> Option<i64> {
        self.initial
    }

    fn step(
        &self,
        state: &Option<i64>,
        input: &RegisterInput,
        output: &RegisterOutput,
    ) -> Option<Option<i64>> {
        use RegisterOutput::*;
        match (*input, *output) {
            (RegisterInput::Read, Value(v)) => (*state == v).then_some(*state),
            (RegisterInput::Read, Unknown) => Some(*state),
            (RegisterInput::Read, Done | CasFailed) => None,
            (RegisterInput::Write(v), Done | Unknown) => Some(Some(v)),
            (RegisterInput::Write(_), Value(_) | CasFailed) => None,
            (RegisterInput::Cas { from, to }, Done) => (*state == Some(from)).then_some(Some(to)),
            (RegisterInput::Cas { from, .. }, CasFailed) => {
                (*state != Some(from)).then_some(*state)
            }
            // Linearized at a point where the value differs, an unknown compare-and-set is one that failed.
            (RegisterInput::Cas { from, to }, Unknown) => Some(if *state == Some(from) {
                Some(to)
            } else {
                *state
            }),
            (RegisterInput::Cas { .. }, Value(_)) => None,
        }
    }

    fn describe_operation(&self, input: &RegisterInput, output: &RegisterOutput) -> String {
        let out = match output {
            RegisterOutput::Value(Some(v)) => v.to_string(),
            RegisterOutput::Value(None) => "nil".to_string(),
            RegisterOutput::Done => "ok".to_string(),
            RegisterOutput::CasFailed => "fail".to_string(),
            RegisterOutput::Unknown => "unknown".to_string(),
        };
        match input {
            RegisterInput::Read => format!("read() -> {out}"),
            RegisterInput::Write(v) => format!("write({v}) -> {out}"),
            RegisterInput::Cas { from, to } => format!("cas({from}, {to}) -> {out}"),
        }
    }

    fn describe_state(&self, state: &Option<i64>) -> String {
        match state {
            Some(v) => v.to_string(),
            None => "nil".to_string(),
        }
    }
}
