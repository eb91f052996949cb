#!/usr/bin/env bash
# GPU check, one prepared script (about 8 minutes on one H100) for a GPU machine, with or without internet:
#   1. the notebook cells flagged `#| gpu` (nbdev-test --flags gpu), on the notebooks that have them;
#   2. bench/fusion.py and bench/train_speed.py (reference DataLoader pipeline vs h2t_nb's, AMP, channels_last, compile);
#   3. a full-length two-stage run of the CIFAR-100-LT IF=100 DR+H2T recipe (200 + 10 epochs) on synthetic
#      CIFAR-shaped data with the real class counts, timed.
# Needs h2t_nb and its dev extra importable (pip install -e ".[dev]"). Without internet, put the wheels in ./.whl
# (see README, "Performance"); they are installed into a temporary folder first. Everything is written under $OUT
# (default ./gpu_check_out). EPOCHS1 / EPOCHS2 shorten the full run for a dry run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-./gpu_check_out}; EPOCHS1=${EPOCHS1:-200}; EPOCHS2=${EPOCHS2:-10}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=10
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/h2t_site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/h2t_site:${PYTHONPATH:-} PATH=/tmp/h2t_site/bin:$PATH
fi
status=0
step() {  # step NAME COMMAND...: run, time, keep the whole log under $OUT, show its end
  local name=$1; shift
  echo "== $name: $*"
  local t0=$SECONDS
  "$@" > "$OUT/$name.log" 2>&1; local rc=$?
  echo "   exit $rc after $((SECONDS - t0)) s" | tee -a "$OUT/$name.log"
  grep -v 'it/s\]$' "$OUT/$name.log" | tail -n 20
  [ $rc -eq 0 ] || status=1
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; print('torch', torch.__version__)"; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
gpu_notebooks=$(grep -l '"#| gpu\\n"' nbs/*.ipynb | xargs -n1 basename | sed 's/\.ipynb$//' | paste -sd'|')
step gpu_cells nbdev-test --flags gpu --file-re "^($gpu_notebooks)\.ipynb$"
step bench_fusion python3 bench/fusion.py --quick
step bench_train_speed python3 bench/train_speed.py
# RUNS: where the run's checkpoints go (default under $OUT); FULL_RUN_LIMIT caps its seconds so the script always ends;
# FULL_RUN_FLAGS: extra speed switches, e.g. "--compile --compile-mode reduce-overhead" (amp and channels-last are auto by default)
step full_run timeout "${FULL_RUN_LIMIT:-480}" h2t-train --preset cifar100_lt_if100_dr_h2t --synthetic --epochs1 "$EPOCHS1" \
     --epochs2 "$EPOCHS2" ${FULL_RUN_FLAGS:-} --out "${RUNS:-$OUT/runs}"
exit $status
