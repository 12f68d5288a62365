//! Grading untrusted trees: what a student changes outside their files has no effect, a run
//! passes only on the harness's verdict, the sandbox stops what a run should not do, a class
//! gives a gradebook, and shares of a grading run merge to the whole.
//!
//! One test, so that its gradings share one staging tree and build directory (under this
//! workspace's target directory, kept between runs): each grading rebuilds only what the
//! previous tree did not have. Builds use a light release profile through `--cargo-config`.

mod common;

use std::path::{Path, PathBuf};

use common::workspace_root;
use std::process::Command;

use serde_json::Value;

/// The release profile with the workspace's crates unoptimised and incremental (a grading
/// rebuilds raft/src and everything above it: ~12 s a grading, ~40 s at opt-level 1) and the
/// registry's crates a little optimised, so that the simulations still run fast.
const LIGHT_BUILD: [&str; 8] = [
    "--cargo-config",
    "profile.release.debug=0",
    "--cargo-config",
    "profile.release.opt-level=0",
    "--cargo-config",
    "profile.release.incremental=true",
    "--cargo-config",
    "profile.release.package.\"*\".opt-level=1",
];

fn work_dir() -> PathBuf {
    common::work_dir("grade-check")
}

struct Grader {
    work: PathBuf,
}

impl Grader {
    /// Runs `raftlab grade` from the grader's workspace; returns (exit code, stdout, stderr).
    fn grade(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_raftlab"))
            .arg("grade")
            .args(args)
            .arg("--work")
            .arg(self.work.join("stage"))
            .args(LIGHT_BUILD)
            .current_dir(workspace_root())
            .env_remove("RAFTLAB_TRACE")
            .env_remove("RUSTFLAGS")
            .output()
            .expect("run raftlab grade");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Grades `tree` and returns its JSON report.
    fn report(&self, tree: &Path, args: &[&str]) -> Value {
        let json = self.work.join("report.json");
        let _ = std::fs::remove_file(&json);
        let mut all = vec!["--path", tree.to_str().expect("utf-8 path"), "--json"];
        all.push(json.to_str().expect("utf-8 path"));
        all.extend_from_slice(args);
        let (code, stdout, stderr) = self.grade(&all);
        let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
            panic!(
                "no JSON report from grading {} (exit {code}): {e}\n{stdout}\n{stderr}",
                tree.display()
            )
        });
        serde_json::from_str(&text).expect("the report is JSON")
    }
}

fn part<'a>(report: &'a Value, lab: &str, part: &str) -> &'a Value {
    report["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .find(|p| p["lab"] == lab && p["part"] == part)
        .unwrap_or_else(|| panic!("no {lab} {part} in {report:#}"))
}

/// The failure reason of `test`'s first failed run.
fn reason<'a>(report: &'a Value, test: &str) -> &'a str {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["test"] == test)
        .and_then(|r| r["reason"].as_str())
        .unwrap_or_else(|| panic!("{test} has no failure reason in {report:#}"))
}

fn copy_tree(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    let status = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

fn edit(path: &Path, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).expect("read a file to edit");
    std::fs::write(path, f(text)).expect("write the edited file");
}

/// Replaces the `todo!` of the solution region whose hint starts with `hint`.
fn replace_stub(file: &Path, hint: &str, code: &str) {
    edit(file, |text| {
        let start = text
            .find(&format!("todo!(\"{hint}"))
            .unwrap_or_else(|| panic!("no {hint} stub in {}", file.display()));
        let end = start + text[start..].find('\n').expect("end of line");
        format!("{}{code}{}", &text[..start], &text[end..])
    });
}

/// Processes whose command line has `needle` as an argument.
fn processes_with_arg(needle: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| c.split(|b| *b == 0).any(|a| a == needle.as_bytes()))
        .count()
}

/// Drops what differs between two gradings of the same tree and seed: times, paths.
fn outcome(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(o) => {
                for k in ["seconds", "elapsed_seconds", "log", "trace", "partition"] {
                    o.remove(k);
                }
                o.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// Appended to the student's core.rs; the stubs of `tick` and `collect_applies` call it.
const CHEAT: &str = r#"
fn cheat() -> ! {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            if name.starts_with("initial_election") {
                println!("test result: ok. 1 passed; 0 failed; 0 ignored");
                std::process::exit(0);
            }
            if name.starts_with("many_elections") {
                let _ = std::process::Command::new("sleep").arg("987654").spawn();
                println!("test result: ok. 1 passed; 0 failed; 0 ignored");
                std::process::exit(0);
            }
            if name.starts_with("re_election") {
                loop {
                    println!("test result: ok. 1 passed; flooding the grader");
                }
            }
            if name.starts_with("basic_agree") {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                }
            }
            todo!()
}
"#;

#[test]
fn cheating_trees_score_zero_and_a_class_gets_a_gradebook() {
    let root = workspace_root();
    let work = work_dir();
    std::fs::create_dir_all(&work).expect("work dir");
    let g = Grader { work: work.clone() };

    let handout = work.join("handout");
    let _ = std::fs::remove_dir_all(&handout);
    let out = Command::new(env!("CARGO_BIN_EXE_raftlab"))
        .args(["handout", "--out"])
        .arg(&handout)
        .arg("--from")
        .arg(&root)
        .output()
        .expect("raftlab handout");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 1. Edited tests, labrpc and points: ignored, reported, no effect.
    let tampered = work.join("tampered");
    copy_tree(&handout, &tampered);
    edit(&tampered.join("tests/tests/raft.rs"), |t| {
        // Every test body gone: each test would pass at once.
        t.lines()
            .filter(|l| l.starts_with("#[test]") || l.starts_with("fn ") || l.starts_with("use "))
            .map(|l| {
                if l.starts_with("fn ") {
                    format!("{l} }}")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            .replace("{ }", "{}")
    });
    edit(&tampered.join("labrpc/src/lib.rs"), |t| {
        t + "\n// a reliable network, please\n"
    });
    std::fs::write(tampered.join("grading/points.txt"), "raft 3A 1000\n").expect("points");
    let r = g.report(&tampered, &["--lab", "raft", "--part", "3A", "--seed", "1"]);
    let p = part(&r, "raft", "3A");
    assert_eq!(p["awarded"], 0, "{r:#}");
    assert_eq!(p["points"], 10, "the student's points file was used: {r:#}");
    let ignored: Vec<&str> = r["ignored_files"]
        .as_array()
        .expect("ignored_files")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for f in [
        "tests/tests/raft.rs",
        "labrpc/src/lib.rs",
        "grading/points.txt",
    ] {
        assert!(
            ignored.contains(&f),
            "{f} not reported as ignored: {ignored:?}"
        );
    }

    // 2. Code that fakes a pass, leaves a process behind, floods output, hoards memory.
    let cheater = work.join("cheater");
    copy_tree(&handout, &cheater);
    let core = cheater.join("raft/src/core.rs");
    replace_stub(&core, "tick:", "cheat()");
    replace_stub(&core, "collect_applies:", "cheat()");
    edit(&core, |t| t + CHEAT);
    let r = g.report(
        &cheater,
        &[
            "--lab",
            "raft",
            "--part",
            "3A,3B",
            "--seed",
            "1",
            "--memory-mb",
            "256",
            "--max-output-mb",
            "1",
            "--timeout",
            "120",
        ],
    );
    for p in ["3A", "3B"] {
        assert_eq!(part(&r, "raft", p)["awarded"], 0, "{r:#}");
    }
    assert_eq!(
        reason(&r, "initial_election_3a"),
        "exited before the tester finished"
    );
    assert!(
        reason(&r, "many_elections_3a").contains("left processes running"),
        "{}",
        reason(&r, "many_elections_3a")
    );
    assert_eq!(
        processes_with_arg("987654"),
        0,
        "the spawned process outlived the grading"
    );
    assert!(
        reason(&r, "re_election_3a").contains("bytes of output"),
        "{}",
        reason(&r, "re_election_3a")
    );
    assert!(
        reason(&r, "basic_agree_3b").contains("ran out of memory"),
        "{}",
        reason(&r, "basic_agree_3b")
    );

    // 3. The reference solution as a student tree: full points; shares merge to the whole;
    //    Gradescope's fields.
    let reference = work.join("reference");
    copy_tree(&handout, &reference);
    let manifest =
        std::fs::read_to_string(root.join("grading/student-files.txt")).expect("manifest");
    for f in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        std::fs::copy(root.join(f), reference.join(f)).expect("copy a solution file");
    }
    let gradescope = work.join("results.json");
    let whole = g.report(
        &reference,
        &[
            "--lab",
            "raft",
            "--part",
            "3A",
            "--runs",
            "2",
            "--seed",
            "5",
            "--gradescope",
            gradescope.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(part(&whole, "raft", "3A")["awarded"], 10, "{whole:#}");
    assert_eq!(
        whole["ignored_files"].as_array().map(Vec::len),
        Some(0),
        "{whole:#}"
    );
    let gs: Value =
        serde_json::from_str(&std::fs::read_to_string(&gradescope).expect("results.json"))
            .expect("results.json is JSON");
    assert_eq!(gs["score"], 10);
    assert!(gs["execution_time"].is_u64());
    let t = &gs["tests"][0];
    assert_eq!(t["name"], "raft 3A");
    assert_eq!(
        (t["score"].as_u64(), t["max_score"].as_u64()),
        (Some(10), Some(10))
    );
    assert!(t["output"].is_string());
    let mut shares = Vec::new();
    for k in 1..=3 {
        let share = work.join(format!("share{k}.json"));
        let v = g.report(
            &reference,
            &[
                "--lab",
                "raft",
                "--part",
                "3A",
                "--runs",
                "2",
                "--seed",
                "5",
                "--partition",
                &format!("{k}/3"),
            ],
        );
        std::fs::write(&share, v.to_string()).expect("write a share");
        shares.push(share);
    }
    let merged = work.join("merged.json");
    let out = Command::new(env!("CARGO_BIN_EXE_raftlab"))
        .args(["grade", "merge"])
        .args(&shares)
        .arg("-o")
        .arg(&merged)
        .output()
        .expect("raftlab grade merge");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged: Value = serde_json::from_str(&std::fs::read_to_string(&merged).expect("merged"))
        .expect("merged is JSON");
    assert_eq!(outcome(merged), outcome(whole.clone()));

    // 4. A class: the reference, the handout, and a tarball whose kvraft does not compile.
    let class = work.join("class");
    let _ = std::fs::remove_dir_all(&class);
    std::fs::create_dir_all(&class).expect("class dir");
    copy_tree(&reference, &class.join("a_reference"));
    copy_tree(&handout, &class.join("b_handout"));
    let broken = work.join("broken");
    copy_tree(&reference, &broken);
    edit(&broken.join("kvraft/src/server.rs"), |t| {
        t + "\nfn broken( {\n"
    });
    let tar = Command::new("tar")
        .arg("-czf")
        .arg(class.join("c_broken.tar.gz"))
        .arg("-C")
        .arg(&work)
        .arg("broken")
        .status()
        .expect("tar");
    assert!(tar.success());
    let book = work.join("book");
    let _ = std::fs::remove_dir_all(&book);
    let (code, stdout, stderr) = g.grade(&[
        "--class",
        class.to_str().expect("utf-8"),
        "--out",
        book.to_str().expect("utf-8"),
        "--lab",
        "raft,kvraft",
        "--part",
        "3A",
        "--seed",
        "5",
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let csv = std::fs::read_to_string(book.join("gradebook.csv")).expect("gradebook.csv");
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let col = |name: &str| {
        rows[0]
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("no {name} column: {csv}"))
    };
    let (c3a, c4a, total) = (col("raft 3A"), col("kvraft 4A"), col("total"));
    let row = |student: &str| {
        rows.iter()
            .find(|r| r[0] == student)
            .unwrap_or_else(|| panic!("no row for {student}: {csv}"))
    };
    assert_eq!(row("a_reference")[c3a], "10", "{csv}");
    assert_eq!(row("b_handout")[c3a], "0", "{csv}");
    assert_eq!(row("b_handout")[total], "0", "{csv}");
    // The broken kvraft costs kvraft's points only.
    assert_eq!(row("c_broken")[c3a], "10", "{csv}");
    assert_eq!(row("c_broken")[c4a], "0", "{csv}");
    assert!(csv.contains("kvraft crate does not compile"), "{csv}");
    let book_json: Value =
        serde_json::from_str(&std::fs::read_to_string(book.join("gradebook.json")).expect("json"))
            .expect("gradebook.json is JSON");
    assert_eq!(book_json["students"].as_array().map(Vec::len), Some(3));
    for s in ["a_reference", "b_handout", "c_broken"] {
        for f in ["report.txt", "report.json", "results.json"] {
            assert!(book.join(s).join(f).is_file(), "no {s}/{f}");
        }
    }
}

#[test]
fn the_manifest_lists_exactly_the_files_with_solution_regions() {
    let out = Command::new(env!("CARGO_BIN_EXE_raftlab"))
        .args(["manifest", "--check", "--path"])
        .arg(workspace_root())
        .output()
        .expect("raftlab manifest --check");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
