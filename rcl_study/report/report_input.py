"""What a report's sections read: :class:`ReportInput`."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from rcl_study.config import StudyFile
from rcl_study.report.report_stats import ReportStats
from rcl_study.trials.reading import DamagedLine
from rcl_study.trials.records import TrialRecord


@dataclass(frozen=True)
class ReportInput:
    """What the sections read: the study, its statistics, table, records and drawn figures.

    ``damaged``: the lines of the records file set aside (never counted), each with why.
    """

    cfg: StudyFile
    study_path: str
    stats: ReportStats
    table: pd.DataFrame
    records: list[TrialRecord]
    figures: list[tuple[str, str]]
    damaged: tuple[DamagedLine, ...] = ()
