//! Scenario scripts with golden output (`raft/testdata/*.txt`), and the cluster they run on.
//!
//! A script drives a cluster of protocol cores over an in-memory network in which nothing moves
//! unless the script says so: messages wait in one queue until `deliver`ed. A script is a
//! sequence of commands, each followed by `----` and the output it must produce (like etcd's
//! datadriven tests). The language is described in `raft/README.md`.
//!
//! Besides the golden output, every run is watched by the safety [`Monitor`]: the first broken
//! invariant is printed as a `safety violation: ...` line in the output of the command that
//! broke it. The model checker ([`crate::search`]) explores the same [`Cluster`] and writes its
//! counterexamples in this language, so they replay here.

mod cluster;
mod format;

use std::fmt::Write as _;
use std::path::Path;

pub use cluster::{Cluster, Tee};
pub use format::fmt_msg;

// ---------------------------------------------------------------------------------------------
// Scripts

enum Item {
    /// A comment or blank line, kept as is.
    Text(String),
    Case {
        line: usize,
        command: String,
        expected: Vec<String>,
    },
}

fn parse(text: &str) -> Vec<Item> {
    let lines: Vec<&str> = text.lines().collect();
    let mut items = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.trim().is_empty() || l.starts_with('#') {
            items.push(Item::Text(l.to_string()));
            i += 1;
            continue;
        }
        let line = i + 1;
        let command = l.trim().to_string();
        i += 1;
        let mut expected = Vec::new();
        if i < lines.len() && lines[i] == "----" {
            i += 1;
            while i < lines.len() && !lines[i].trim().is_empty() {
                expected.push(lines[i].to_string());
                i += 1;
            }
            // The blank line that ends the output belongs to the case.
            if i < lines.len() {
                i += 1;
            }
        }
        items.push(Item::Case {
            line,
            command,
            expected,
        });
    }
    items
}

/// Runs a script; returns the text with every command's actual output (what `UPDATE_GOLDEN`
/// writes), or the first mismatch with the expected output (unless `update`).
pub fn run_text(text: &str, update: bool) -> Result<String, String> {
    let mut cluster = Cluster::default();
    let mut rewritten = String::new();
    for item in parse(text) {
        match item {
            Item::Text(t) => {
                rewritten.push_str(&t);
                rewritten.push('\n');
            }
            Item::Case {
                line,
                command,
                expected,
            } => {
                let mut actual = cluster.run(&command)?;
                if actual.is_empty() {
                    actual.push("ok".to_string());
                }
                if !update && actual != expected {
                    return Err(format!(
                        "line {line}: `{command}`\n--- expected\n{}\n--- actual\n{}\n",
                        expected.join("\n"),
                        actual.join("\n")
                    ));
                }
                let _ = writeln!(rewritten, "{command}\n----\n{}\n", actual.join("\n"));
            }
        }
    }
    Ok(rewritten)
}

/// The commands of a script, in order (its comments and golden output left out).
pub fn commands(text: &str) -> Vec<String> {
    parse(text)
        .into_iter()
        .filter_map(|item| match item {
            Item::Case { command, .. } => Some(command),
            Item::Text(_) => None,
        })
        .collect()
}

/// Runs the script at `path` against its golden output; with `UPDATE_GOLDEN=1` in the
/// environment, rewrites the file with the actual output instead. Panics on a difference.
pub fn run_script(path: &Path) {
    let name = path.display();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {name}: {e}"));
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    match run_text(&text, update) {
        Ok(rewritten) => {
            if update && rewritten != text {
                std::fs::write(path, rewritten).unwrap_or_else(|e| panic!("write {name}: {e}"));
            }
        }
        Err(e) => {
            panic!("{name}: output differs (UPDATE_GOLDEN=1 rewrites it; review the diff)\n{e}")
        }
    }
}
