"""The GPU ablation run, step by step (called by ``scripts/gpu/ablation.sh``; no Ray needed).

    python scripts/gpu/ablation.py run STUDY [--set k=v ...] [--budget-s SECONDS]
    python scripts/gpu/ablation.py gap STUDY [--set k=v ...] --study-dir DIR --out gaps.json
    python scripts/gpu/ablation.py sync --study-dir DIR --out OUT [--meta F ...] [--every S]
    python scripts/gpu/ablation.py restore --fetched OUT_COPY --to DIR

``run``: the study through the study engine (``rcl_study.study.runner.run_study``, resume on,
``resources.executor: local``) with the members of each pack in priority order (:data:`PRIORITY`:
``none`` = BCL, then ``balance+scale+margin`` = BCL+RCL, then the single components, then the
pairs) and a time budget of ``--budget-s`` seconds (:class:`rcl_study.trainer.budget.PackBudget`):
the pack starts with every member; the second epoch it trains (the first pays cuDNN's autotuning)
is timed and decides how many members, first in priority, can finish in the seconds left; the
others are dropped there (``stopped``, their evaluation at that epoch recorded). Before an epoch
that would not end in time every member left is evaluated and recorded ``stopped``; SIGTERM or
Ctrl-C records every member ``stopped`` with its last evaluation and epoch. No fixed menu of
plans and no separate measuring run: the pack measures itself. ``--resume`` (the same command
later) trains the stopped trials again.

``gap``: the paired lossless-vs-JPEG measure of ``rcl_study.report.jpeg_gap`` (the one behind
``scripts/jpeg_gap.py``) on every member's latest checkpoint, the data loaded once.

``sync``: copies what the run has written so far into ``OUT`` within the device's limits (at
most 8 files come back, 16 MiB each): ``OUT/study.tar`` (the records folder without checkpoints
and lock, ``metrics/<trial_id>.jsonl`` = each member's evaluations so far, read from its latest
checkpoint's history, and ``meta/`` = the ``--meta`` files), then the checkpoints as
``OUT/ckpt.NN`` parts of at most 15 MiB and ``OUT/ckpt.json`` naming the parts and their SHA-256
(written last). Every file is replaced atomically. ``--every S`` repeats until SIGUSR1 / SIGTERM /
SIGINT or until the ``--parent`` process is gone, then syncs once more.

``restore``: the inverse of ``sync`` on the fetched files: the records folder (with its
checkpoints when the parts check out) for ``python -m rcl_study.run STUDY --report-only --set
study.output_dir=DIR``, or for carrying back to resume.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import signal
import sys
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rcl_study.store import atomic_write_bytes  # noqa: E402
from rcl_study.trials.unit import Unit  # noqa: E402

if TYPE_CHECKING:
    from rcl_study.study.executor import Executor
    from rcl_study.trainer.budget import PackBudget

#: the ablation's variants in the order a pack keeps them when not all fit the budget: BCL, then
#: BCL+RCL, then each component alone, then the pairs
PRIORITY = (
    "none",
    "balance+scale+margin",
    "balance",
    "scale",
    "margin",
    "balance+scale",
    "balance+margin",
    "scale+margin",
)
PART_BYTES = 15 * 1024 * 1024
SKIP_NAMES = ("driver.lock",)


def _load_study(path: str, overrides: list[str]):
    from rcl_study.config import load_study

    return load_study(path, overrides)


def _stop(signum, frame):  # noqa: ARG001
    """SIGTERM as Ctrl-C, once.

    A second one (the shell's, the timeout's) does not cut the records being written.
    """
    signal.signal(signum, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


# ---------------------------------------------------------------------------------------------
# run: the study engine, members in priority order, a time budget


def priority_rank(variant: str) -> tuple[int, str]:
    """Sort key of a variant in :data:`PRIORITY` (component names in any order; others last)."""
    parts = frozenset(variant.split("+"))
    for i, name in enumerate(PRIORITY):
        if frozenset(name.split("+")) == parts:
            return i, variant
    return len(PRIORITY), variant


def prioritised(units: Sequence[Unit]) -> list[Unit]:
    """The units with their members in priority order, the unit of the first member first."""
    out = [
        Unit(tuple(sorted(u.members, key=lambda p: priority_rank(p.variant))), u.pack_id)
        for u in units
    ]
    return sorted(out, key=lambda u: priority_rank(u.members[0].variant))


def priority_executor(budget: PackBudget | None) -> Executor:
    """The local executor with packs in :data:`PRIORITY` order under ``budget`` (None: none).

    A :class:`~rcl_study.study.local.LocalExecutor` whose units' members are sorted by
    :func:`prioritised` before they train.
    """
    from rcl_study.study.local import LocalExecutor

    class PriorityExecutor(LocalExecutor):
        def run(self, study, units, folder, sink) -> None:  # noqa: D102 - LocalExecutor.run
            super().run(study, prioritised(units), folder, sink)

    return PriorityExecutor(budget)


def run(
    study: str,
    overrides: list[str],
    budget_s: float | None = None,
    *,
    executor: Executor | None = None,
) -> int:
    """Run the study through ``run_study`` (resume on) with :func:`priority_executor`.

    Prints one JSON line per record (status, reason, epochs, top-1, balanced accuracy); returns
    0 when all are ``ok``, 124 when any was stopped (budget, SIGTERM, Ctrl-C: every member
    recorded, the checkpoints kept), 1 otherwise, 2 on a study this script cannot run.
    ``executor``: what trains the units (default: :func:`priority_executor` with a budget of
    ``budget_s`` seconds from now).
    """
    from rcl_study.config import ConfigError
    from rcl_study.study.checks import check_machine, check_study
    from rcl_study.study.runner import absolute_paths, run_study
    from rcl_study.trials.folder import StudyFolder

    cfg = _load_study(study, overrides)
    if cfg.resources.executor != "local":
        print(f"error: {study}: resources.executor must be 'local' here", file=sys.stderr)
        return 2
    folder = StudyFolder(absolute_paths(cfg).output_dir)
    try:
        check_study(cfg)
        check_machine(cfg)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"run: budget {budget_s or 'none'} s, priority {', '.join(PRIORITY)}", flush=True)
    previous = signal.signal(signal.SIGTERM, _stop)
    stopped = ""
    try:
        if executor is None:
            from rcl_study.trainer.budget import PackBudget

            executor = priority_executor(PackBudget.seconds(budget_s) if budget_s else None)
        run_study(cfg, resume=True, progress=False, executor=executor)
    except KeyboardInterrupt as err:
        stopped = str(err) or "SIGINT"
    except ConfigError as err:  # e.g. the study changed since its records were written
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    records = folder.records()
    for r in records:
        row = {"trial_id": r.trial_id, "status": r.status.value, "reason": r.reason}
        keys = ("epoch", "epochs_trained", "top1", "balanced_acc", "seconds_per_epoch")
        print(json.dumps(row | {k: r.metrics.get(k) for k in keys}, default=float), flush=True)
    if stopped or any(r.status.value == "stopped" for r in records):
        why = stopped if stopped.startswith("stopped") else f"stopped by {stopped or 'the budget'}"
        print(f"{why}: every member recorded, resume with the same command", flush=True)
        return 124
    return 0 if records and all(r.ok for r in records) else 1


# ---------------------------------------------------------------------------------------------
# checkpoints: members, histories, models


def member_states(study_dir: Path) -> dict[str, dict[str, Any]]:
    """trial_id -> {model, history, epoch, path} from every checkpoint under ``trials/``.

    A pack's checkpoint holds its members by trial id; a single trial's is named by its folder.
    When a trial appears in several checkpoints (a pack resumed as a smaller one), the one at the
    latest epoch wins. Checkpoints are read with ``weights_only=True``
    (:func:`rcl_study.trainer.checkpoint.read_checkpoint`); unreadable ones are skipped.
    """
    from rcl_study.trainer.checkpoint import CheckpointError, read_checkpoint

    out: dict[str, dict[str, Any]] = {}
    for ckpt in sorted((Path(study_dir) / "trials").glob("*/checkpoint.pt")):
        try:
            state = read_checkpoint(ckpt)
        except CheckpointError:  # being written, or damaged: the next sync retries
            continue
        epoch = int(state.get("epoch", 0))
        found = state["members"].items() if "members" in state else [(ckpt.parent.name, state)]
        for tid, s in found:
            trained = int(s.get("epochs_trained", epoch))  # a member dropped earlier: its own
            if tid not in out or out[tid]["epoch"] <= trained:
                out[tid] = {
                    "model": s["model"],
                    "history": list(s.get("history", [])),
                    "epoch": trained,
                    "path": str(ckpt),
                }
    return out


def gap(study: str, overrides: list[str], study_dir: Path, limit: int | None) -> dict[str, Any]:
    """``jpeg_gap.measure`` of every member's latest checkpoint (data and JPEG copies once).

    The measure is :mod:`rcl_study.report.jpeg_gap`'s (also behind ``scripts/jpeg_gap.py``).
    """
    import torch

    from rcl_study.data import load_data
    from rcl_study.report import jpeg_gap as jg

    cfg = _load_study(study, overrides)
    data = load_data(cfg.data, cfg.train.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mean, std = jg.input_normalisation(data, device)
    idx = jg.lossless_indices(data.test_mask, limit)
    out = {}
    for tid, s in member_states(study_dir).items():
        model = jg.build_for(cfg, data)
        model.load_state_dict(s["model"])
        model.to(device)
        res = jg.measure(
            jg.model_predictor(model, mean, std, device), data.test_x[idx], data.test_y[idx]
        )
        res.update(epoch=s["epoch"], checkpoint=s["path"], device=str(device))
        out[tid] = res
        print(
            json.dumps(
                {
                    "trial_id": tid,
                    **{k: res[k] for k in ("epoch", "acc_lossless", "acc_jpeg", "gap", "gap_ci")},
                }
            ),
            flush=True,
        )
    return out


# ---------------------------------------------------------------------------------------------
# sync to $OUT and restore from it


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(time.time())
    tar.addfile(info, io.BytesIO(data))


def study_tar(study_dir: Path, meta: list[Path]) -> bytes:
    """The study's files for ``OUT/study.tar``, as one tar in memory.

    The records folder without checkpoints, lock and temporaries (under ``study/``), the members'
    evaluations so far as ``metrics/<trial_id>.jsonl``, and the ``meta`` files under ``meta/``.
    """
    buf = io.BytesIO()
    study_dir = Path(study_dir)
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(study_dir.rglob("*")):
            name = path.name
            if not path.is_file() or name.endswith((".pt", ".tmp")) or name in SKIP_NAMES:
                continue
            if name.startswith(f".{SKIP_NAMES[0]}"):
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue  # replaced while listed
            _add_bytes(tar, "study/" + path.relative_to(study_dir).as_posix(), data)
        for tid, s in sorted(member_states(study_dir).items()):
            lines = "".join(json.dumps(h, default=float) + "\n" for h in s["history"])
            _add_bytes(tar, f"metrics/{tid}.jsonl", lines.encode())
        for m in meta:
            if Path(m).is_file():
                _add_bytes(tar, f"meta/{Path(m).name}", Path(m).read_bytes())
    return buf.getvalue()


def _ckpt_signature(study_dir: Path) -> list[tuple[str, int, int]]:
    sig = []
    for p in sorted((Path(study_dir) / "trials").glob("*/checkpoint.pt")):
        try:
            st = p.stat()
        except OSError:
            continue
        sig.append((p.relative_to(study_dir).as_posix(), st.st_mtime_ns, st.st_size))
    return sig


def sync_once(study_dir: Path, out: Path, meta: list[Path], last_sig: list | None = None) -> list:
    """One sync of ``study_dir`` into ``out`` (see the module docstring).

    Returns the checkpoints' signature, to pass back next time: their parts are rewritten only
    when it changed.
    """
    out.mkdir(parents=True, exist_ok=True)
    study_dir = Path(study_dir)
    if study_dir.exists():
        atomic_write_bytes(out / "study.tar", study_tar(study_dir, meta))
    sig = _ckpt_signature(study_dir)
    if not sig or sig == last_sig:
        return sig
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel, _, _ in sig:
            try:
                data = (study_dir / rel).read_bytes()  # an atomic replace: old or new, whole
            except OSError:
                continue
            _add_bytes(tar, rel, data)
    blob = buf.getvalue()
    parts = []
    for i, lo in enumerate(range(0, len(blob), PART_BYTES)):
        chunk = blob[lo : lo + PART_BYTES]
        name = f"ckpt.{i:02d}"
        atomic_write_bytes(out / name, chunk)
        parts.append(
            {"name": name, "bytes": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()}
        )
    for old in out.glob("ckpt.[0-9][0-9]"):
        if old.name not in {p["name"] for p in parts}:
            old.unlink()
    manifest = {"parts": parts, "files": [s[0] for s in sig], "written": time.time()}
    atomic_write_bytes(out / "ckpt.json", json.dumps(manifest, indent=1).encode())
    if len(parts) > 3:
        print(
            f"warning: {len(parts)} checkpoint parts: with run.log, phases.tsv, study.tar and "
            "ckpt.json more than 8 files; some will not come back",
            file=sys.stderr,
        )
    return sig


def _alive(pid: int | None) -> bool:
    """The parent is alive (always, when there is none to watch)."""
    from rcl_study.study.lock import pid_alive

    return pid is None or pid_alive(pid)


def sync_loop(
    study_dir: Path, out: Path, meta: list[Path], every: float, parent: int | None = None
) -> None:
    """Sync every ``every`` seconds, then once more when stopped.

    Stops on SIGUSR1 / SIGTERM / SIGINT, or when process ``parent`` is gone.
    """
    for sig_no in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig_no, _stop)
    sig = None
    try:
        while _alive(parent):
            try:
                sig = sync_once(study_dir, out, meta, sig)
            except Exception as err:  # noqa: BLE001 - a failed sync must not stop the next one
                print(f"sync: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            time.sleep(every)
    except KeyboardInterrupt:
        pass
    for sig_no in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(sig_no, signal.SIG_IGN)
    sync_once(study_dir, out, meta, sig)


def restore(fetched: Path, dest: Path) -> dict[str, Any]:
    """Unpack ``study.tar`` (and the checkpoint parts, when every SHA-256 matches) into ``dest``.

    ``dest`` becomes the records folder (``dest/records.jsonl``, ``dest/trials/...``), plus
    ``dest/metrics/`` and ``dest/meta/`` beside them. Returns what was restored.
    """
    fetched, dest = Path(fetched), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"study": False, "checkpoints": []}
    tar_path = fetched / "study.tar"
    if tar_path.is_file():
        with tarfile.open(tar_path) as tar:
            for m in tar.getmembers():
                if not m.isfile() or m.name.startswith("/") or ".." in Path(m.name).parts:
                    continue
                top, _, rest = m.name.partition("/")
                target = dest / rest if top == "study" else dest / m.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(m).read())
        info["study"] = True
    man = fetched / "ckpt.json"
    if man.is_file():
        manifest = json.loads(man.read_text())
        blob = b""
        for p in manifest["parts"]:
            part = fetched / p["name"]
            data = part.read_bytes() if part.is_file() else b""
            if hashlib.sha256(data).hexdigest() != p["sha256"]:
                info["checkpoint_error"] = f"{part}: missing or not the part ckpt.json names"
                return info
            blob += data
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            for m in tar.getmembers():
                parts = Path(m.name).parts
                if (
                    not m.isfile()
                    or m.name.startswith("/")
                    or ".." in parts
                    or parts[0] != "trials"
                ):
                    continue
                target = dest / m.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(m).read())
                info["checkpoints"].append(m.name)
    return info


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def with_study(sp):
        sp.add_argument("study")
        sp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    r = sub.add_parser("run")
    with_study(r)
    r.add_argument(
        "--budget-s", type=float, default=None, help="seconds the run may take (default: none)"
    )
    g = sub.add_parser("gap")
    with_study(g)
    g.add_argument("--study-dir", required=True)
    g.add_argument("--limit", type=int, default=None)
    g.add_argument("--out", required=True)
    s = sub.add_parser("sync")
    s.add_argument("--study-dir", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--meta", action="append", default=[])
    s.add_argument("--every", type=float, default=0)
    s.add_argument("--parent", type=int, default=None, help="stop when this process is gone")
    rs = sub.add_parser("restore")
    rs.add_argument("--fetched", required=True)
    rs.add_argument("--to", required=True)
    a = p.parse_args(argv)

    if a.cmd == "run":
        return run(a.study, a.overrides, a.budget_s)
    if a.cmd == "gap":
        res = gap(a.study, a.overrides, Path(a.study_dir), a.limit)
        atomic_write_bytes(Path(a.out), json.dumps(res, indent=1).encode())
        return 0 if res else 1
    if a.cmd == "sync":
        meta = [Path(x) for x in a.meta]
        if a.every > 0:
            sync_loop(Path(a.study_dir), Path(a.out), meta, a.every, a.parent)
        else:
            sync_once(Path(a.study_dir), Path(a.out), meta)
        return 0
    info = restore(Path(a.fetched), Path(a.to))
    print(json.dumps(info))
    return 0 if info["study"] and "checkpoint_error" not in info else 1


if __name__ == "__main__":
    sys.exit(main())
