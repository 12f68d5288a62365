//! Helpers shared by raftlab's integration tests.

use std::path::{Path, PathBuf};

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("raftlab sits in the workspace")
        .to_path_buf()
}

/// `<target>/<name>-<profile>`, next to the calling test's own build (kept between runs).
pub fn work_dir(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // <target>/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in <target>/<profile>/deps");
    let profile = profile_dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "debug".into());
    profile_dir
        .parent()
        .expect("<target>")
        .join(format!("{name}-{profile}"))
}

/// How grade.rs builds the student trees it grades, as `cargo --config` values: the release
/// profile with the workspace's crates unoptimised and incremental (a grading rebuilds raft/src
/// and everything above it: ~12 s a grading, ~40 s at opt-level 1) and the registry's crates a
/// little optimised, so that the simulations still run fast.
#[allow(dead_code)] // reason: used by grade.rs only; every test binary compiles this module
pub const TREE_BUILD: [&str; 4] = [
    "profile.release.debug=0",
    "profile.release.opt-level=0",
    "profile.release.incremental=true",
    "profile.release.package.\"*\".opt-level=1",
];

/// The grader's work directory in grade.rs (`<work>/tree`, `<work>/target`).
#[allow(dead_code)] // reason: used by grade.rs only
pub fn tree_work_dir() -> PathBuf {
    work_dir("tree-build")
}
