"""The main command: ``python -m rcl_study.run STUDY.yaml [options]``.

Runs every trial of a study through Ray Tune, records each one, and writes the report to
``reports/<study>/``. Exit status: 0 done; 1 the study ran but no trial succeeded; 2 bad input
(or the report could not be written; the records are kept); 130 stopped by Ctrl-C or SIGTERM
(a batch system's preemption or time limit): finished trials are recorded, --resume runs the rest.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from rcl_study.config import ConfigError, load_study
from rcl_study.config.flags import OneLineParser, number
from rcl_study.config.keys import add_set_option, check_overrides_used
from rcl_study.signals import sigterm_as_ctrl_c


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m rcl_study.run",
        description="Run a study (ablation, grid sweep or search) and write its report.",
        epilog="Exit status: 0 done; 1 no trial succeeded; 2 bad input (one line on stderr); "
        "130 stopped by Ctrl-C (finish with --resume).",
    )
    p.add_argument(
        "study",
        help="the study file (YAML): what to train, what the study varies, where it runs",
    )
    add_set_option(
        p,
        "override one key of the study file, the value read as YAML, e.g. --set "
        "loss.scale=2.0 (repeatable); a key of study.grid or study.space goes in brackets: "
        "--set 'study.grid[loss.scale]=[1, 2]', --set 'study.space[loss.scale].high=3'; "
        "a key that every trial sets (one the grid sweeps, the space searches, train.seed) is "
        "refused",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="finish an interrupted study; recorded trials are not run again (failed ones "
        "are, up to study.retries); not with --overwrite",
    )
    p.add_argument(
        "--accept-changes",
        action="store_true",
        help="with --resume: keep recorded trials although the study file changed them",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="move the study's existing records and report folders aside (to <folder>.replaced-"
        "<UTC time>, never deleted), then start over; not with --resume",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the trials, the resources each asks for, the disk estimate and check that "
        "the data is there and that the records and report folders may be used, as the run "
        "checks them (nothing is trained or written)",
    )
    p.add_argument(
        "--status",
        action="store_true",
        help="where the study stands (recorded, running, left, best so far, ETA), read from its "
        "records folder; writes nothing, so it is safe from another terminal while it runs",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="regenerate the report from stored records, without training",
    )
    p.add_argument(
        "--secondary",
        metavar="NAME",
        help="with --report-only: rebuild only the secondary analysis NAME declared in "
        "report.secondary (its own report and Holm family); --report-only alone rebuilds the "
        "primary report and every secondary one",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="shrink the study to try it out: at most 2 epochs of 2 steps, batches of 32, 40 "
        "images a class, 200 test images, 4 search trials, images at most 64 pixels, 1 CPU a "
        "trial, records in runs/<name>-smoke; on a machine with CUDA the GPUs per trial and "
        "train.device are kept (it runs on the GPU), without CUDA it runs on the CPU",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help=(
            "quiet: no live progress bar and no status lines, only a line per finished trial "
            "(for CI)"
        ),
    )
    p.add_argument(
        "--plan-seeds",
        action="store_true",
        help="print the minimum detectable effect and the seeds needed (no training); the sd "
        "of paired differences comes from the study's records (a pilot) or --sd",
    )
    p.add_argument(
        "--effect",
        type=number(float, low=0, above=True),
        action="append",
        help="with --plan-seeds: a target effect (difference in the study metric) to plan "
        "seeds for (repeatable)",
    )
    p.add_argument(
        "--sd",
        type=number(float, low=0, above=True),
        help="with --plan-seeds: the assumed sd of paired differences (wins over the records)",
    )
    return p


def _refused(a: argparse.Namespace) -> str | None:
    """Flags that cannot be honoured together (one line), or None."""
    if a.resume and a.overwrite:
        return "--resume and --overwrite contradict each other; give one"
    lone = [f for f, v in (("--effect", a.effect), ("--sd", a.sd)) if v is not None]
    if lone and not a.plan_seeds:
        return f"{' and '.join(lone)} only apply with --plan-seeds"
    if a.accept_changes and not a.resume:
        return "--accept-changes only applies with --resume"
    if a.secondary is not None and not a.report_only:
        return "--secondary only applies with --report-only"
    modes = [
        f
        for f, v in (
            ("--dry-run", a.dry_run),
            ("--report-only", a.report_only),
            ("--plan-seeds", a.plan_seeds),
            ("--status", a.status),
        )
        if v
    ]
    if len(modes) > 1:
        return f"{' and '.join(modes)}: give one of them"
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status.

    SIGTERM (a scheduler's stop, ``kill``) is handled as Ctrl-C while it runs: finished trials
    kept, the ``--resume`` command printed (130).
    """
    with sigterm_as_ctrl_c():
        return _main(argv)


def _main(argv: list[str] | None = None) -> int:
    """The command; see :func:`main`."""
    try:
        a = _parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2, one line already printed)
        return int(stop.code or 0)
    refused = _refused(a)
    if refused:
        print(f"error: python -m rcl_study.run: {refused} (see --help)", file=sys.stderr)
        return 2
    from rcl_study.data import DataError
    from rcl_study.store import FolderError, disk_error
    from rcl_study.study.checks import (
        StudyExists,
        check_folders,
        check_machine,
        check_run_folders,
        check_study,
    )
    from rcl_study.study.lock import StudyLocked
    from rcl_study.study.runner import absolute_paths, apply_smoke, dry_run_text

    cfg, running = None, False
    try:
        cfg = load_study(a.study, a.overrides)
        check_overrides_used(cfg, a.overrides, a.study)
        if a.smoke:
            cfg = apply_smoke(cfg)
        cfg = absolute_paths(cfg)  # each user path resolved once: what is checked is used
        if a.status:
            from rcl_study.study.status import read_status, status_text

            print(status_text(read_status(cfg)))
            return 0
        plans = check_study(cfg)
        if a.plan_seeds:
            from rcl_study.report.plan import rounds_lines, study_plan
            from rcl_study.report.power import plan_lines
            from rcl_study.report.shipped import records_folder
            from rcl_study.report.table import bounds

            source, note = records_folder(cfg) if a.sd is None else (cfg.output_dir, None)
            if note:
                print(note, file=sys.stderr)
            plan = study_plan(cfg, a.sd, a.effect, source)
            lines = plan_lines(plan, bounds(cfg.study.metric))
            lines += rounds_lines(cfg, plan.sd, a.effect, plan.family)
            print("\n".join(lines))
            return 0
        if a.dry_run:  # a plan may be made on a laptop for a GPU box: machine checks are notes
            from rcl_study.study.tracking import check_tracking

            check_tracking(cfg)  # a tracker's package missing: refused here as by the run
            print(dry_run_text(cfg, plans))
            from rcl_study.data.load import check_data_present

            check_data_present(cfg.data)
            try:  # the folders as the run checks them (reads only): refused here as there
                check_run_folders(cfg, a.resume, a.overwrite)
            except StudyExists as err:
                print(f"note: {err}")
            try:
                check_machine(cfg)
            except ConfigError as err:
                print(f"note: this machine could not run it: {str(err).split(': ', 2)[-1]}")
            return 0
        if a.report_only:
            if a.secondary is not None:
                cfg.secondary(a.secondary)  # a name not declared: one line, exit 2
            check_folders(cfg, report_only=True)  # the one check: records read, reports written
            return _report(cfg, a.study, a.secondary)
        check_machine(cfg)
        from rcl_study.data import load_data

        load_data(cfg.data, cfg.train.seed)  # fail early, before Ray starts: data missing
        from rcl_study.study.runner import make_executor, run_study

        if cfg.resources.executor == "ray":
            from rcl_study.study.cluster import ClusterError
        else:  # the local executor never imports Ray
            ClusterError = ()  # type: ignore[assignment,misc]  # noqa: N806

        t0, running = time.time(), True  # a disk error from here on: finish with --resume
        try:
            records = run_study(
                cfg,
                resume=a.resume,
                overwrite=a.overwrite,
                progress=not a.no_progress,
                accept_changes=a.accept_changes,
                # Ray's private instance stops while the report is built
                executor=make_executor(cfg, stop_in_background=True),
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
    except FolderError as err:  # a link, FIFO, folder... where a toolkit file belongs
        print(f"error: {a.study}: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        disk = disk_error(err)  # no space, a quota or a file-size limit, however it came up
        if disk is None:
            raise
        if running and cfg is not None:
            return _interrupted(cfg, a, f"error: {a.study}: {disk}; ")
        print(f"error: {a.study}: {disk}", file=sys.stderr)
        return 2
    try:
        status = _report(cfg, a.study)
    except Exception as err:  # noqa: BLE001 - the records are safe; say so in one line
        why = disk_error(err) or f"{type(err).__name__}: {err}"
        print(
            f"error: {a.study}: the report could not be written ({why}); "
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


def _interrupted(cfg, a: argparse.Namespace, why: str = "interrupted: ") -> int:
    """Ctrl-C (or ``why``): say how many trials are recorded and how to finish them; 130."""
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
        f"{why}{n}{f' of {planned}' if planned else ''} trials recorded in "
        f"{cfg.output_dir}; finish with: {shlex.join(cmd)}",
        file=sys.stderr,
    )
    return 130


def _report(cfg, study_path: str, secondary: str | None = None) -> int:
    """Write the report (and every secondary one), or only the secondary analysis named."""
    if secondary is not None:
        from rcl_study.report.render import secondary_config

        return _one_report(secondary_config(cfg, secondary), study_path, cfg, secondary)
    status = _one_report(cfg, study_path)
    for sec in cfg.report.secondary if status == 0 else ():
        from rcl_study.report.render import secondary_config

        status = _one_report(secondary_config(cfg, sec.name), study_path, cfg, sec.name)
    return status


def _one_report(view, study_path: str, cfg=None, secondary: str | None = None) -> int:
    """Write one report; ``view`` is the study as this report reads it (its report folder)."""
    from rcl_study.report.render import write_report
    from rcl_study.report.shipped import records_folder
    from rcl_study.trials.folder import DAMAGED, StudyFolder

    cfg = cfg or view
    source, note = records_folder(view, (cfg.report_dir,))
    if note:
        print(note, file=sys.stderr)
    folder = StudyFolder(source)
    read = folder.read()  # once: the report is built from these records
    plan, why = folder.checked_plan()
    if why:
        print(f"note: {why}", file=sys.stderr)
    if read.damaged:
        shown = "; ".join(d.note() for d in read.damaged[:5])
        more = f"; and {len(read.damaged) - 5} more" if len(read.damaged) > 5 else ""
        print(
            f"note: {folder.records_path}: {len(read.damaged)} damaged line(s) left out of the "
            f"report and kept in the file ({shown}{more}); --resume moves them to {DAMAGED} "
            "and runs their trials again",
            file=sys.stderr,
        )
    if not read.records:
        print(
            f"error: {study_path}: no records in {view.output_dir}; run the study first",
            file=sys.stderr,
        )
        return 2
    path = write_report(cfg, study_path, source, view.report_dir, secondary, (read, plan))
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
