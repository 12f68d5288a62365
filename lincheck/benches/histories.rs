//! Times checking each data set of `shared/testdata`: `cargo bench -p lincheck`.
//!
//! A plain `main` (harness = false): each file is parsed once, then checked several times; the minimum and
//! median check times are printed (parsing excluded).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use lincheck::models::kv::KvModel;
use lincheck::models::register::RegisterModel;
use lincheck::{CheckResult, Model, Operation, check_operations};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/testdata");

/// Wall-clock timing of one call.
// A benchmark measures real time; the determinism rule against `Instant::now` is for simulated code.
#[allow(clippy::disallowed_methods)]
fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = std::time::Instant::now();
    let v = f();
    (v, start.elapsed())
}

fn bench<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> (CheckResult, Vec<Duration>) {
    let (result, first) = time(|| check_operations(model, history, None));
    let mut times = vec![first];
    // Repeat short checks so the figures are not one noisy sample; long ones once more at most.
    let total_target = Duration::from_millis(300);
    while times.len() < 20 && times.iter().sum::<Duration>() < total_target {
        let (_, t) = time(|| check_operations(model, history, None));
        times.push(t);
    }
    times.sort();
    (result, times)
}

fn fmt(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} us", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

fn main() -> ExitCode {
    let root = PathBuf::from(TESTDATA);
    if !root.is_dir() {
        eprintln!("test data not found: looked in {}", root.display());
        return ExitCode::FAILURE;
    }
    let mut failed = false;
    println!("porcupine key/value histories (partitioned by key):");
    println!(
        "{:<14} {:>6} {:>18} {:>12} {:>12}",
        "file", "ops", "verdict", "min", "median"
    );
    for name in [
        "c01-ok", "c01-bad", "c10-ok", "c10-bad", "c50-ok", "c50-bad",
    ] {
        let path = root.join("porcupine-kv").join(format!("{name}.txt"));
        let history =
            match read(&path).and_then(|t| lincheck::parse_kv_log(&t).map_err(|e| e.to_string())) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    failed = true;
                    continue;
                }
            };
        let (result, times) = bench(&KvModel, &history);
        println!(
            "{:<14} {:>6} {:>18} {:>12} {:>12}",
            name,
            history.len(),
            result.to_string(),
            fmt(times[0]),
            fmt(times[times.len() / 2])
        );
    }

    println!("\nJepsen etcd register histories:");
    println!(
        "{:<14} {:>6} {:>18} {:>12} {:>12}",
        "file", "ops", "verdict", "min", "median"
    );
    let mut total = Duration::ZERO;
    let mut slowest = (String::new(), Duration::ZERO);
    let (mut good, mut bad) = (0, 0);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(root.join("etcd-jepsen")) {
        Ok(dir) => dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect(),
        Err(e) => {
            eprintln!("{}: {e}", root.join("etcd-jepsen").display());
            return ExitCode::FAILURE;
        }
    };
    files.sort();
    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let history = match read(path)
            .and_then(|t| lincheck::parse_register_log(&t).map_err(|e| e.to_string()))
        {
            Ok(h) => h,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                failed = true;
                continue;
            }
        };
        let (result, times) = bench(&RegisterModel::default(), &history);
        match result {
            CheckResult::Linearizable => good += 1,
            CheckResult::NotLinearizable => bad += 1,
            CheckResult::Unknown => failed = true,
        }
        let median = times[times.len() / 2];
        total += median;
        if median > slowest.1 {
            slowest = (name.clone(), median);
        }
        println!(
            "{:<14} {:>6} {:>18} {:>12} {:>12}",
            name,
            history.len(),
            result.to_string(),
            fmt(times[0]),
            fmt(median)
        );
    }
    println!(
        "\netcd: {} files, {good} linearizable, {bad} not; sum of medians {}, slowest {} ({})",
        files.len(),
        fmt(total),
        slowest.0,
        fmt(slowest.1)
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}
