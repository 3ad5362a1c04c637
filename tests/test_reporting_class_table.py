"""The per-class IoU table, on a synthetic runs tree in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fussbench.reporting.class_table import MAX_CLASSES, class_table, read_class_iou
from fussbench.reporting.report import write_report

SEEDS = [0, 1, 2]
METHODS = ["local", "fedavg", "kmeans"]
TILE = ["background", "defect"]
BIG = [f"c{n}" for n in range(MAX_CLASSES + 1)]


def iou(setup: str, method: str, seed: int, model: int, name: str) -> float | None:
    """A distinct IoU per (setup, method, seed, model, class); fedavg's defect is the best."""
    if name == "defect" and method == "kmeans" and seed == 2:
        return None  # absent from that run's evaluation
    base = {"local": 10.0, "fedavg": 30.0, "kmeans": 20.0}[method]
    return base + 3.0 * seed + 1.5 * model + (5.0 if name == "defect" else 0.0) + len(setup)


def models(setup: str, method: str, seed: int, classes: list[str]) -> list[dict]:
    """Two client models for ``local``, one global model otherwise."""
    count = 2 if method == "local" else 1
    return [
        {
            "model": f"client{m}" if count > 1 else "global",
            "per_class_iou": {name: iou(setup, method, seed, m, name) for name in classes},
        }
        for m in range(count)
    ]


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """Setups ``tile`` (2 classes; fedavg seed 2 missing) and ``big`` (13 classes)."""
    runs, rows = tmp_path / "runs", []
    for setup, classes in (("tile", TILE), ("big", BIG)):
        for method in METHODS:
            for seed in SEEDS:
                if (setup, method, seed) == ("tile", "fedavg", 2):
                    rows.append({"setup": setup, "method": method, "seed": seed})
                    rows[-1]["status"] = "missing"
                    continue
                folder = runs / setup / method / f"seed{seed}"
                folder.mkdir(parents=True)
                metrics = {"setup": setup, "models": models(setup, method, seed, classes)}
                (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
                rows.append(
                    {
                        "setup": setup,
                        "method": method,
                        "seed": seed,
                        "dataset": "magnetic_tile",
                        "partition": "quantity",
                        "n_clients": 3,
                        "miou": 1.0,
                        "accuracy": 1.0,
                        "rounds": 3,
                        "local_steps": 50,
                        "status": "ok",
                    }
                )
    results = tmp_path / "results.csv"
    pd.DataFrame(rows).to_csv(results, index=False)
    return {"runs": runs, "results": results, "out": tmp_path / "out"}


def test_read_class_iou_averages_models_and_skips_many_class_setups(tree: dict[str, Path]) -> None:
    frame = read_class_iou(tree["runs"], ["tile", "big"], METHODS, SEEDS)
    assert set(frame["setup"]) == {"tile"}  # big has MAX_CLASSES + 1 classes
    local = frame[
        (frame["method"] == "local") & (frame["seed"] == 1) & (frame["class"] == "defect")
    ]
    expected = np.mean([iou("tile", "local", 1, m, "defect") for m in range(2)])
    assert local["iou"].item() == pytest.approx(expected)
    absent = frame[
        (frame["method"] == "kmeans") & (frame["seed"] == 2) & (frame["class"] == "defect")
    ]
    assert np.isnan(absent["iou"].item())


def test_class_table_mean_std_over_seeds_budget_and_best(tree: dict[str, Path]) -> None:
    results = pd.read_csv(tree["results"])
    table = class_table(results, tree["runs"], METHODS, ["tile", "big"], SEEDS)
    assert table is not None
    assert table.markdown.startswith("Budget: 3 rounds × 50 local steps per client; 3 seeds (0-2).")
    numbers = pd.read_csv(pd.io.common.StringIO(table.csv))
    assert set(numbers["setup"]) == {"tile"}
    row = numbers[(numbers["method"] == "local") & (numbers["class"] == "defect")].iloc[0]
    per_seed = [np.mean([iou("tile", "local", s, m, "defect") for m in range(2)]) for s in SEEDS]
    assert row["iou_mean"] == pytest.approx(np.mean(per_seed))
    assert row["iou_std"] == pytest.approx(np.std(per_seed, ddof=1))
    fedavg = numbers[(numbers["method"] == "fedavg") & (numbers["class"] == "defect")].iloc[0]
    assert fedavg["n_seeds"] == 2 and fedavg["best"]
    kmeans = numbers[(numbers["method"] == "kmeans") & (numbers["class"] == "defect")].iloc[0]
    assert kmeans["n_seeds"] == 2 and kmeans["reference"] and not kmeans["best"]
    assert "(2/3)" in table.markdown and "**" in table.markdown
    assert r"\begin{tabular}" in table.latex and "*tile*" in table.markdown


def test_class_table_is_none_without_per_class_iou(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "s" / "fedavg" / "seed0"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"models": [{"miou": 1.0}]}), "utf-8")
    results = pd.DataFrame([{"setup": "s", "method": "fedavg", "seed": 0, "status": "ok"}])
    assert class_table(results, tmp_path / "runs", ["fedavg"], ["s"], [0]) is None


def test_report_writes_and_links_the_class_table(tree: dict[str, Path]) -> None:
    out = tree["out"]
    write_report(
        tree["results"], tree["runs"], tree["runs"] / "none", out, METHODS, ["tile"], SEEDS, "h"
    )
    for suffix in ("md", "tex", "csv"):
        assert (out / "tables" / f"classes.{suffix}").stat().st_size > 0
    assert "](tables/classes.md)" in (out / "README.md").read_text(encoding="utf-8")
