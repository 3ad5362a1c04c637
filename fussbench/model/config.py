"""The knobs of local training, as plain dataclasses.

Kept free of torch so that reading ``params.yaml`` (every command's first step) stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass

PRECISIONS = ("fp32", "bf16")
"""Valid ``train.precision`` values (see :mod:`fussbench.model.precision`)."""


@dataclass(frozen=True)
class CorrespondenceWeights:
    """λ (weight) and b (shift) of each pairing of L_corr.

    The shifts are backbone-specific: set them relative to the mean raw feature cosine of
    each pairing (``fussbench calibrate`` measures those means).
    """

    lambda_self: float
    lambda_knn: float
    lambda_rand: float
    shift_self: float
    shift_knn: float
    shift_rand: float


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of local training (``train:`` in params.yaml).

    Attributes:
        local_steps: batches per round; both optimisers step on every batch.
        batch_size: images per batch.
        lr_head: Adam learning rate of the head.
        lr_centroids: Adam learning rate of the centroids.
        feature_samples: S, the side of the random S×S grid of sampled points.
        knn_k: neighbours per image for the kNN pairing.
        n_negatives: random derangements of the batch for the random pairing.
        dropout: channel dropout on the features fed to the head (not on those in F).
        weights: λ and shift of each pairing.
        precision: "fp32", or "bf16" for the head's and the correlations' matrix
            products (see :mod:`fussbench.model.precision`).
    """

    local_steps: int
    batch_size: int
    lr_head: float
    lr_centroids: float
    feature_samples: int
    knn_k: int
    n_negatives: int
    dropout: float
    weights: CorrespondenceWeights
    precision: str = "fp32"
