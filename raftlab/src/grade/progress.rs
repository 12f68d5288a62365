//! The live progress line on stderr: done/total, failures, rate and ETA.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The live progress line on stderr.
pub struct Progress {
    total: usize,
    done: usize,
    failed: usize,
    clock: Instant,
    tty: bool,
    /// Non-terminal output: the last tenth reported.
    last_tenth: usize,
}

impl Progress {
    pub fn new(total: usize, clock: Instant) -> Progress {
        Progress {
            total,
            done: 0,
            failed: 0,
            clock,
            tty: std::io::stderr().is_terminal(),
            last_tenth: 0,
        }
    }

    pub fn line(&self) -> String {
        let elapsed = self.clock.elapsed();
        let secs = elapsed.as_secs_f64();
        let eta = if self.done == 0 {
            "?".to_owned()
        } else {
            let left = secs * (self.total - self.done) as f64 / self.done as f64;
            fmt_duration(Duration::from_secs_f64(left))
        };
        let rate = if secs > 0.0 {
            format!("{:.1} runs/s", self.done as f64 / secs)
        } else {
            "- runs/s".to_owned()
        };
        format!(
            "[{:>w$}/{}] {} failed | {rate} | elapsed {} | eta {}",
            self.done,
            self.total,
            self.failed,
            fmt_duration(elapsed),
            eta,
            w = self.total.to_string().len()
        )
    }

    pub fn redraw(&self) {
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", self.line());
            let _ = err.flush();
        }
    }

    pub fn failure(&self, msg: &str) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!("{msg}");
        self.redraw();
    }

    pub fn done(&mut self, passed: bool) {
        self.done += 1;
        if !passed {
            self.failed += 1;
        }
        if self.tty {
            self.redraw();
        } else {
            let tenth = self.done * 10 / self.total.max(1);
            if tenth > self.last_tenth {
                self.last_tenth = tenth;
                eprintln!("{}", self.line());
            }
        }
    }

    pub fn finish(&self) {
        if self.tty {
            eprintln!("\r\x1b[2K{}", self.line());
        }
    }
}

pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, s % 3600 / 60, s % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
