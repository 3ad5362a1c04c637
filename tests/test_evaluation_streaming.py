"""Evaluation reads a batch of features and one image's clusters at a time, with the same
numbers as on arrays held whole."""

from __future__ import annotations

import numpy as np

from fussbench.evaluation.predict import Evaluation, evaluate_clusters, evaluate_model
from fussbench.evaluation.reference import evaluate_kmeans, majority_class
from fussbench.features.rows import RowView
from fussbench.model.head import initial_arrays


def _same(a: Evaluation, b: Evaluation) -> None:
    for field in ("mapping", "confusion", "image_miou", "cluster_pixels"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert (a.scores.miou, a.scores.accuracy) == (b.scores.miou, b.scores.accuracy)


def _split(tmp_path, count: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A float16 feature memory map (count, 8, 3, 4) and uint8 labels (count, 6, 8)."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "f.npy", rng.standard_normal((count, 8, 3, 4)).astype(np.float16))
    labels = rng.integers(0, 5, (count, 6, 8)).astype(np.uint8)
    labels[labels == 4] = 255
    np.save(tmp_path / "l.npy", labels)
    return np.load(tmp_path / "f.npy", mmap_mode="r"), np.load(tmp_path / "l.npy", mmap_mode="r")


def test_row_view_reads_the_rows_it_names(tmp_path) -> None:
    features, _ = _split(tmp_path)
    rows = np.array([7, 3, 3, 30, 0])
    view = RowView(features, rows)
    assert view.shape == (5, 8, 3, 4) and len(view) == 5 and view.dtype == np.float16
    assert np.array_equal(view[1:4], features[rows[1:4]])
    assert np.array_equal(view[np.array([4, 0])], features[[0, 7]])
    image, y, x = np.array([0, 2, 4]), np.array([0, 1, 2]), np.array([3, 0, 1])
    assert np.array_equal(view[image, :, y, x], features[rows][image, :, y, x])
    assert np.array_equal(np.stack(list(view)), features[rows])


def test_streamed_evaluation_equals_the_whole_arrays(tmp_path) -> None:
    features, labels = _split(tmp_path)
    rows = np.arange(1, 40, 3)
    arrays = initial_arrays(8, 6, 5, seed=1)
    whole = evaluate_model(arrays, np.asarray(features[rows]), np.asarray(labels[rows]), 4)
    _same(whole, evaluate_model(arrays, RowView(features, rows), RowView(labels, rows), 4))
    clusters = np.random.default_rng(2).integers(0, 5, (13, 6, 8)).astype(np.uint8)
    _same(
        evaluate_clusters(clusters, labels[rows], 5, 4),
        evaluate_clusters(iter(list(clusters)), RowView(labels, rows), 5, 4),
    )
    kmeans = evaluate_kmeans(np.asarray(features[rows]), features, labels, 5, 4, seed=0)
    _same(kmeans, evaluate_kmeans(RowView(features, rows), features, labels, 5, 4, seed=0))


def test_majority_counts_every_chunk(tmp_path) -> None:
    _, labels = _split(tmp_path)
    whole = np.asarray(labels).ravel()
    expected = int(np.bincount(whole[whole != 255], minlength=4).argmax())
    for chunk in (1, 7, 64):
        assert majority_class(labels, 4, chunk) == expected
    only_last = np.full((3, 2, 2), 255, dtype=np.uint8)
    only_last[2, 0, 0] = 3  # the only labelled pixel sits in the last chunk
    assert majority_class(only_last, 2, chunk=1) == 3
