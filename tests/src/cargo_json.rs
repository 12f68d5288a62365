//! Test binaries named in `cargo test --no-run --message-format=json` output: how the suites'
//! own checks (`suite_checks.rs`) and the handout's test find a suite's binary without building
//! it a second time.

use std::path::PathBuf;

/// One test binary cargo built (or found fresh).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestBinary {
    /// The target's name (`raft` for `tests/tests/raft.rs`).
    pub name: String,
    /// The target's root source file, as cargo reports it.
    pub src_path: PathBuf,
    /// The binary to run.
    pub executable: PathBuf,
}

/// The test binaries named in cargo's JSON messages (one per line; other lines are skipped).
pub fn test_binaries(stdout: &str) -> Vec<TestBinary> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|m| {
            if m.get("reason")?.as_str()? != "compiler-artifact" {
                return None;
            }
            let target = m.get("target")?;
            let is_test = target
                .get("kind")?
                .as_array()?
                .iter()
                .any(|k| k.as_str() == Some("test"));
            is_test.then_some(())?;
            Some(TestBinary {
                name: target.get("name")?.as_str()?.to_owned(),
                src_path: PathBuf::from(target.get("src_path")?.as_str()?),
                executable: PathBuf::from(m.get("executable")?.as_str()?),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_test_artifacts_with_an_executable_are_named() {
        let out = [
            r#"{"reason":"compiler-artifact","target":{"name":"raft","kind":["test"],"src_path":"/w/tests/tests/raft.rs"},"executable":"/t/release/deps/raft-1"}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"raft","kind":["lib"],"src_path":"/w/raft/src/lib.rs"},"executable":null}"#,
            r#"{"reason":"compiler-message","message":{}}"#,
            "not json",
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            test_binaries(&out),
            vec![TestBinary {
                name: "raft".into(),
                src_path: "/w/tests/tests/raft.rs".into(),
                executable: "/t/release/deps/raft-1".into(),
            }]
        );
    }
}
