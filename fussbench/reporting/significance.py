"""``significance.md``: the significance tests of ``significance.csv`` as a Markdown page.

The budget and the bootstrap's settings first; then the primary family, one line per
hypothesis and setup with both tests and the verdict, below the text that states how the
verdicts are reached; then one table per setup and pairing of the exploratory comparisons.
A p-value cell is ``p (Holm-adjusted p)``. (The report's own table of the same file is
:func:`fussbench.reporting.tables.significance_table`.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fussbench.stats.formatting import MISSING, format_difference, format_p
from fussbench.stats.paired_rows import EXPLORATORY, PRIMARY
from fussbench.stats.primary import NOT_RUN, TOKENS
from fussbench.stats.tests import T_TEST, WILCOXON


def _p_cell(row: pd.Series | None) -> str:
    """``"0.0312 (0.125)"``: the p-value and its Holm-adjusted p; :data:`MISSING` without."""
    if row is None or np.isnan(row["p_value"]):
        return MISSING
    return f"{format_p(row['p_value'])} ({format_p(row['p_holm'])})"


def _diff_cell(row: pd.Series) -> str:
    return format_difference(row["mean_diff"], row["ci_low"], row["ci_high"])


def _note_cell(tests: dict[str, pd.Series]) -> str:
    """The notes of one comparison's tests: one note when every test has the same, else
    each note prefixed by its test."""
    notes = {name: row["note"] for name, row in tests.items() if row["note"]}
    if len(set(notes.values())) == 1 and len(notes) == len(tests):
        return next(iter(notes.values()))
    return "; ".join(f"{name}: {note}" for name, note in notes.items())


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _primary_table(group: pd.DataFrame) -> list[str]:
    """Markdown lines of the primary family: one line per hypothesis and setup."""
    lines = [
        "| hypothesis | setup | claim (A > B) | pairs | mean diff [95% CI] | "
        "Wilcoxon p (Holm) | t-test p (Holm) | verdict | note |",
        "| --- | --- | --- | ---: | --- | --- | --- | --- | --- |",
    ]
    keys = ["hypothesis", "setup", "method_a", "method_b"]
    for (name, setup, method_a, method_b), rows in group.groupby(keys, sort=False):
        tests = {row["test"]: row for _, row in rows.iterrows()}
        first = rows.iloc[0]
        cells = [
            name,
            setup or MISSING,
            f"{method_a} > {method_b}",
            str(first["n_pairs"]),
            _diff_cell(first),
            _p_cell(tests.get(WILCOXON)),
            _p_cell(tests.get(T_TEST)),
            "".join(rows["verdict"]),
            _note_cell(tests),
        ]
        lines.append(_line(cells))
    return lines


def _exploratory_table(group: pd.DataFrame) -> list[str]:
    """Markdown lines of one setup and pairing: one line per comparison."""
    lines = [
        "| A | B | pairs | mean diff [95% CI] | Wilcoxon p (Holm) | t-test p (Holm) | note |",
        "| --- | --- | ---: | --- | --- | --- | --- |",
    ]
    for (method_a, method_b), rows in group.groupby(["method_a", "method_b"], sort=False):
        tests = {row["test"]: row for _, row in rows.iterrows()}
        first = rows.iloc[0]
        cells = [
            method_a,
            method_b,
            str(first["n_pairs"]),
            _diff_cell(first),
            _p_cell(tests[WILCOXON]),
            _p_cell(tests[T_TEST]),
            _note_cell(tests),
        ]
        lines.append(_line(cells))
    return lines


def _primary_text(primary: pd.DataFrame, test: str, alpha: float) -> str:
    """The paragraph above the primary table: the family, its tests and the verdict rules."""
    tested = primary[(primary["verdict"] != NOT_RUN) & (primary["test"] == test)]
    tokens = "; ".join(
        f"`{token}` is whichever of {' / '.join(methods)} has the higher mean mIoU over the "
        "seeds of that setup, chosen on the same results it is then tested on (a choice that "
        "favours the claim)"
        for token, methods in TOKENS.items()
    )
    return (
        "Fixed in `stats.primary` (params.yaml) before any result existed. Each hypothesis "
        "claims that A has a higher final mIoU than B, so both tests are **one-sided** "
        "(alternative: A − B > 0), paired over the seeds both methods ran. The "
        f"pre-registered {test} test decides; the other is shown for information. Holm's "
        f"correction runs over all {len(tested)} primary hypotheses that were run, across "
        "setups: one family (a hypothesis run with too few pairs to test counts as p = 1). "
        f"Verdict: **supported** when the Holm-adjusted one-sided p is below α = {alpha:g}; "
        "**not supported** when the same test of the opposite claim (B > A), Holm-adjusted "
        "over the same family, is below α; **inconclusive** otherwise; **not run** when the "
        f"results lack a setup or method. {tokens}. With n non-zero differences the one-sided "
        "exact Wilcoxon p cannot go below 1/2^n; the note says when no outcome of that many "
        "pairs could reach α after Holm."
    )


EXPLORATORY_TEXT = (
    "Every other comparison: each federated method against `local` and against `fedavg`, "
    "and the FedCC variants against each other, on paired mIoU (difference A − B, in mIoU "
    "points) with two **two-sided** tests: the Wilcoxon signed-rank test (zero differences "
    "dropped; exact null distribution for small samples) and the paired t-test. The "
    "Holm-Bonferroni correction (in brackets) runs over all comparisons of one setup, "
    "pairing and test. Pairing `seeds` pairs the final mIoU of the seeds both methods ran "
    "(a primary hypothesis is not repeated there); pairing `images` pairs each evaluation "
    "image's mIoU, averaged over those seeds (images without labelled pixels left out). The "
    "two answer different questions: seeds ask whether a method wins across training "
    "randomness; images ask whether it wins across the evaluation images of one split, "
    "which share one training and are not independent draws, so their tiny p-values "
    "overstate certainty about a new run. Bounds and reference rows (centralized, kmeans, "
    "kmeans_local, majority) are not tested."
)
"""The paragraph above the exploratory tables."""


def significance_markdown(
    frame: pd.DataFrame, budget: str, n_resamples: int, seed: int, test: str, alpha: float
) -> str:
    """``significance.md`` of the table ``frame`` (columns of ``significance.csv``).

    Args:
        budget: the first line (:func:`fussbench.reporting.results.budget_line`).
        n_resamples, seed: of the bootstrap CIs, stated under it.
        test: the pre-registered test that decides the primary verdicts.
        alpha: the level of the verdicts.
    """
    primary = frame[frame["family"] == PRIMARY]
    exploratory = frame[frame["family"] == EXPLORATORY]
    lines = [
        "# Significance of mIoU differences between methods",
        "",
        budget,
        "",
        "The 95% CI is a percentile bootstrap of the mean difference A − B in mIoU points "
        f"({n_resamples} resamples, seed {seed}).",
        "",
        "## Primary hypotheses (pre-registered, one-sided)",
        "",
    ]
    if len(primary):
        lines += [_primary_text(primary, test, alpha), "", *_primary_table(primary)]
    else:
        lines.append("None: `stats.primary` in params.yaml is empty.")
    lines += ["", "## Exploratory comparisons (two-sided)", "", EXPLORATORY_TEXT]
    for (setup, pairing), group in exploratory.groupby(["setup", "pairing"], sort=False):
        lines += ["", f"### {setup}, paired by {pairing}", "", *_exploratory_table(group)]
    return "\n".join(lines) + "\n"
