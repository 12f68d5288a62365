//! The harness's verdict to the grader, over a channel the code under test does not own.
//!
//! `raftlab grade` starts each run with `RAFTLAB_VERDICT=<file>` and writes a fresh secret token,
//! one line, to the run's stdin. The harness reads the token before any of the code under test
//! runs ([`arm`], first thing in [`crate::sim_test`] and [`crate::search::search_test`]) and,
//! only once a test's checks are all done, appends `passed <test> <token>` to the file
//! ([`passed`]). The grader counts a run as passed only with that line: an exit status of 0
//! and a "test result: ok" line printed by anything else is "exited before the tester
//! finished".
//!
//! Without `RAFTLAB_VERDICT` (a student's own `cargo test`) both are no-ops.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::OnceLock;

struct Armed {
    file: PathBuf,
    token: String,
}

static ARMED: OnceLock<Option<Armed>> = OnceLock::new();

/// Takes the grader's token from stdin, once per process.
pub(crate) fn arm() {
    ARMED.get_or_init(|| {
        let file = PathBuf::from(std::env::var_os("RAFTLAB_VERDICT")?);
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).ok()?;
        let token = line.trim().to_owned();
        (!token.is_empty()).then_some(Armed { file, token })
    });
}

/// Records that the current test's checks all passed.
pub(crate) fn passed() {
    let Some(Some(armed)) = ARMED.get() else {
        return;
    };
    let name = std::thread::current().name().unwrap_or("main").to_owned();
    let line = format!("passed {name} {}\n", armed.token);
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&armed.file)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!(
            "cannot write the verdict file {}: {e}",
            armed.file.display()
        );
    }
}
