"""The main command: ``python -m rcl_study.run STUDY.yaml [options]``.

Runs every trial of a study through Ray Tune, records each one, and writes the report to
``reports/<study>/``. Exit status: 0 done; 1 the study ran but no trial succeeded; 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
import time

from .config import ConfigError, load_study


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    a = _parser().parse_args(argv)
    from .data import DataError
    from .study.runner import StudyExists, apply_smoke, check_machine, check_study, dry_run_text

    cfg = None
    try:
        cfg = load_study(a.study, a.overrides)
        if a.smoke:
            cfg = apply_smoke(cfg)
        check_study(cfg)
        if a.dry_run:  # a plan may be made on a laptop for a GPU box: machine checks are notes
            print(dry_run_text(cfg))
            try:
                check_machine(cfg)
            except ConfigError as err:
                print(f"note: this machine could not run it: {str(err).split(': ', 2)[-1]}")
            return 0
        if a.report_only:
            return _report(cfg, a.study)
        check_machine(cfg)
        from .data import load_data

        load_data(cfg.data)  # fail early, before Ray starts, when the data is missing
        from .study.runner import run_study

        if cfg.resources.executor == "ray":
            from .study.tune import ClusterError
        else:  # the local executor never imports Ray
            ClusterError = ()  # type: ignore[assignment,misc]  # noqa: N806

        t0 = time.time()
        try:
            records = run_study(
                cfg, resume=a.resume, overwrite=a.overwrite, progress=not a.no_progress
            )
        except ClusterError as err:
            print(f"error: {a.study}: {err}", file=sys.stderr)
            return 2
    except (ConfigError, DataError, StudyExists) as err:
        msg = str(err).splitlines()[0]
        for name in {cfg.name, cfg.name.removesuffix("-smoke")} if cfg else ():
            if msg.startswith(f"{name}: "):  # errors found after loading name the file too
                msg = f"{a.study}: {msg[len(name) + 2 :]}"
        print(f"error: {msg}", file=sys.stderr)
        return 2
    status = _report(cfg, a.study)
    ok = sum(r["status"] == "ok" for r in records)
    print(
        f"{len(records)} trials recorded ({ok} ok) in {time.time() - t0:.0f}s; "
        f"records in {cfg.output_dir}",
        file=sys.stderr,
    )
    return status if ok else 1


def _report(cfg, study_path: str) -> int:
    from .report.render import write_report
    from .study.records import load_records

    if not load_records(cfg.output_dir):
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
