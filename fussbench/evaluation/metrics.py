"""Unsupervised segmentation metrics: confusion, Hungarian matching, mIoU and accuracy.

Clusters carry no class names, so a prediction is scored after a one-to-one matching of
clusters to classes that maximises the number of agreeing pixels over the whole split
(``scipy.optimize.linear_sum_assignment`` on the accumulated confusion matrix). With more
clusters than classes, ``evaluation.matching: majority`` maps each cluster to its majority
class instead (over-clustering).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from fussbench.data.samples import IGNORE_INDEX
from fussbench.errors import FussbenchError


def confusion_matrix(
    clusters: np.ndarray, labels: np.ndarray, n_clusters: int, n_classes: int
) -> np.ndarray:
    """Count pixels per (cluster, class) pair, skipping ``IGNORE_INDEX`` labels.

    Args:
        clusters: predicted cluster per pixel, any shape, values in ``[0, n_clusters)``.
        labels: class per pixel, same shape, values in ``[0, n_classes)`` or 255.

    Returns:
        (n_clusters, n_classes) int64 counts.
    """
    clusters = np.asarray(clusters).ravel().astype(np.int64)
    labels = np.asarray(labels).ravel().astype(np.int64)
    keep = labels != IGNORE_INDEX
    flat = clusters[keep] * n_classes + labels[keep]
    counts = np.bincount(flat, minlength=n_clusters * n_classes)
    return counts.reshape(n_clusters, n_classes)


def hungarian_match(confusion: np.ndarray) -> np.ndarray:
    """Match clusters to classes one-to-one, maximising matched pixels.

    Args:
        confusion: (n_clusters, n_classes) pixel counts.

    Returns:
        (n_clusters,) int64: the class of each cluster, or -1 for a cluster left unmatched
        (when there are more clusters than classes).
    """
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    mapping = np.full(confusion.shape[0], -1, dtype=np.int64)
    mapping[rows] = cols
    return mapping


def majority_match(confusion: np.ndarray) -> np.ndarray:
    """Map every cluster to the class it overlaps most (many clusters may share a class).

    The over-clustering protocol: with more clusters than classes, each cluster votes for
    its majority class. It uses the labels more than a one-to-one matching does, so scores
    under it are only comparable with scores under it.

    Args:
        confusion: (n_clusters, n_classes) pixel counts.

    Returns:
        (n_clusters,) int64 class of each cluster; -1 for a cluster with no labelled pixel.
    """
    mapping = confusion.argmax(axis=1).astype(np.int64)
    mapping[confusion.sum(axis=1) == 0] = -1
    return mapping


MATCHINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "hungarian": hungarian_match,
    "majority": majority_match,
}
"""Ways to map clusters to classes, by the name ``evaluation.matching`` uses."""


def match_clusters(confusion: np.ndarray, matching: str) -> np.ndarray:
    """Class of each cluster (n_clusters,) under the ``matching`` named in :data:`MATCHINGS`."""
    if matching not in MATCHINGS:
        raise FussbenchError(
            f"unknown evaluation.matching '{matching}'; valid: {', '.join(MATCHINGS)}"
        )
    return MATCHINGS[matching](confusion)


@dataclass(frozen=True)
class SegmentationScores:
    """Scores of one prediction over one split.

    Attributes:
        miou: mean IoU over the classes present in the ground truth, in percent.
        accuracy: matched pixels over labelled pixels, in percent.
        per_class_iou: (n_classes,) IoU in percent; NaN for classes absent from the split.
    """

    miou: float
    accuracy: float
    per_class_iou: np.ndarray

    def as_dict(self, class_names: tuple[str, ...]) -> dict[str, object]:
        """JSON-ready form with per-class IoU keyed by class name (absent classes: null)."""
        return {
            "miou": round(self.miou, 4),
            "accuracy": round(self.accuracy, 4),
            "per_class_iou": {
                name: None if np.isnan(value) else round(float(value), 4)
                for name, value in zip(class_names, self.per_class_iou, strict=True)
            },
        }


def class_confusion(confusion: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """Fold a cluster × class confusion into class × class through ``mapping``.

    Pixels of unmatched clusters (mapping -1) are dropped from the predicted side, so they
    count as misses of their true class and as hits of none.

    Returns:
        (n_classes, n_classes) int64 with rows = predicted class, columns = true class.
    """
    n_classes = confusion.shape[1]
    folded = np.zeros((n_classes, n_classes), dtype=np.int64)
    for cluster, target_class in enumerate(mapping):
        if target_class >= 0:
            folded[target_class] += confusion[cluster]
    return folded


def scores_from_confusion(confusion: np.ndarray, mapping: np.ndarray) -> SegmentationScores:
    """mIoU, pixel accuracy and per-class IoU of a matched prediction.

    Args:
        confusion: (n_clusters, n_classes) pixel counts.
        mapping: (n_clusters,) class per cluster (-1: none), e.g. from :func:`match_clusters`.
    """
    folded = class_confusion(confusion, mapping)
    true_positive = np.diag(folded).astype(np.float64)
    predicted = folded.sum(axis=1)
    actual = confusion.sum(axis=0)
    union = predicted + actual - true_positive
    present = actual > 0
    iou = np.full(folded.shape[0], np.nan)
    iou[present] = 100.0 * true_positive[present] / union[present]
    total = actual.sum()
    accuracy = 100.0 * true_positive.sum() / total if total else float("nan")
    miou = float(np.nanmean(iou)) if present.any() else float("nan")
    return SegmentationScores(miou=miou, accuracy=float(accuracy), per_class_iou=iou)


def per_image_miou(image_confusions: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """mIoU of each image under one split-wide matching.

    Args:
        image_confusions: (N, n_clusters, n_classes) pixel counts per image.
        mapping: (n_clusters,) class per cluster, shared by all images.

    Returns:
        (N,) float64 mIoU in percent over the classes present in each image.
    """
    return np.array(
        [scores_from_confusion(confusion, mapping).miou for confusion in image_confusions]
    )
