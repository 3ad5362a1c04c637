"""Which report each study writes from its records: one entry per study name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from fussbench.errors import FussbenchError
from fussbench.params import Params
from fussbench.reporting.comparison import comparison_report
from fussbench.reporting.privacy import privacy_report
from fussbench.reporting.robustness import robustness_report

StudyReport = Callable[[Params, pd.DataFrame], Path]
"""Writes a study's report from its params and records; returns the report's folder."""

REPORTS: dict[str, StudyReport] = {
    "robustness": robustness_report,
    "baselines": comparison_report,
    "paper_converged": comparison_report,
    "privacy": privacy_report,
}
"""Study name (``study.name``) -> its report."""


def study_report(params: Params) -> StudyReport:
    """The report of the study ``params`` name.

    Raises:
        FussbenchError: no report is registered under ``study.name``.
    """
    name = params.study.name
    if name not in REPORTS:
        raise FussbenchError(f"study.name {name!r} has no report; valid: {', '.join(REPORTS)}")
    return REPORTS[name]
