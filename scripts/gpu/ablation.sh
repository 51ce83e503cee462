#!/usr/bin/env bash
# Issue 15, item 2: the RCL ablation on BCL in ONE device call (timeout_s 600). Prepare here first
# (bash scripts/gpu/prepare.sh), then one call that carries .export and .whl:
#     OUT=$OUT bash scripts/gpu/ablation.sh
# Phases, each timed into $OUT/phases.tsv (phase, seconds, exit status) and logged to $OUT/run.log:
#   setup    pydantic from .whl/ when the device lacks it; the GPU's name; the data file linked at
#            a fixed path (/tmp/rcl_gpu/data/...), so that records hash alike on every machine
#   smoke    scripts/gpu/smoke.py on the study, killed past SMOKE_S (60 s); a failure stops the
#            script at once (exit 3) before any training time is spent
#   measure  seconds per epoch of the plan on the study's real settings: a single trial and packs
#            of 2 and 8 (2 epochs each, the 2nd timed; a pack only while it could still fit)
#   choose   the largest plan that fits the time left (scripts/gpu/ablation.py choose):
#            (a) the 2^3 ablation of balance/scale/margin on BCL as one pack of 8; (b) BCL (`none`)
#            and BCL+RCL (`balance+scale+margin`) as a pack of 2; (c) BCL alone (run even when it
#            cannot finish: it resumes in a later call). PLAN=a|b|c forces one.
#   train    studies/gpu_ablation.yaml through the study engine, executor local (no Ray), the
#            plan's variants only (the others stay planned; a later call finishes them), records
#            in $WORK/study; stopped with SIGTERM when the budget runs out (checkpoints resume)
#   gap      the paired lossless-vs-JPEG measure (rcl_study.report.jpeg_gap) on each member's
#            latest checkpoint (1,000 lossless test images vs their JPEG-75 copies)
# Meanwhile `ablation.py sync --every SYNC_S` copies the run into $OUT as it goes (a killed run
# still returns its curves): $OUT/study.tar = records.jsonl, plan.json, trials/*/config.json and
# result.json, metrics/<trial_id>.jsonl (each member's evaluations so far, from its latest
# checkpoint: every 5 epochs), meta/ (phases.tsv, speed.json, choice.txt, gaps.json); the latest
# checkpoints as $OUT/ckpt.NN parts (15 MiB each; ckpt.json names them, with SHA-256). At most 8
# files come back: run.log, phases.tsv, study.tar, ckpt.json, ckpt.00-02 (8 members: ~3 parts).
# Back here: python scripts/gpu/ablation.py restore --fetched <files_at> --to runs/gpu_ablation
# then python -m rcl_study.run studies/gpu_ablation.yaml --report-only (docs/results.md).
# MEASURE_K="1 2 8": the pack sizes measured. RESUME=folder (a restored records folder carried under .export/, e.g. .export/resume) continues
# an earlier call's run from its checkpoints.
# Budget: LIMIT_S (570 s) for the whole script; training gets what is left less GAP_S (40 s) and
# SYNC_END_S (15 s). TINY=1: the CPU rehearsal (tiny batches and steps, 200 test images, the
# same code paths: engine, executor local, pack of 8, syncs, gap, no time limits unless set).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu_out}
PY=${PY:-python3}
WORK=${WORK:-/tmp/rcl_gpu}
if [ "${TINY:-0}" = 1 ]; then
  LIMIT_S=${LIMIT_S:-7200} SMOKE_S=${SMOKE_S:-3600}
fi
LIMIT_S=${LIMIT_S:-570}
SMOKE_S=${SMOKE_S:-60}
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

setup() {
  if ls .whl/*.whl > /dev/null 2>&1 && ! "$PY" -c "import pydantic" 2> /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || return 1
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  [ -f .export/cifar10_lt_ir100.npz.xz ] || { echo "no .export/cifar10_lt_ir100.npz.xz"; return 1; }
  ln -sf "$PWD/.export/cifar10_lt_ir100.npz.xz" "$DATA"
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
if [ "${TINY:-0}" = 1 ]; then
  sets+=(--set train.epochs=${TINY_EPOCHS:-2} --set train.max_steps_per_epoch=2
    --set train.batch_size=16 --set train.eval_every=1 --set train.checkpoint_every=1
    --set train.warmup_epochs=0 --set data.test_limit=200 --set train.threads=2
    --set train.device=cpu)
  smoke=(--cpu --set train.batch_size=16 --set train.threads=2)
  gap=(--limit 200)
fi

phase setup setup || { echo "setup failed (see $LOG)"; tail -n 5 "$LOG"; exit 2; }
# the sync runs in a session of its own (a TERM to this script's group does not stop it before
# the trainer has stopped); it stops on SIGUSR1 or when this script is gone, syncing once more
setsid "$PY" scripts/gpu/ablation.py sync --study-dir "$WORK/study" --out "$OUT" \
  --every "$SYNC_S" --parent $$ --meta "$WORK/meta/phases.tsv" --meta "$WORK/meta/speed.json" \
  --meta "$WORK/meta/choice.txt" --meta "$WORK/meta/gaps.json" --meta "$WORK/meta/smoke.log" \
  >> "$LOG" 2>&1 &
SYNC_PID=$!
stop_sync() {  # the last sync, after training and the gap: every file complete
  kill -USR1 "$SYNC_PID" 2> /dev/null
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
    --set "data.path=$DATA" "${smoke[@]}"; then
  echo "smoke check failed: no training started (see $LOG)"
  grep -h '"check"' "$LOG" | tail -n 5
  stop_sync
  exit 3
fi
grep -h '"check"' "$LOG" > "$WORK/meta/smoke.log"

m_left=$(($(left) - GAP_S - SYNC_END_S))
phase measure "$PY" scripts/gpu/ablation.py measure "$STUDY" "${sets[@]}" --k ${MEASURE_K:-1 2 8} \
  --left "$m_left" --out "$WORK/meta/speed.json"
t_left=$(($(left) - GAP_S - SYNC_END_S))
if [ -f "$WORK/meta/speed.json" ]; then
  choice=$("$PY" scripts/gpu/ablation.py choose --speed "$WORK/meta/speed.json" \
    --left "$t_left" ${PLAN:+--force "$PLAN"})
else
  choice="${PLAN:-c}	measure failed: the fallback"
fi
echo "$choice" | tee -a "$LOG" > "$WORK/meta/choice.txt"
plan=${choice%%	*}
echo "training budget: ${t_left} s, plan ${plan}" >> "$LOG"
if [ "$t_left" -lt 30 ]; then  # timeout 0 would mean no limit at all
  echo "no time left to train (${t_left} s)" | tee -a "$LOG"
  stop_sync
  exit 4
fi
phase train timeout -s TERM -k 20 "$t_left" "$PY" scripts/gpu/ablation.py run "$STUDY" \
  "${sets[@]}" --plan "$plan"
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
cat "$WORK/meta/choice.txt"
grep -h '^{"trial_id"' "$LOG" | tail -n 16
ls -l "$OUT"
# 0: the plan's trials all ok; 124: stopped by the budget (resume with RESUME=); else failed
exit $train_rc
