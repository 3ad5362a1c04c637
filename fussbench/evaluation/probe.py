"""A supervised linear probe on frozen features: a diagnostic ceiling, never a benchmark row.

The probe answers one question: how well can *any* linear read-out of the cached backbone
features separate the classes? It is trained **with the training split's labels**, so it is
not unsupervised and must never appear beside the benchmark's methods; it only bounds
what a head over these frozen features could separate linearly at this feature
resolution.

Protocol (deterministic, no random draw):

1. Every feature cell (one of the h × w positions of a (C, h, w) map) gets the fraction of
   its labelled pixels in each class (:func:`cell_fractions`; pixels labelled 255 are left
   out). A cell enters the training set once per class it contains, with that class as
   target and sample weight ``fraction × class weight``: the weighted log-loss is the
   cross-entropy to the cell's class fractions.
2. Class weights are "balanced" in pixels: ``labelled pixels / (classes × pixels of the
   class)`` over the training split, so a rare class (a defect) weighs as much as the
   background in total.
3. Features are standardised (mean and std per channel over the training cells) and
   ``sklearn.linear_model.LogisticRegression`` (lbfgs, L2, ``C``) is fitted.
4. On the evaluation split the class scores (logits) of each image are upsampled
   bilinearly to the labels' size and the best class taken, as the evaluation of a trained
   model does (:func:`fussbench.evaluation.predict.iter_cluster_maps`); the classes are the
   probe's own (identity mapping, no matching), scored by
   :func:`fussbench.evaluation.metrics.scores_from_confusion`.

:func:`grid_ceiling` scores the evaluation labels' own cell fractions upsampled the same
way: what a perfect per-cell predictor would reach at this feature grid, separating the
limit set by resolution from the one set by the features.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from fussbench.data.samples import IGNORE_INDEX
from fussbench.errors import FussbenchError
from fussbench.evaluation.metrics import (
    SegmentationScores,
    confusion_matrix,
    scores_from_confusion,
)
from fussbench.evaluation.predict import iter_cluster_maps

CHUNK = 32
"""Images read from a (memory-mapped) cache at a time."""


def cell_fractions(labels: np.ndarray, grid: tuple[int, int], n_classes: int) -> np.ndarray:
    """Fraction of each cell's labelled pixels in each class.

    Args:
        labels: (N, H, W) uint8 class indices, 255 ignored; H and W multiples of h and w.
        grid: (h, w) of the feature map.
        n_classes: number of classes K.

    Returns:
        (N, K, h, w) float32; a cell without a labelled pixel is all zeros.

    Raises:
        FussbenchError: the label size is not a multiple of the grid.
    """
    n_images, height, width = labels.shape
    rows, columns = grid
    if height % rows or width % columns:
        raise FussbenchError(
            f"labels {height}x{width} are not a multiple of the feature grid {rows}x{columns}"
        )
    fractions = np.zeros((n_images, n_classes, rows, columns), dtype=np.float32)
    for start in range(0, n_images, CHUNK):
        chunk = np.asarray(labels[start : start + CHUNK])
        blocks = chunk.reshape(len(chunk), rows, height // rows, columns, width // columns)
        for k in range(n_classes):
            fractions[start : start + len(chunk), k] = (blocks == k).sum(axis=(2, 4))
    total = fractions.sum(axis=1, keepdims=True)
    return fractions / np.maximum(total, 1.0)


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(K,) ``labelled pixels / (K × pixels of the class)``; 0 for a class with no pixel.

    Args:
        labels: (N, H, W) uint8 class indices, 255 ignored.
    """
    counts = np.zeros(n_classes, dtype=np.int64)
    for start in range(0, len(labels), CHUNK):
        flat = np.asarray(labels[start : start + CHUNK]).ravel()
        counts += np.bincount(flat[flat != IGNORE_INDEX], minlength=256)[:n_classes]
    present = counts > 0
    weights = np.zeros(n_classes, dtype=np.float64)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


@dataclass(frozen=True)
class LinearProbe:
    """A fitted probe: standardisation plus one linear map to class scores.

    Attributes:
        mean, scale: (C,) per-channel standardisation of the features.
        coef: (K', C) weights; K' = 1 for two classes (the second class's logit).
        intercept: (K',) biases.
        classes: (P,) class index of each of the probe's P outputs.
        iterations: lbfgs iterations used.
        converged: False when lbfgs stopped at its iteration limit.
        n_samples: weighted training samples (cell, class) used.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray
    iterations: int
    converged: bool
    n_samples: int

    def scores(self, batch: torch.Tensor) -> torch.Tensor:
        """Class scores (B, P, h, w) of features (B, C, h, w)."""
        mean = torch.from_numpy(self.mean)[None, :, None, None]
        scale = torch.from_numpy(self.scale)[None, :, None, None]
        standard = (batch - mean) / scale
        logits = torch.einsum("bchw,kc->bkhw", standard, torch.from_numpy(self.coef))
        logits = logits + torch.from_numpy(self.intercept)[None, :, None, None]
        if len(self.classes) == 2:  # sklearn keeps one logit for two classes
            logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
        return logits


def _cell_rows(features: np.ndarray) -> np.ndarray:
    """(N, C, h, w) features -> (N * h * w, C) float32, image by image, row-major cells."""
    n_images, channels, rows, columns = features.shape
    out = np.empty((n_images * rows * columns, channels), dtype=np.float32)
    per_image = rows * columns
    for start in range(0, n_images, CHUNK):
        chunk = np.asarray(features[start : start + CHUNK], dtype=np.float32)
        flat = chunk.transpose(0, 2, 3, 1).reshape(-1, channels)
        out[start * per_image : start * per_image + len(flat)] = flat
    return out


def fit_probe(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    regularisation: float = 1.0,
    max_iter: int = 1000,
) -> LinearProbe:
    """Fit the probe of the module docstring on a training split.

    Args:
        features: (N, C, h, w) cached features (any float dtype, memory map fine).
        labels: (N, H, W) uint8 labels (255 ignored), H, W multiples of h, w.
        n_classes: number of classes K of the dataset.
        regularisation: ``C`` of the logistic regression (inverse L2 strength).
        max_iter: lbfgs iteration limit.

    Raises:
        FussbenchError: fewer than two classes have labelled pixels.
    """
    weights = balanced_class_weights(labels, n_classes)
    if (weights > 0).sum() < 2:
        raise FussbenchError("the linear probe needs labelled pixels of at least two classes")
    fractions = cell_fractions(labels, features.shape[2:], n_classes)
    per_class = fractions.transpose(0, 2, 3, 1).reshape(-1, n_classes)  # (cells, K)
    cells = _cell_rows(features)
    mean = cells.mean(axis=0, dtype=np.float64)
    scale = cells.std(axis=0, dtype=np.float64)
    scale[scale == 0] = 1.0
    picked, targets, sample_weights = [], [], []
    for k in np.flatnonzero(weights):
        rows = np.flatnonzero(per_class[:, k] > 0)
        picked.append(rows)
        targets.append(np.full(len(rows), k, dtype=np.int64))
        sample_weights.append(per_class[rows, k] * weights[k])
    rows = np.concatenate(picked)
    standard = ((cells[rows] - mean) / scale).astype(np.float32)
    del cells
    model = LogisticRegression(C=regularisation, solver="lbfgs", max_iter=max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(standard, np.concatenate(targets), sample_weight=np.concatenate(sample_weights))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return LinearProbe(
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        coef=model.coef_.astype(np.float32),
        intercept=model.intercept_.astype(np.float32),
        classes=model.classes_.astype(np.int64),
        iterations=int(np.max(model.n_iter_)),
        converged=converged,
        n_samples=len(rows),
    )


def score_maps(
    maps: Iterable[np.ndarray], labels: np.ndarray, classes: np.ndarray, n_classes: int
) -> SegmentationScores:
    """Score predicted maps whose values index ``classes`` (no matching).

    Args:
        maps: N maps (H, W) of output indices in ``[0, len(classes))``.
        labels: (N, H, W) uint8 labels, 255 ignored.
        classes: (P,) class of each output index.
        n_classes: number of classes K.
    """
    confusion = np.zeros((len(classes), n_classes), dtype=np.int64)
    for image_map, image_labels in zip(maps, labels, strict=True):
        confusion += confusion_matrix(image_map, image_labels, len(classes), n_classes)
    return scores_from_confusion(confusion, np.asarray(classes, dtype=np.int64))


def evaluate_probe(
    probe: LinearProbe, features: np.ndarray, labels: np.ndarray, n_classes: int
) -> SegmentationScores:
    """The probe's scores on a labelled split: features (N, C, h, w), labels (N, H, W)."""
    maps = iter_cluster_maps(features, probe.scores, len(probe.classes), labels.shape[1:])
    return score_maps(maps, labels, probe.classes, n_classes)


def grid_ceiling(labels: np.ndarray, grid: tuple[int, int], n_classes: int) -> SegmentationScores:
    """Scores of the labels' own cell fractions at ``grid`` (h, w), upsampled bilinearly and
    the largest taken as the evaluation does: what a prediction that knew every cell's true
    class fractions reaches at this feature resolution (below 100 wherever a class covers
    a few pixels of a cell, or corners blur). Uses the evaluation labels themselves;
    labels (N, H, W)."""
    fractions = cell_fractions(labels, grid, n_classes)
    maps = iter_cluster_maps(fractions, lambda batch: batch, n_classes, labels.shape[1:])
    return score_maps(maps, labels, np.arange(n_classes), n_classes)
