"""Stage ``stats``: paired significance tests between methods, per setup.

Reads ``<reports_dir>/results.csv`` (from ``collect``) and each run's ``images.csv`` under
``runs/``; writes ``<reports_dir>/significance.csv`` and ``significance.md``
(:mod:`fussbench.stats.significance`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fussbench.params import Params
from fussbench.paths import RUNS
from fussbench.stats.significance import write_significance


def run(params: Params) -> pd.DataFrame:
    """Test the comparison in ``params.reports_dir`` with the settings of ``stats:``;
    return the table written to ``significance.csv``."""
    reports = Path(params.reports_dir)
    settings = params.stats
    return write_significance(
        reports / "results.csv",
        RUNS,
        reports,
        settings.n_resamples,
        settings.seed,
        settings.primary,
        settings.primary_test,
        settings.alpha,
    )
