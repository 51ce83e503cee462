#!/usr/bin/env bash
# The whole-command ratios of trial start-up, planning, reports and the loss, in one sitting.
#
#     bash benchmarks/ratios.sh 2>&1 | tee /tmp/ratios.log
#
# About 6-9 minutes on a quiet 2-core CPU (at most ~15; a loaded machine stretches every figure,
# so run it when nothing else does and read the load printed beside each part):
#   1. Ray / local executor, the quickstart unpacked at --smoke's size, 5 pairs (about 2-3 min);
#   2. the --dry-run of a 10,000-point grid over a 100-point one, fresh processes, 3 rounds (~1 min);
#   3. --report-only at 2,002 and 20,002 synthetic records, 3 rounds, and the growth exponent
#      (about 3 min, building the records included);
#   4. the loss (forward + backward) against a naive BalSCL, 15 rounds at C = 10, 100, 1000 (~1 min).
# Each part runs its own script of benchmarks/ (their docstrings say what is timed); every run
# writes to fresh temporary folders, removed at the end. PAIRS, ROUNDS and LOSS_ROUNDS shorten it.
# A part that fails is named at the end (exit 1); the parts after it still run.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD" MPLBACKEND=Agg
failed=()
part() { printf '\n== %s  (%s UTC; load %s)\n' "$1" "$(date -u +%H:%M:%S)" "$(cut -d' ' -f1-3 /proc/loadavg)"; }

part "1. Ray / local executor, unpacked quickstart at --smoke's size"
python benchmarks/executor_speed.py --pairs "${PAIRS:-5}" || failed+=(1)
part "2. --dry-run, 10,000 over 100 grid points"
python benchmarks/planning_speed.py --points 100 10000 --repeats "${ROUNDS:-3}" || failed+=(2)
part "3. --report-only at 2,002 and 20,002 records"
python benchmarks/report_speed.py --sizes 2000 20000 --rounds "${ROUNDS:-3}" || failed+=(3)
part "4. the loss against a naive BalSCL"
python benchmarks/loss_speed.py --rounds "${LOSS_ROUNDS:-15}" || failed+=(4)
part "done"
if ((${#failed[@]})); then echo "failed parts: ${failed[*]}"; exit 1; fi
