"""FedCC's gain over FedAvg against skew: the table, its orientation and the report's use."""

from __future__ import annotations

import pandas as pd
import pytest

from fussbench.reporting.heterogeneity import (
    GAIN_COLUMNS,
    heterogeneity_figure,
    heterogeneity_table,
    plottable,
    skew_gains,
)

SIGNIFICANCE_COLUMNS = [
    "setup", "pairing", "method_a", "method_b", "n_pairs", "mean_diff", "ci_low", "ci_high", "test",
]  # fmt: skip


def results(setups: dict[str, tuple[str, float, float]]) -> pd.DataFrame:
    """Two seeds of fedavg and fedcc_kmeans per setup: setup -> (dataset, label, feature skew)."""
    rows = [
        {
            "dataset": dataset,
            "setup": setup,
            "method": method,
            "seed": seed,
            "miou": 20.0,
            "label_skew_js": label,
            "feature_skew_cosine": feature,
            "status": "ok",
        }
        for setup, (dataset, label, feature) in setups.items()
        for method in ("fedavg", "fedcc_kmeans")
        for seed in (0, 1)
    ]
    return pd.DataFrame(rows)


def significance(rows: list[list[object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=SIGNIFICANCE_COLUMNS)


def test_gains_orient_every_pair_as_fedcc_minus_fedavg_and_carry_both_skews() -> None:
    frame = results({"low": ("camvid", 0.01, 0.10), "high": ("camvid", 0.05, 0.30)})
    tests = significance(
        [
            ["low", "seeds", "fedcc_kmeans", "fedavg", 2, 1.5, 0.5, 2.5, "wilcoxon"],
            ["low", "seeds", "fedcc_kmeans", "fedavg", 2, 1.5, 0.5, 2.5, "t-test"],
            ["high", "seeds", "fedavg", "fedcc_kmeans", 2, 3.0, 1.0, 4.0, "wilcoxon"],
            ["high", "images", "fedcc_kmeans", "fedavg", 99, 9.0, 8.0, 10.0, "wilcoxon"],
        ]
    )
    gains = skew_gains(frame, tests)
    assert list(gains.columns) == GAIN_COLUMNS
    kmeans = gains[gains["method"] == "fedcc_kmeans"].set_index("setup")
    assert list(kmeans.index) == ["low", "high"]  # sorted by label skew
    assert kmeans.loc["low", ["gain", "ci_low", "ci_high"]].tolist() == [1.5, 0.5, 2.5]
    assert kmeans.loc["high", ["gain", "ci_low", "ci_high"]].tolist() == [-3.0, -4.0, -1.0]
    assert kmeans.loc["high", ["label_skew_js", "feature_skew_cosine"]].tolist() == [0.05, 0.30]
    assert (gains["method"] == "fedcc_maximin").sum() == 0  # not in the significance table


def test_a_dataset_with_one_setup_shows_no_trend() -> None:
    frame = results({"a": ("camvid", 0.01, 0.1), "b": ("camvid", 0.02, 0.2), "t": ("tile", 0, 0)})
    tests = significance(
        [
            [setup, "seeds", "fedcc_kmeans", "fedavg", 2, 1.0, 0.0, 2.0, "wilcoxon"]
            for setup in "abt"
        ]
    )
    assert sorted(plottable(skew_gains(frame, tests))["setup"]) == ["a", "b"]


def test_table_and_figure_render_the_gains() -> None:
    frame = results({"a": ("camvid", 0.01, 0.1), "b": ("camvid", 0.02, 0.2)})
    tests = significance(
        [
            ["a", "seeds", "fedcc_kmeans", "fedavg", 2, 1.25, 0.5, 2.0, "wilcoxon"],
            ["b", "seeds", "fedcc_kmeans", "fedavg", 2, -0.75, -1.0, 0.5, "wilcoxon"],
        ]
    )
    gains = skew_gains(frame, tests)
    table = heterogeneity_table(gains, "3 rounds × 50 local steps, seeds 0-1")
    assert table.markdown.startswith("3 rounds × 50 local steps, seeds 0-1")
    assert "| +1.25 | [+0.50, +2.00] | 0.010 | 0.100 |" in table.markdown
    assert "| -0.75 | [-1.00, +0.50] | 0.020 | 0.200 |" in table.markdown
    assert pd.read_csv(pd.io.common.StringIO(table.csv))["gain"].tolist() == pytest.approx(
        [1.25, -0.75]
    )
    figure = heterogeneity_figure(gains, "camvid")
    assert [axis.get_xlabel().split(" ")[0] for axis in figure.axes] == ["label", "feature"]
