"""GPU smoke check (well under two minutes): every GPU-only path, before a run is spent.

    python scripts/gpu/smoke.py STUDY.yaml [--set k=v ...] [--cpu] [--budget-s S]

Gating checks, in order, stopping at the first failure (exit 1, its reason on stderr): only what
a run cannot do without:

1. ``device``: CUDA is visible and supports bf16 (``--cpu``: the CPU rehearsal, no GPU asked for);
2. ``bf16_channels_last``: ResNet-32 with BCL's heads in channels-last memory, forward and backward
   under bf16 autocast: bf16 logits, finite gradients, logits close to float32's;
3. ``train_resume``: the study itself for one epoch of 3 steps, then resumed from its checkpoint
   for a second (the trainer's bf16 + channels-last + device-augmentation path, on the device the
   run will use): status ok, evaluations at epochs 1 and 2, finite losses.

Then, run and logged but not gating (a failure is reported and the run goes on):

4. ``augment``: every ``data.augment`` recipe turns a uint8 batch on the device into three finite
   views in [0, 1] on the device, the same seed giving the same views;
5. ``cuda_tests``: every test in ``tests/`` whose decorators mention ``cuda`` (the ``skipif`` of
   the GPU-only tests), in a pytest subprocess cut at the seconds left of ``--budget-s``; on a
   GPU a skip counts as a failure.

One JSON line per check goes to stdout (name, ok, gate, seconds, detail).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
import time
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


class SmokeFailure(RuntimeError):
    """A check failed; the message says which and why."""


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise SmokeFailure(msg)


def cuda_test_ids(tests_dir: Path) -> list[str]:
    """Node ids of the test functions (and methods) whose decorators mention ``cuda``."""
    ids = []
    for path in sorted(tests_dir.rglob("test_*.py")):
        src = path.read_text()
        tree = ast.parse(src)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test"
            ):
                decos = " ".join(ast.get_source_segment(src, d) or "" for d in node.decorator_list)
                if "cuda" in decos.lower():
                    ids.append(f"{path.relative_to(ROOT)}::{node.name}")
    return ids


def check_device(cpu: bool) -> str:
    """CUDA present with bf16 (or nothing asked on the CPU rehearsal)."""
    if cpu:
        return "cpu rehearsal"
    _need(torch.cuda.is_available(), "no CUDA device visible")
    _need(torch.cuda.is_bf16_supported(), "the GPU does not support bf16")
    return f"{torch.cuda.get_device_name()} torch {torch.__version__}"


def check_cuda_tests(cpu: bool, seconds: float) -> str:
    """Run the GPU-only tests in a pytest subprocess of at most ``seconds``.

    On a GPU none may skip.
    """
    import subprocess

    ids = cuda_test_ids(ROOT / "tests")
    _need(bool(ids), "no test in tests/ is marked for CUDA")
    _need(seconds >= 5, f"no time left for the CUDA tests ({seconds:.0f} s)")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *ids]
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds, check=False
        )
    except subprocess.TimeoutExpired:
        raise SmokeFailure(f"{len(ids)} CUDA tests not done in {seconds:.0f} s") from None
    last = (done.stdout.strip().splitlines() or ["no output"])[-1]
    _need(done.returncode in (0, 5), f"CUDA tests failed (exit {done.returncode}): {last}")
    _need(cpu or "skipped" not in last, f"CUDA tests skipped on the GPU: {last}")
    return f"{len(ids)} run: {last}"


def check_augment(device: torch.device) -> str:
    """Every augmentation recipe on a device batch."""
    from rcl_study.config import DataConfig
    from rcl_study.data.augment import make_views

    recipes = [
        r
        for r in typing.get_args(DataConfig.model_fields["augment"].annotation)
        if r not in ("auto", "none")
    ]
    x = torch.randint(0, 256, (64, 32, 32, 3), dtype=torch.uint8, device=device)
    for recipe in recipes:
        views = make_views(x, torch.Generator(device=device).manual_seed(0), recipe)
        again = make_views(x, torch.Generator(device=device).manual_seed(0), recipe)
        for v, w in zip(views, again, strict=True):
            _need(v.device.type == device.type, f"{recipe}: a view left the device")
            _need(v.shape == (64, 3, 32, 32), f"{recipe}: view shape {tuple(v.shape)}")
            _need(bool(torch.isfinite(v).all()), f"{recipe}: non-finite pixels")
            _need(float(v.min()) >= 0 and float(v.max()) <= 1, f"{recipe}: pixels outside [0, 1]")
            _need(torch.equal(v, w), f"{recipe}: the same seed gave different views")
    return f"recipes {recipes}"


def check_bf16_channels_last(device: torch.device) -> str:
    """ResNet-32 + heads in channels-last under bf16 autocast vs float32."""
    from rcl_study.trainer.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet32", 3, 10, 32).to(device).to(memory_format=torch.channels_last)
    x = torch.randn(128, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,), device=device)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        feats, logits, proj = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y) + proj.float().pow(2).mean()
    _need(logits.dtype == torch.bfloat16, f"autocast logits are {logits.dtype}, not bfloat16")
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    _need(bool(grads) and all(bool(torch.isfinite(g).all()) for g in grads), "non-finite grads")
    model.eval()
    with torch.no_grad():
        ref = model(x)[1].float()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            low = model(x)[1].float()
    cos = float(torch.nn.functional.cosine_similarity(ref.flatten(), low.flatten(), dim=0))
    _need(cos > 0.99, f"bf16 logits differ from float32 (cosine {cos:.4f})")
    return f"cosine(bf16, fp32 logits) {cos:.5f}"


def check_train_resume(study: str, overrides: list[str], device: torch.device) -> str:
    """One epoch of 3 steps, then a resumed second, on the run's own study and device."""
    from rcl_study.config import load_study
    from rcl_study.trainer.checkpoint import read_checkpoint
    from rcl_study.trainer.loop import train_trial

    small = [
        "train.max_steps_per_epoch=3",
        "train.eval_every=1",
        "train.checkpoint_every=1",
        "train.progress=false",
        "data.test_limit=500",
        f"train.device={device.type}",
    ]
    if device.type == "cuda":
        small.append("train.precision=bf16")
    with tempfile.TemporaryDirectory() as work:
        first = train_trial(load_study(study, [*overrides, *small, "train.epochs=1"]), workdir=work)
        _need(first.ok, f"training failed: {first.reason}")
        ckpt = read_checkpoint(Path(work) / "checkpoint.pt")
        _need(int(ckpt["epoch"]) == 1, f"checkpoint at epoch {ckpt['epoch']}, not 1")
        # resume: the same trial asked for 2 epochs trains only the second
        more = train_trial(load_study(study, [*overrides, *small, "train.epochs=2"]), workdir=work)
    _need(more.ok, f"resumed training failed: {more.reason}")
    epochs = [h["epoch"] for h in more.history]
    _need(epochs == [1, 2], f"evaluations after resume at epochs {epochs}, not [1, 2]")
    _need(str(more.device).startswith(device.type), f"trained on {more.device}")
    for h in more.history:
        _need(all(map(lambda v: v == v, (h["loss"], h["top1"]))), "NaN loss or accuracy")
    return f"epochs {epochs} on {more.device}, top1 {more.metrics['top1']:.3f}"


def main(argv: list[str] | None = None) -> int:
    """Run the gating checks (exit 1 at the first failure), then the logged ones."""
    start = time.perf_counter()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("study")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--cpu", action="store_true", help="CPU rehearsal: no GPU, CUDA tests may skip")
    p.add_argument(
        "--budget-s",
        type=float,
        default=110.0,
        help="seconds for all checks (the CUDA tests get what the others leave)",
    )
    a = p.parse_args(argv)
    device = torch.device("cpu" if a.cpu else "cuda")
    checks = [  # (name, gate, check)
        ("device", True, lambda: check_device(a.cpu)),
        ("bf16_channels_last", True, lambda: check_bf16_channels_last(device)),
        ("train_resume", True, lambda: check_train_resume(a.study, a.overrides, device)),
        ("augment", False, lambda: check_augment(device)),
        (
            "cuda_tests",
            False,
            lambda: check_cuda_tests(a.cpu, a.budget_s - (time.perf_counter() - start)),
        ),
    ]
    for name, gate, check in checks:
        t0 = time.perf_counter()
        try:
            detail, ok = check(), True
        except Exception as err:  # noqa: BLE001 - any failure is reported with its reason
            detail, ok = f"{type(err).__name__}: {err}", False
        line = {
            "check": name,
            "ok": ok,
            "gate": gate,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        print(json.dumps({**line, "detail": detail}), flush=True)
        if not ok and gate:
            print(f"smoke: {name} failed: {detail}", file=sys.stderr)
            return 1
        if not ok:
            print(f"smoke: {name} failed (logged, not gating): {detail}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
