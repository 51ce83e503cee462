#!/usr/bin/env bash
# The speed benchmark, as its own device call (moved out of run.sh, whose call is spent on the
# 200-epoch BCL run): seconds per epoch of our trainer vs a peer-style pipeline at full size,
# 1 vs 4 trials sharing the GPU. Carry .export and .whl; on the device:
#     OUT=$OUT bash scripts/gpu/speed.sh        ($OUT/speed.json, $OUT/speed.log)
# TINY=1: the CPU rehearsal on 512 synthetic images.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu_out}
PY=${PY:-python3}
mkdir -p "$OUT"
if ls .whl/*.whl > /dev/null 2>&1 && ! "$PY" -c "import pydantic" 2> /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 2
fi
export PYTHONPATH=$PWD:/tmp/site:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/speed.log" 2>&1 || true
if [ "${TINY:-0}" = 1 ]; then
  args=(--synthetic --images 512 --workers 2)
else
  args=(--data .export/cifar10_lt_ir100.npz.xz --concurrent 4)
fi
"$PY" benchmarks/epoch_speed.py "${args[@]}" --json "$OUT/speed.json" >> "$OUT/speed.log" 2>&1
rc=$?
tail -n 5 "$OUT/speed.log"
exit $rc
