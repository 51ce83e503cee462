"""Issue 15's GPU run, step by step (called by ``scripts/gpu/ablation.sh``; no Ray needed).

    python scripts/gpu/ablation.py measure STUDY [--set k=v ...] --k 1 2 8 --out speed.json
    python scripts/gpu/ablation.py choose --speed speed.json --left SECONDS [--force a|b|c]
    python scripts/gpu/ablation.py run STUDY [--set k=v ...] --plan a|b|c
    python scripts/gpu/ablation.py gap STUDY [--set k=v ...] --study-dir DIR --out gaps.json
    python scripts/gpu/ablation.py sync --study-dir DIR --out OUT [--meta F ...] [--every S]
    python scripts/gpu/ablation.py restore --fetched OUT_COPY --to DIR

``measure``: seconds per epoch of the plan, on the study's real settings: a single trial (the
``none`` variant) and packs of the first K variants, each trained 2 epochs with an evaluation
after each (no checkpoint); the second epoch is timed (the first pays cuDNN's autotuning), and
one evaluation round is the time between the two evaluations less that epoch. ``K`` > 1 is
measured only while its extrapolation could still fit ``--left`` (see :func:`worth_measuring`).

``choose``: the largest plan that fits ``--left`` seconds (:data:`PLANS`, :func:`choose`): (a)
the whole 2^3 ablation as one pack of 8, (b) ``none`` (BCL) and ``balance+scale+margin``
(BCL+RCL) as a pack of 2, (c) ``none`` alone (run even when it does not fit: its checkpoint
resumes in a later call).

``run``: the study through the study engine (``rcl_study.study.runner.run_study``, resume on,
``resources.executor: local``), restricted to the plan's variants (its ``only``): the whole plan
is written to ``plan.json``, the trials of the chosen variants are packed as ``resources.pack``
allows and trained; the others stay planned, so ``--resume`` (or a later ``run --plan a``)
finishes them from the same folder. SIGTERM stops it like Ctrl-C (the driver lock is released;
the pack's checkpoint stays and resumes).

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rcl_study.files import atomic_write_bytes  # noqa: E402

if TYPE_CHECKING:
    from rcl_study.study.executor import Executor

#: plan -> the variants it trains (None: every variant of the study)
PLANS: dict[str, list[str] | None] = {
    "a": None,
    "b": ["none", "balance+scale+margin"],
    "c": ["none"],
}
#: members trained together by each plan (what ``measure`` times for it)
PLAN_K = {"a": 8, "b": 2, "c": 1}
PART_BYTES = 15 * 1024 * 1024
#: a plan is chosen when its predicted seconds are at most this share of the seconds left
SAFETY = 0.9
SKIP_NAMES = ("driver.lock",)


def _load_study(path: str, overrides: list[str]):
    from rcl_study.config import load_study

    return load_study(path, overrides)


def _stop(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt(signal.Signals(signum).name)


# ---------------------------------------------------------------------------------------------
# measure and choose


def plan_seconds(row: dict[str, Any], epochs: int, eval_every: int) -> float:
    """Predicted seconds of ``epochs`` epochs of a measured unit, evaluations and setup included.

    ``row`` holds ``epoch_s`` (one epoch of all members), ``eval_s`` (one evaluation round of all
    members) and ``setup_s``.
    """
    evals = epochs // eval_every + (epochs % eval_every != 0)
    return row["setup_s"] + epochs * row["epoch_s"] + evals * row["eval_s"]


def worth_measuring(
    k: int, measured: dict[int, dict[str, Any]], left: float, epochs: int, eval_every: int
) -> bool:
    """Whether a pack of ``k`` could fit ``left`` s, extrapolated from the largest measured one.

    A pack of k does the work of k networks; what it can share (data, views, launches) is
    bounded here by assuming at best twice the per-member speed of the largest pack measured.
    """
    if not measured:
        return True
    j = max(measured)
    per_member = plan_seconds(measured[j], epochs, eval_every) / j
    return k * per_member / 2 <= left


def measure(
    study: str, overrides: list[str], ks: list[int], left: float, epochs_timed: int = 2
) -> dict[str, Any]:
    """Time a single trial and packs of the first K variants (see the module docstring)."""
    import torch

    from rcl_study.trainer.loop import train_trial
    from rcl_study.trainer.pack import train_pack
    from rcl_study.trials.design import expand, trial_config

    cfg = _load_study(study, overrides)
    plans = expand(cfg)
    short = {"train.epochs": epochs_timed, "train.eval_every": 1, "train.checkpoint_every": 10**6}
    out: dict[str, Any] = {
        "epochs": cfg.train.epochs,
        "eval_every": cfg.train.eval_every,
        "left_s": left,
        "rows": {},
    }
    measured: dict[int, dict[str, Any]] = {}
    for k in sorted(ks):
        if k > len(plans):
            continue
        if not worth_measuring(k, measured, left, cfg.train.epochs, cfg.train.eval_every):
            out["rows"][str(k)] = {"skipped": "cannot fit, extrapolated from smaller packs"}
            continue
        from rcl_study.config import set_path

        cfgs = [set_path(trial_config(cfg, p.overrides, p.seed), short) for p in plans[:k]]
        stamps: list[float] = []
        stamp = stamps.append
        t0 = time.perf_counter()
        if k == 1:
            res = [
                train_trial(
                    cfgs[0], lambda m, st=stamp: st(time.perf_counter()), log=lambda s: None
                )
            ]
        else:
            res = train_pack(
                cfgs,
                [p.trial_id for p in plans[:k]],
                lambda m, st=stamp: st(time.perf_counter()),
                log=lambda s: None,
            )
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        hist = res[0]["history"]
        e1, e2 = hist[0]["epoch_seconds"], hist[-1]["epoch_seconds"]
        eval_s = max(0.0, (stamps[-1] - stamps[-2]) - e2) if len(stamps) >= 2 else 0.0
        row = {
            "k": k,
            "epoch_s": e2,
            "first_epoch_s": e1,
            "eval_s": eval_s,
            "setup_s": max(0.0, stamps[0] - t0 - e1 - eval_s),
            "device": res[0].get("device"),
        }
        row["plan_s"] = plan_seconds(row, cfg.train.epochs, cfg.train.eval_every)
        row["s_per_epoch_per_member"] = (e2 + eval_s / cfg.train.eval_every) / k
        measured[k] = row
        out["rows"][str(k)] = row
        print(json.dumps(row), flush=True)
    return out


def choose(
    speed: dict[str, Any], left: float, force: str | None = None, safety: float = SAFETY
) -> tuple[str, str]:
    """(plan, why): the largest plan whose prediction fits ``safety * left`` seconds; else (c).

    The margin covers the run's own start-up and timing noise: a pack cut short records none of
    its members, and a pack of 8's checkpoint is too large to carry back for a resume.
    """
    if force:
        return force, f"forced ({force})"
    rows = speed["rows"]
    for plan in ("a", "b"):
        row = rows.get(str(PLAN_K[plan]), {})
        if "plan_s" in row and row["plan_s"] <= safety * left:
            return plan, (
                f"pack of {PLAN_K[plan]}: {row['plan_s']:.0f} s predicted <= {safety:g} x "
                f"{left:.0f} s left"
            )
    row = rows.get("1", {})
    pred = f"{row['plan_s']:.0f} s predicted" if "plan_s" in row else "not measured"
    return "c", f"only the fallback: BCL alone ({pred}, {left:.0f} s left; resumable)"


# ---------------------------------------------------------------------------------------------
# run (the study engine, restricted to the plan's variants)


def run(study: str, overrides: list[str], plan: str, *, executor: Executor | None = None) -> int:
    """Run the plan's variants of the study through ``run_study`` with the local executor.

    ``run_study(..., resume=True, only=<the plan's variants>)``: the whole plan is written, the
    chosen variants' missing trials are packed and trained, the rest stay planned. Prints one
    JSON line per record of the plan's variants; 0 when all are ``ok``, 1 when not, 2 on a study
    this script cannot run, 124 when stopped (SIGTERM or Ctrl-C; the checkpoints stay).
    ``executor``: what trains the units (default a :class:`~rcl_study.study.local.LocalExecutor`).
    """
    from rcl_study.config import ConfigError
    from rcl_study.study.checks import check_machine, check_study
    from rcl_study.study.local import LocalExecutor
    from rcl_study.study.packing import plan_units
    from rcl_study.study.runner import absolute_paths, run_study, select
    from rcl_study.trials.folder import StudyFolder

    cfg = _load_study(study, overrides)
    if cfg.resources.executor != "local":
        print(f"error: {study}: resources.executor must be 'local' here", file=sys.stderr)
        return 2
    keep = PLANS[plan]
    folder = StudyFolder(absolute_paths(cfg).output_dir)
    try:
        plans = check_study(cfg)
        check_machine(cfg)
        chosen = select(plans, keep, cfg.name)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    done = folder.done_ids(cfg.study.retries)
    todo = [p for p in chosen if p.trial_id not in done]
    units = plan_units(cfg, plans, todo) if todo else []
    print(f"plan {plan}: {len(todo)} trial(s) in {len(units)} unit(s)", flush=True)
    signal.signal(signal.SIGTERM, _stop)
    try:
        run_study(cfg, resume=True, progress=False, only=keep, executor=executor or LocalExecutor())
    except KeyboardInterrupt as err:
        print(
            f"stopped ({err or 'SIGINT'}): checkpoints kept, resume with the same command",
            flush=True,
        )
        return 124
    except ConfigError as err:  # e.g. the study changed since its records were written
        print(f"error: {err}", file=sys.stderr)
        return 2
    wanted = [r for r in folder.records() if keep is None or r.variant in keep]
    for r in wanted:
        print(
            json.dumps(
                {"trial_id": r.trial_id, "status": r.status.value, "reason": r.reason}
                | {k: r.metrics.get(k) for k in ("top1", "balanced_acc", "seconds_per_epoch")},
                default=float,
            ),
            flush=True,
        )
    return 0 if wanted and all(r.ok for r in wanted) else 1


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
            if tid not in out or out[tid]["epoch"] <= epoch:
                out[tid] = {
                    "model": s["model"],
                    "history": list(s.get("history", [])),
                    "epoch": epoch,
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
    data = load_data(cfg.data)
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

    m = sub.add_parser("measure")
    with_study(m)
    m.add_argument("--k", type=int, nargs="+", default=[1, 2, 8])
    m.add_argument("--left", type=float, default=float("inf"))
    m.add_argument("--out", required=True)
    c = sub.add_parser("choose")
    c.add_argument("--speed", required=True)
    c.add_argument("--left", type=float, required=True)
    c.add_argument("--force", choices=sorted(PLANS), default=None)
    r = sub.add_parser("run")
    with_study(r)
    r.add_argument("--plan", choices=sorted(PLANS), required=True)
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

    if a.cmd == "measure":
        res = measure(a.study, a.overrides, a.k, a.left)
        atomic_write_bytes(Path(a.out), json.dumps(res, indent=1).encode())
        return 0
    if a.cmd == "choose":
        plan, why = choose(json.loads(Path(a.speed).read_text()), a.left, a.force)
        print(f"{plan}\t{why}")
        return 0
    if a.cmd == "run":
        return run(a.study, a.overrides, a.plan)
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
