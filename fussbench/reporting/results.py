"""Gather every run's ``metrics.json`` into one table, summarise it over seeds, and say
the training budget and seeds behind it in one line."""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fussbench.methods import parse_method
from fussbench.paths import run_dir

RESULT_COLUMNS = [
    "dataset",
    "partition",
    "setup",
    "aggregator",
    "mode",
    "weighting",
    "method",
    "seed",
    "miou",
    "accuracy",
    "label_skew_js",
    "feature_skew_cosine",
    "n_clients",
    "rounds",
    "local_steps",
    "steps_per_round",
    "bytes_up_per_client_round",
    "bytes_down_per_client_round",
    "backbone_to_round_ratio",
    "final_min_centroid_distance",
    "failed_client_rounds",
    "seconds",
    "labels",
    "collapsed",
    "status",
    "n_clusters",
    "n_clusters_final",
    "miou_hungarian",
    "accuracy_hungarian",
    "miou_majority",
    "accuracy_majority",
    "crf",
    "flip",
    "privacy",
    "epsilon",
]
"""Columns of ``reports/results.csv``, one row per (setup, method, seed).
``steps_per_round`` is empty for runs whose ``metrics.json`` does not report it.
``n_clusters`` is the param (a number, or ``auto``); ``n_clusters_final`` the number of
clusters of the evaluated model (the mean over the clients' models without aggregation);
the ``_hungarian`` and ``_majority`` scores rescore the same prediction under each matching
(empty for runs that predate them); ``crf``: whether the final predictions were refined
by the dense CRF (``evaluation.crf``); ``flip``: whether they were averaged with the
mirrored images' (``evaluation.flip``; empty for runs that predate it); ``privacy`` and
``epsilon``: the privacy mechanism and the ε it spent (empty for a run without one)."""


def _row(metrics: dict) -> dict[str, object]:
    communication = metrics.get("communication", {})
    centroids = [model.get("centroids", {}) for model in metrics["models"]]
    distances = [item["min_offdiagonal"] for item in centroids if item]
    return {
        **{key: metrics.get(key) for key in RESULT_COLUMNS},
        "bytes_up_per_client_round": communication.get("bytes_up_per_client_round"),
        "bytes_down_per_client_round": communication.get("bytes_down_per_client_round"),
        "backbone_to_round_ratio": communication.get("backbone_to_round_ratio"),
        "final_min_centroid_distance": float(np.mean(distances)) if distances else None,
        "n_clusters_final": _mean_count(metrics.get("n_clusters_final")),
        "status": "ok",
    }


def _mean_count(counts: list[int] | None) -> float | None:
    """Mean of the evaluated models' numbers of clusters; None when not recorded."""
    return float(np.mean(counts)) if counts else None


def collect_runs(
    runs: Path, setups: Sequence[str], methods: Sequence[str], seeds: Sequence[int]
) -> pd.DataFrame:
    """One row per expected run; a run without ``metrics.json`` has status "missing"."""
    rows = []
    for setup in setups:
        for method in methods:
            for seed in seeds:
                path = run_dir(runs, setup, method, seed) / "metrics.json"
                if path.is_file():
                    rows.append(_row(json.loads(path.read_text(encoding="utf-8"))))
                else:
                    rows.append(
                        {"setup": setup, "method": method, "seed": seed, "status": "missing"}
                    )
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


SUMMARY_METRICS = ("miou", "accuracy")
"""Columns of ``results.csv`` that :func:`seed_summary` summarises."""


def seed_summary(
    results: pd.DataFrame, setups: Sequence[str], methods: Sequence[str], seeds: Sequence[int]
) -> pd.DataFrame:
    """Mean, std (ddof 1) and count over the finished runs of ``seeds``, one row per
    (setup, method) of the full grid, in order.

    Args:
        results: rows of ``results.csv`` (columns setup, method, seed, miou, accuracy, status).

    Returns:
        Columns setup, method, miou_mean, miou_std, accuracy_mean, accuracy_std, n_seeds,
        expected_seeds, missing_seeds (a list of seed numbers); means are NaN without runs.
    """
    done = results[(results["status"] == "ok") & results["seed"].isin(list(seeds))]
    rows = []
    for setup in setups:
        for method in methods:
            runs = done[(done["setup"] == setup) & (done["method"] == method)]
            finished = {int(seed) for seed in runs["seed"]}
            row: dict[str, object] = {"setup": setup, "method": method}
            for metric in SUMMARY_METRICS:
                values = runs[metric].astype(float)
                row[f"{metric}_mean"] = values.mean() if len(values) else math.nan
                row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
            row["n_seeds"] = len(finished)
            row["expected_seeds"] = len(seeds)
            row["missing_seeds"] = [seed for seed in seeds if seed not in finished]
            rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (floats to 2 decimals)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:.2f}"
        return str(value)

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([header, rule, *body]) + "\n"


def seeds_phrase(seeds: Sequence[int]) -> str:
    """``"6 seeds (0-5)"``, ``"1 seed (0)"`` or ``"3 seeds (0, 2, 7)"``."""
    ordered = sorted(int(seed) for seed in seeds)
    if not ordered:
        return "no seeds"
    count = f"{len(ordered)} seed{'s' if len(ordered) > 1 else ''}"
    contiguous = len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1))
    listed = f"{ordered[0]}-{ordered[-1]}" if contiguous else ", ".join(map(str, ordered))
    return f"{count} ({listed})"


def _numbers(values: pd.Series) -> str:
    """The distinct integers of ``values`` (NaN left out), ``"3"`` or ``"3 / 5"``."""
    return " / ".join(str(int(value)) for value in sorted(pd.unique(values.dropna())))


def _setup_budget(rows: pd.DataFrame) -> str:
    """``"3 rounds × 50 local steps per client"``, plus what ``centralized`` trains per round
    when its runs report ``steps_per_round``; ``rows`` are one setup's trained ok runs."""
    text = f"{_numbers(rows['rounds'])} rounds × {_numbers(rows['local_steps'])} local steps"
    text += " per client"
    if "steps_per_round" in rows:
        pooled = rows["method"].map(lambda method: parse_method(method).spec.pools_clients)
        centralized = rows.loc[pooled, "steps_per_round"]
        if centralized.notna().any():
            text += f" (centralized: {_numbers(centralized)} steps per round on the pooled data)"
    return text


def budget_line(
    results: pd.DataFrame,
    setups: Sequence[str],
    seeds: Sequence[int],
    references: Collection[str],
) -> str:
    """One sentence with the training budget and seeds behind a table, e.g. ``"Budget: 3
    rounds × 50 local steps per client; 6 seeds (0-5)."``

    The budget is read from the ok runs in ``setups`` of trained methods (aggregators not
    in ``references``, the rows that train nothing), from the ``rounds``, ``local_steps``
    and, if present, ``steps_per_round`` columns of ``results.csv``; setups with different
    budgets are named one by one.
    """
    if not {"rounds", "local_steps"} <= set(results.columns):
        return f"Budget: not recorded (no rounds and local_steps columns); {seeds_phrase(seeds)}."
    done = results[(results["status"] == "ok") & results["setup"].isin(list(setups))]
    trained = done[~done["method"].str.split(".").str[0].isin(list(references))]
    budgets = {
        setup: _setup_budget(trained[trained["setup"] == setup])
        for setup in setups
        if (trained["setup"] == setup).any()
    }
    if not budgets:
        text = "unknown (no finished training run)"
    elif len(set(budgets.values())) == 1:
        text = next(iter(budgets.values()))
    else:
        text = "; ".join(f"{setup}: {budget}" for setup, budget in budgets.items())
    return f"Budget: {text}; {seeds_phrase(seeds)}."
