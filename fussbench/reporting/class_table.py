"""The per-class IoU table: mean ± std over seeds of every class's IoU, per method.

Which setups it shows: those whose finished runs score at most :data:`MAX_CLASSES`
classes (CamVid's 11, the magnetic tile's background / defect); datasets with more
classes (Cityscapes, COCO-Stuff's 27) would not fit a page and are left out. A run's IoU
of a class is the mean over its evaluated models (the clients' own models for ``local``,
as its mIoU is), read from each run's ``metrics.json`` (``models[*].per_class_iou``, null
for a class absent from the evaluation split).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fussbench.methods import names
from fussbench.reporting.results import budget_line
from fussbench.reporting.runs import read_metrics
from fussbench.reporting.tables import (
    Block,
    Cell,
    Grid,
    Table,
    format_cell,
    render_latex,
    render_markdown,
)
from fussbench.stats.formatting import MISSING

MAX_CLASSES = 12
"""A setup enters the table when its runs score at most this many classes."""

COLUMNS = ["setup", "method", "seed", "class", "iou"]
"""Columns of :func:`read_class_iou`."""


def _run_classes(metrics: dict) -> dict[str, float]:
    """Each class's IoU of one run (percent): the mean over its models, NaN when no model
    scores the class."""
    scores = [model.get("per_class_iou") or {} for model in metrics["models"]]
    classes = list(dict.fromkeys(name for score in scores for name in score))
    values = {}
    for name in classes:
        found = [score[name] for score in scores if score.get(name) is not None]
        values[name] = float(np.mean(found)) if found else math.nan
    return values


def read_class_iou(
    runs: Path, setups: Sequence[str], methods: Sequence[str], seeds: Sequence[int]
) -> pd.DataFrame:
    """Per-class IoU of every finished run with at most :data:`MAX_CLASSES` classes: one row
    per (setup, method, seed, class), columns :data:`COLUMNS`, classes in the runs' order."""
    rows = []
    for setup in setups:
        for method in methods:
            for seed in seeds:
                metrics = read_metrics(runs, setup, method, seed)
                values = _run_classes(metrics) if metrics else {}
                if 0 < len(values) <= MAX_CLASSES:
                    rows += [(setup, method, seed, name, iou) for name, iou in values.items()]
    return pd.DataFrame(rows, columns=COLUMNS)


def _best_trained(cells: pd.DataFrame, trained: Sequence[str]) -> set[str]:
    """Trained methods holding the highest mean of one (setup, class) row."""
    means = cells.loc[cells.index.isin(list(trained)), "iou_mean"].dropna()
    return set(means.index[np.isclose(means, means.max())]) if len(means) else set()


def class_table(
    results: pd.DataFrame,
    runs: Path,
    methods: Sequence[str],
    setups: Sequence[str],
    seeds: Sequence[int],
) -> Table | None:
    """Classes × methods, one block per shown setup, ``mean ± std`` IoU over seeds; bold:
    the best trained method of each row (references excluded). None when no setup of
    at most :data:`MAX_CLASSES` classes has a finished run with per-class IoU.

    Args:
        results: ``results.csv`` (for the budget line of the caption).
        runs: the comparison's runs, ``<setup>/<method>/seed<k>/metrics.json``.
    """
    per_class = read_class_iou(runs, setups, methods, seeds)
    per_class = per_class[per_class.groupby("setup")["iou"].transform("count") > 0]
    if per_class.empty:
        return None
    shown = [setup for setup in setups if (per_class["setup"] == setup).any()]
    grouped = per_class.groupby(["setup", "class", "method"], sort=False)["iou"]
    summary = pd.DataFrame(
        {"iou_mean": grouped.mean(), "iou_std": grouped.std(ddof=1), "n_seeds": grouped.count()}
    ).sort_index()
    references = names("reference")
    trained = [method for method in methods if method not in references]
    blocks, numbers = [], []
    for setup in shown:
        classes = pd.unique(per_class.loc[per_class["setup"] == setup, "class"])
        rows = []
        for name in classes:
            cells = summary.loc[(setup, name)].reindex(methods)
            best = _best_trained(cells, trained)
            row = [Cell(str(name))]
            for method in methods:
                mean, std, count = cells.loc[method]
                n = 0 if math.isnan(count) else int(count)
                text = format_cell(mean, std, n, len(seeds))
                row.append(Cell(text, method in best))
                numbers.append(
                    {
                        "setup": setup,
                        "class": name,
                        "method": method,
                        "iou_mean": mean,
                        "iou_std": std,
                        "n_seeds": n,
                        "expected_seeds": len(seeds),
                        "reference": method in references,
                        "best": method in best,
                    }
                )
            rows.append(row)
        blocks.append(Block(rows, setup))
    grid = Grid(
        ["class", *methods],
        blocks,
        notes=[
            f"IoU (%) of each class, mean ± std over seeds (a run's value: the mean over its "
            f"models); setups of at most {MAX_CLASSES} classes. Bold: best trained method "
            f"per class (reference rows excluded). {MISSING}: no finished run scores the "
            "class (absent from the evaluation split or run missing); (n/N): seeds finished.",
        ],
        caption=budget_line(results, shown, seeds, references),
    )
    frame = pd.DataFrame(numbers)
    return Table(render_markdown(grid), render_latex(grid), frame.to_csv(index=False))
