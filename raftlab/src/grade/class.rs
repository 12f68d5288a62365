//! `raftlab grade --class DIR`: every submission under DIR with the same grading seed, into a
//! gradebook (CSV and JSON) and one report per student (table, JSON, Gradescope results.json).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::report::Report;
use super::sandbox::Sandbox;
use super::{GradeArgs, LABS, grade_tree};
use crate::points::Points;

/// One submission: its name and where it is.
#[derive(Debug)]
struct Submission {
    name: String,
    source: PathBuf,
}

/// The submissions under `dir`, by name: directories (git checkouts too) and tarballs.
fn submissions(dir: &Path) -> Result<Vec<Submission>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the class {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with('.') {
            continue;
        }
        let name = if path.is_dir() {
            Some(file.clone())
        } else {
            [".tar.gz", ".tgz", ".tar"]
                .iter()
                .find_map(|ext| file.strip_suffix(ext).map(str::to_owned))
        };
        if let Some(name) = name {
            out.push(Submission {
                name: safe_name(&name),
                source: path,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A name usable as a file name and a CSV cell.
fn safe_name(s: &str) -> String {
    let n: String = s
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if n.is_empty() || n.starts_with('.') {
        format!("_{n}")
    } else {
        n
    }
}

/// The workspace root of a submission: the directory itself, the tarball's contents, or the one
/// sub-directory holding a `Cargo.toml`.
fn unpack(sub: &Submission, work: &Path) -> Result<PathBuf> {
    let dir = if sub.source.is_dir() {
        sub.source.clone()
    } else {
        let dest = work.join("unpacked").join(&sub.name);
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::create_dir_all(&dest)?;
        // --no-same-owner/-permissions: a tarball cannot plant setuid files or foreign owners.
        let out = Command::new("tar")
            .arg("-xf")
            .arg(&sub.source)
            .arg("-C")
            .arg(&dest)
            .args(["--no-same-owner", "--no-same-permissions"])
            .stdin(Stdio::null())
            .output()
            .context("cannot run tar")?;
        if !out.status.success() {
            bail!(
                "cannot unpack {}: {}",
                sub.source.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        dest
    };
    if dir.join("Cargo.toml").is_file() {
        return Ok(dir);
    }
    let inner: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    match &inner[..] {
        [one] => Ok(one.clone()),
        _ => bail!(
            "{}: no raftlab tree (no Cargo.toml at the top or in exactly one sub-directory)",
            sub.source.display()
        ),
    }
}

/// One student's result.
struct Graded {
    name: String,
    report: Option<Report>,
    error: Option<String>,
}

pub fn run(
    args: &GradeArgs,
    official: &Path,
    class_dir: &Path,
    master: u64,
    points: &Points,
    sandbox: &Sandbox,
) -> Result<ExitCode> {
    let subs = submissions(class_dir)?;
    if subs.is_empty() {
        bail!(
            "{}: no submissions (directories or tarballs)",
            class_dir.display()
        );
    }
    let work = match &args.work {
        Some(w) => std::path::absolute(w)?,
        None => official.join("target/grade"),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    eprintln!(
        "raftlab grade --class {}: {} submission(s), grading seed {master}",
        class_dir.display(),
        subs.len()
    );
    let mut graded = Vec::new();
    for (i, sub) in subs.iter().enumerate() {
        eprintln!("\n== [{}/{}] {}", i + 1, subs.len(), sub.name);
        let result = unpack(sub, &work)
            .and_then(|root| grade_tree(args, official, Some(&root), master, points, sandbox));
        let g = match result {
            Ok(report) => {
                let (a, m) = report.total_points();
                eprintln!("== {}: {a}/{m} points", sub.name);
                Graded {
                    name: sub.name.clone(),
                    report: Some(report),
                    error: None,
                }
            }
            Err(e) => {
                eprintln!("== {}: not graded: {e:#}", sub.name);
                Graded {
                    name: sub.name.clone(),
                    report: None,
                    error: Some(format!("{e:#}")),
                }
            }
        };
        write_student(&args.out, &g)?;
        graded.push(g);
    }
    let columns = columns(points, &graded);
    let csv = gradebook_csv(&columns, &graded);
    let book = gradebook_json(&columns, &graded, master);
    let csv_path = args.out.join("gradebook.csv");
    let json_path = args.out.join("gradebook.json");
    std::fs::write(&csv_path, &csv)
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    std::fs::write(&json_path, serde_json::to_string_pretty(&book)? + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    print!("\n{csv}");
    eprintln!(
        "wrote {} and {} (each student's reports are in {}/<student>/)",
        csv_path.display(),
        json_path.display(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_student(out: &Path, g: &Graded) -> Result<()> {
    let dir = out.join(&g.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (table, json, gradescope) = match (&g.report, &g.error) {
        (Some(r), _) => (r.table(), r.json(), r.gradescope()),
        (None, e) => {
            let e = e.clone().unwrap_or_default();
            (
                format!("not graded: {e}\n"),
                json!({"error": e, "points": 0}),
                json!({"score": 0, "output": format!("not graded: {e}"), "tests": []}),
            )
        }
    };
    std::fs::write(dir.join("report.txt"), table)?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&gradescope)? + "\n",
    )?;
    Ok(())
}

/// The gradebook's part columns: the points file's parts, then any other part graded, in lab
/// order.
fn columns(points: &Points, graded: &[Graded]) -> Vec<(String, String)> {
    let mut cols: BTreeMap<(usize, String, String), ()> = BTreeMap::new();
    let rank = |lab: &str| {
        LABS.iter()
            .position(|(l, _)| *l == lab)
            .unwrap_or(LABS.len())
    };
    for (lab, part) in points.0.keys() {
        cols.insert((rank(lab), lab.clone(), part.clone()), ());
    }
    for r in graded.iter().filter_map(|g| g.report.as_ref()) {
        for p in &r.parts {
            cols.insert((rank(&p.lab), p.lab.clone(), p.part.clone()), ());
        }
    }
    cols.into_keys().map(|(_, l, p)| (l, p)).collect()
}

fn awarded(r: &Report, lab: &str, part: &str) -> Option<u32> {
    r.parts
        .iter()
        .find(|p| p.lab == lab && p.part == part)
        .map(|p| p.awarded())
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn gradebook_csv(columns: &[(String, String)], graded: &[Graded]) -> String {
    let mut s = String::from("student");
    for (l, p) in columns {
        let _ = write!(s, ",{l} {p}");
    }
    s.push_str(",total,max,notes\n");
    for g in graded {
        s.push_str(&csv_cell(&g.name));
        let mut total = 0;
        let mut max = 0;
        for (l, p) in columns {
            let cell = g.report.as_ref().and_then(|r| awarded(r, l, p));
            total += cell.unwrap_or(0);
            let _ = write!(s, ",{}", cell.map_or(String::new(), |v| v.to_string()));
        }
        if let Some(r) = &g.report {
            max = r.total_points().1;
        }
        let notes = match (&g.report, &g.error) {
            (_, Some(e)) => format!("not graded: {e}"),
            (Some(r), None) => {
                let mut n = Vec::new();
                for (lab, why) in &r.meta.not_built {
                    n.push(format!("{lab}: {why}"));
                }
                if !r.meta.ignored.is_empty() {
                    n.push(format!("{} ignored file(s)", r.meta.ignored.len()));
                }
                n.join("; ")
            }
            (None, None) => String::new(),
        };
        let _ = writeln!(s, ",{total},{max},{}", csv_cell(&notes));
    }
    s
}

fn gradebook_json(columns: &[(String, String)], graded: &[Graded], seed: u64) -> Value {
    let students: Vec<Value> = graded
        .iter()
        .map(|g| match &g.report {
            Some(r) => {
                let (a, m) = r.total_points();
                let parts: serde_json::Map<String, Value> = columns
                    .iter()
                    .filter_map(|(l, p)| Some((format!("{l} {p}"), json!(awarded(r, l, p)?))))
                    .collect();
                json!({
                    "student": g.name, "points": a, "max_points": m, "parts": parts,
                    "not_built": r.meta.not_built, "ignored_files": r.meta.ignored,
                    "missing_files": r.meta.missing, "passed": r.all_passed(),
                })
            }
            None => json!({"student": g.name, "points": 0, "error": g.error}),
        })
        .collect();
    json!({
        "seed": seed,
        "columns": columns.iter().map(|(l, p)| format!("{l} {p}")).collect::<Vec<_>>(),
        "students": students,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_cells_quoted() {
        assert_eq!(safe_name("ann/../x y"), "ann_.._x_y");
        assert_eq!(safe_name(".hidden"), "_.hidden");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn submissions_are_directories_and_tarballs() {
        let d = std::env::temp_dir().join(format!("raftlab-class-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("bob")).unwrap();
        std::fs::write(d.join("alice.tar.gz"), b"").unwrap();
        std::fs::write(d.join("notes.txt"), b"").unwrap();
        let names: Vec<String> = submissions(&d)
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["alice", "bob"]);
        let _ = std::fs::remove_dir_all(&d);
    }
}
