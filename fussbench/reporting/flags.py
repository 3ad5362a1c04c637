"""What the tables say beside the numbers: which runs collapsed (``metrics.json``
``collapsed``: one cluster everywhere, or no better than the majority class) and which
setups had no labels to score with."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

COLLAPSED_MARK = "†"
"""Appended to a cell whose runs include a collapsed one; such a cell is never bold."""


def _true(column: pd.Series) -> pd.Series:
    """Rows whose value is True (a CSV round trip gives strings; missing gives NaN)."""
    return column.astype(str).str.lower() == "true"


def collapsed_runs(
    results: pd.DataFrame, setups: Sequence[str], seeds: Sequence[int]
) -> dict[tuple[str, str], list[int]]:
    """(setup, method) -> the seeds among ``seeds`` whose finished run is flagged collapsed."""
    if "collapsed" not in results:
        return {}
    done = results[(results["status"] == "ok") & results["seed"].isin(list(seeds))]
    flagged = done[_true(done["collapsed"]) & done["setup"].isin(list(setups))]
    runs: dict[tuple[str, str], list[int]] = {}
    for row in flagged.itertuples():
        runs.setdefault((row.setup, row.method), []).append(int(row.seed))
    return runs


def unlabelled_setups(results: pd.DataFrame, setups: Sequence[str]) -> list[str]:
    """The setups whose finished runs report no labels (``labels`` false)."""
    if "labels" not in results:
        return []
    done = results[(results["status"] == "ok") & results["labels"].notna()]
    unlabelled = done[~_true(done["labels"])]
    return [setup for setup in setups if (unlabelled["setup"] == setup).any()]


def flag_notes(collapsed: dict[tuple[str, str], list[int]], unlabelled: list[str]) -> list[str]:
    """Footnotes: the collapsed runs, and the setups without labels."""
    notes = []
    if collapsed:
        runs = "; ".join(
            f"{setup}/{method} seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
            for (setup, method), seeds in collapsed.items()
        )
        notes.append(
            f"{COLLAPSED_MARK}: collapsed (one cluster everywhere, or scores equal to the "
            "majority-class prediction; without labels, one cluster above "
            f"folder.collapse_share of the pixels), never bold: {runs}."
        )
    if unlabelled:
        notes.append(
            f"No labels were available for {', '.join(unlabelled)} (no masks): no mIoU or "
            "accuracy; each run's predictions/, clusters.csv and collapse flags in "
            "metrics.json stand in for them."
        )
    return notes
