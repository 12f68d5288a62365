//! The checker against the recorded histories of `shared/testdata` (see its README.md).

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Reference, config_check, read, testdata};
use lincheck::models::kv::KvModel;
use lincheck::models::register::RegisterModel;
use lincheck::{
    CheckResult, Format, check_file, check_operations, parse_kv_log, parse_register_log,
};

/// Generous: the slowest file takes well under a second even in a debug build.
const BUDGET: Duration = Duration::from_secs(120);

/// Per-file verdicts for the etcd histories, decided by this checker and cross-checked below.
const GOLDEN: &str = include_str!("../etcd_golden.txt");

#[test]
fn porcupine_kv_ok_files_are_linearizable_and_bad_files_are_not() {
    let dir = testdata().join("porcupine-kv");
    for clients in ["c01", "c10", "c50"] {
        for (suffix, expected) in [
            ("ok", CheckResult::Linearizable),
            ("bad", CheckResult::NotLinearizable),
        ] {
            let path = dir.join(format!("{clients}-{suffix}.txt"));
            let history = match parse_kv_log(&read(&path)) {
                Ok(h) => h,
                Err(e) => panic!("{}: {e}", path.display()),
            };
            assert!(!history.is_empty(), "{}: empty history", path.display());
            let result = check_operations(&KvModel, &history, Some(BUDGET));
            assert_eq!(result, expected, "{}", path.display());
        }
    }
}

#[test]
fn check_file_agrees_for_kv_files() {
    let dir = testdata().join("porcupine-kv");
    let (ok, _) = check_file(dir.join("c10-ok.txt"), Format::Kv, Some(BUDGET))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok, CheckResult::Linearizable);
    let (bad, _) = check_file(dir.join("c10-bad.txt"), Format::Kv, Some(BUDGET))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bad, CheckResult::NotLinearizable);
}

fn etcd_files() -> Vec<PathBuf> {
    let dir = testdata().join("etcd-jepsen");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(d) => d
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect(),
        Err(e) => panic!("cannot list {}: {e}", dir.display()),
    };
    files.sort();
    files
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn verdict_word(r: CheckResult) -> &'static str {
    match r {
        CheckResult::Linearizable => "linearizable",
        CheckResult::NotLinearizable => "not-linearizable",
        CheckResult::Unknown => "unknown",
    }
}

/// The golden list as (file, verdict) pairs; `#` starts a comment.
fn golden() -> Vec<(String, String)> {
    GOLDEN
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut words = l.split_whitespace();
            let file = words.next().unwrap_or("").to_string();
            let verdict = words.next().unwrap_or("").to_string();
            (file, verdict)
        })
        .collect()
}

/// All etcd histories get a decision within the budget, and it matches the golden list.
/// `LINCHECK_BLESS=1` rewrites the list instead (then cross-check it again with the test below).
#[test]
fn etcd_histories_are_all_decided_and_match_the_golden_list() {
    let files = etcd_files();
    assert_eq!(files.len(), 103, "expected etcd_000.log ..= etcd_102.log");
    let mut decided = Vec::new();
    for path in &files {
        let (result, _) =
            check_file(path, Format::Register, Some(BUDGET)).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(
            result,
            CheckResult::Unknown,
            "{}: no decision within {BUDGET:?}",
            path.display()
        );
        decided.push((file_name(path), verdict_word(result).to_string()));
    }
    if std::env::var_os("LINCHECK_BLESS").is_some() {
        let mut out = String::from(
            "# Verdicts of lincheck on shared/testdata/etcd-jepsen (file, verdict), one per line.\n\
             # Written with LINCHECK_BLESS=1 cargo test -p lincheck --test all testdata; cross-checked by\n\
             # etcd_verdicts_agree_with_an_independent_checker. etcd_095.log is empty (the etcd cluster failed\n\
             # to start in that Jepsen run), hence trivially linearizable.\n",
        );
        for (f, v) in &decided {
            out.push_str(&format!("{f} {v}\n"));
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/etcd_golden.txt");
        if let Err(e) = std::fs::write(path, out) {
            panic!("cannot write {path}: {e}");
        }
        return;
    }
    assert_eq!(
        decided,
        golden(),
        "verdicts differ from tests/etcd_golden.txt"
    );
    let good = decided.iter().filter(|(_, v)| v == "linearizable").count();
    assert_eq!((good, decided.len() - good), (24, 79));
}

/// Cross-checks the etcd verdicts with the configuration-set algorithm of `common::config_check`, on every
/// history small enough for it.
#[test]
fn etcd_verdicts_agree_with_an_independent_checker() {
    let golden = golden();
    let mut checked = 0;
    let mut checked_bad = 0;
    for path in etcd_files() {
        let name = file_name(&path);
        let history =
            parse_register_log(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reference = config_check(&RegisterModel::default(), &history, 30_000);
        let expected = match reference {
            Reference::Linearizable => "linearizable",
            Reference::NotLinearizable => "not-linearizable",
            Reference::TooBig => continue,
        };
        let Some((_, verdict)) = golden.iter().find(|(f, _)| *f == name) else {
            panic!("{name} is missing from tests/etcd_golden.txt");
        };
        assert_eq!(
            verdict, expected,
            "{name}: golden list and independent checker disagree"
        );
        let result = check_operations(&RegisterModel::default(), &history, Some(BUDGET));
        assert_eq!(verdict_word(result), expected, "{name}");
        checked += 1;
        if expected == "not-linearizable" {
            checked_bad += 1;
        }
    }
    eprintln!("cross-checked {checked} of 103 etcd histories ({checked_bad} not linearizable)");
    assert!(
        checked >= 90,
        "only {checked} etcd histories were small enough to cross-check"
    );
    assert!(checked_bad >= 40 && checked - checked_bad >= 10);
}

/// The parsers read every file of the data set, with the counts the files imply.
#[test]
fn parsers_read_every_file() {
    let dir = testdata();
    let kv =
        parse_kv_log(&read(&dir.join("porcupine-kv/c01-ok.txt"))).unwrap_or_else(|e| panic!("{e}"));
    // 116 lines: 58 invoke/ok pairs, none pending.
    assert_eq!(kv.len(), 58);
    assert!(kv.iter().all(|op| !op.is_pending() && op.call < op.ret));
    let reg = parse_register_log(&read(&dir.join("etcd-jepsen/etcd_000.log")))
        .unwrap_or_else(|e| panic!("{e}"));
    // 85 invocations; :fail ones are dropped, :info ones stay pending forever.
    assert!(reg.len() < 85 && reg.iter().any(|op| op.is_pending()));
    for path in etcd_files() {
        if let Err(e) = parse_register_log(&read(&path)) {
            panic!("{}: {e}", path.display());
        }
    }
}

/// The HTML report of a failed file is written, self-contained, and names the bad partitions.
#[test]
fn html_report_for_a_bad_file() {
    let dir = testdata();
    let mut html = Vec::new();
    let result = lincheck::visualize_file(
        dir.join("porcupine-kv/c10-bad.txt"),
        Format::Kv,
        Some(BUDGET),
        &mut html,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result, CheckResult::NotLinearizable);
    let html = String::from_utf8(html).unwrap_or_else(|e| panic!("{e}"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("not linearizable"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "must not load anything"
    );
    assert!(!html.contains("<script src") && !html.contains("<link"));
    save_page("c10-bad.html", &html);

    let mut html = Vec::new();
    let result = lincheck::visualize_file(
        dir.join("etcd-jepsen/etcd_000.log"),
        Format::Register,
        Some(BUDGET),
        &mut html,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result, CheckResult::NotLinearizable);
    let html = String::from_utf8_lossy(&html);
    assert!(html.contains("cas("));
    save_page("etcd_000.html", &html);
}

/// With `LINCHECK_HTML_DIR` set, keeps the generated pages there to look at them in a browser.
fn save_page(name: &str, html: &str) {
    if let Some(dir) = std::env::var_os("LINCHECK_HTML_DIR") {
        let path = PathBuf::from(dir).join(name);
        if let Err(e) = std::fs::write(&path, html) {
            panic!("cannot write {}: {e}", path.display());
        }
    }
}

#[test]
fn missing_file_is_a_read_error() {
    let err = check_file("/nonexistent/history.txt", Format::Kv, None).err();
    assert!(matches!(err, Some(lincheck::Error::Read { .. })), "{err:?}");
}
