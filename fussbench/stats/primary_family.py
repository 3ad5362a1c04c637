"""The primary family's evaluation: each pre-registered hypothesis of ``stats.primary``
(:mod:`fussbench.stats.primary`) tested on each setup it names, and the verdicts.

Every hypothesis claims A > B in final mIoU, so both tests are one-sided (alternative
``greater``), paired over the seeds both methods ran. Holm's correction runs over every
hypothesis that was run, across setups, per test: one family. With p⁺ the Holm-adjusted p
of A > B and p⁻ that of the opposite claim B > A over the same family, the verdict of the
pre-registered test is :func:`~fussbench.stats.primary.verdict` (p⁺, p⁻, alpha). With n
non-zero differences the one-sided exact Wilcoxon p cannot go below 1/2^n; a note says when
no outcome of n pairs could reach alpha after Holm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fussbench.errors import FussbenchError
from fussbench.stats.formatting import format_p
from fussbench.stats.paired_rows import COLUMNS, PRIMARY, as_table, final_miou, paired_test_rows
from fussbench.stats.primary import (
    NOT_RUN,
    Target,
    best_holm_wilcoxon,
    holm_whole_family,
    parse_primary,
    targets,
    verdict,
)
from fussbench.stats.tests import GREATER, LESS, T_TEST, WILCOXON, paired_tests

PRIMARY_TESTS = (WILCOXON, T_TEST)
"""The tests ``stats.primary_test`` may pre-register."""


def check_primary_settings(test: str, alpha: float) -> None:
    """Raise unless ``test`` is one of :data:`PRIMARY_TESTS` and 0 < ``alpha`` < 1.

    Raises:
        FussbenchError: naming the param (``stats.primary_test`` or ``stats.alpha``).
    """
    if test not in PRIMARY_TESTS:
        raise FussbenchError(f"stats.primary_test must be one of {PRIMARY_TESTS}, got {test!r}")
    if not 0.0 < alpha < 1.0:
        raise FussbenchError(f"stats.alpha must lie strictly between 0 and 1, got {alpha}")


def _target_rows(
    target: Target, ok: pd.DataFrame, n_resamples: int, seed: int, test: str
) -> list[dict[str, object]]:
    """The rows of one primary hypothesis on one setup: one per test, or a single "not run"
    row of the pre-registered ``test``. ``ok`` holds every ok run of the results.

    Each row carries ``p_opposite`` (the one-sided p of B > A) and ``nonzero`` (non-zero
    differences), which :func:`_primary_holm` uses and drops.
    """
    runs = ok[ok["setup"] == target.setup]
    first = runs.iloc[0] if len(runs) else None
    row: dict[str, Any] = {
        "family": PRIMARY,
        "hypothesis": target.hypothesis.id,
        "dataset": (target.hypothesis.dataset or "") if first is None else first.dataset,
        "partition": "" if first is None else first.partition,
        "setup": target.setup,
        "method_a": target.method_a,
        "method_b": target.method_b,
        "pairing": "seeds",
        "alternative": GREATER,
        "verdict": "",
    }
    if target.missing:
        untested = {"n_pairs": 0, "test": test, "p_opposite": None, "nonzero": 0}
        return [{**row, **untested, "verdict": NOT_RUN, "note": target.missing}]
    both = final_miou(runs)[[target.method_a, target.method_b]].dropna()
    a, b = both[target.method_a].to_numpy(), both[target.method_b].to_numpy()
    opposite = {result.test: result.p_value for result in paired_tests(a, b, LESS)}
    nonzero = int(np.count_nonzero(a - b))
    return [
        {**row, **tested, "p_opposite": opposite[tested["test"]], "nonzero": nonzero}
        for tested in paired_test_rows(a, b, n_resamples, seed, GREATER)
    ]


def _join(*notes: str) -> str:
    """The non-empty ``notes``, joined by "; "."""
    return "; ".join(note for note in notes if note)


def _unreachable_note(nonzero: int, best: float, alpha: float) -> str:
    """The note of a hypothesis whose best possible Holm-adjusted Wilcoxon p is ``best``."""
    if best < alpha:
        return ""
    return (
        f"cannot reach alpha = {alpha:g} with {nonzero} pairs: the smallest one-sided "
        f"Wilcoxon p is 1/2^{nonzero} = {format_p(2.0**-nonzero)}, at best {format_p(best)} "
        "after Holm"
    )


def _primary_holm(
    frame: pd.DataFrame, targets_found: Sequence[Target], test: str, alpha: float
) -> pd.DataFrame:
    """The primary rows of :func:`_target_rows` with Holm over the whole family (per test,
    both directions), the verdict on each row of the pre-registered ``test``, and a note
    where ``n`` pairs cannot reach ``alpha``."""
    frame = frame.copy()
    run = frame["verdict"] != NOT_RUN
    for _, group in frame[run].groupby("test", sort=False):
        frame.loc[group.index, "p_holm"] = holm_whole_family(list(group["p_value"]))
        frame.loc[group.index, "p_holm_opposite"] = holm_whole_family(list(group["p_opposite"]))
    deciding = frame[run & (frame["test"] == test)]
    nonzero = list(deciding["nonzero"].astype(int))
    # only the Wilcoxon test has a floor; the t-test can reach any p
    best = best_holm_wilcoxon(nonzero) if test == WILCOXON else np.zeros(len(nonzero))
    for (index, row), best_p in zip(deciding.iterrows(), best, strict=True):
        frame.loc[index, "verdict"] = verdict(row["p_holm"], row["p_holm_opposite"], alpha)
        unreachable = _unreachable_note(int(row["nonzero"]), best_p, alpha)
        frame.loc[index, "note"] = _join(row["note"], unreachable)
    choices = {(t.hypothesis.id, t.setup): t.choice for t in targets_found}
    for index, row in frame[run].iterrows():
        frame.loc[index, "note"] = _join(choices[(row["hypothesis"], row["setup"])], row["note"])
    return frame


def primary_family(
    ok: pd.DataFrame,
    hypotheses: Sequence[Mapping[str, Any]],
    n_resamples: int,
    seed: int,
    test: str,
    alpha: float,
) -> tuple[pd.DataFrame, list[Target]]:
    """The primary rows (columns :data:`~fussbench.stats.paired_rows.COLUMNS`) and the
    targets they test.

    Args:
        ok: every ok run of ``results.csv``.
        hypotheses: the entries of ``stats.primary``
            (:func:`~fussbench.stats.primary.parse_primary`).
        test: the pre-registered test whose Holm-adjusted p gives the verdicts.
        alpha: the significance level of the verdicts.
    """
    datasets = dict(zip(ok["setup"], ok["dataset"], strict=True))
    means = {
        setup: runs.groupby("method")["miou"].mean().to_dict()
        for setup, runs in ok.groupby("setup")
    }
    found = targets(parse_primary(hypotheses), datasets, means)
    rows = [row for target in found for row in _target_rows(target, ok, n_resamples, seed, test)]
    frame = _primary_holm(as_table(rows), found, test, alpha) if rows else as_table([])
    return frame[COLUMNS], found
