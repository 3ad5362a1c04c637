"""Time one local round on cached features against the same round recomputing the backbone.

The original FUSS code runs the frozen backbone on every training batch; fussbench caches
the features once. This measures what that saves, with the same client code on both sides.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from fussbench.features.backbones import DenseBackbone
from fussbench.features.cache import forward_batch
from fussbench.features.device import Placement
from fussbench.federation.client import FederatedClient, LocalObjective
from fussbench.model.config import TrainConfig
from fussbench.model.head import initial_arrays
from fussbench.model.training import ClientData


class BackboneOnEveryBatch:
    """A client's features (N, C, h, w), computed by the backbone each time they are read.

    Stands in for the cached feature tensor of :class:`ClientData`: indexing it with rows
    or a slice runs the backbone on those decoded images, as the original code does on
    every batch.
    """

    def __init__(self, backbone: DenseBackbone, images: torch.Tensor, placement: Placement) -> None:
        """``images``: (N, 3, H, W) uint8, already decoded and resized."""
        self._backbone = backbone
        self._images = images
        self._placement = placement
        height, width = images.shape[2:]
        self.shape = (
            images.shape[0],
            backbone.channels,
            height // backbone.stride,
            width // backbone.stride,
        )

    def __getitem__(self, index: np.ndarray | slice) -> torch.Tensor:
        """Features (B, C, h, w) float32 of the selected images, on the CPU."""
        # clone: an ordinary tensor (not an inference tensor) that autograd may save
        return forward_batch(self._backbone, self._images[index], self._placement).clone()


def _timed_fit(
    data: ClientData,
    config: TrainConfig,
    objective: LocalObjective,
    dim: int,
    n_clusters: int,
    seed: int,
) -> float:
    """Seconds of one :meth:`FederatedClient.fit` (local steps, plus pixel counts when the
    objective asks for them)."""
    initial = initial_arrays(data.channels, dim, n_clusters, seed)
    client = FederatedClient(data, config, objective)
    started = time.perf_counter()
    client.fit(initial, seed)
    return time.perf_counter() - started


def benchmark_round(
    backbone: DenseBackbone,
    placement: Placement,
    images: torch.Tensor,
    features: np.ndarray,
    pooled: np.ndarray,
    config: TrainConfig,
    objective: LocalObjective,
    dim: int,
    n_clusters: int,
    seed: int = 0,
) -> dict[str, float]:
    """One client's round (``config.local_steps`` batches) on cached features and recomputed.

    Args:
        backbone: the frozen backbone the features were cached with, on ``placement``.
        placement: where the backbone runs (training itself runs on the CPU).
        images: (N, 3, H, W) uint8 decoded images of the client.
        features: (N, C, h, w) their cached features.
        pooled: (N, C) their pooled features (for the neighbour lists).
        config: local-training knobs.
        objective: what the aggregator asks of the client (its loss term, pixel counts).
        dim: code dimension D of the head.
        n_clusters: centroids of the model.
        seed: seed of the model and of the batches (the same on both sides).

    Returns:
        ``round_s_cached``, ``round_s_recompute`` and their ratio ``round_speedup``.
    """
    cached = ClientData.from_cache(features, pooled, config.knn_k)
    on_every_batch = BackboneOnEveryBatch(backbone, images, placement)
    recomputed = ClientData(on_every_batch, cached.rows, cached.neighbours)  # type: ignore[arg-type]
    cached_seconds = _timed_fit(cached, config, objective, dim, n_clusters, seed)
    recompute_seconds = _timed_fit(recomputed, config, objective, dim, n_clusters, seed)
    return {
        "round_images": int(images.shape[0]),  # cached rows: images, or views under stego
        "round_local_steps": config.local_steps,
        "round_s_cached": round(cached_seconds, 3),
        "round_s_recompute": round(recompute_seconds, 3),
        "round_speedup": round(recompute_seconds / cached_seconds, 1),
    }
