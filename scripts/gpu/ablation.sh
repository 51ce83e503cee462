#!/usr/bin/env bash
# BCL and as much of the RCL ablation as the minutes allow, in ONE device call
# (timeout_s 600), nothing lost at the deadline. Prepare here first (bash scripts/gpu/prepare.sh),
# then one call that carries .export and .whl:
#     OUT=$OUT bash scripts/gpu/ablation.sh
# Phases, each under `timeout`, timed into $OUT/phases.tsv (phase, seconds, exit status) and
# logged to $OUT/run.log:
#   setup    pydantic from .whl/ when the device lacks it; the GPU's name; the data file COPIED to
#            a fixed path (/tmp/rcl_gpu/data/...), so that records hash alike on every machine
#            (SETUP_S, 90 s)
#   smoke    scripts/gpu/smoke.py on the study, killed past SMOKE_S (120 s): it gates only on the
#            device, bf16 and a resumed trial (exit 3 at once, nothing trained); the CUDA tests
#            and the augmentation check run and are logged, not gating
#   packs    benchmarks/pack_mechanism.py: one pack of 8 ResNet-32 members, epochs of 5 steps at
#            batch 256, looped against batched (grouped convolutions), killed past PACKS_S
#            (30 s); its JSON line goes to $WORK/meta/packs.json; not gating
#   train    studies/gpu_ablation.yaml through the study engine, executor local (no Ray), as ONE
#            pack of the 8 variants in priority order (none = BCL, balance+scale+margin =
#            BCL+RCL, the single components, the pairs); the pack times its second epoch and keeps
#            the members that fit the budget, the others recorded `stopped` there
#            (scripts/gpu/ablation.py run --budget-s); before an epoch that would not end in time
#            every member left is evaluated and recorded `stopped`; `timeout -s TERM` 20 s later
#            still records every member `stopped` with its last evaluation (records in
#            $WORK/study)
#   gap      the paired lossless-vs-JPEG measure (rcl_study.report.jpeg_gap) on each member's
#            latest checkpoint (1,000 lossless test images vs their JPEG-75 copies)
# Meanwhile `ablation.py sync --every SYNC_S` copies the run into $OUT as it goes (a killed run
# still returns its curves): $OUT/study.tar = records.jsonl, plan.json, trials/*/config.json and
# result.json, metrics/<trial_id>.jsonl (each member's evaluations so far, from its latest
# checkpoint), meta/ (phases.tsv, gaps.json, smoke.log); the latest checkpoints as $OUT/ckpt.NN
# parts (15 MiB each; ckpt.json names them, with SHA-256). At most 8 files come back: run.log,
# phases.tsv, study.tar, ckpt.json, ckpt.00-03. The last sync waits at most SYNC_END_S.
# Back here: python scripts/gpu/ablation.py restore --fetched <files_at> --to runs/gpu_ablation
# then python -m rcl_study.run studies/gpu_ablation.yaml --report-only (docs/results.md).
# RESUME=folder (a restored records folder carried under .export/, e.g. .export/resume)
# continues an earlier call's run: its stopped trials train again, the data copied to the path
# that run's plan names (records hash data.path), whatever WORK is now.
# Budget: LIMIT_S (570 s) for the whole script; training gets what is left less GAP_S (40 s) and
# SYNC_END_S (15 s), and its pack a budget TRAIN_MARGIN_S (25 s) shorter than its timeout. OUT
# defaults to /tmp/rcl_gpu_out, outside the repository (a rehearsal's files must not travel
# with the tree). TINY=1: the CPU rehearsal (tiny batches and steps, 200 test images, the same
# code paths: engine, executor local, pack of 8, syncs, gap, no time limits unless set).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/rcl_gpu_out}
PY=${PY:-python3}
WORK=${WORK:-/tmp/rcl_gpu}
if [ "${TINY:-0}" = 1 ]; then
  LIMIT_S=${LIMIT_S:-7200} SMOKE_S=${SMOKE_S:-3600}
fi
LIMIT_S=${LIMIT_S:-570}
SETUP_S=${SETUP_S:-90}
SMOKE_S=${SMOKE_S:-120}
PACKS_S=${PACKS_S:-30}
TRAIN_MARGIN_S=${TRAIN_MARGIN_S:-25}
GAP_S=${GAP_S:-40}
SYNC_S=${SYNC_S:-10}
SYNC_END_S=${SYNC_END_S:-15}
T0=$(date +%s)
STUDY=studies/gpu_ablation.yaml
DATA=$WORK/data/cifar10_lt_ir100.npz.xz
mkdir -p "$OUT" "$WORK/data" "$WORK/meta"
LOG="$OUT/run.log"
PHASES="$OUT/phases.tsv"
: > "$PHASES"
echo "start $(date -u +%FT%TZ) LIMIT_S=$LIMIT_S TINY=${TINY:-0}" > "$LOG"

phase() {  # phase NAME COMMAND...: run, log, time it; returns the command's status
  local name=$1 t0 t1 rc
  shift
  t0=$(date +%s%N)
  echo "== $name: $*" >> "$LOG"
  "$@" >> "$LOG" 2>&1 &  # in the background: a TERM to this script is handled at once
  CHILD=$!
  wait "$CHILD"
  rc=$?
  CHILD=
  t1=$(date +%s%N)
  printf '%s\t%d.%02d\t%d\n' "$name" $(((t1 - t0) / 1000000000)) \
    $(((t1 - t0) / 10000000 % 100)) "$rc" >> "$PHASES"
  cp "$PHASES" "$WORK/meta/phases.tsv"
  echo "== $name: exit $rc" >> "$LOG"
  return $rc
}
left() { echo $((LIMIT_S - ($(date +%s) - T0))); }

resume_data_path() {  # FOLDER DEFAULT: the data path FOLDER's plan ran on, if a plain absolute
  # path to a file of DEFAULT's name in a folder named data (as this script makes), else DEFAULT
  "$PY" -c 'import json, os, sys
default = sys.argv[2]
try:
    p = json.load(open(sys.argv[1]))["meta"]["config"]["data"]["path"]
except Exception:
    p = None
ok = (
    isinstance(p, str)
    and p.isprintable()
    and os.path.isabs(p)
    and os.path.normpath(p) == p
    and not p.startswith("//")
    and os.path.basename(p) == os.path.basename(default)
    and os.path.basename(os.path.dirname(p)) == "data"
)
print(p if ok else default)' "$1/plan.json" "$2" 2> /dev/null || echo "$2"
}
# A resumed run must see the data at the path its records hashed (else "the study changed"):
# the stopped run's, whatever WORK it had (json only: pydantic may not be installed yet)
if [ -n "${RESUME:-}" ]; then
  DATA=$(resume_data_path "$RESUME" "$DATA")
  mkdir -p "$(dirname "$DATA")"
  echo "resume: $RESUME, data at $DATA (the path its records hashed)" >> "$LOG"
fi

setup() {
  if ls .whl/*.whl > /dev/null 2>&1 && ! "$PY" -c "import pydantic" 2> /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || return 1
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  [ -f .export/cifar10_lt_ir100.npz.xz ] || { echo "no .export/cifar10_lt_ir100.npz.xz"; return 1; }
  cp -f .export/cifar10_lt_ir100.npz.xz "$DATA" || return 1  # a copy: no link to resolve
  if [ -n "${RESUME:-}" ] && [ ! -e "$WORK/study/records.jsonl" ] && [ ! -d "$WORK/study/trials" ]; then
    mkdir -p "$WORK/study" && cp -a "$RESUME"/. "$WORK/study"/ || return 1
    rm -rf "$WORK/study/driver.lock" "$WORK/study/meta" "$WORK/study/metrics"  # restore's extras
  fi
  "$PY" -c "import torch, pydantic, accelerate; print('torch', torch.__version__, \
'cuda', torch.cuda.is_available())"
}

export PYTHONPATH=$PWD:/tmp/site:${PYTHONPATH:-} PYTHONUNBUFFERED=1
sets=(--set "data.path=$DATA" --set "study.output_dir=$WORK/study"
  --set "report.dir=$WORK/report")
smoke=()
gap=()
packs=(--arch resnet32 --k 8 --rounds 1 --steps 5 --batch 256)
if [ "${TINY:-0}" = 1 ]; then
  sets+=(--set train.epochs=${TINY_EPOCHS:-2} --set train.max_steps_per_epoch=2
    --set train.batch_size=16 --set train.eval_every=1 --set train.checkpoint_every=1
    --set train.warmup_epochs=0 --set data.test_limit=200 --set train.threads=2
    --set train.device=cpu)
  smoke=(--cpu --set train.batch_size=16 --set train.threads=2)
  gap=(--limit 200)
  packs=(--tiny --arch resnet32)
fi

export OUT PY WORK DATA RESUME=${RESUME:-}
phase setup timeout -k 5 "$SETUP_S" bash -c "$(declare -f setup); setup" || {
  echo "setup failed (see $LOG)"; tail -n 5 "$LOG"; exit 2; }
# the sync runs in a session of its own (a TERM to this script's group does not stop it before
# the trainer has stopped); it stops on SIGUSR1 or when this script is gone, syncing once more
setsid "$PY" scripts/gpu/ablation.py sync --study-dir "$WORK/study" --out "$OUT" \
  --every "$SYNC_S" --parent $$ --meta "$WORK/meta/phases.tsv" \
  --meta "$WORK/meta/gaps.json" --meta "$WORK/meta/smoke.log" --meta "$WORK/meta/packs.json" \
  >> "$LOG" 2>&1 &
SYNC_PID=$!
stop_sync() {  # the last sync, after training and the gap: every file complete, SYNC_END_S at most
  local i
  kill -USR1 "$SYNC_PID" 2> /dev/null
  for ((i = 0; i < SYNC_END_S * 5; i++)); do
    kill -0 "$SYNC_PID" 2> /dev/null || break
    sleep 0.2
  done
  kill -KILL "$SYNC_PID" 2> /dev/null
  wait "$SYNC_PID" 2> /dev/null
}
on_term() {  # stopped from outside: stop the phase running (its checkpoint stays), sync, leave
  echo "== stopped by a signal during ${CHILD:+a phase (pid $CHILD)}" >> "$LOG"
  if [ -n "$CHILD" ]; then
    kill -TERM "$CHILD" 2> /dev/null
    wait "$CHILD" 2> /dev/null
  fi
  stop_sync
  exit 143
}
CHILD=
trap on_term TERM INT

if ! phase smoke timeout -k 5 "$SMOKE_S" "$PY" scripts/gpu/smoke.py "$STUDY" \
    --set "data.path=$DATA" --budget-s $((SMOKE_S - 10)) "${smoke[@]}"; then
  echo "smoke check failed: no training started (see $LOG)"
  grep -h '"check"' "$LOG" | tail -n 5
  stop_sync
  exit 3
fi
grep -h '"check"' "$LOG" > "$WORK/meta/smoke.log"
phase packs timeout -k 5 "$PACKS_S" "$PY" benchmarks/pack_mechanism.py "${packs[@]}"
grep -h '"batched_over_loop"' "$LOG" > "$WORK/meta/packs.json"

t_left=$(($(left) - GAP_S - SYNC_END_S))
echo "training: ${t_left} s, the pack's budget $((t_left - TRAIN_MARGIN_S)) s" >> "$LOG"
if [ "$((t_left - TRAIN_MARGIN_S))" -lt 30 ]; then  # timeout 0 would mean no limit at all
  echo "no time left to train (${t_left} s)" | tee -a "$LOG"
  stop_sync
  exit 4
fi
phase train timeout -s TERM -k 20 "$t_left" "$PY" scripts/gpu/ablation.py run "$STUDY" \
  "${sets[@]}" --budget-s $((t_left - TRAIN_MARGIN_S))
train_rc=$?

if [ -d "$WORK/study/trials" ]; then
  g_left=$(($(left) - SYNC_END_S))
  [ "$g_left" -gt 5 ] && phase gap timeout -k 5 "$g_left" "$PY" scripts/gpu/ablation.py gap \
    "$STUDY" "${sets[@]}" --study-dir "$WORK/study" --out "$WORK/meta/gaps.json" "${gap[@]}"
fi
echo "total: $(($(date +%s) - T0)) s" >> "$LOG"
stop_sync
trap - TERM INT
cat "$PHASES"
grep -h '^\[pack\] budget' "$LOG" | tail -n 2
grep -h '^{"trial_id"' "$LOG" | tail -n 16
ls -l "$OUT"
# 0: every trial ok; 124: some stopped (budget or TERM; resume with RESUME=); else failed
exit $train_rc
