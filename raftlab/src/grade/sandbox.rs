//! Sandboxed test runs.
//!
//! Every graded run is a process tree the grader does not trust. It runs as
//!
//! ```text
//! [unshare --net --pid --kill-child [--map-root-user] --]  raftlab sandbox-init --memory-mb M -- <test binary> <args>
//! ```
//!
//! - **No network**: a new network namespace (only a loopback interface that is down) when the
//!   kernel allows it; the grader prints a notice once when it does not.
//! - **Its own process tree**: a new PID namespace, and `sandbox-init` as the parent of the test.
//!   `sandbox-init` is a child subreaper: anything the test spawned and left behind is re-parented
//!   to it, so it sees whether the test left processes running, kills them and says so (exit code
//!   [`LEFT_PROCESSES_EXIT`]); a run that leaves processes behind fails. The whole tree is also its
//!   own process group, which the grader kills on a timeout.
//! - **Memory**: `RLIMIT_AS` of `--memory-mb` on the test and everything it starts; an allocation
//!   past it fails and the run fails with "ran out of memory".
//! - **Output**: stdout and stderr go through a pipe the grader reads; past the cap, the grader
//!   stops the run and keeps the first bytes only.
//! - **Time**: the wall-clock limit of `--timeout`.
//! - **Scratch**: the run's working directory, `HOME` and `TMPDIR` are a fresh directory of its
//!   own, removed afterwards; the environment is cleared but for what the harness needs.
//!
//! Build scripts and procedural macros never come from a student: only the files listed in
//! `grading/student-files.txt` are taken from a student's tree (see `stage`), so everything that
//! runs at build time is the grader's own code.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::now;

/// `sandbox-init`'s exit code when the test exited but left processes running.
pub const LEFT_PROCESSES_EXIT: u8 = 86;

/// How long the grader waits for the output pipe to close once the run's process has exited.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The limits of one run.
#[derive(Clone, Debug)]
pub struct Limits {
    pub memory_mb: u64,
    pub max_output_bytes: u64,
    pub timeout: Duration,
}

/// What the kernel lets the grader isolate runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// New network and PID namespaces through `unshare`; `map_root` when that needs a user
    /// namespace (the grader is not root).
    Namespaces { map_root: bool },
    /// No namespaces: why not.
    Unavailable(String),
}

impl Isolation {
    /// Tries `unshare` once (as root, then in a user namespace).
    pub fn probe() -> Isolation {
        let mut why = String::new();
        for map_root in [false, true] {
            let out = Command::new("unshare")
                .args(unshare_args(map_root))
                .arg("true")
                .stdin(Stdio::null())
                .output();
            match out {
                Ok(o) if o.status.success() => return Isolation::Namespaces { map_root },
                Ok(o) => why = String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                Err(e) => {
                    why = format!("cannot run unshare: {e}");
                    break;
                }
            }
        }
        Isolation::Unavailable(why)
    }

    /// The notice to print when runs cannot be isolated.
    pub fn notice(&self) -> Option<String> {
        match self {
            Isolation::Namespaces { .. } => None,
            Isolation::Unavailable(why) => Some(format!(
                "notice: test runs are NOT isolated from the network and share the PID namespace \
                 (unshare failed: {why}); memory, output, time and process limits still apply"
            )),
        }
    }
}

fn unshare_args(map_root: bool) -> Vec<&'static str> {
    let mut args = vec!["--net", "--pid", "--fork", "--kill-child"];
    if map_root {
        args.push("--map-root-user");
    }
    args.push("--");
    args
}

/// One run to start.
pub struct Spawn<'a> {
    pub exe: &'a Path,
    pub args: Vec<OsString>,
    /// Variables set on top of a cleared environment (`PATH` is kept).
    pub env: Vec<(&'static str, OsString)>,
    /// Written to the run's stdin, which is then closed.
    pub stdin: Vec<u8>,
    /// The run's private directory: its cwd, `HOME` and `TMPDIR`.
    pub scratch: &'a Path,
    /// Where its output goes (up to the cap).
    pub log: &'a Path,
}

/// How a run ended.
#[derive(Debug)]
pub enum End {
    Exited(ExitStatus),
    TimedOut,
    OutputCapped,
    /// The test exited, but processes it started were still running (and were killed).
    LeftProcesses,
}

/// A sandbox: the isolation found at start and the limits of every run.
#[derive(Clone, Debug)]
pub struct Sandbox {
    pub isolation: Isolation,
    pub limits: Limits,
    /// The program that provides `sandbox-init` (this binary).
    pub init: PathBuf,
}

impl Sandbox {
    /// Runs one test process tree to its end under the limits.
    pub fn run(&self, spawn: Spawn) -> std::io::Result<End> {
        let mut cmd = match &self.isolation {
            Isolation::Namespaces { map_root } => {
                let mut c = Command::new("unshare");
                c.args(unshare_args(*map_root)).arg(&self.init);
                c
            }
            Isolation::Unavailable(_) => Command::new(&self.init),
        };
        cmd.arg("sandbox-init")
            .arg("--memory-mb")
            .arg(self.limits.memory_mb.to_string())
            .arg("--")
            .arg(spawn.exe)
            .args(&spawn.args);
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.env("HOME", spawn.scratch)
            .env("TMPDIR", spawn.scratch)
            .envs(spawn.env.iter().map(|(k, v)| (k, v)))
            .current_dir(spawn.scratch);
        let (reader, writer) = std::io::pipe()?;
        cmd.stdout(writer.try_clone()?)
            .stderr(writer)
            .stdin(Stdio::piped());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd.spawn()?;
        // The parent's copies of the pipe's write end must go, or the pipe never closes.
        drop(cmd);
        if let Some(mut stdin) = child.stdin.take() {
            // A test that never reads its stdin is fine: the token is small.
            let _ = stdin.write_all(&spawn.stdin);
        }
        let capped = Arc::new(AtomicBool::new(false));
        let drained = drain(
            reader,
            spawn.log,
            self.limits.max_output_bytes,
            capped.clone(),
        )?;
        let end = self.wait(&mut child, &capped);
        // Whatever is left of the tree (a timeout, a cap) goes now.
        kill_group(&child);
        let end = match drained.recv_timeout(DRAIN_GRACE) {
            Ok(()) => end,
            // Something outside the tree still holds the output open.
            Err(_) => match end {
                End::Exited(_) => End::LeftProcesses,
                other => other,
            },
        };
        Ok(end)
    }

    fn wait(&self, child: &mut Child, capped: &AtomicBool) -> End {
        let start = now();
        let mut pause = Duration::from_millis(2);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    if capped.load(Ordering::Relaxed) {
                        return End::OutputCapped;
                    }
                    #[cfg(unix)]
                    {
                        use std::os::unix::process::ExitStatusExt;
                        if status.code() == Some(i32::from(LEFT_PROCESSES_EXIT))
                            && status.signal().is_none()
                        {
                            return End::LeftProcesses;
                        }
                    }
                    return End::Exited(status);
                }
                Ok(None) => {}
                Err(_) => return End::TimedOut,
            }
            if capped.load(Ordering::Relaxed) {
                kill_group(child);
                let _ = child.wait();
                return End::OutputCapped;
            }
            if start.elapsed() >= self.limits.timeout {
                kill_group(child);
                let _ = child.wait();
                return End::TimedOut;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// Copies the run's output to `log` up to `cap` bytes (then sets `capped` and discards the
/// rest); the receiver hears once the pipe is closed.
fn drain(
    mut reader: std::io::PipeReader,
    log: &Path,
    cap: u64,
    capped: Arc<AtomicBool>,
) -> std::io::Result<mpsc::Receiver<()>> {
    let mut file = File::create(log)?;
    let (tx, rx) = mpsc::channel();
    #[allow(clippy::disallowed_methods)]
    // reason: the grader runs real processes; nothing here is simulated
    std::thread::spawn(move || {
        let mut written = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(written);
                    let keep = (n as u64).min(room) as usize;
                    if keep > 0 {
                        let _ = file.write_all(&buf[..keep]);
                        written += keep as u64;
                    }
                    if keep < n && !capped.swap(true, Ordering::Relaxed) {
                        let _ = writeln!(
                            file,
                            "\n[raftlab grade: output cut at {cap} bytes; the run was stopped]"
                        );
                    }
                }
            }
        }
        let _ = tx.send(());
    });
    Ok(rx)
}

/// Kills the run's process group (the grader made the run its leader).
fn kill_group(child: &Child) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) has no memory effects; a negative pid names the group we created.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// `raftlab sandbox-init`: the parent of a graded test inside its sandbox.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Address-space limit of the test and everything it starts, in MiB.
    #[arg(long, value_name = "MB")]
    memory_mb: u64,
    /// The test binary and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<OsString>,
}

/// Runs the test under the limits, then kills and reports whatever it left running.
pub fn init(args: InitArgs) -> Result<ExitCode> {
    let Some((exe, rest)) = args.command.split_first() else {
        bail!("sandbox-init: no command");
    };
    limit_memory(args.memory_mb)?;
    become_subreaper();
    let status = Command::new(exe)
        .args(rest)
        .status()
        .with_context(|| format!("sandbox-init: cannot run {}", Path::new(exe).display()))?;
    let left = kill_leftovers();
    if left > 0 {
        eprintln!(
            "raftlab sandbox: the test left {left} process(es) running after it exited; they were killed"
        );
        return Ok(ExitCode::from(LEFT_PROCESSES_EXIT));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            eprintln!("raftlab sandbox: the test was killed by signal {sig}");
            return Ok(ExitCode::from(128u8.saturating_add(sig as u8)));
        }
    }
    Ok(ExitCode::from(
        status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)),
    ))
}

fn limit_memory(mb: u64) -> Result<()> {
    #[cfg(unix)]
    {
        let bytes = mb.saturating_mul(1 << 20) as libc::rlim_t;
        let lim = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: bytes,
        };
        // SAFETY: setrlimit reads the struct we pass and changes only this process's limits.
        if unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) } != 0 {
            bail!(
                "sandbox-init: cannot limit memory to {mb} MB: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

fn become_subreaper() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only flags this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Reaps every child left (orphans re-parented to this subreaper); kills the live ones.
/// Returns how many were still running.
fn kill_leftovers() -> usize {
    let mut killed = std::collections::BTreeSet::new();
    #[cfg(unix)]
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status int we own.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            continue; // a zombie reaped
        }
        if pid < 0 {
            break; // no children left
        }
        // Live children remain.
        // SAFETY: getpid has no effects.
        let me = unsafe { libc::getpid() };
        if me == 1 {
            // PID 1 of our own namespace: everything else in it is the test's.
            // SAFETY: kill(-1) from a namespace's init signals only that namespace.
            unsafe {
                libc::kill(-1, libc::SIGKILL);
            }
            killed.insert(-1);
        } else {
            for pid in children_of(me) {
                killed.insert(pid);
                // SAFETY: signals a child of ours.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    killed.len()
}

/// The pids whose parent is `parent`, from /proc.
fn children_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<i32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// A suite binary copied into a sealed in-memory file: nothing, not even a test run of the
/// same grading, can change it afterwards (the build directory's copy can be overwritten by a
/// run; this one cannot). Runs execute it as `/proc/self/fd/<n>`.
#[derive(Debug)]
pub struct Sealed {
    _file: File,
    pub path: PathBuf,
}

/// Seals a copy of `exe`.
#[cfg(target_os = "linux")]
pub fn seal(exe: &Path) -> std::io::Result<Sealed> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let name = c"raftlab-suite";
    // SAFETY: memfd_create reads the NUL-terminated name; the fd it returns is ours to own.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let mut writable = unsafe { File::from_raw_fd(fd) };
    std::io::copy(&mut File::open(exe)?, &mut writable)?;
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Exec refuses a file open for writing: keep a read-only descriptor only, inherited by
    // children (no close-on-exec) so that they can exec it by its /proc path.
    let file = File::open(format!("/proc/self/fd/{fd}"))?;
    drop(writable);
    let ro = file.as_raw_fd();
    // SAFETY: clears FD_CLOEXEC on a descriptor we own.
    if unsafe { libc::fcntl(ro, libc::F_SETFD, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Sealed {
        _file: file,
        path: PathBuf::from(format!("/proc/self/fd/{ro}")),
    })
}

#[cfg(not(target_os = "linux"))]
pub fn seal(_exe: &Path) -> std::io::Result<Sealed> {
    Err(std::io::Error::other("sealed binaries need Linux"))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_binary_runs_and_cannot_be_changed() {
        let sealed = seal(Path::new("/bin/true")).expect("seal /bin/true");
        let status = Command::new(&sealed.path)
            .status()
            .expect("run the sealed copy");
        assert!(status.success());
        let write = std::fs::OpenOptions::new()
            .write(true)
            .open(&sealed.path)
            .and_then(|mut f| f.write_all(b"#!/bin/sh\nexit 0\n"));
        assert!(write.is_err(), "a sealed binary was overwritten");
    }

    #[test]
    fn children_of_the_init_are_found_in_proc() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep");
        let me = std::process::id() as i32;
        assert!(children_of(me).contains(&(child.id() as i32)));
        let _ = child.kill();
        let _ = child.wait();
    }
}
