//! `raftlab handout`: the student starter tree.
//!
//! The solution code students write is marked in the labs' sources:
//!
//! ```text
//! pub fn campaign(&mut self) {
//!     // SOLUTION BEGIN: become a candidate and ask every peer for its vote
//!     ...
//!     // SOLUTION END
//! }
//! ```
//!
//! The handout is the workspace with each marked region of the selected labs (the markers
//! included) replaced by `todo!("<hint>")` at the marker's indentation. Regions of labs that are
//! not handed out keep their code and lose only the marker lines.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::workspace;

/// Marker lines, after leading whitespace.
pub const BEGIN: &str = "// SOLUTION BEGIN";
pub const END: &str = "// SOLUTION END";

/// Each lab's crate directory in the workspace.
const LAB_DIRS: [(&str, &str); 5] = [
    ("raft", "raft"),
    ("rsm", "rsm"),
    ("kvraft", "kvraft"),
    ("shardctrler", "shardctrler"),
    ("shardkv", "shardkv"),
];

/// Files that are for instructors only and stay out of the handout.
const INSTRUCTOR_ONLY: [&str; 3] = [
    "raftlab/tests/handout.rs",
    "raftlab/tests/grade.rs",
    "tests/tests/suite_checks.rs",
];

#[derive(Debug, clap::Args)]
pub struct HandoutArgs {
    /// Directory to write the starter tree to (must be empty or absent, unless --force).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Labs whose solution regions are replaced by stubs (comma-separated).
    #[arg(long, value_name = "LABS", value_delimiter = ',',
          default_value = "raft,rsm,kvraft,shardctrler,shardkv",
          value_parser = ["raft", "rsm", "kvraft", "shardctrler", "shardkv"])]
    labs: Vec<String>,
    /// Write into a non-empty DIR (existing files are overwritten; others are left alone).
    #[arg(long)]
    force: bool,
    /// The workspace to make the handout from [default: the current one].
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
}

/// One stubbed region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// Line of the `todo!()` in the output, 1-based.
    pub line: usize,
    /// The function the region is in, if one could be found above it.
    pub function: Option<String>,
    pub hint: String,
}

/// A marker problem, with its 1-based line.
#[derive(Debug, PartialEq, Eq)]
pub struct MarkerError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for MarkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

enum Marker<'a> {
    Begin(&'a str),
    End,
}

fn marker(line: &str) -> Option<Marker<'_>> {
    let t = line.trim();
    if let Some(rest) = t.strip_prefix(BEGIN) {
        let hint = rest.trim_start();
        let hint = hint.strip_prefix(':').unwrap_or(hint);
        return Some(Marker::Begin(hint.trim()));
    }
    if t.starts_with(END) {
        return Some(Marker::End);
    }
    None
}

/// True when `text` has a marker line.
pub fn has_markers(text: &str) -> bool {
    text.lines().any(|l| marker(l).is_some())
}

/// Replaces every marked region (markers included) by `todo!("<hint>")` at the BEGIN marker's
/// indentation. `stub = false` keeps the code and drops only the marker lines.
pub fn transform(text: &str, stub: bool) -> Result<(String, Vec<Region>), MarkerError> {
    let mut out = String::with_capacity(text.len());
    let mut regions = Vec::new();
    let mut out_lines = 0usize;
    // (line, indentation, hint, function) of the open region.
    let mut open: Option<(usize, String, String, Option<String>)> = None;
    let mut last_fn: Option<String> = None;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let lineno = n + 1;
        match marker(line) {
            Some(Marker::Begin(hint)) => {
                if let Some((l, ..)) = &open {
                    return Err(MarkerError {
                        line: lineno,
                        message: format!("SOLUTION BEGIN inside the region opened at line {l}"),
                    });
                }
                let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
                open = Some((lineno, indent, hint.to_owned(), last_fn.clone()));
            }
            Some(Marker::End) => {
                let Some((_, indent, hint, function)) = open.take() else {
                    return Err(MarkerError {
                        line: lineno,
                        message: "SOLUTION END without a SOLUTION BEGIN".into(),
                    });
                };
                if stub {
                    out_lines += 1;
                    let _ = writeln!(out, "{indent}{}", todo_call(&hint));
                    regions.push(Region {
                        line: out_lines,
                        function,
                        hint,
                    });
                }
            }
            None => {
                if let Some(name) = fn_name(line) {
                    last_fn = Some(name);
                }
                if open.is_none() || !stub {
                    out.push_str(line);
                    out_lines += 1;
                }
            }
        }
    }
    if let Some((l, ..)) = open {
        return Err(MarkerError {
            line: l,
            message: "SOLUTION BEGIN is never closed by a SOLUTION END".into(),
        });
    }
    Ok((out, regions))
}

/// `todo!("<hint>")`, with the hint escaped for a string literal that is also a format string.
fn todo_call(hint: &str) -> String {
    if hint.is_empty() {
        return "todo!()".into();
    }
    let mut lit = String::new();
    for c in hint.chars() {
        match c {
            '\\' => lit.push_str("\\\\"),
            '"' => lit.push_str("\\\""),
            '{' => lit.push_str("{{"),
            '}' => lit.push_str("}}"),
            c if c.is_control() => {}
            c => lit.push(c),
        }
    }
    format!("todo!(\"{lit}\")")
}

/// The name of the function a line declares, if it does.
fn fn_name(line: &str) -> Option<String> {
    let t = line.trim_start();
    if t.starts_with("//") {
        return None;
    }
    let pos = t.find("fn ")?;
    if pos > 0 && !t[..pos].ends_with(' ') {
        return None;
    }
    let name: String = t[pos + 3..]
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Files of the workspace to hand out, relative to `root`: everything but build outputs
/// (`target*`), `.git`, traces, the output directory and instructor-only files.
fn source_files(root: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let mut files = crate::grade::stage::workspace_files(root, Some(out))?;
    files.retain(|rel| !INSTRUCTOR_ONLY.iter().any(|f| rel == Path::new(f)));
    Ok(files)
}

/// The lab whose crate holds `rel`, if any.
fn lab_of(rel: &Path) -> Option<&'static str> {
    let first = match rel.components().next()? {
        Component::Normal(c) => c.to_str()?,
        _ => return None,
    };
    LAB_DIRS
        .iter()
        .find(|(_, dir)| *dir == first)
        .map(|(lab, _)| *lab)
}

pub fn run(args: HandoutArgs) -> Result<ExitCode> {
    let root = workspace::resolve(args.from.as_deref())?;
    let root = root
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", root.display()))?;
    if args.out.exists() {
        if !args.out.is_dir() {
            bail!("{} exists and is not a directory", args.out.display());
        }
        let non_empty = std::fs::read_dir(&args.out)?.next().is_some();
        if non_empty && !args.force {
            bail!(
                "{} is not empty: choose another directory or pass --force",
                args.out.display()
            );
        }
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let out = args.out.canonicalize()?;
    if out == root || root.starts_with(&out) {
        bail!(
            "refusing to write the handout over the workspace itself ({})",
            out.display()
        );
    }

    let files = source_files(&root, &out)?;
    let mut stubbed: Vec<(PathBuf, Vec<Region>)> = Vec::new();
    let mut count = 0usize;
    for rel in &files {
        let src = root.join(rel);
        let dst = out.join(rel);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let lab = lab_of(rel);
        let is_rs = rel.extension().is_some_and(|e| e == "rs");
        if let (Some(lab), true) = (lab, is_rs) {
            let text = std::fs::read_to_string(&src)
                .with_context(|| format!("cannot read {}", src.display()))?;
            if has_markers(&text) {
                let stub = args.labs.iter().any(|l| l == lab);
                let (new, regions) = transform(&text, stub)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", rel.display()))?;
                std::fs::write(&dst, new)
                    .with_context(|| format!("cannot write {}", dst.display()))?;
                if !regions.is_empty() {
                    stubbed.push((rel.clone(), regions));
                }
                count += 1;
                continue;
            }
        }
        std::fs::copy(&src, &dst)
            .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
        count += 1;
    }
    let readme = student_readme(&stubbed, &args.labs);
    std::fs::write(out.join("README_STUDENT.md"), readme)?;

    let regions: usize = stubbed.iter().map(|(_, r)| r.len()).sum();
    println!(
        "wrote the handout to {}: {count} files, {regions} solution region(s) stubbed in {} file(s)",
        out.display(),
        stubbed.len()
    );
    for (file, rs) in &stubbed {
        for r in rs {
            println!(
                "  {}:{} {}",
                file.display(),
                r.line,
                r.function.as_deref().unwrap_or("")
            );
        }
    }
    println!(
        "students start at {}",
        out.join("README_STUDENT.md").display()
    );
    Ok(ExitCode::SUCCESS)
}

fn student_readme(stubbed: &[(PathBuf, Vec<Region>)], labs: &[String]) -> String {
    let mut s = String::new();
    s.push_str(
        "# raftlab: your starter code\n\n\
         This tree is the course's workspace with the solution taken out: every place you have to \
         write code is a `todo!(\"...\")` whose message says what the code must do. The test \
         suites, the simulator (`labrpc`), the linearizability checker (`lincheck`) and the \
         grader (`raftlab`) are complete.\n\n",
    );
    let _ = writeln!(s, "Labs handed out: {}.\n", labs.join(", "));
    s.push_str("## What to implement\n\n");
    if stubbed.is_empty() {
        s.push_str("Nothing is stubbed in the selected labs.\n");
    }
    for (file, regions) in stubbed {
        let _ = writeln!(s, "### `{}`\n", file.display());
        for r in regions {
            let func = r
                .function
                .as_deref()
                .map(|f| format!("`{f}`"))
                .unwrap_or_else(|| "code".into());
            // Hints often start with the function's name: do not say it twice.
            let hint = r
                .function
                .as_deref()
                .and_then(|f| r.hint.strip_prefix(f))
                .and_then(|h| h.strip_prefix(':'))
                .map_or(r.hint.as_str(), str::trim_start);
            let _ = writeln!(
                s,
                "- {func} (line {}): {}",
                r.line,
                if hint.is_empty() { "-" } else { hint }
            );
        }
        s.push('\n');
    }
    s.push_str(
        "The Raft core (`raft/src/core.rs`) is a pure state machine: ticks and messages in, a \
         `Ready` (state to persist, messages to send, entries to apply) out. The rules of the \
         protocol go in `election.rs`, `replication.rs` and `snapshot.rs`; the log \
         (`log.rs`), persistence (`persist.rs`) and the async driver (`driver.rs`) are given. \
         Figure 2 of the Raft paper is the specification.\n\n\
         ## What is graded\n\n\
         Only your files are graded: those listed in `grading/student-files.txt`, and new \
         modules you add under `raft/src/`, `kvraft/src/` or `shardkv/src/`. The grader builds \
         them into its own copy of everything else (tests, simulator, harness, points), so \
         changes elsewhere have no effect; it lists them as ignored. The lab crates \
         `forbid(unsafe_code)`. Each test runs without network, with limits on memory, output \
         and time, and passes only when the tester itself says so after all of its checks.\n\n\
         ## Running the tests\n\n\
         Each lab's suite is one test binary of the `tests` package; a test's name ends with its \
         lab part:\n\n\
         ```sh\n\
         cargo test --release -p tests --test raft 3a     # part 3A\n\
         cargo test --release -p tests --test raft        # the whole Raft suite\n\
         ```\n\n\
         Tests run on a deterministic simulated network: one seed decides every message delay, \
         loss and timeout of a run. A test draws a fresh seed unless `RAFTLAB_SEED` is set, and \
         prints it.\n\n\
         ## Replaying a failure\n\n\
         A failing test prints its seed and the command that replays it exactly, e.g.:\n\n\
         ```sh\n\
         RAFTLAB_SEED=42 cargo test --release -p tests --test raft -- basic_agree_3b --exact\n\
         ```\n\n\
         Add `RAFTLAB_TRACE=run.trace.jsonl` to record every event of the run (JSON lines), and \
         `RUST_LOG=debug` for your own `tracing` logs.\n\n\
         ## Grading yourself\n\n\
         The grader runs each test many times with different seeds and prints a score table per \
         part (a part's points need every run of every one of its tests to pass):\n\n\
         ```sh\n\
         cargo run --release -p raftlab -- grade --lab raft --runs 20\n\
         cargo run --release -p raftlab -- grade --lab raft --part 3A --runs 100 --keep-logs logs\n\
         ```\n\n\
         It prints the seed and the replay command of every failed run; `--keep-logs DIR` keeps \
         their output (and `--trace` their traces). The points per part are in \
         `grading/points.txt`.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "impl X {\n    pub fn a(&mut self) -> u32 {\n        // SOLUTION BEGIN: count {things} \"here\"\n        let x = 1;\n        x + 1\n        // SOLUTION END\n    }\n\n    fn b(&self) {\n        // SOLUTION BEGIN\n        body();\n        // SOLUTION END\n    }\n}\n";

    #[test]
    fn stubs_regions() {
        let (out, regions) = transform(SRC, true).unwrap();
        assert_eq!(
            out,
            "impl X {\n    pub fn a(&mut self) -> u32 {\n        todo!(\"count {{things}} \\\"here\\\"\")\n    }\n\n    fn b(&self) {\n        todo!()\n    }\n}\n"
        );
        assert_eq!(regions.len(), 2);
        assert_eq!(regions[0].line, 3);
        assert_eq!(regions[0].function.as_deref(), Some("a"));
        assert_eq!(regions[0].hint, "count {things} \"here\"");
        assert_eq!(regions[1].line, 7);
        assert_eq!(regions[1].function.as_deref(), Some("b"));
        assert!(!has_markers(&out));
    }

    #[test]
    fn keeps_code_when_not_stubbed() {
        let (out, regions) = transform(SRC, false).unwrap();
        assert!(regions.is_empty());
        assert!(!has_markers(&out));
        assert!(out.contains("        let x = 1;\n        x + 1\n    }\n"));
    }

    #[test]
    fn rejects_unbalanced_markers() {
        let nested = "// SOLUTION BEGIN: a\n// SOLUTION BEGIN: b\n// SOLUTION END\n";
        assert_eq!(transform(nested, true).unwrap_err().line, 2);
        let stray = "x\n// SOLUTION END\n";
        assert_eq!(transform(stray, true).unwrap_err().line, 2);
        let open = "// SOLUTION BEGIN: a\nx\n";
        assert_eq!(transform(open, true).unwrap_err().line, 1);
    }

    #[test]
    fn finds_function_names() {
        assert_eq!(
            fn_name("    pub(crate) fn send_append(&mut self, peer: NodeId) {").as_deref(),
            Some("send_append")
        );
        assert_eq!(fn_name("fn main() {}").as_deref(), Some("main"));
        assert_eq!(fn_name("    // fn commented() {}"), None);
        assert_eq!(fn_name("    let define = 1;"), None);
    }

    #[test]
    fn labs_by_directory() {
        assert_eq!(lab_of(Path::new("raft/src/election.rs")), Some("raft"));
        assert_eq!(lab_of(Path::new("tests/tests/raft.rs")), None);
    }
}
