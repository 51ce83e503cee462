#!/usr/bin/env bash
# One GPU run that cannot be lost. Prepare here first
# (bash scripts/gpu/prepare.sh), then one device call that carries .export and .whl:
#     OUT=$OUT bash scripts/gpu/run.sh          (timeout_s 600; LIMIT_S below keeps it inside)
# Phases, each timed into $OUT/phases.tsv (phase, seconds, exit status):
#   setup  pydantic from .whl/ when the device lacks it; the GPU's name into $OUT/run.log
#          (under SETUP_S, 90 s; every phase runs under a `timeout`)
#   smoke  scripts/gpu/smoke.py, killed past SMOKE_S (120 s): it gates only on the device, bf16
#          and a resumed 2-epoch trial (a failure stops the script at once, exit 3, before any
#          training time is spent); device augmentation and the CUDA tests of tests/ run and are
#          logged, not gating
#   train  BCL alone, studies/reproduce_bcl.yaml (200 epochs, seed 0), with the checkpoint written
#          every epoch to $OUT/bcl/checkpoint.pt (resumable) and every evaluation (every 5 epochs)
#          appended to $OUT/bcl/metrics.jsonl as it happens; stopped with SIGTERM when the budget
#          runs out (status "stopped" in $OUT/bcl.json), so a killed run still returns its curve
#   gap    scripts/jpeg_gap.py on that checkpoint: the 1,000 lossless test images vs their JPEG-75
#          copies, paired, into $OUT/jpeg_gap.json
# Budget: LIMIT_S (default 570 s) for the whole script; training gets what setup and smoke leave,
# less GAP_S (default 45 s) kept for the gap. RESUME=path/to/checkpoint.pt (carried into the tree,
# e.g. under .export/) continues an earlier run; RESUME_METRICS=its metrics.jsonl keeps its curve.
# Files back from $OUT (at most 8 come back): run.log, phases.tsv, bcl.json, jpeg_gap.json,
# bcl/checkpoint.pt, bcl/metrics.jsonl. The speed benchmark is a separate run: scripts/gpu/speed.sh.
# TINY=1: the CPU rehearsal (smoke --cpu, batch 64, 2 epochs of 2 steps, 200 test images, gap on
# 200 images, no time limits). OUT defaults to /tmp/rcl_gpu_out, outside the repository.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/rcl_gpu_out}
PY=${PY:-python3}
if [ "${TINY:-0}" = 1 ]; then  # the CPU rehearsal: the same phases, small, and no time limits
  LIMIT_S=${LIMIT_S:-7200} SMOKE_S=${SMOKE_S:-3600} GAP_S=${GAP_S:-3600}
fi
LIMIT_S=${LIMIT_S:-570}
SETUP_S=${SETUP_S:-90}
SMOKE_S=${SMOKE_S:-120}
GAP_S=${GAP_S:-45}
T0=$(date +%s)
mkdir -p "$OUT/bcl"
LOG="$OUT/run.log"
: > "$OUT/phases.tsv"

phase() {  # phase NAME COMMAND...: run, log, time it; returns the command's status
  local name=$1 t0 t1 rc
  shift
  t0=$(date +%s%N)
  echo "== $name: $*" >> "$LOG"
  "$@" >> "$LOG" 2>&1
  rc=$?
  t1=$(date +%s%N)
  printf '%s\t%d.%02d\t%d\n' "$name" $(((t1 - t0) / 1000000000)) \
    $(((t1 - t0) / 10000000 % 100)) "$rc" >> "$OUT/phases.tsv"
  echo "== $name: exit $rc" >> "$LOG"
  return $rc
}

setup() {
  if ls .whl/*.whl > /dev/null 2>&1 && ! "$PY" -c "import pydantic" 2> /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || return 1
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PY" -c "import torch, pydantic, accelerate; print('torch', torch.__version__)"
}

export PYTHONPATH=$PWD:/tmp/site:${PYTHONPATH:-} PYTHONUNBUFFERED=1
study=studies/reproduce_bcl.yaml
run=(--set train.checkpoint_every=1 --set train.eval_every=5 --set train.progress=false)
smoke=()
gap=()
if [ "${TINY:-0}" = 1 ]; then
  tiny=(--set train.batch_size=64 --set train.threads=2)
  run+=(--set train.epochs=2 --set train.max_steps_per_epoch=2 --set train.eval_every=1
    --set data.test_limit=200 "${tiny[@]}")
  smoke=(--cpu "${tiny[@]}")
  gap=(--limit 200)
fi

export PY
phase setup timeout -k 5 "$SETUP_S" bash -c "$(declare -f setup); setup" || {
  echo "setup failed (see $LOG)"; exit 2; }
if ! phase smoke timeout -k 5 "$SMOKE_S" "$PY" scripts/gpu/smoke.py "$study" \
    --budget-s $((SMOKE_S - 10)) "${smoke[@]}"; then
  echo "smoke check failed: no training started (see $LOG)"
  tail -n 5 "$LOG"
  exit 3
fi

if [ -n "${RESUME:-}" ]; then
  cp "$RESUME" "$OUT/bcl/checkpoint.pt" || exit 2
  [ -n "${RESUME_METRICS:-}" ] && cp "$RESUME_METRICS" "$OUT/bcl/metrics.jsonl"
fi
left=$((LIMIT_S - ($(date +%s) - T0) - GAP_S))
echo "training budget: ${left} s" >> "$LOG"
if [ "$left" -lt 30 ]; then  # timeout 0 would mean no limit at all
  echo "no time left to train (${left} s)"
  exit 4
fi
phase train timeout -s TERM -k 20 "$left" "$PY" scripts/gpu/train_logged.py "$study" "${run[@]}" \
  --workdir "$OUT/bcl" --metrics "$OUT/bcl/metrics.jsonl" --out "$OUT/bcl.json"
train_rc=$?

if [ -f "$OUT/bcl/checkpoint.pt" ]; then
  phase gap timeout -k 5 "$GAP_S" "$PY" scripts/jpeg_gap.py "$study" \
    --checkpoint "$OUT/bcl/checkpoint.pt" --out "$OUT/jpeg_gap.json" "${gap[@]}"
fi
echo "total: $(($(date +%s) - T0)) s" >> "$LOG"
cat "$OUT/phases.tsv"
grep -h '^{"status"' "$LOG" | tail -n 1
[ -f "$OUT/jpeg_gap.json" ] && "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); \
print({k: d[k] for k in ('epoch','acc_lossless','acc_jpeg','gap','gap_ci','mcnemar_exact_p')})" \
  "$OUT/jpeg_gap.json"
# 0: trained to the end; 124: stopped by the budget (resume with RESUME=); else the train status
exit $train_rc
