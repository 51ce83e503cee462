"""The main command: ``python -m rcl_study.run STUDY.yaml [options]``.

Runs every trial of a study through Ray Tune, records each one, and writes the report to
``reports/<study>/``. Exit status: 0 done; 1 the study ran but no trial succeeded; 2 bad input
(or the report could not be written; the records are kept); 130 stopped by Ctrl-C or SIGTERM
(a batch system's preemption or time limit): finished trials are recorded, --resume runs the rest.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
import time

from rcl_study.config import ConfigError, load_study


class _OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr (exit 2), not the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print ``error: <message>`` and exit 2."""
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _OneLineParser(
        prog="python -m rcl_study.run",
        description="Run a study (ablation, grid sweep or search) and write its report.",
    )
    p.add_argument("study", help="the study file (YAML)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one key, e.g. --set loss.scale=2.0 (repeatable)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="finish an interrupted study; recorded trials are not run again",
    )
    p.add_argument(
        "--accept-changes",
        action="store_true",
        help="with --resume: keep recorded trials although the study file changed them",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the study's existing records and report, then start over",
    )
    p.add_argument("--dry-run", action="store_true", help="print the trials and resources only")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="regenerate the report from stored records, without training",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="shrink the study (few steps, tiny subset, CPU) to try it out",
    )
    p.add_argument("--no-progress", action="store_true", help="plain log lines, no progress bar")
    p.add_argument(
        "--plan-seeds",
        action="store_true",
        help="print the minimum detectable effect and the seeds needed (no training); the sd "
        "of paired differences comes from the study's records (a pilot) or --sd",
    )
    p.add_argument("--effect", type=float, action="append", help="target effect (repeatable)")
    p.add_argument("--sd", type=float, help="assumed sd of paired differences (wins over records)")
    return p


class _SigtermAsCtrlC:
    """SIGTERM (``kill``, a batch system's preemption or time limit) does what Ctrl-C does.

    The first one calls the SIGINT handler in force (during Ray Tune: stop the running trials
    gracefully), or raises ``KeyboardInterrupt`` where SIGINT is ignored, as it is for a
    background job of a shell script. Later ones are ignored, so a SIGTERM that reaches the
    driver twice (from Slurm and from the batch script) never cuts the graceful stop short;
    SIGKILL (or Ctrl-C twice) stops at once.
    """

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, signum, frame) -> None:
        if self.seen:
            return
        self.seen = True
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    try:
        a = _parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2, one line already printed)
        return int(stop.code or 0)
    if threading.current_thread() is not threading.main_thread():
        return _main(a)
    previous = signal.signal(signal.SIGTERM, _SigtermAsCtrlC())
    try:
        return _main(a)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(a: argparse.Namespace) -> int:
    from rcl_study.data import DataError
    from rcl_study.study.checks import StudyExists, check_machine, check_study
    from rcl_study.study.lock import StudyLocked
    from rcl_study.study.runner import apply_smoke, dry_run_text

    cfg = None
    try:
        cfg = load_study(a.study, a.overrides)
        if a.smoke:
            cfg = apply_smoke(cfg)
        plans = check_study(cfg)
        if a.plan_seeds:
            from rcl_study.report.plan import study_plan
            from rcl_study.report.power import plan_lines

            print("\n".join(plan_lines(study_plan(cfg, a.sd, a.effect))))
            return 0
        if a.dry_run:  # a plan may be made on a laptop for a GPU box: machine checks are notes
            print(dry_run_text(cfg, plans))
            try:
                check_machine(cfg)
            except ConfigError as err:
                print(f"note: this machine could not run it: {str(err).split(': ', 2)[-1]}")
            return 0
        if a.report_only:
            return _report(cfg, a.study)
        check_machine(cfg)
        from rcl_study.data import load_data

        load_data(cfg.data)  # fail early, before Ray starts, when the data is missing
        from rcl_study.study.runner import run_study

        if cfg.resources.executor == "ray":
            from rcl_study.study.cluster import ClusterError
        else:  # the local executor never imports Ray
            ClusterError = ()  # type: ignore[assignment,misc]  # noqa: N806

        t0 = time.time()
        try:
            records = run_study(
                cfg,
                resume=a.resume,
                overwrite=a.overwrite,
                progress=not a.no_progress,
                accept_changes=a.accept_changes,
            )
        except ClusterError as err:
            print(f"error: {a.study}: {err}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:  # Ctrl-C: finished trials are recorded
        if cfg is None or a.dry_run or a.report_only:
            print("interrupted", file=sys.stderr)
            return 130
        return _interrupted(cfg, a)
    except (ConfigError, DataError, StudyExists, StudyLocked) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        if isinstance(err, DataError) and not msg.startswith(f"{a.study}: "):
            msg = f"{a.study}: {msg}"  # the data file's error, and the study that named it
        for name in {cfg.name, cfg.name.removesuffix("-smoke")} if cfg else ():
            if msg.startswith(f"{name}: "):  # errors found after loading name the file too
                msg = f"{a.study}: {msg[len(name) + 2 :]}"
        print(f"error: {msg}", file=sys.stderr)
        return 2
    try:
        status = _report(cfg, a.study)
    except Exception as err:  # noqa: BLE001 - the records are safe; say so in one line
        print(
            f"error: {a.study}: the report could not be written ({type(err).__name__}: {err}); "
            f"the records are kept in {cfg.output_dir}; rebuild it with --report-only",
            file=sys.stderr,
        )
        return 2
    from rcl_study.study.disk import human, used_bytes

    ok = sum(r.ok for r in records)
    print(
        f"{len(records)} trials recorded ({ok} ok) in {time.time() - t0:.0f}s; "
        f"records in {cfg.output_dir} ({human(used_bytes(cfg.output_dir))} on disk)",
        file=sys.stderr,
    )
    return status if ok else 1


def _interrupted(cfg, a: argparse.Namespace) -> int:
    """Ctrl-C: say how many trials are recorded and how to finish with this tool; 130."""
    from rcl_study.trials.folder import StudyFolder

    folder = StudyFolder(cfg.output_dir)
    n = len(folder.records())
    planned = len(folder.plan()["trials"])
    cmd = ["python", "-m", "rcl_study.run", a.study]
    cmd += ["--smoke"] if a.smoke else []
    for ov in a.overrides:
        cmd += ["--set", ov]
    cmd.append("--resume")
    print(
        f"interrupted: {n}{f' of {planned}' if planned else ''} trials recorded in "
        f"{cfg.output_dir}; finish with: {shlex.join(cmd)}",
        file=sys.stderr,
    )
    return 130


def _report(cfg, study_path: str) -> int:
    from rcl_study.report.render import write_report
    from rcl_study.trials.folder import DAMAGED, StudyFolder

    folder = StudyFolder(cfg.output_dir)
    damaged = len(folder.damaged_lines())
    if damaged:
        print(
            f"note: {folder.records_path}: {damaged} damaged line(s) left out of the report; "
            f"--resume moves them to {DAMAGED} and runs their trials again",
            file=sys.stderr,
        )
    if not folder.records():
        print(
            f"error: {study_path}: no records in {cfg.output_dir}; run the study first",
            file=sys.stderr,
        )
        return 2
    path = write_report(cfg, study_path)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
