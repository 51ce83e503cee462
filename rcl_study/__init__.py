"""rcl_study: hyperparameter studies and ablations of Rebalanced Contrastive Learning.

The public API, one name per stage of the data flow (study file -> trials -> records -> report)::

    from rcl_study import load_study, run_study, StudyFolder, write_report

    study = load_study("studies/quickstart.yaml", ["study.seeds=[0,1]"])
    records = run_study(study, resume=True)           # list of TrialRecord
    StudyFolder(study.output_dir).records()           # the same, read back
    StudyFolder(study.output_dir).dataframe()         # a pandas table, one row per trial
    write_report(study, "studies/quickstart.yaml")    # reports/quickstart/index.md

Names are imported on first use, so ``import rcl_study`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rcl_study.config import ConfigError, StudyFile, load_study
    from rcl_study.report.render import write_report
    from rcl_study.study.runner import run_study
    from rcl_study.trials.folder import StudyFolder
    from rcl_study.trials.records import TrialPlan, TrialRecord, TrialStatus

_PUBLIC = {
    "ConfigError": "rcl_study.config",
    "StudyFile": "rcl_study.config",
    "load_study": "rcl_study.config",
    "run_study": "rcl_study.study.runner",
    "StudyFolder": "rcl_study.trials.folder",
    "TrialPlan": "rcl_study.trials.records",
    "TrialRecord": "rcl_study.trials.records",
    "TrialStatus": "rcl_study.trials.records",
    "write_report": "rcl_study.report.render",
}

__all__ = [
    "ConfigError",
    "StudyFile",
    "StudyFolder",
    "TrialPlan",
    "TrialRecord",
    "TrialStatus",
    "load_study",
    "run_study",
    "write_report",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'rcl_study' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value
