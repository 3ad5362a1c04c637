"""The supervised linear probe (a diagnostic ceiling) on tiny synthetic caches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fussbench.data.samples import IGNORE_INDEX
from fussbench.diagnostics.probe import probe_record
from fussbench.errors import FussbenchError
from fussbench.evaluation.probe import (
    balanced_class_weights,
    cell_fractions,
    evaluate_probe,
    fit_probe,
    grid_ceiling,
)
from fussbench.features.cache import cache_fingerprint
from fussbench.params import load_params
from fussbench.paths import features_dir

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
GRID = (4, 4)


def synthetic(
    n_images: int, seed: int, separable: bool = True, cell: int = 1, channels: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, C, 4, 4) float16 and labels (N, 4 cell, 4 cell) uint8 with a few defect
    cells per image (whole cells). Separable: channel 0 is +2 on defect cells, -2
    elsewhere, plus noise; otherwise the features are noise alone. With ``cell`` 1 the
    labels are at feature resolution, so no upsampling blurs the probe's answer."""
    rng = np.random.default_rng(seed)
    cells = rng.random((n_images, *GRID)) < 0.2
    cells[:, 0, 0] = True  # every image has a defect
    features = rng.normal(0.0, 0.5, (n_images, channels, *GRID))
    if separable:
        features[:, 0] += np.where(cells, 2.0, -2.0)
    labels = np.kron(cells.astype(np.uint8), np.ones((cell, cell), dtype=np.uint8))
    return features.astype(np.float16), labels


def test_cell_fractions_and_balanced_weights() -> None:
    labels = np.zeros((1, 4, 4), dtype=np.uint8)
    labels[0, 0, :2] = 1  # top-left 2x2 cell: 2 defect, 2 background pixels
    labels[0, 3, 3] = IGNORE_INDEX  # bottom-right cell: 3 labelled pixels
    fractions = cell_fractions(labels, (2, 2), 2)
    assert fractions.shape == (1, 2, 2, 2)
    np.testing.assert_allclose(fractions[0, :, 0, 0], [0.5, 0.5])
    np.testing.assert_allclose(fractions[0, :, 1, 1], [1.0, 0.0])
    weights = balanced_class_weights(labels, 2)
    np.testing.assert_allclose(weights, [15 / (2 * 13), 15 / (2 * 2)])
    with pytest.raises(FussbenchError, match="multiple"):
        cell_fractions(labels, (3, 3), 2)


def test_probe_separates_linearly_separable_classes() -> None:
    train_features, train_labels = synthetic(40, seed=0)
    test_features, test_labels = synthetic(12, seed=1)
    probe = fit_probe(train_features, train_labels, 2)
    scores = evaluate_probe(probe, test_features, test_labels, 2)
    assert probe.converged
    assert scores.per_class_iou[1] > 95.0
    # labels at 4x the grid: trained on cell fractions, scored after bilinear upsampling
    _, fine_train = synthetic(40, seed=0, cell=4)
    _, fine_test = synthetic(12, seed=1, cell=4)
    fine = fit_probe(train_features, fine_train, 2)
    assert evaluate_probe(fine, test_features, fine_test, 2).per_class_iou[1] > 60.0
    again = fit_probe(train_features, train_labels, 2)  # deterministic
    np.testing.assert_array_equal(probe.coef, again.coef)


def test_probe_on_noise_features_does_not_separate() -> None:
    """The control: the same labels with features that carry no class information."""
    train_features, train_labels = synthetic(40, seed=0, separable=False)
    test_features, test_labels = synthetic(12, seed=1, separable=False)
    probe = fit_probe(train_features, train_labels, 2)
    assert evaluate_probe(probe, test_features, test_labels, 2).per_class_iou[1] < 60.0


def test_probe_needs_two_classes() -> None:
    features, labels = synthetic(4, seed=0)
    with pytest.raises(FussbenchError, match="two classes"):
        fit_probe(features, np.zeros_like(labels), 2)


def test_grid_ceiling_is_exact_at_feature_resolution_and_drops_when_coarser() -> None:
    _, labels = synthetic(5, seed=2)
    np.testing.assert_allclose(grid_ceiling(labels, GRID, 2).per_class_iou, [100.0, 100.0])
    _, fine = synthetic(5, seed=2, cell=4)
    at_grid = grid_ceiling(fine, GRID, 2).per_class_iou[1]
    assert grid_ceiling(fine, (1, 1), 2).per_class_iou[1] < at_grid  # one cell per image


def write_cache(root: Path, params, split: str, seed: int) -> None:
    """A cache in the layout :func:`fussbench.features.cache.open_split` reads."""
    spec = params.dataset_spec()
    folder = root / features_dir(spec.name, params.backbone) / split
    folder.mkdir(parents=True)
    features, labels = synthetic(10, seed)
    np.save(folder / "features.npy", features)
    np.save(folder / "labels.npy", labels)
    np.save(folder / "pooled.npy", features.astype(np.float32).mean(axis=(2, 3)))
    index = {
        "names": [f"img{n}" for n in range(len(features))],
        "fingerprint": cache_fingerprint(spec, split, params.backbone_config()),
        "views_per_image": 1,
        "backbone_nbytes": 100,
    }
    (folder / "index.json").write_text(json.dumps(index), encoding="utf-8")


def test_probe_record_reports_probe_kmeans_and_ceiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = load_params(PARAMS, ["setup=tile_quantity"])
    for split, seed in (("train", 0), ("test", 1)):
        write_cache(tmp_path, params, split, seed)
    monkeypatch.chdir(tmp_path)
    record = probe_record(params)
    assert record["feature_grid"] == list(GRID) and record["eval_images"] == 10
    assert "never a benchmark row" in record["note"]
    assert record["probe"]["per_class_iou"]["defect"] > 95.0
    assert record["grid_ceiling"]["per_class_iou"]["defect"] == 100.0
    assert record["kmeans"]["n_clusters"] == 2 and record["kmeans"]["miou"] is not None
    with pytest.raises(FussbenchError, match="--cache"):
        probe_record(params, image_size=(32, 32))
