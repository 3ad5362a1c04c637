"""FedCC's gain over FedAvg against how heterogeneous the clients are, across setups.

The paper leaves open how heterogeneity should be benchmarked. fussbench measures it two
ways per setup (both columns of ``results.csv``): label skew, the mean Jensen-Shannon
divergence between each client's class histogram and the pooled one
(``label_skew_js``), and feature skew, the mean cosine distance between each client's
mean pooled feature and the pooled mean (``feature_skew_cosine``). The gain of a FedCC
variant over FedAvg is the mean paired difference over seeds with its bootstrap 95% CI,
read from ``significance.csv`` (``fussbench stats`` computed it), so the figure and the
significance table cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fussbench.reporting.tables import Block, Cell, Grid, Table, render_latex, render_markdown

GAIN_PAIRS: tuple[tuple[str, str], ...] = (
    ("fedcc_kmeans", "fedavg"),
    ("fedcc_maximin", "fedavg"),
)
"""(method, baseline): each gain the figure plots, method minus baseline."""

SKEWS: tuple[tuple[str, str], ...] = (
    ("label_skew_js", "label skew (mean JS divergence)"),
    ("feature_skew_cosine", "feature skew (mean cosine distance of client means)"),
)
"""(results.csv column, axis label) of each heterogeneity measure."""

GAIN_COLUMNS = [
    "dataset",
    "setup",
    "method",
    "baseline",
    "n_pairs",
    "gain",
    "ci_low",
    "ci_high",
    *[column for column, _ in SKEWS],
]
"""Columns of :func:`skew_gains`' table."""


def _paired_rows(significance: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """One seed-paired comparison of ``a`` against ``b`` per setup (the table repeats it
    once per test; the difference and CI are the same), oriented as ``a - b``: rows stored
    as ``b`` vs ``a`` are flipped."""
    paired = significance[significance["pairing"] == "seeds"]
    direct = paired[(paired["method_a"] == a) & (paired["method_b"] == b)]
    flipped = paired[(paired["method_a"] == b) & (paired["method_b"] == a)].copy()
    flipped["mean_diff"], flipped["ci_low"], flipped["ci_high"] = (
        -flipped["mean_diff"],
        -flipped["ci_high"],
        -flipped["ci_low"],
    )
    rows = pd.concat([direct, flipped]).drop_duplicates(subset=["setup"], keep="first")
    return rows[["setup", "n_pairs", "mean_diff", "ci_low", "ci_high"]]


def skew_gains(
    results: pd.DataFrame,
    significance: pd.DataFrame,
    pairs: Sequence[tuple[str, str]] = GAIN_PAIRS,
) -> pd.DataFrame:
    """One row per (setup, method, baseline) that both the results and the significance
    table hold: the gain (mean paired difference of final mIoU over seeds, in points), its
    95% CI and the setup's two skew measures; columns :data:`GAIN_COLUMNS`, sorted by
    dataset, method and label skew.

    Args:
        results: ``results.csv`` (one row per run; the skew columns are constant per setup).
        significance: ``significance.csv`` of ``fussbench stats``.
    """
    done = results[results["status"] == "ok"]
    skew_columns = [column for column, _ in SKEWS if column in done.columns]
    skews = done.groupby("setup")[skew_columns].mean()
    skews["dataset"] = done.groupby("setup")["dataset"].first()
    tables = []
    for method, baseline in pairs:
        rows = _paired_rows(significance, method, baseline)
        rows = rows[rows["setup"].isin(skews.index)].rename(columns={"mean_diff": "gain"})
        rows = rows.assign(method=method, baseline=baseline).join(skews, on="setup")
        tables.append(rows)
    gains = pd.concat(tables) if tables else pd.DataFrame()
    gains = gains.reindex(columns=GAIN_COLUMNS)
    return gains.sort_values(["dataset", "method", "label_skew_js"], ignore_index=True)


def plottable(gains: pd.DataFrame) -> pd.DataFrame:
    """The rows of datasets with at least two setups: one setup alone shows no trend."""
    setups_per_dataset = gains.groupby("dataset")["setup"].transform("nunique")
    return gains[setups_per_dataset >= 2]


def heterogeneity_figure(gains: pd.DataFrame, title: str) -> Figure:
    """Gain of each FedCC variant over FedAvg (mean over seeds, 95% CI as error bars)
    against label skew (left) and feature skew (right), one point per setup, one colour
    per (dataset, method); the setup's name labels each point of the first series.

    Args:
        gains: rows of :func:`skew_gains` (for example those of :func:`plottable`).
    """
    figure = Figure(figsize=(11.0, 4.5))
    axes = figure.subplots(1, len(SKEWS), sharey=True)
    series = list(gains.groupby(["dataset", "method", "baseline"], sort=True))
    for axis, (column, label) in zip(axes, SKEWS, strict=True):
        for index, ((dataset, method, baseline), rows) in enumerate(series):
            x = rows[column].to_numpy(dtype=float)
            y = rows["gain"].to_numpy(dtype=float)
            error = np.vstack(
                [y - rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float) - y]
            )
            axis.errorbar(
                x,
                y,
                yerr=error,
                fmt="o",
                capsize=3,
                color=f"C{index}",
                label=f"{dataset}: {method} − {baseline}",
            )
            if index == 0:
                for setup, x_value, y_value in zip(rows["setup"], x, y, strict=True):
                    axis.annotate(
                        setup,
                        (x_value, y_value),
                        fontsize=7,
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
        axis.axhline(0.0, color="grey", linewidth=0.8)
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("mIoU gain over FedAvg (points, 95% CI)")
    axes[0].legend(fontsize=8)
    figure.suptitle(title)
    return figure


def heterogeneity_table(gains: pd.DataFrame, budget: str) -> Table:
    """The figure's numbers, one row per (setup, method), in the report's three renderings.

    Args:
        gains: rows of :func:`skew_gains`.
        budget: the caption line (budget and seeds), as every table starts.
    """
    rows = [
        [
            Cell(row.setup),
            Cell(f"{row.method} − {row.baseline}"),
            Cell(str(int(row.n_pairs))),
            Cell(f"{row.gain:+.2f}"),
            Cell(f"[{row.ci_low:+.2f}, {row.ci_high:+.2f}]"),
            Cell(f"{row.label_skew_js:.3f}"),
            Cell(f"{row.feature_skew_cosine:.3f}"),
        ]
        for row in gains.itertuples(index=False)
    ]
    grid = Grid(
        columns=[
            "setup",
            "gain of",
            "seeds",
            "gain (mIoU)",
            "95% CI",
            "label skew",
            "feature skew",
        ],
        blocks=[Block(rows)],
        notes=[
            "gain: mean paired difference of final mIoU over seeds (significance.csv); "
            "label skew: mean JS divergence of client class histograms; feature skew: mean "
            "cosine distance of client mean features to the pooled mean"
        ],
        caption=budget,
    )
    return Table(render_markdown(grid), render_latex(grid), gains.to_csv(index=False))
