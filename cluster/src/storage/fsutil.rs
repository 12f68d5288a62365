//! Crash-safe file replacement: write a temporary file, sync it, rename it over the target and
//! sync the directory (the rename itself is only durable once the directory is).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::error::{StorageError, io_at};

/// Makes the directory's entries (creations, renames, removals) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

/// Atomically replaces `dir/name` with the concatenation of `parts`, through `dir/tmp_name`.
/// A crash leaves either the old file or the new one (plus perhaps a stray temporary, which
/// readers ignore). Returns the new file, open for writing at its end.
pub(super) fn replace_atomically(
    dir: &Path,
    name: &str,
    tmp_name: &str,
    parts: &[&[u8]],
) -> Result<File, StorageError> {
    let tmp = dir.join(tmp_name);
    let target = dir.join(name);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_at(&tmp))?;
    for part in parts {
        f.write_all(part).map_err(io_at(&tmp))?;
    }
    // The data must be durable before the rename can make it visible under the real name.
    f.sync_all().map_err(io_at(&tmp))?;
    fs::rename(&tmp, &target).map_err(io_at(&target))?;
    sync_dir(dir)?;
    Ok(f)
}

/// Removes a temporary file a crash left behind, if there is one. Returns whether it existed.
pub(super) fn remove_stale(dir: &Path, name: &str) -> Result<bool, StorageError> {
    let path = dir.join(name);
    match fs::remove_file(&path) {
        Ok(()) => {
            tracing::warn!(file = %path.display(), "removed a temporary file left by a crash");
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_at(path)(e)),
    }
}
