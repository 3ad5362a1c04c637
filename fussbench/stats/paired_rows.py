"""The rows of ``significance.csv``: its columns, and the rows of one pair of samples.

One row per comparison, pairing and test; the summary (pairs, mean difference A − B and
its bootstrap CI) repeats on the row of every test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fussbench.stats.tests import bootstrap_mean_ci, paired_tests

COLUMNS = [
    "family",
    "hypothesis",
    "dataset",
    "partition",
    "setup",
    "method_a",
    "method_b",
    "pairing",
    "alternative",
    "n_pairs",
    "mean_diff",
    "ci_low",
    "ci_high",
    "test",
    "p_value",
    "p_holm",
    "p_holm_opposite",
    "verdict",
    "note",
]
"""Columns of ``significance.csv``: one row per comparison, pairing and test.

``family`` is ``primary`` or ``exploratory``; ``hypothesis`` the primary hypothesis's id;
``alternative`` ``greater`` (primary: is A above B?) or ``two-sided``; ``p_holm_opposite``
the Holm-adjusted p of the opposite one-sided claim (primary rows only); ``verdict`` is set
on the row of the pre-registered test of each primary hypothesis.
"""

PRIMARY = "primary"
EXPLORATORY = "exploratory"
"""The two values of ``family``."""

LEVEL = 0.95
"""Confidence level of the bootstrap CI of the mean difference."""

NUMBER_COLUMNS = ["mean_diff", "ci_low", "ci_high", "p_value", "p_holm", "p_holm_opposite"]
"""Columns of :data:`COLUMNS` that hold floats (NaN where missing)."""


def paired_test_rows(
    a: np.ndarray, b: np.ndarray, n_resamples: int, seed: int, alternative: str
) -> list[dict[str, object]]:
    """The summary and one row per test of the paired samples ``a``, ``b`` (shape (n,)).

    The summary is ``n_pairs`` = n, ``mean_diff`` = mean(a − b) and its :data:`LEVEL`
    percentile-bootstrap CI (``ci_low``, ``ci_high``; None below two pairs); each test adds
    ``test``, ``p_value`` and ``note`` (:func:`~fussbench.stats.tests.paired_tests`).
    """
    diffs = a - b
    mean = float(diffs.mean()) if diffs.size else None
    low, high = (None, None)
    if diffs.size > 1:
        low, high = bootstrap_mean_ci(diffs, n_resamples, seed, LEVEL)
    summary = {"n_pairs": diffs.size, "mean_diff": mean, "ci_low": low, "ci_high": high}
    return [
        {**summary, "test": result.test, "p_value": result.p_value, "note": result.note}
        for result in paired_tests(a, b, alternative)
    ]


def as_table(rows: list[dict[str, object]]) -> pd.DataFrame:
    """``rows`` as a table with every column of :data:`COLUMNS` (plus any helper columns),
    numbers as float64 (NaN where missing) and text as str."""
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    frame = frame.astype({name: np.float64 for name in NUMBER_COLUMNS})
    return frame.fillna({"note": "", "verdict": "", "hypothesis": ""})


def final_miou(ok: pd.DataFrame) -> pd.DataFrame:
    """Final mIoU of one setup's ok runs, seeds × methods, NaN where a run is not ok."""
    return ok.pivot(index="seed", columns="method", values="miou").sort_index()
