"""Segment cached features with a trained model and score the result."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fussbench.evaluation.flip import FlipPairs, flip_averaged_scores
from fussbench.evaluation.metrics import (
    SegmentationScores,
    confusion_matrix,
    match_clusters,
    per_image_miou,
    scores_from_confusion,
)
from fussbench.model.head import ModelArrays, SegmentationModel
from fussbench.model.losses import assign_clusters


def iter_cluster_maps(
    features: np.ndarray,
    score: Callable[[torch.Tensor], torch.Tensor],
    n_clusters: int,
    size: tuple[int, int],
    batch_size: int = 32,
) -> Iterator[np.ndarray]:
    """Cluster of every pixel, one image at a time: the best-scoring cluster after bilinear
    upsampling. Only ``batch_size`` images' features are read at once.

    Scores are computed ``batch_size`` images at a time, then upsampled one image at a
    time: a single image's (K, H, W) upsampled scores stay in the CPU cache for the argmax
    that follows, which makes the whole call about 1.5x faster than upsampling the batch.

    Args:
        features: (N, C, h, w) cached features (any float dtype), or any rows (N, ...)
            read by slices that ``score`` takes (e.g.
            :class:`~fussbench.evaluation.flip.FlipPairs`).
        score: maps a float32 batch (B, C, h, w) (B rows of ``features``) to cluster
            scores (B, K, h, w).
        size: (H, W) of the labels.

    Yields:
        N maps (H, W) uint8 of cluster indices (int16 if there are over 255 clusters).
    """
    dtype = np.uint8 if n_clusters <= 255 else np.int16
    for start in range(0, features.shape[0], batch_size):
        maps = []
        with torch.inference_mode():  # not held across a yield
            batch = torch.from_numpy(np.asarray(features[start : start + batch_size], np.float32))
            scores = score(batch).contiguous(memory_format=torch.channels_last)
            for image_scores in scores.split(1):
                upsampled = F.interpolate(
                    image_scores, size=size, mode="bilinear", align_corners=False
                )
                # max().indices over channels-last memory is several times faster than argmax
                maps.append(upsampled.max(dim=1).indices[0].numpy().astype(dtype))
        yield from maps


def cluster_maps(
    features: np.ndarray,
    score: Callable[[torch.Tensor], torch.Tensor],
    n_clusters: int,
    size: tuple[int, int],
    batch_size: int = 32,
) -> np.ndarray:
    """All of :func:`iter_cluster_maps` in one array (N, H, W) uint8 (int16 if there are
    over 255 clusters)."""
    dtype = np.uint8 if n_clusters <= 255 else np.int16
    clusters = np.empty((features.shape[0], *size), dtype=dtype)
    for index, image in enumerate(iter_cluster_maps(features, score, n_clusters, size, batch_size)):
        clusters[index] = image
    return clusters


def _model_scores(arrays: ModelArrays) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    """The trained model's cluster scores of a batch, and its number of clusters."""
    model = SegmentationModel.from_arrays(arrays).eval()
    return lambda batch: assign_clusters(model.head(batch), model.centroids), model.n_clusters


def scored_rows(
    arrays: ModelArrays, features: np.ndarray, flipped: np.ndarray | None = None
) -> tuple[np.ndarray | FlipPairs, Callable[[torch.Tensor], torch.Tensor], int]:
    """What :func:`iter_cluster_maps` reads and how it scores it, for the model's number
    of clusters K.

    Args:
        features: (N, C, h, w) cached features.
        flipped: (N, C, h, w) the features of each image's mirror image, or None.

    Returns:
        Without ``flipped``: ``features`` and the model's scores of a batch (B, C, h, w).
        With it: the :class:`~fussbench.evaluation.flip.FlipPairs` of both and their
        flip-averaged scores (:mod:`fussbench.evaluation.flip`). Then K.
    """
    if flipped is None:
        return features, *_model_scores(arrays)
    return FlipPairs(features, flipped), *flip_averaged_scores(arrays)


def predict_clusters(
    arrays: ModelArrays, features: np.ndarray, size: tuple[int, int], batch_size: int = 32
) -> np.ndarray:
    """Cluster of every pixel: nearest centroid (cosine) of the head's codes, upsampled to
    ``size``: (N, H, W), see :func:`cluster_maps`."""
    score, n_clusters = _model_scores(arrays)
    return cluster_maps(features, score, n_clusters, size, batch_size)


@dataclass(frozen=True)
class Evaluation:
    """A model's result on one labelled split.

    Attributes:
        scores: split-level mIoU, accuracy and per-class IoU after Hungarian matching.
        mapping: (n_clusters,) class of each cluster (-1 unmatched).
        confusion: (n_clusters, n_classes) pixel counts over the split.
        image_miou: (N,) per-image mIoU under the split-level matching.
        cluster_pixels: (n_clusters,) pixels predicted as each cluster, labelled or not
            (the evidence of a collapse, see :mod:`fussbench.evaluation.collapse`).
    """

    scores: SegmentationScores
    mapping: np.ndarray
    confusion: np.ndarray
    image_miou: np.ndarray
    cluster_pixels: np.ndarray

    def rescored(self, matching: str) -> SegmentationScores:
        """The same prediction's split-level scores under ``matching`` (a name of
        :data:`~fussbench.evaluation.metrics.MATCHINGS`), for any number of clusters:
        under ``hungarian`` the clusters left unmatched count as errors, under
        ``majority`` several clusters may share a class."""
        return scores_from_confusion(self.confusion, match_clusters(self.confusion, matching))


def evaluate_clusters(
    clusters: Iterable[np.ndarray],
    labels: np.ndarray,
    n_clusters: int,
    n_classes: int,
    matching: str = "hungarian",
) -> Evaluation:
    """Score cluster maps (N, H, W) against labels (N, H, W) with one split-wide matching
    (``matching``: a name of :data:`fussbench.evaluation.metrics.MATCHINGS`). ``clusters``
    may be any iterable of (H, W) maps (one image's map is held at a time)."""
    image_confusions, cluster_pixels = [], np.zeros(n_clusters, dtype=np.int64)
    for image_clusters, image_labels in zip(clusters, labels, strict=True):
        image_confusions.append(
            confusion_matrix(image_clusters, image_labels, n_clusters, n_classes)
        )
        flat = np.asarray(image_clusters).ravel().astype(np.int64)
        cluster_pixels += np.bincount(flat, minlength=n_clusters)
    image_confusions = np.stack(image_confusions)
    confusion = image_confusions.sum(axis=0)
    mapping = match_clusters(confusion, matching)
    return Evaluation(
        scores=scores_from_confusion(confusion, mapping),
        mapping=mapping,
        confusion=confusion,
        image_miou=per_image_miou(image_confusions, mapping),
        cluster_pixels=cluster_pixels,
    )


def evaluate_model(
    arrays: ModelArrays,
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    matching: str = "hungarian",
    flipped: np.ndarray | None = None,
) -> Evaluation:
    """Segment features (N, C, h, w) and score against labels (N, H, W), a batch of
    features and one image's clusters at a time; with ``flipped`` (N, C, h, w), the
    features of each image's mirror image, the flip-averaged prediction
    (:mod:`fussbench.evaluation.flip`)."""
    rows, score, n_clusters = scored_rows(arrays, features, flipped)
    clusters = iter_cluster_maps(rows, score, n_clusters, labels.shape[1:])
    return evaluate_clusters(clusters, labels, n_clusters, n_classes, matching)
