//! Building the graded suites and listing their tests.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// A built suite: the test binary.
#[derive(Clone, Debug)]
pub struct SuiteBinary {
    pub exe: PathBuf,
}

#[derive(Clone, Debug)]
pub struct TestCase {
    pub name: String,
    pub part: String,
}

/// A build that failed: the compiler's errors.
#[derive(Debug)]
pub struct BuildFailure {
    pub errors: Vec<String>,
    pub status: String,
}

impl BuildFailure {
    /// The first error's headline and location, for a report.
    pub fn summary(&self) -> String {
        let Some(first) = self.errors.first() else {
            return format!("the build failed ({})", self.status);
        };
        let lines: Vec<&str> = first
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect();
        let head = lines.first().copied().unwrap_or("error");
        let at = lines
            .iter()
            .find_map(|l| l.trim_start().strip_prefix("--> "))
            .unwrap_or("");
        let more = match self.errors.len() {
            1 => String::new(),
            n => format!(" (and {} more error(s))", n - 1),
        };
        if at.is_empty() {
            format!("{head}{more}")
        } else {
            format!("{head} at {at}{more}")
        }
    }
}

/// Builds the `tests` package's test binaries `targets` in `root` and returns them by target
/// name, or what failed. Compiler diagnostics come as JSON: warnings (a handout has many) are
/// only counted.
pub fn build(
    root: &Path,
    target_dir: Option<&Path>,
    targets: &[&str],
    config: &[String],
) -> Result<std::result::Result<BTreeMap<String, SuiteBinary>, BuildFailure>> {
    let manifest = root.join("Cargo.toml");
    let mut cmd = Command::new("cargo");
    cmd.args(["test", "--release", "--locked", "-p", "tests", "--no-run"])
        .arg("--message-format=json")
        .arg("--manifest-path")
        .arg(&manifest)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for t in targets {
        cmd.args(["--test", t]);
    }
    for c in config {
        cmd.arg("--config").arg(c);
    }
    if let Some(dir) = target_dir {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    let mut child = cmd.spawn().context("cannot run cargo (is it on PATH?)")?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    let stderr = child.stderr.take().context("cargo's stderr")?;
    // cargo's own progress lines, for the log; read on the side so neither pipe fills up.
    #[allow(clippy::disallowed_methods)]
    // reason: the grader runs real processes; nothing here is simulated
    let err_thread = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let mut binaries = BTreeMap::new();
    let mut errors = Vec::new();
    let mut warnings = 0usize;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some((name, binary)) = test_artifact(&msg) {
            binaries.insert(name, binary);
        } else if msg.get("reason").and_then(Value::as_str) == Some("compiler-message") {
            let message = &msg["message"];
            match message.get("level").and_then(Value::as_str) {
                Some("warning") => warnings += 1,
                Some("error") => {
                    let rendered = message
                        .get("rendered")
                        .and_then(Value::as_str)
                        .unwrap_or("error")
                        .to_owned();
                    // "aborting due to N previous errors" is not an error of its own.
                    if message
                        .get("spans")
                        .and_then(Value::as_array)
                        .is_some_and(|s| !s.is_empty())
                    {
                        errors.push(rendered);
                    }
                }
                _ => {}
            }
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    let cargo_err = err_thread.join().unwrap_or_default();
    if warnings > 0 {
        eprintln!("({warnings} compiler warning(s) in {})", root.display());
    }
    if !status.success() {
        if errors.is_empty() {
            // Not a compile error (a missing toolchain, a broken lock file): say what cargo said.
            errors.push(
                cargo_err
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        return Ok(Err(BuildFailure {
            errors,
            status: status.to_string(),
        }));
    }
    Ok(Ok(binaries))
}

/// A test executable from one line of `cargo --message-format=json`: its target name and path.
pub fn test_artifact(msg: &Value) -> Option<(String, SuiteBinary)> {
    if msg.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    let target = msg.get("target")?;
    let is_test = target
        .get("kind")?
        .as_array()?
        .iter()
        .any(|k| k.as_str() == Some("test"));
    if !is_test {
        return None;
    }
    let exe = PathBuf::from(msg.get("executable")?.as_str()?);
    let name = target.get("name")?.as_str()?.to_owned();
    Some((name, SuiteBinary { exe }))
}

/// The tests of a suite, from `<bin> --list`.
pub fn list_tests(binary: &SuiteBinary) -> Result<Vec<TestCase>> {
    let out = Command::new(&binary.exe)
        .arg("--list")
        .env_remove("RAFTLAB_VERDICT")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} --list", binary.exe.display()))?;
    if !out.status.success() {
        bail!(
            "{} --list failed ({}): {}",
            binary.exe.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(parse_test_list(&String::from_utf8_lossy(&out.stdout)))
}

pub fn parse_test_list(text: &str) -> Vec<TestCase> {
    text.lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(|name| TestCase {
            name: name.to_owned(),
            part: part_of(name),
        })
        .collect()
}

/// A test's lab part: its name's last `_`-separated word, upper case (`basic_agree_3b` -> 3B).
pub fn part_of(name: &str) -> String {
    let last = name.rsplit(['_', ':']).next().unwrap_or(name);
    if last.starts_with(|c: char| c.is_ascii_digit()) {
        last.to_uppercase()
    } else {
        "?".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_from_names() {
        assert_eq!(part_of("basic_agree_3b"), "3B");
        assert_eq!(part_of("snapshot_init_3d"), "3D");
        assert_eq!(part_of("no_part_here"), "?");
    }

    #[test]
    fn parses_the_list_output() {
        let text = "initial_election_3a: test\nbasic_agree_3b: test\n\n2 tests, 0 benchmarks\n";
        let tests = parse_test_list(text);
        assert_eq!(tests.len(), 2);
        assert_eq!(tests[1].name, "basic_agree_3b");
        assert_eq!(tests[1].part, "3B");
    }

    #[test]
    fn a_build_failure_names_the_first_error_and_where() {
        let f = BuildFailure {
            errors: vec![
                "error[E0308]: mismatched types\n  --> raft/src/core.rs:12:5\n   |\n".into(),
                "error: second".into(),
            ],
            status: "exit status: 101".into(),
        };
        assert_eq!(
            f.summary(),
            "error[E0308]: mismatched types at raft/src/core.rs:12:5 (and 1 more error(s))"
        );
    }
}
