//! Finding the workspace to grade or hand out.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The root of the workspace containing `start` (the nearest ancestor whose `Cargo.toml` has a
/// `[workspace]` table).
pub fn find_root(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        let manifest = dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).ok()?;
        text.lines()
            .any(|l| l.trim() == "[workspace]")
            .then(|| dir.to_path_buf())
    })
}

/// The workspace this command works on: `dir` when given (it must be a workspace root), else the
/// one around the current directory, else the one this binary was built from.
pub fn resolve(dir: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = dir {
        let dir = std::path::absolute(dir)
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        if !dir.join("Cargo.toml").is_file() {
            bail!("{} has no Cargo.toml: not a raftlab tree", dir.display());
        }
        return Ok(dir);
    }
    if let Some(root) = std::env::current_dir().ok().and_then(|d| find_root(&d)) {
        return Ok(root);
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR"));
    find_root(built_from).context("cannot find the workspace: run from inside it, or pass --path")
}
