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
