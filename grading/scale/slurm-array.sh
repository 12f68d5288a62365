#!/usr/bin/env bash
# Grade one submission in 16 shares as a Slurm job array, then merge:
#   sbatch grading/scale/slurm-array.sh /path/to/submission
#   # when the array is done:
#   target/release/raftlab grade merge reports/share-*.json -o total.json
#SBATCH --job-name=raftlab-grade
#SBATCH --array=1-16
#SBATCH --cpus-per-task=2
#SBATCH --mem=6G
#SBATCH --time=01:00:00
set -u
SUBMISSION=${1:?the student tree to grade}
mkdir -p reports
# The same seed in every share; exit 1 means some runs failed, which the report records.
target/release/raftlab grade --path "$SUBMISSION" --runs 100 --seed 20261201 \
  --partition "${SLURM_ARRAY_TASK_ID}/16" --json "reports/share-${SLURM_ARRAY_TASK_ID}.json" \
  --work "${TMPDIR:-/tmp}/raftlab-stage-${SLURM_ARRAY_TASK_ID}"
test $? -le 1
