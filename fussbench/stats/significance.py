"""Paired significance tests between methods, per setup: ``significance.csv`` and
``significance.md`` from ``results.csv`` and each run's ``images.csv``.

Two families of rows:

- ``primary``: the pre-registered hypotheses of ``stats.primary``
  (:mod:`fussbench.stats.primary_family`), one-sided, paired over seeds, one Holm family
  across all setups, each with a verdict;
- ``exploratory``: every other comparison (:mod:`fussbench.stats.exploratory`),
  two-sided, with Holm per setup, pairing and test.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fussbench.atomic import write_text
from fussbench.methods import names
from fussbench.reporting.results import budget_line
from fussbench.reporting.significance import significance_markdown
from fussbench.stats.exploratory import exploratory_rows, with_holm
from fussbench.stats.inputs import read_images, read_ok_results
from fussbench.stats.paired_rows import COLUMNS, as_table
from fussbench.stats.primary_family import check_primary_settings, primary_family
from fussbench.stats.tests import ALPHA, WILCOXON


def significance(
    ok: pd.DataFrame,
    runs_dir: Path,
    n_resamples: int,
    seed: int,
    primary: Sequence[Mapping[str, Any]],
    primary_test: str,
    alpha: float,
) -> pd.DataFrame:
    """Every test row of the ok runs ``ok`` (columns :data:`~fussbench.stats.paired_rows.
    COLUMNS`): the primary family first, then each setup's exploratory comparisons, whose
    image pairing reads ``runs_dir/<setup>/<method>/seed<k>/images.csv``."""
    primary_rows, found = primary_family(ok, primary, n_resamples, seed, primary_test, alpha)
    read = functools.cache(read_images)
    rows = []
    for setup, setup_runs in ok.groupby("setup", sort=False):
        tested = {
            frozenset((t.method_a, t.method_b)) for t in found if t.setup == setup and not t.missing
        }
        rows.extend(exploratory_rows(read, runs_dir, setup_runs, n_resamples, seed, tested))
    parts = [primary_rows] if len(primary_rows) else []
    if rows:
        parts.append(with_holm(as_table(rows))[COLUMNS])
    return pd.concat(parts, ignore_index=True) if parts else as_table([])[COLUMNS]


def write_significance(
    results_csv: Path,
    runs_dir: Path,
    out_dir: Path,
    n_resamples: int = 10_000,
    seed: int = 0,
    primary: Sequence[Mapping[str, Any]] = (),
    primary_test: str = WILCOXON,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Test the primary hypotheses and every exploratory comparison of every setup in
    ``results_csv``; write ``significance.csv`` and ``significance.md`` into ``out_dir``;
    return the table (columns ``COLUMNS``, primary rows first).

    Args:
        n_resamples, seed: of the bootstrap CI of each mean difference.
        primary: the entries of ``stats.primary`` (:func:`fussbench.stats.primary.parse_primary`).
        primary_test: the pre-registered test whose Holm-adjusted p gives the verdicts.
        alpha: the significance level of the verdicts.
    """
    check_primary_settings(primary_test, alpha)
    ok = read_ok_results(Path(results_csv))
    frame = significance(ok, Path(runs_dir), n_resamples, seed, primary, primary_test, alpha)
    seeds = sorted(set(ok["seed"].astype(int)))
    budget = budget_line(ok, list(pd.unique(ok["setup"])), seeds, names("reference"))
    out_dir = Path(out_dir)
    write_text(out_dir / "significance.csv", frame.to_csv(index=False))
    text = significance_markdown(frame, budget, n_resamples, seed, primary_test, alpha)
    write_text(out_dir / "significance.md", text)
    return frame
