import numpy as np
import pytest

from fussbench.errors import FussbenchError
from fussbench.evaluation.reference import (
    evaluate_kmeans,
    evaluate_majority,
    kmeans_centroids,
    majority_class,
    predict_with_centroids,
)


def separable(n_images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes on orthonormal feature directions, labels at twice the feature size.

    Returns:
        (n_images, 16, 6, 8) float16 features (random scale per pixel, small noise) and
        (n_images, 12, 16) uint8 labels.
    """
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(np.random.default_rng(99).normal(size=(16, 3)))[0].T  # (3, 16)
    classes = rng.integers(0, 3, size=(n_images, 6, 8))
    features = directions[classes] * rng.uniform(0.5, 3.0, size=(n_images, 6, 8, 1))
    features += rng.normal(scale=0.05, size=features.shape)
    labels = classes.repeat(2, axis=1).repeat(2, axis=2).astype(np.uint8)
    return features.transpose(0, 3, 1, 2).astype(np.float16), labels


def test_kmeans_on_separable_features_scores_perfectly():
    train_features, _ = separable(6, seed=0)
    eval_features, eval_labels = separable(4, seed=1)
    eval_labels[0, 0, :5] = 255
    evaluation = evaluate_kmeans(
        train_features, eval_features, eval_labels, n_clusters=3, n_classes=3, seed=0
    )
    assert evaluation.scores.miou == pytest.approx(100.0)
    assert evaluation.scores.accuracy == pytest.approx(100.0)
    assert evaluation.confusion.shape == (3, 3)
    assert evaluation.image_miou.shape == (4,)
    assert sorted(evaluation.mapping.tolist()) == [0, 1, 2]


def test_kmeans_centroids_shape_norm_and_determinism():
    features, _ = separable(3, seed=2)
    centroids = kmeans_centroids(features, n_clusters=4, seed=7, max_pixels=60)
    assert centroids.shape == (4, 16)
    assert centroids.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, rtol=1e-5)
    again = kmeans_centroids(features, n_clusters=4, seed=7, max_pixels=60)
    np.testing.assert_array_equal(centroids, again)


def test_predict_with_centroids_upsamples_to_label_size():
    features, labels = separable(3, seed=3)
    directions = np.linalg.qr(np.random.default_rng(99).normal(size=(16, 3)))[0].T
    clusters = predict_with_centroids(features, directions, size=(12, 16), batch_size=2)
    assert clusters.dtype == np.uint8
    assert clusters.shape == labels.shape
    np.testing.assert_array_equal(clusters, labels)


@pytest.mark.parametrize(("n_clusters", "max_pixels"), [(1, 100), (5, 4), (4, 3)])
def test_kmeans_rejects_bad_cluster_counts(n_clusters, max_pixels):
    features = np.random.default_rng(0).normal(size=(1, 4, 2, 2)).astype(np.float32)
    with pytest.raises(FussbenchError, match="model.n_clusters"):
        kmeans_centroids(features, n_clusters, seed=0, max_pixels=max_pixels)


def test_majority_class_ignores_255_and_breaks_ties_low():
    assert majority_class(np.array([[[1, 255, 255, 255], [2, 2, 1, 0]]], np.uint8), 3) == 1
    assert majority_class(np.array([[[3, 255], [3, 255]]], np.uint8), 4) == 3


def test_majority_class_needs_labelled_pixels():
    with pytest.raises(FussbenchError, match="no labelled pixel"):
        majority_class(np.full((2, 3, 3), 255, np.uint8), 3)


def test_majority_uses_the_training_class_without_matching():
    train = np.array([[[2, 2, 2], [1, 0, 255]]], np.uint8)  # majority 2
    evaluation_labels = np.array([[[1, 1], [0, 255]], [[2, 1], [1, 1]]], np.uint8)  # mostly 1
    evaluation = evaluate_majority(train, evaluation_labels, n_classes=4)
    assert evaluation.mapping.tolist() == [2]
    assert evaluation.confusion.tolist() == [[1, 5, 1, 0]]
    # 7 labelled pixels, one of class 2; class 2 IoU = 1 / (7 + 1 - 1); classes 0, 1 score 0
    assert evaluation.scores.accuracy == pytest.approx(100.0 / 7)
    assert evaluation.scores.per_class_iou[:3].tolist() == pytest.approx([0.0, 0.0, 100.0 / 7])
    assert np.isnan(evaluation.scores.per_class_iou[3])
    assert evaluation.scores.miou == pytest.approx(100.0 / 7 / 3)
    # image 0: classes 0 and 1 present, both missed; image 1: class 2 IoU 1/4, class 1 IoU 0
    assert evaluation.image_miou.tolist() == pytest.approx([0.0, 12.5])
