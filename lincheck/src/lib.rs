//! `lincheck`: a linearizability checker for histories of concurrent operations, with an HTML visualizer.
//!
//! It implements the algorithm porcupine uses: Wing & Gong's search with Lowe's memoization of (linearized
//! set, model state), over a linked list of call/return entries, and P-compositionality: a model may split a
//! history into independent partitions (a key/value history by key) that are checked one by one.
//!
//! A history is a list of [`Operation`]s (call time, return time, client, input, output) or of call/return
//! [`Event`]s; a [`Model`] is the sequential specification. An operation whose outcome is unknown (Jepsen's
//! `:info`) has return time [`NEVER_RETURNED`]: it may be linearized anywhere after its call, or never.
//!
//! ```
//! use lincheck::models::register::{RegisterInput, RegisterModel, RegisterOutput};
//! use lincheck::{CheckResult, Operation, check_operations};
//!
//! let op = |client_id, input, call, output, ret| Operation { client_id, input, call, output, ret };
//! // C0: |------- write(1) -------|
//! // C1:    |- read() -> 1 -|
//! // C2:                       |- read() -> nil -|    (after C1 saw 1: stale)
//! let history = vec![
//!     op(0, RegisterInput::Write(1), 0, RegisterOutput::Done, 10),
//!     op(1, RegisterInput::Read, 1, RegisterOutput::Value(Some(1)), 4),
//!     op(2, RegisterInput::Read, 6, RegisterOutput::Value(None), 12),
//! ];
//! let model = RegisterModel::default();
//! assert_eq!(check_operations(&model, &history, None), CheckResult::NotLinearizable);
//!
//! // With the partial linearizations, for the HTML page.
//! let info = lincheck::check_with_info(&model, &history, None);
//! let mut html = Vec::new();
//! lincheck::visualize(&model, &info, &mut html).unwrap();
//! ```
//!
//! Files in porcupine's key/value format and Jepsen's etcd register format can be checked directly with
//! [`check_file`] (see [`parse`] for the formats).

pub mod checker;
pub mod model;
pub mod models;
pub mod parse;
pub mod visualize;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use checker::{
    CheckResult, HistoryError, LinearizationInfo, PartitionInfo, check_events,
    check_events_with_info, check_operations, check_with_info, operations_from_events,
};
pub use model::{Event, EventKind, FnvHasher, Model, NEVER_RETURNED, Operation};
pub use parse::{ParseError, parse_kv_log, parse_register_log};
pub use visualize::visualize;

use models::kv::KvModel;
use models::register::RegisterModel;

/// On-disk history formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// porcupine's key/value logs (`{:process 0, :type :invoke, :f :get, :key "1", :value nil}`), checked
    /// with [`KvModel`].
    Kv,
    /// Jepsen etcd register logs (`INFO  jepsen.util - 3<TAB>:invoke<TAB>:cas<TAB>[1 4]`), checked with
    /// [`RegisterModel`] (initially nil).
    Register,
}

impl Format {
    /// Guesses the format from the first non-blank line: `{` starts a key/value log, `INFO` a register log.
    pub fn guess(text: &str) -> Option<Format> {
        let first = text.lines().map(str::trim).find(|l| !l.is_empty())?;
        if first.starts_with('{') {
            Some(Format::Kv)
        } else if first.starts_with("INFO") {
            Some(Format::Register)
        } else {
            None
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "kv" => Ok(Format::Kv),
            "register" | "etcd" => Ok(Format::Register),
            other => Err(format!(
                "unknown history format {other:?} (expected kv or register)"
            )),
        }
    }
}

/// Errors of the file-level helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: ParseError,
    },
    #[error("cannot write the HTML report: {0}")]
    Write(#[source] io::Error),
}

/// Reads, parses and checks a history file. Returns the verdict and how long the check took (parsing not
/// included). `budget` bounds the check: past it the verdict is [`CheckResult::Unknown`].
pub fn check_file(
    path: impl AsRef<Path>,
    format: Format,
    budget: Option<Duration>,
) -> Result<(CheckResult, Duration), Error> {
    let path = path.as_ref();
    let text = read(path)?;
    let parse_err = |source| Error::Parse {
        path: path.to_path_buf(),
        source,
    };
    let (result, elapsed) = match format {
        Format::Kv => {
            let history = parse_kv_log(&text).map_err(parse_err)?;
            timed(|| check_operations(&KvModel, &history, budget))
        }
        Format::Register => {
            let history = parse_register_log(&text).map_err(parse_err)?;
            timed(|| check_operations(&RegisterModel::default(), &history, budget))
        }
    };
    Ok((result, elapsed))
}

/// Runs `f` and measures its wall-clock time.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = checker::wall_clock_now();
    let value = f();
    let end = checker::wall_clock_now();
    (value, end.saturating_duration_since(start))
}

/// Reads, parses and checks a history file, keeping the partial linearizations, and writes the HTML page to
/// `out` (whatever the verdict). Returns the verdict.
pub fn visualize_file(
    path: impl AsRef<Path>,
    format: Format,
    budget: Option<Duration>,
    out: impl Write,
) -> Result<CheckResult, Error> {
    let path = path.as_ref();
    let text = read(path)?;
    let parse_err = |source| Error::Parse {
        path: path.to_path_buf(),
        source,
    };
    match format {
        Format::Kv => {
            let history = parse_kv_log(&text).map_err(parse_err)?;
            let info = check_with_info(&KvModel, &history, budget);
            visualize(&KvModel, &info, out).map_err(Error::Write)?;
            Ok(info.result)
        }
        Format::Register => {
            let history = parse_register_log(&text).map_err(parse_err)?;
            let model = RegisterModel::default();
            let info = check_with_info(&model, &history, budget);
            visualize(&model, &info, out).map_err(Error::Write)?;
            Ok(info.result)
        }
    }
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}
