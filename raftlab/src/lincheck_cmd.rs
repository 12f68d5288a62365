//! `raftlab lincheck`: check history files for linearizability.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use lincheck::{CheckResult, Format};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Model {
    /// Key/value store (porcupine's key/value log format).
    Kv,
    /// Single register with read/write/cas (Jepsen's etcd log format).
    Register,
}

impl From<Model> for Format {
    fn from(m: Model) -> Format {
        match m {
            Model::Kv => Format::Kv,
            Model::Register => Format::Register,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct LincheckArgs {
    /// The model, which also fixes the file format [default: guessed from each file's first line].
    #[arg(long, value_enum)]
    model: Option<Model>,
    /// Time budget per file, in seconds; past it the verdict is `unknown`.
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Write a visualization page for each non-linearizable history into DIR.
    #[arg(long, value_name = "DIR")]
    html: Option<PathBuf>,
    /// History files.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn run(args: LincheckArgs) -> Result<ExitCode> {
    let budget = match args.timeout {
        Some(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
        Some(secs) => anyhow::bail!("--timeout must be a positive number of seconds, got {secs}"),
        None => None,
    };
    if let Some(dir) = &args.html {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let width = args
        .files
        .iter()
        .map(|f| f.display().to_string().len())
        .max()
        .unwrap_or(0);
    let mut bad = false;
    for (i, file) in args.files.iter().enumerate() {
        let name = file.display().to_string();
        let format = match args.model {
            Some(m) => Format::from(m),
            None => match guess(file) {
                Ok(f) => f,
                Err(e) => {
                    println!("{name:<width$}  error: {e:#}");
                    bad = true;
                    continue;
                }
            },
        };
        match lincheck::check_file(file, format, budget) {
            Err(e) => {
                println!("{name:<width$}  error: {e}");
                bad = true;
            }
            Ok((result, elapsed)) => {
                let verdict = match result {
                    CheckResult::Linearizable => "linearizable",
                    CheckResult::NotLinearizable => "not linearizable",
                    CheckResult::Unknown => "unknown",
                };
                println!("{name:<width$}  {verdict:<16}  {}", fmt_elapsed(elapsed));
                if result == CheckResult::NotLinearizable {
                    bad = true;
                    if let Some(dir) = &args.html {
                        let page = dir.join(page_name(file, i));
                        write_page(file, format, budget, &page)?;
                        println!("{:<width$}  visualization: {}", "", page.display());
                    }
                }
            }
        }
    }
    Ok(if bad {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A check's duration, readable from microseconds to minutes.
fn fmt_elapsed(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1e-3 {
        format!("{}µs", d.as_micros())
    } else if secs < 1.0 {
        format!("{:.1}ms", secs * 1e3)
    } else {
        format!("{secs:.2}s")
    }
}

fn guess(file: &Path) -> Result<Format> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Format::guess(&text).context("cannot tell the history format: pass --model kv|register")
}

/// `<file stem>.html`, numbered so that files with the same name in different directories do
/// not overwrite each other's page.
fn page_name(file: &Path, index: usize) -> String {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "history".into());
    format!("{index:03}-{stem}.html")
}

fn write_page(file: &Path, format: Format, budget: Option<Duration>, page: &Path) -> Result<()> {
    let out =
        std::fs::File::create(page).with_context(|| format!("cannot create {}", page.display()))?;
    let mut out = std::io::BufWriter::new(out);
    lincheck::visualize_file(file, format, budget, &mut out)?;
    std::io::Write::flush(&mut out).with_context(|| format!("cannot write {}", page.display()))?;
    Ok(())
}
