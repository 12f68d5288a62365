//! Only the student's code comes from the student.
//!
//! `grading/student-files.txt` (the manifest) lists the files a student owns: every source file of
//! a lab crate with a `SOLUTION` region. `raftlab manifest` writes it from the markers and
//! `raftlab manifest --check` (run by the tests) fails when it is stale.
//!
//! To grade a student's tree, the grader makes a copy of its own workspace (tests, harness,
//! labrpc, lincheck, Cargo.lock, toolchain file, points) in a staging directory and puts in it only
//! the student's copies of the manifest's files. Any other file the student changed or added is
//! listed as ignored and has no effect. Files are written only when their bytes change, so grading
//! one student after another rebuilds only what differs.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::handout;

/// The manifest, relative to a workspace root.
pub const MANIFEST: &str = "grading/student-files.txt";

/// The crates students write code in, in dependency order.
pub const STUDENT_CRATES: [&str; 4] = ["raft", "rsm", "kvraft", "shardkv"];

/// The student crates each lab's tests need.
pub fn crates_of_lab(lab: &str) -> &'static [&'static str] {
    match lab {
        "raft" => &["raft"],
        "rsm" => &["raft", "rsm"],
        "kvraft" => &["raft", "rsm", "kvraft"],
        _ => &["raft", "rsm", "shardkv"],
    }
}

/// Files the handout writes that are not the student's work and not the grader's either.
const HANDOUT_ONLY: [&str; 1] = ["README_STUDENT.md"];

/// The files of `root` a student owns: sources of the student crates with a solution region.
pub fn student_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for rel in workspace_files(root, None)? {
        let in_lab = crate_of(&rel).is_some_and(|c| STUDENT_CRATES.contains(&c));
        if !in_lab || rel.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(root.join(&rel))
            .with_context(|| format!("cannot read {}", rel.display()))?;
        if handout::has_markers(&text) {
            out.push(rel);
        }
    }
    Ok(out)
}

/// The manifest's text for `files`.
pub fn manifest_text(files: &[PathBuf]) -> String {
    let mut s = String::from(
        "# The files a student owns: `raftlab grade --path` takes these, and only these, from a\n\
         # student's tree. Written by `raftlab manifest` from the SOLUTION regions; do not edit.\n",
    );
    for f in files {
        s.push_str(&f.to_string_lossy());
        s.push('\n');
    }
    s
}

/// Reads a workspace's manifest.
pub fn read_manifest(root: &Path) -> Result<Vec<PathBuf>> {
    let path = root.join(MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (write it with `raftlab manifest`)",
            path.display()
        )
    })?;
    let mut files = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let rel = PathBuf::from(line);
        let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain || crate_of(&rel).is_none_or(|c| !STUDENT_CRATES.contains(&c)) {
            bail!(
                "{}:{}: {line:?} is not a file of a student crate",
                path.display(),
                n + 1
            );
        }
        files.push(rel);
    }
    Ok(files)
}

#[derive(Debug, clap::Args)]
pub struct ManifestArgs {
    /// Do not write: fail when the manifest differs from the SOLUTION regions.
    #[arg(long)]
    check: bool,
    /// The workspace [default: the current one].
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
}

/// `raftlab manifest [--check]`.
pub fn manifest_cmd(args: ManifestArgs) -> Result<ExitCode> {
    let root = crate::workspace::resolve(args.path.as_deref())?;
    let text = manifest_text(&student_files(&root)?);
    let path = root.join(MANIFEST);
    if args.check {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != text {
            eprintln!(
                "{} is stale: run `raftlab manifest` (expected:\n{text})",
                path.display()
            );
            return Ok(ExitCode::from(1));
        }
        println!("{} is up to date", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    print!("wrote {}:\n{text}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// A student's tree, staged for grading.
#[derive(Debug)]
pub struct Staged {
    /// The staging workspace.
    pub root: PathBuf,
    /// Student files taken from the student's tree.
    pub taken: Vec<PathBuf>,
    /// Student files the tree does not have (their handout stubs are used).
    pub missing: Vec<PathBuf>,
    /// Files the student changed or added that are not theirs to change: not used.
    pub ignored: Vec<PathBuf>,
    manifest: Vec<PathBuf>,
    /// New modules the student added to a student crate (`<crate>/src/**.rs`, no file of the
    /// grader's): theirs too, reachable only through a `mod` in their own files.
    extra: Vec<PathBuf>,
    official: PathBuf,
    student: PathBuf,
}

/// Makes `dest` a copy of the `official` workspace with the student's files from `student`.
pub fn stage(official: &Path, student: &Path, dest: &Path) -> Result<Staged> {
    let manifest = read_manifest(official)?;
    let official_files = workspace_files(official, Some(dest))?;
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    // The grader's own files, byte for byte (also undoing anything a previous run changed).
    let mut keep: BTreeSet<PathBuf> = BTreeSet::new();
    for rel in &official_files {
        sync_file(&dest.join(rel), &read(&official.join(rel))?)?;
        keep.insert(rel.clone());
    }
    for rel in workspace_files(dest, None)? {
        if !keep.contains(&rel) {
            let _ = std::fs::remove_file(dest.join(&rel));
        }
    }
    let owned: BTreeSet<&PathBuf> = manifest.iter().collect();
    let mut ignored = Vec::new();
    let mut extra = Vec::new();
    for rel in workspace_files(student, None)? {
        if owned.contains(&rel) || HANDOUT_ONLY.iter().any(|h| rel == Path::new(h)) {
            continue;
        }
        if is_new_student_module(&rel, &keep) {
            extra.push(rel);
            continue;
        }
        let theirs = read(&student.join(&rel))?;
        let same = std::fs::read(official.join(&rel)).is_ok_and(|ours| ours == theirs);
        if !same {
            ignored.push(rel);
        }
    }
    let mut staged = Staged {
        root: dest.to_path_buf(),
        taken: Vec::new(),
        missing: Vec::new(),
        ignored,
        manifest,
        extra,
        official: official.to_path_buf(),
        student: student.to_path_buf(),
    };
    let all: BTreeSet<&str> = STUDENT_CRATES.iter().copied().collect();
    staged.use_student_crates(&all)?;
    Ok(staged)
}

impl Staged {
    /// Puts the student's files of `crates` in the staging tree, and the handout stubs of the
    /// others' (used when a student crate does not compile, so the labs that do not need it can
    /// still be graded).
    pub fn use_student_crates(&mut self, crates: &BTreeSet<&str>) -> Result<()> {
        self.taken.clear();
        self.missing.clear();
        for rel in &self.manifest {
            let from_student = crate_of(rel).is_some_and(|c| crates.contains(c));
            let theirs = self.student.join(rel);
            let bytes = if from_student && theirs.is_file() {
                self.taken.push(rel.clone());
                read(&theirs)?
            } else {
                if from_student {
                    self.missing.push(rel.clone());
                }
                let text = std::fs::read_to_string(self.official.join(rel))
                    .with_context(|| format!("cannot read the grader's {}", rel.display()))?;
                let (stub, _) = handout::transform(&text, true)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", rel.display()))?;
                stub.into_bytes()
            };
            sync_file(&self.root.join(rel), &bytes)?;
        }
        for rel in &self.extra {
            let path = self.root.join(rel);
            if crate_of(rel).is_some_and(|c| crates.contains(c)) {
                sync_file(&path, &read(&self.student.join(rel))?)?;
                self.taken.push(rel.clone());
            } else {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(())
    }
}

/// A new `.rs` file under a student crate's `src/` that the grader's tree does not have.
fn is_new_student_module(rel: &Path, official: &BTreeSet<PathBuf>) -> bool {
    let mut parts = rel.components();
    let in_src = matches!(
        (parts.next(), parts.next()),
        (Some(Component::Normal(c)), Some(Component::Normal(s)))
            if STUDENT_CRATES.iter().any(|k| c == *k) && s == "src"
    );
    in_src && rel.extension().is_some_and(|e| e == "rs") && !official.contains(rel)
}

/// The student crate a workspace path belongs to (its first component).
pub fn crate_of(rel: &Path) -> Option<&str> {
    match rel.components().next()? {
        Component::Normal(c) => c.to_str(),
        _ => None,
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Writes `bytes` to `path` unless it already holds exactly them (keeps mtimes for cargo).
fn sync_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    // A symlink or read-only file left by a run must not redirect the write.
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Regular files under `root`, relative, sorted: no `.git`, no `target*` directories, no
/// traces, nothing under `skip`. Symbolic links are not followed (a student's link to
/// `/etc/passwd` is not a file of theirs).
pub fn workspace_files(root: &Path, skip: Option<&Path>) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if skip.is_some_and(|s| dir == s) {
            continue;
        }
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ty = entry.file_type()?;
            let path = entry.path();
            if ty.is_dir() {
                if name == ".git" || name.starts_with("target") {
                    continue;
                }
                stack.push(path);
            } else if ty.is_file() && !name.ends_with(".trace.jsonl") {
                files.push(path.strip_prefix(root)?.to_path_buf());
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("raftlab-stage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    const SOLVED: &str = "fn f() {\n    // SOLUTION BEGIN: do it\n    1;\n    // SOLUTION END\n}\n";

    #[test]
    fn only_the_students_files_are_taken_and_the_rest_is_reported() {
        let official = tmp("official");
        write(&official, "raft/src/core.rs", SOLVED);
        write(&official, "raft/src/lib.rs", "mod core;\n");
        write(&official, "kvraft/src/server.rs", SOLVED);
        write(&official, "tests/tests/raft.rs", "real tests\n");
        write(&official, "grading/points.txt", "raft 3A 10\n");
        write(
            &official,
            MANIFEST,
            &manifest_text(&student_files(&official).unwrap()),
        );
        assert_eq!(
            read_manifest(&official).unwrap(),
            vec![
                PathBuf::from("kvraft/src/server.rs"),
                PathBuf::from("raft/src/core.rs")
            ]
        );
        let student = tmp("student");
        write(&student, "raft/src/core.rs", "fn f() { 2; }\n");
        write(&student, "raft/src/lib.rs", "mod core;\n");
        write(&student, "tests/tests/raft.rs", "fake tests\n");
        write(&student, "grading/points.txt", "raft 3A 1000\n");
        write(&student, "labrpc/src/extra.rs", "reliable\n");
        write(&student, "README_STUDENT.md", "handout\n");
        write(&student, "raft/src/helpers.rs", "fn h() {}\n");
        write(&student, "raft/build.rs", "fn main() {}\n");
        let dest = official.join("target/grade/tree");
        let staged = stage(&official, &student, &dest).unwrap();
        let text = |rel: &str| std::fs::read_to_string(dest.join(rel)).unwrap();
        assert_eq!(text("raft/src/core.rs"), "fn f() { 2; }\n");
        assert_eq!(text("tests/tests/raft.rs"), "real tests\n");
        assert_eq!(text("grading/points.txt"), "raft 3A 10\n");
        assert!(!dest.join("labrpc/src/extra.rs").exists());
        // A module of their own is theirs; a build script is not.
        assert_eq!(text("raft/src/helpers.rs"), "fn h() {}\n");
        assert!(!dest.join("raft/build.rs").exists());
        // The student has no kvraft/src/server.rs: the stub stands in.
        assert!(text("kvraft/src/server.rs").contains("todo!(\"do it\")"));
        assert_eq!(staged.missing, vec![PathBuf::from("kvraft/src/server.rs")]);
        assert_eq!(
            staged.ignored,
            vec![
                PathBuf::from("grading/points.txt"),
                PathBuf::from("labrpc/src/extra.rs"),
                PathBuf::from("raft/build.rs"),
                PathBuf::from("tests/tests/raft.rs"),
            ]
        );
        // A file a run changed in the staging tree is put back on the next staging.
        write(&dest, "tests/tests/raft.rs", "tampered\n");
        stage(&official, &student, &dest).unwrap();
        assert_eq!(text("tests/tests/raft.rs"), "real tests\n");
        let _ = std::fs::remove_dir_all(&official);
        let _ = std::fs::remove_dir_all(&student);
    }

    #[test]
    fn a_manifest_entry_outside_the_student_crates_is_refused() {
        let root = tmp("bad-manifest");
        write(&root, MANIFEST, "tests/tests/raft.rs\n");
        assert!(read_manifest(&root).is_err());
        write(&root, MANIFEST, "raft/../tests/tests/raft.rs\n");
        assert!(read_manifest(&root).is_err());
        let _ = std::fs::remove_dir_all(&root);
    }
}
