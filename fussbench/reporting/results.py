"""Gather every run's ``metrics.json`` into one table, and summarise it over seeds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

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
    "n_clients",
    "rounds",
    "local_steps",
    "bytes_up_per_client_round",
    "bytes_down_per_client_round",
    "backbone_to_round_ratio",
    "final_min_centroid_distance",
    "failed_client_rounds",
    "seconds",
    "labels",
    "collapsed",
    "status",
]
"""Columns of ``reports/results.csv``, one row per (setup, method, seed)."""


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
        "status": "ok",
    }


def collect_runs(
    runs: Path, setups: Sequence[str], methods: Sequence[str], seeds: Sequence[int]
) -> pd.DataFrame:
    """One row per expected run; a run without ``metrics.json`` has status "missing"."""
    rows = []
    for setup in setups:
        for method in methods:
            for seed in seeds:
                path = runs / setup / method / f"seed{seed}" / "metrics.json"
                if path.is_file():
                    rows.append(_row(json.loads(path.read_text(encoding="utf-8"))))
                else:
                    rows.append(
                        {"setup": setup, "method": method, "seed": seed, "status": "missing"}
                    )
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count over seeds of mIoU and accuracy per (setup, method)."""
    done = results[results["status"] == "ok"]
    grouped = done.groupby(["setup", "method"], sort=False)
    summary = grouped.agg(
        miou_mean=("miou", "mean"),
        miou_std=("miou", "std"),
        accuracy_mean=("accuracy", "mean"),
        accuracy_std=("accuracy", "std"),
        seeds=("seed", "count"),
    )
    return summary.reset_index()


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
