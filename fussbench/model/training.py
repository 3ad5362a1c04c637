"""One client's local training on cached features (STEGO losses, two Adam optimisers)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from fussbench.model.config import TrainConfig
from fussbench.model.head import SegmentationModel
from fussbench.model.losses import (
    cluster_loss,
    correspondence_term,
    sample_unit_points,
)
from fussbench.model.neighbours import nearest_neighbours
from fussbench.model.regularisers import Regulariser


@dataclass(frozen=True)
class ClientData:
    """What one client holds: its cached features and its own neighbour lists.

    Attributes:
        features: (N, C, h, w) float32.
        neighbours: (N, k) int64 row indices into ``features``.
    """

    features: torch.Tensor
    neighbours: np.ndarray

    @classmethod
    def from_cache(cls, features: np.ndarray, pooled: np.ndarray, knn_k: int) -> ClientData:
        """Build from cached rows: features (N, C, h, w) float16, pooled (N, C)."""
        return cls(
            features=torch.from_numpy(np.asarray(features, dtype=np.float32)),
            neighbours=nearest_neighbours(np.asarray(pooled), knn_k),
        )

    @property
    def n_samples(self) -> int:
        return self.features.shape[0]


@dataclass(frozen=True)
class TrainStats:
    """Summary of one local training call."""

    steps: int
    loss: float
    corr_loss: float
    cluster_loss: float
    seconds: float

    @property
    def finite(self) -> bool:
        return math.isfinite(self.loss)


def _derangement(size: int, generator: torch.Generator) -> torch.Tensor:
    """A random permutation of ``size`` items with no fixed point (identity when size 1)."""
    if size == 1:
        return torch.zeros(1, dtype=torch.long)
    shift = torch.randint(1, size, (1,), generator=generator)
    order = torch.randperm(size, generator=generator)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(size)
    return order[(inverse + shift) % size]


def _channel_dropout(
    features: torch.Tensor, rate: float, generator: torch.Generator
) -> torch.Tensor:
    """Drop whole channels of (B, C, h, w) with probability ``rate``, rescaling the rest."""
    if rate <= 0:
        return features
    batch, channels = features.shape[:2]
    keep = torch.rand(batch, channels, 1, 1, generator=generator) >= rate
    return features * keep / (1.0 - rate)


def _correspondence_loss(
    model: SegmentationModel,
    data: ClientData,
    rows: np.ndarray,
    partners: np.ndarray,
    config: TrainConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L_corr over one batch, the batch's codes (B, D, h, w) and the head's input
    (B, C, h, w): the batch's features after dropout."""
    weights = config.weights
    features = data.features[torch.from_numpy(rows)]
    partner_features = data.features[torch.from_numpy(partners)]
    head_input = _channel_dropout(features, config.dropout, generator)
    codes = model.head(head_input)
    partner_codes = model.head(_channel_dropout(partner_features, config.dropout, generator))
    grid = (len(rows), config.feature_samples, config.feature_samples, 2)
    coords = torch.rand(grid, generator=generator) * 2 - 1
    partner_coords = torch.rand(grid, generator=generator) * 2 - 1
    f_a, s_a = sample_unit_points(features, coords), sample_unit_points(codes, coords)
    loss = weights.lambda_self * correspondence_term(f_a, f_a, s_a, s_a, weights.shift_self)
    f_b = sample_unit_points(partner_features, partner_coords)
    s_b = sample_unit_points(partner_codes, partner_coords)
    loss = loss + weights.lambda_knn * correspondence_term(f_a, f_b, s_a, s_b, weights.shift_knn)
    # Random pairing: image n meets image order[n], sampled at the partner grid of order[n].
    f_c = sample_unit_points(features, partner_coords)
    s_c = sample_unit_points(codes, partner_coords)
    negative_terms = []
    for _ in range(config.n_negatives):
        order = _derangement(len(rows), generator)
        negative_terms.append(
            correspondence_term(f_a, f_c[order], s_a, s_c[order], weights.shift_rand)
        )
    if negative_terms:
        loss = loss + weights.lambda_rand * torch.stack(negative_terms).mean()
    return loss, codes, head_input


def train_locally(
    model: SegmentationModel,
    data: ClientData,
    config: TrainConfig,
    seed: int,
    regulariser: Regulariser | None = None,
) -> TrainStats:
    """Train ``model`` in place on one client's data for ``config.local_steps`` batches.

    Optimiser state starts fresh on every call (as in the original, once per round).
    ``regulariser`` (FedProx, FedMOON) adds its term to every step's loss.
    The same model, data, config and seed give the same result on CPU.
    """
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    head_optimiser = torch.optim.Adam(model.head.parameters(), lr=config.lr_head)
    centroid_optimiser = torch.optim.Adam([model.centroids], lr=config.lr_centroids)
    model.train()
    started = time.perf_counter()
    totals = np.zeros(3)
    replace = data.n_samples < config.batch_size
    for _ in range(config.local_steps):
        rows = rng.choice(data.n_samples, size=config.batch_size, replace=replace)
        picks = rng.integers(data.neighbours.shape[1], size=len(rows))
        partners = data.neighbours[rows, picks]
        corr, codes, head_input = _correspondence_loss(
            model, data, rows, partners, config, generator
        )
        centroid_term = cluster_loss(codes.detach(), model.centroids)
        loss = corr + centroid_term
        if regulariser is not None:
            loss = loss + regulariser(model, head_input)
        head_optimiser.zero_grad(set_to_none=True)
        centroid_optimiser.zero_grad(set_to_none=True)
        loss.backward()
        head_optimiser.step()
        centroid_optimiser.step()
        totals += (loss.item(), corr.item(), centroid_term.item())
    model.eval()
    means = totals / max(config.local_steps, 1)
    return TrainStats(
        steps=config.local_steps,
        loss=float(means[0]),
        corr_loss=float(means[1]),
        cluster_loss=float(means[2]),
        seconds=time.perf_counter() - started,
    )
