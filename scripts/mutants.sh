#!/usr/bin/env bash
# Adequacy of the graded suites, measured with cargo-mutants (a tool we did not write): every
# mutant it can make inside the SOLUTION regions of a crate (the code a student writes) is built
# and run against that crate's graded suite. A mutant the suite does not fail "survives".
#
#   scripts/mutants.sh raft [SHARD]      # raft/src's regions against `tests --test raft` and 4C
#   scripts/mutants.sh rsm [SHARD]      # rsm/src's regions against `--test rsm` and `--test kvraft`
#   scripts/mutants.sh kvraft [SHARD]
#
# SHARD is cargo-mutants' k/n (e.g. 1/4; k counts from 0, so a run in four is 0/4 to 3/4), to spread a run over machines or sessions. Results go
# to target/mutants-<crate>[-k-of-n]/mutants.out (caught.txt, missed.txt, timeout.txt, unviable.txt).
# The random tests run with RAFTLAB_SEED=1 (a mutant that only a later seed catches counts as
# missed); the search tests are seed-free. MUTANTS_LIST=1 only lists the mutants. Needs `cargo install cargo-mutants`.
set -euo pipefail
cd "$(dirname "$0")/.."
crate=${1:?usage: scripts/mutants.sh raft|rsm|kvraft [k/n]}
shard=${2:-}
# raft's regions include ReadIndex and lease reads, which part 4C grades: the raft suite plus
# kvraft's 4C tests (but its seed-free ReadIndex search, 17 s a run) are raft's test command.
case "$crate" in
  raft) suite=raft; test_args=(--test raft --test kvraft -- --skip _4a --skip _4b --skip search_read_index_4c) ;;
  # The rsm layer is graded by its own part 4R and by every service above it: the clerk's
  # retry loop and the membership entries' handling run only under kvraft (parts 4A-4D).
  rsm) suite="rsm and kvraft"; test_args=(--test rsm --test kvraft -- --skip search_read_index_4c) ;;
  kvraft) suite=kvraft; test_args=(--test kvraft) ;;
  *) echo "unknown crate $crate (raft, rsm, kvraft)" >&2; exit 2 ;;
esac
command -v cargo-mutants >/dev/null || { echo "cargo-mutants is not installed: cargo install cargo-mutants --locked" >&2; exit 2; }

# A diff that "adds" exactly the lines inside SOLUTION regions, less the planted bugs' hooks:
# cargo-mutants' --in-diff then mutates only those lines.
diff_file=target/mutants-solution-$crate.diff
mkdir -p target
: > "$diff_file"
for f in "$crate"/src/*.rs "$crate"/src/**/*.rs; do
  [ -f "$f" ] || continue
  grep -q "SOLUTION BEGIN" "$f" || continue
  python3 - "$f" >> "$diff_file" <<'PY'
import re
import sys
path = sys.argv[1]
lines = open(path).read().split("\n")
if lines and lines[-1] == "":
    lines.pop()
inside, hunks, cur, skip_depth = False, [], None, 0
for n, line in enumerate(lines, 1):
    if "SOLUTION BEGIN" in line:
        inside, cur = True, []
        continue
    if "SOLUTION END" in line:
        inside = False
        if cur:
            hunks.append(cur)
        continue
    if inside and skip_depth == 0 and "planted!(" in line:
        # A planted bug's hook: its mutants change code that runs only with that bug on (the
        # line itself, and the block of an `if planted!(Bug) {`, up to its `else`).
        # (`if planted!(Bug) && more {` too: the block still runs only with the bug on.)
        if re.search(r"if (labrpc::)?planted!\(\w+\)( &&[^{]*)? \{$", line.rstrip()):
            skip_depth = 1
        continue
    if skip_depth:
        if skip_depth == 1 and line.strip().startswith("}"):
            skip_depth = 0
            continue
        skip_depth += line.count("{") - line.count("}")
        continue
    if inside:
        cur.append((n, line))
print(f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}")
split = []
for h in hunks:
    run = [h[0]]
    for item in h[1:]:
        if item[0] != run[-1][0] + 1:
            split.append(run)
            run = []
        run.append(item)
    split.append(run)
removed = 0
for h in split:
    start = h[0][0]
    print(f"@@ -{start - 1 - removed},0 +{start},{len(h)} @@")
    for _, line in h:
        print("+" + line)
    removed += len(h)
PY
done

out=target/mutants-$crate${shard:+-${shard/\//-of-}}
# MUTANTS_RE=regex: only the mutants whose name matches (e.g. 'acknowledge|tick_check_quorum',
# to rerun the functions changed since a full run); results go to $out-re.
[ -n "${MUTANTS_RE:-}" ] && out=$out-re
args=(--package "$crate" --in-diff "$diff_file" --test-package tests --baseline skip
      --timeout 300 --build-timeout 900 --output "$out" --profile mutants)
[ -n "$shard" ] && args+=(--shard "$shard")
# MUTANTS_IN_PLACE=1: mutate this tree itself and build in its target directory (incremental
# builds, several times faster; run it in a worktree of its own, `git worktree add`).
if [ -n "${MUTANTS_IN_PLACE:-}" ]; then args+=(--in-place); else args+=(--jobs 1); fi
# MUTANTS_ITERATE=1: skip the mutants an earlier run in $out already caught.
[ -n "${MUTANTS_ITERATE:-}" ] && args+=(--iterate)
[ -n "${MUTANTS_RE:-}" ] && args+=(--re "$MUTANTS_RE")
# MUTANTS_LIST=1: only list the mutants.
[ -n "${MUTANTS_LIST:-}" ] && args+=(--list)
echo "mutating the SOLUTION regions of $crate/src against the $suite suite -> $out"
RAFTLAB_SEED=1 cargo mutants "${args[@]}" -- "${test_args[@]}"
