#!/usr/bin/env bash
# Prepare, on the CPU machine, what one device call needs (both folders are git-ignored):
#   .export/cifar10_lt_ir100.npz.xz  the exact CIFAR-10-LT IR 100 split and the test set (~49 MiB, xz)
#   .whl/                          pydantic for the device's Python 3.12 (it lacks it)
# Usage: bash scripts/gpu/prepare.sh [CIFAR_ROOT]   (default ../shared/data/cifar10)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${1:-../shared/data/cifar10}
mkdir -p .export .whl
rm -f .whl/typing_extensions-*.whl  # an earlier prepare's: it would shadow the device's copy
{ git check-ignore -q .whl && git check-ignore -q .export; } || { echo "prepare.sh: .whl/ and .export/ must be git-ignored" >&2; exit 2; }
[ -f .export/cifar10_lt_ir100.npz.xz ] || python -m rcl_study.data export --dataset cifar10_lt \
    --imbalance-ratio 100 --root "$root" --out .export/cifar10_lt_ir100.npz.xz
# no typing-extensions: the device's own copy (torch's, accelerate's) must not be shadowed
for pkg in pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 \
           typing-inspection==0.4.2; do
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$pkg"
done
du -ch .export/* .whl/* | tail -1
