"""The report's figures and the report stage, on a synthetic runs tree in tmp_path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fussbench.data.camvid import CamVid
from fussbench.data.magnetic_tile import MagneticTile
from fussbench.errors import FussbenchError
from fussbench.reporting.figures import (
    QualitativeGrid,
    QualitativeRow,
    partition_figure,
    qualitative_figure,
    save_png,
)
from fussbench.reporting.palettes import colourise, palette
from fussbench.reporting.report import write_report
from fussbench.reporting.runs import read_curves, read_partition

CAMVID = np.array(CamVid.colours, dtype=np.uint8)
MAGNETIC_TILE = np.array(MagneticTile.colours, dtype=np.uint8)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SETUPS = ["s1", "s2"]
SEEDS = [0, 1]
TRAINED = ["local", "fedavg", "fedcc_kmeans"]
METHODS = [*TRAINED, "kmeans"]
CLASSES = ["background", "defect"]


def centroid_distances(k: int, seed: int) -> list[list[float]]:
    """A symmetric (k, k) cosine-distance matrix with a zero diagonal."""
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.uniform(0.3, 1.5, (k, k)), 1)
    return (upper + upper.T).tolist()


def write_run(runs: Path, setup: str, method: str, seed: int) -> None:
    """``metrics.json`` (and ``rounds.csv`` for a trained method) of one finished run."""
    folder = runs / setup / method / f"seed{seed}"
    folder.mkdir(parents=True)
    model: dict[str, object] = {"model": "global", "miou": 20.0 + seed, "accuracy": 50.0}
    metrics: dict[str, object] = {"setup": setup, "method": method, "backbone": "tinynet"}
    if method in TRAINED:
        model["centroids"] = {
            "pairwise_cosine_distance": centroid_distances(3, seed),
            "min_offdiagonal": 0.3,
        }
        traffic = 0 if method == "local" else 1000
        metrics["communication"] = {
            "bytes_up_per_client_round": traffic,
            "bytes_down_per_client_round": traffic,
            "backbone_bytes": 10_000,
            "backbone_to_round_ratio": 5.0 if traffic else None,
        }
        rounds = pd.DataFrame({"round": [1, 2, 3], "miou": [10.0 + seed, 12.0, 13.0 - seed]})
        rounds.assign(accuracy=50.0).to_csv(folder / "rounds.csv", index=False)
    metrics["models"] = [model]
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")


def write_partition(partitions: Path, setup: str) -> None:
    folder = partitions / setup
    folder.mkdir(parents=True)
    summary = pd.DataFrame(
        {
            "client": [0, 1, 2],
            "n_images": [5, 3, 2],
            "background": [900, 500, 100],
            "defect": [100, 50, 300],
            "js_divergence": [0.01, 0.02, 0.2],
        }
    )
    summary.to_csv(folder / "summary.csv", index=False)
    info = {"label_skew": {"js_mean": 0.0767}, "meta": {"dataset": "magnetic_tile"}}
    (folder / "partition.json").write_text(json.dumps(info), encoding="utf-8")


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """Runs of every (setup, method, seed) but s2/fedavg/seed1; partitions of s1 only;
    ``results.csv`` as collect writes it; a Markdown report already in the output."""
    runs, partitions, out = tmp_path / "runs", tmp_path / "partitions", tmp_path / "out"
    rows = []
    for setup in SETUPS:
        for method in METHODS:
            for seed in SEEDS:
                if (setup, method, seed) == ("s2", "fedavg", 1):
                    rows.append(
                        {"setup": setup, "method": method, "seed": seed, "status": "missing"}
                    )
                    continue
                write_run(runs, setup, method, seed)
                rows.append(
                    {
                        "dataset": "magnetic_tile",
                        "partition": "quantity",
                        "setup": setup,
                        "method": method,
                        "seed": seed,
                        "miou": 20.0 + seed,
                        "accuracy": 50.0,
                        "n_clients": 1 if method == "centralized" else 3,
                        "rounds": 3,
                        "local_steps": 10,
                        "status": "ok",
                    }
                )
    write_partition(partitions, "s1")
    results = tmp_path / "results.csv"
    pd.DataFrame(rows).to_csv(results, index=False)
    out.mkdir()
    (out / "tuning.md").write_text("# tuning\n", encoding="utf-8")
    return {"runs": runs, "partitions": partitions, "out": out, "results": results}


def is_png(path: Path) -> bool:
    data = path.read_bytes()
    return len(data) > len(PNG_SIGNATURE) and data.startswith(PNG_SIGNATURE)


def fake_grid(dataset: str = "magnetic_tile") -> QualitativeGrid:
    """Two 6×8 images: labels with an ignored pixel, predictions of two methods."""
    labels = np.zeros((6, 8), dtype=np.uint8)
    labels[2:4, 3:6] = 1
    labels[0, 0] = 255
    prediction = np.ones((6, 8), dtype=np.uint8)
    prediction[0, 1] = 0
    image = np.full((6, 8, 3), 120, dtype=np.uint8)
    rows = [
        QualitativeRow(f"img{n}", image, labels, {"fedavg": prediction, "fedcc_kmeans": 1 - labels})
        for n in range(2)
    ]
    return QualitativeGrid(dataset, tuple(CLASSES), rows)


def test_report_writes_tables_figures_and_an_index(inputs: dict[str, Path]) -> None:
    out = inputs["out"]
    missing = write_report(
        inputs["results"],
        inputs["runs"],
        inputs["partitions"],
        out,
        METHODS,
        SETUPS,
        SEEDS,
        params_hash="0123abcd",
        significance_csv=out / "significance.csv",
        qualitative=lambda setup: fake_grid(),
    )
    for name in ("main", "aggregation", "communication"):
        for suffix in ("md", "tex", "csv"):
            assert (out / "tables" / f"{name}.{suffix}").stat().st_size > 0
    assert not (out / "tables" / "significance.md").exists()
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert pngs == [
        "centroids_s1.png",
        "centroids_s2.png",
        "partition_s1.png",
        "qualitative_s1.png",
        "qualitative_s2.png",
        "rounds_s1.png",
        "rounds_s2.png",
    ]
    assert all(is_png(out / "figures" / name) for name in pngs)
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary left
    assert "s2/fedavg/seed1" in missing
    assert any(item.startswith("partition figure of s2") for item in missing)
    assert any(item.startswith("significance table") for item in missing)
    readme = (out / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)]+)\)", readme)
    assert links and all((out / link).is_file() for link in links)
    assert {"tables/main.md", "tables/main.tex", "figures/rounds_s1.png", "tuning.md"} <= set(links)
    assert "s2/fedavg/seed1" in readme
    assert "0123abcd" in readme and "tinynet" in readme and "3 rounds × 10 local steps" in readme


def test_report_includes_significance_and_skips_a_failing_qualitative(
    inputs: dict[str, Path],
) -> None:
    out = inputs["out"]
    significance = pd.DataFrame(
        [["s1", "seeds", "fedcc_kmeans", "fedavg", 2, 1.5, 0.5, 2.5, "ttest", 0.2, 0.4, ""]],
        columns=["setup", "pairing", "method_a", "method_b", "n_pairs", "mean_diff",
                 "ci_low", "ci_high", "test", "p_value", "p_holm", "note"],
    )  # fmt: skip
    significance.to_csv(out / "significance.csv", index=False)

    def no_cache(setup: str) -> QualitativeGrid:
        raise FussbenchError(f"no feature cache for {setup}")

    missing = write_report(
        inputs["results"],
        inputs["runs"],
        inputs["partitions"],
        out,
        METHODS,
        SETUPS,
        SEEDS,
        "hash",
        out / "significance.csv",
        no_cache,
    )
    assert "+1.50 [+0.50, +2.50]" in (out / "tables" / "significance.md").read_text()
    assert "qualitative figure of s1: no feature cache for s1" in missing
    assert not list((out / "figures").glob("qualitative_*"))
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "tables/significance.md" in readme


def test_rounds_figure_only_from_finished_runs(inputs: dict[str, Path]) -> None:
    curves = read_curves(inputs["runs"], "s2", METHODS, SEEDS)
    assert set(curves["method"]) == set(TRAINED)  # kmeans has no rounds.csv
    assert len(curves[curves["method"] == "fedavg"]) == 3  # seed 1 never finished


def test_partition_figure_shows_the_feature_skew_the_partition_recorded(tmp_path: Path) -> None:
    write_partition(tmp_path, "s1")
    assert read_partition(tmp_path, "s1").feature_skew is None  # written before it existed
    path = tmp_path / "s1" / "partition.json"
    info = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(info | {"feature_skew": {"cosine_mean": 0.0153}}))
    summary = read_partition(tmp_path, "s1")
    assert summary.feature_skew == 0.0153
    figure = partition_figure(
        summary.counts, summary.class_names, MAGNETIC_TILE, summary.js_mean, "s1", 0.0153
    )
    assert figure.axes[0].get_title().endswith("0.0767; feature skew 0.0153")


def test_colourise_uses_the_palette_and_blacks_out_ignored_pixels() -> None:
    labels = np.array([[0, 3, 10], [255, 11, 8]], dtype=np.uint8)
    image = colourise(labels, CAMVID)
    assert image.shape == (2, 3, 3) and image.dtype == np.uint8
    assert tuple(image[0, 1]) == (128, 64, 128)  # Road
    assert tuple(image[0, 2]) == (0, 128, 192)  # Bicyclist
    assert tuple(image[1, 0]) == tuple(image[1, 1]) == (0, 0, 0)  # ignore, outside palette
    assert palette("camvid", 11).tolist() == CAMVID.tolist()
    fallback = palette("unknown", 5)
    assert fallback.shape == (5, 3) and len({tuple(c) for c in fallback}) == 5


def test_qualitative_figure_paints_predictions_in_the_palette(tmp_path: Path) -> None:
    grid = fake_grid()
    figure = qualitative_figure(grid, "test")
    axes = figure.axes
    assert len(axes) == 2 * 4  # rows × (image, ground truth, two methods)
    truth = np.asarray(axes[1].images[0].get_array())
    assert tuple(truth[2, 3]) == tuple(MAGNETIC_TILE[1])  # defect is white
    assert tuple(truth[0, 0]) == (0, 0, 0)  # ignore
    fedavg = np.asarray(axes[2].images[0].get_array())
    assert tuple(fedavg[0, 1]) == tuple(MAGNETIC_TILE[0])
    assert tuple(fedavg[5, 7]) == tuple(MAGNETIC_TILE[1])
    assert [axis.get_title() for axis in axes[:4]] == [
        "image",
        "ground truth",
        "fedavg",
        "fedcc_kmeans",
    ]
    camvid = qualitative_figure(
        QualitativeGrid("camvid", tuple(f"c{n}" for n in range(11)), grid.rows), "camvid"
    )
    assert tuple(np.asarray(camvid.axes[2].images[0].get_array())[5, 7]) == tuple(CAMVID[1])
    save_png(camvid, tmp_path / "q.png")
    save_png(figure, tmp_path / "figures" / "q.png")
    assert is_png(tmp_path / "q.png") and is_png(tmp_path / "figures" / "q.png")


def test_report_draws_gain_against_skew_when_a_dataset_has_two_setups(
    inputs: dict[str, Path],
) -> None:
    out = inputs["out"]
    significance = pd.DataFrame(
        [[setup, "seeds", "fedcc_kmeans", "fedavg", 2, 1.5, 0.5, 2.5, "wilcoxon", 0.2, 0.4, ""]
         for setup in SETUPS],
        columns=["setup", "pairing", "method_a", "method_b", "n_pairs", "mean_diff",
                 "ci_low", "ci_high", "test", "p_value", "p_holm", "note"],
    )  # fmt: skip
    significance.to_csv(out / "significance.csv", index=False)
    write_report(
        inputs["results"], inputs["runs"], inputs["partitions"], out, METHODS, SETUPS, SEEDS,
        "hash", out / "significance.csv", None,
    )  # fmt: skip
    assert is_png(out / "figures" / "heterogeneity_magnetic_tile.png")
    table = (out / "tables" / "heterogeneity.md").read_text(encoding="utf-8")
    assert table.count("fedcc_kmeans − fedavg") == 2
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert (
        "tables/heterogeneity.md" in readme and "figures/heterogeneity_magnetic_tile.png" in readme
    )
