"""The significance tests of the ``stats`` stage (``write_significance``) on a synthetic results
table and runs tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fussbench.errors import FussbenchError
from fussbench.stats.significance import write_significance

COLUMNS = [
    "family",
    "hypothesis",
    "dataset",
    "partition",
    "setup",
    "method_a",
    "method_b",
    "pairing",
    "alternative",
    "n_pairs",
    "mean_diff",
    "ci_low",
    "ci_high",
    "test",
    "p_value",
    "p_holm",
    "p_holm_opposite",
    "verdict",
    "note",
]
IMAGES = [f"img_{i:03d}" for i in range(30)]
OFFSET = {"local": 0.0, "fedavg": -1.0, "fedcc_kmeans": 2.0, "fedcc_matched": 2.5}
"""Each method's per-image mIoU is a shared base plus this offset, plus small noise."""


def per_image(method: str, seed: int) -> np.ndarray:
    """Synthetic per-image mIoU of one run, shape (len(IMAGES),)."""
    base = np.linspace(10.0, 40.0, len(IMAGES))
    noise = np.random.default_rng([seed, len(method)]).normal(0.0, 0.3, len(IMAGES))
    return base + OFFSET[method] + noise


def write_images(path: Path, names: list[str], miou: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"image": names, "miou": miou}).to_csv(path, index=False)


def make_tree(root: Path, seeds: range, missing: tuple[str, int] | None = None) -> Path:
    """``root/results.csv`` and ``root/runs``; ``missing`` (method, seed) has no run."""
    rows = []
    for method in OFFSET:
        for seed in seeds:
            row = {"dataset": "camvid", "partition": "domain", "setup": "camvid_domain"}
            aggregator, _, mode = method.partition(".")
            row.update(aggregator=aggregator, mode=mode, weighting="samples", method=method)
            row.update(seed=seed, accuracy=50.0)
            if (method, seed) == missing:
                rows.append({**row, "miou": None, "status": "missing"})
                continue
            miou = per_image(method, seed)
            order = slice(None, None, -1 if method == "local" else 1)  # rows may come in any order
            path = root / "runs/camvid_domain" / method / f"seed{seed}/images.csv"
            write_images(path, IMAGES[order], miou[order])
            rows.append({**row, "miou": float(miou.mean()), "status": "ok"})
    pd.DataFrame(rows).to_csv(root / "results.csv", index=False)
    return root / "results.csv"


def stage(root: Path) -> pd.DataFrame:
    return write_significance(
        root / "results.csv", root / "runs", root / "out", n_resamples=200, seed=0
    )


def pick(frame: pd.DataFrame, a: str, b: str, pairing: str, test: str) -> pd.Series:
    rows = frame[
        (frame.method_a == a)
        & (frame.method_b == b)
        & (frame.pairing == pairing)
        & (frame.test == test)
    ]
    assert len(rows) == 1
    return rows.iloc[0]


def test_stage_writes_the_table_and_the_markdown(tmp_path):
    make_tree(tmp_path, range(6), missing=("fedavg", 5))
    frame = stage(tmp_path)
    assert list(frame.columns) == COLUMNS
    on_disk = pd.read_csv(tmp_path / "out/significance.csv")
    assert list(on_disk.columns) == COLUMNS
    assert len(frame) == len(on_disk) == 6 * 2 * 2  # comparisons x pairings x tests
    assert set(zip(frame.method_a, frame.method_b, strict=True)) == {
        ("fedavg", "local"),
        ("fedcc_kmeans", "local"),
        ("fedcc_matched", "local"),
        ("fedcc_kmeans", "fedavg"),
        ("fedcc_matched", "fedavg"),
        ("fedcc_kmeans", "fedcc_matched"),
    }
    assert (frame[["dataset", "partition", "setup"]].drop_duplicates().values.tolist()) == [
        ["camvid", "domain", "camvid_domain"]
    ]
    assert (frame.family == "exploratory").all() and (frame.alternative == "two-sided").all()
    assert (frame.hypothesis == "").all() and (frame.verdict == "").all()
    assert frame.p_holm_opposite.isna().all()
    markdown = (tmp_path / "out/significance.md").read_text()
    assert "None: `stats.primary` in params.yaml is empty." in markdown
    assert "### camvid_domain, paired by seeds" in markdown
    assert "### camvid_domain, paired by images" in markdown
    assert "< 0.001" in markdown
    assert "Holm" in markdown


def test_pairs_signs_and_image_averages(tmp_path):
    make_tree(tmp_path, range(6), missing=("fedavg", 5))
    frame = stage(tmp_path)
    assert pick(frame, "fedcc_kmeans", "local", "seeds", "wilcoxon").n_pairs == 6
    assert pick(frame, "fedavg", "local", "seeds", "wilcoxon").n_pairs == 5
    assert pick(frame, "fedavg", "local", "images", "t-test").n_pairs == len(IMAGES)

    better = pick(frame, "fedcc_kmeans", "local", "seeds", "t-test")
    assert better.mean_diff > 0 and better.ci_low > 0
    worse = pick(frame, "fedavg", "local", "images", "t-test")
    expected = np.mean([per_image("fedavg", s) - per_image("local", s) for s in range(5)])
    assert worse.mean_diff == pytest.approx(expected)  # only the seeds both ran
    assert worse.ci_low < worse.mean_diff < worse.ci_high < 0
    assert worse.p_value < 0.001


def test_holm_runs_over_one_setup_pairing_and_test(tmp_path):
    make_tree(tmp_path, range(6))
    frame = stage(tmp_path)
    for _, family in frame.groupby(["pairing", "test"]):
        assert len(family) == 6
        assert (family.p_holm >= family.p_value - 1e-12).all()
        smallest = family.loc[family.p_value.idxmin()]
        assert smallest.p_holm == pytest.approx(min(1.0, smallest.p_value * len(family)))


def test_different_image_sets_are_an_error(tmp_path):
    make_tree(tmp_path, range(3))
    renamed = [*IMAGES[:-2], "extra_a", "extra_b"]
    for seed in range(3):
        path = tmp_path / f"runs/camvid_domain/fedavg/seed{seed}/images.csv"
        write_images(path, renamed, per_image("fedavg", seed))
    with pytest.raises(FussbenchError) as error:
        stage(tmp_path)
    message = str(error.value)
    assert str(tmp_path / "runs/camvid_domain/fedavg/seed0/images.csv") in message
    assert str(tmp_path / "runs/camvid_domain/local/seed0/images.csv") in message
    assert "30 images" in message
    assert "extra_a" in message and "img_028" in message
    assert "rerun both methods on the same evaluation split" in message


def test_a_missing_images_file_is_named(tmp_path):
    make_tree(tmp_path, range(2))
    path = tmp_path / "runs/camvid_domain/fedcc_matched/seed1/images.csv"
    path.unlink()
    with pytest.raises(FussbenchError, match="fedcc_matched/seed1/images.csv does not exist"):
        stage(tmp_path)


def test_a_single_seed_gives_notes_not_nans(tmp_path):
    make_tree(tmp_path, range(1))
    frame = stage(tmp_path)
    seeds = frame[frame.pairing == "seeds"]
    assert len(seeds) == 12
    assert (seeds.n_pairs == 1).all()
    assert seeds.p_value.isna().all() and seeds.p_holm.isna().all()
    assert seeds.note.str.contains("too few pairs").all()
    images = frame[frame.pairing == "images"]
    assert len(images) == 12
    assert images.p_value.notna().all() and (images.note == "").all()
    text = (tmp_path / "out/significance.csv").read_text()
    assert "nan" not in text.lower()
    first_seed_row = text.splitlines()[1].split(",")
    assert first_seed_row[COLUMNS.index("p_value")] == ""
    assert first_seed_row[COLUMNS.index("ci_low")] == ""


def test_images_without_labels_are_left_out(tmp_path):
    make_tree(tmp_path, range(2))
    for path in (tmp_path / "runs").glob("*/*/seed*/images.csv"):
        table = pd.read_csv(path)
        table.loc[table.image == "img_004", "miou"] = np.nan
        table.to_csv(path, index=False)
    frame = stage(tmp_path)
    images = frame[frame.pairing == "images"]
    assert (images.n_pairs == len(IMAGES) - 1).all()
    assert images.p_value.notna().all() and images.mean_diff.notna().all()
