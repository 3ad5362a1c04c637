"""Is a segmentation collapsed? One cluster everywhere, or no better than the majority class.

A collapsed model can still score well on unbalanced data (all-background is 99 % accurate
on rare defects), so ``metrics.json`` and the tables mark it, and no collapsed run is ever
the "best" one of a table.
"""

from __future__ import annotations

import numpy as np

from fussbench.evaluation.predict import Evaluation

MAJORITY_TOLERANCE = 0.5
"""mIoU and accuracy points within which a labelled run counts as equal to predicting the
evaluation split's majority class everywhere."""


def _shares(cluster_pixels: np.ndarray) -> tuple[float, int]:
    """(largest cluster's share of the pixels, number of clusters that took any pixel)."""
    counts = np.asarray(cluster_pixels, dtype=np.float64)
    total = counts.sum()
    return (float(counts.max() / total) if total else 0.0), int((counts > 0).sum())


def collapse_with_labels(evaluation: Evaluation) -> dict[str, object]:
    """Collapse of a scored prediction: one cluster takes every pixel, or its mIoU and
    accuracy both equal (within :data:`MAJORITY_TOLERANCE` points) those of the constant
    prediction of the split's most frequent class, the ``majority`` reference row.

    Returns:
        ``{"collapsed", "reason", "largest_cluster_share", "clusters_used",
        "majority_miou", "majority_accuracy"}``; ``reason`` is ``None`` when not collapsed.
    """
    largest, used = _shares(evaluation.cluster_pixels)
    classes = evaluation.confusion.sum(axis=0)
    labelled = classes.sum()
    top = classes.max() / labelled if labelled else 0.0
    majority_miou = 100.0 * top / max(int((classes > 0).sum()), 1)
    majority_accuracy = 100.0 * top
    scores = evaluation.scores
    reason = None
    if used <= 1:
        reason = "one cluster everywhere"
    elif (
        abs(scores.miou - majority_miou) <= MAJORITY_TOLERANCE
        and abs(scores.accuracy - majority_accuracy) <= MAJORITY_TOLERANCE
    ):
        reason = "scores equal the majority-class prediction"
    return {
        "collapsed": reason is not None,
        "reason": reason,
        "largest_cluster_share": round(largest, 4),
        "clusters_used": used,
        "majority_miou": round(majority_miou, 4),
        "majority_accuracy": round(majority_accuracy, 4),
    }


def collapse_without_labels(cluster_pixels: np.ndarray, share_limit: float) -> dict[str, object]:
    """Collapse of an unscored prediction: its largest cluster takes more than
    ``share_limit`` (param ``folder.collapse_share``) of the pixels (n_clusters,).

    Returns:
        ``{"collapsed", "reason", "largest_cluster_share", "clusters_used"}``.
    """
    largest, used = _shares(cluster_pixels)
    collapsed = largest > share_limit
    reason = f"one cluster takes {100 * largest:.1f} % of the pixels" if collapsed else None
    return {
        "collapsed": collapsed,
        "reason": reason,
        "largest_cluster_share": round(largest, 4),
        "clusters_used": used,
    }
