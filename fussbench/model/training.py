"""One client's local training on cached features (STEGO losses, two Adam optimisers)."""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fussbench.features.rows import FileRows
from fussbench.model.config import CorrespondenceWeights, TrainConfig
from fussbench.model.head import SegmentationModel
from fussbench.model.losses import (
    bilinear_taps,
    cluster_loss,
    correspondence_loss,
    pixel_table,
    sample_rows,
)
from fussbench.model.neighbours import nearest_neighbours
from fussbench.model.precision import use_bf16
from fussbench.model.regularisers import Regulariser


@dataclass(frozen=True)
class ClientData:
    """What one client holds: rows of a feature cache and its own neighbour lists.

    The features stay where they are (the cache's float16 memory map): each batch is read
    and cast to float32 when it is drawn, so memory does not grow with the client's size.

    Attributes:
        features: (N, C, h, w) array of any float dtype (usually the cache's memory map), or
            anything indexable like it that returns such arrays or tensors.
        rows: (n,) int64 rows of ``features`` this client holds.
        neighbours: (n, k) int64 indices into ``rows``.
    """

    features: np.ndarray
    rows: np.ndarray
    neighbours: np.ndarray

    @classmethod
    def from_cache(
        cls, features: np.ndarray, pooled: np.ndarray, knn_k: int, rows: np.ndarray | None = None
    ) -> ClientData:
        """The client holding ``rows`` (default: all) of cached features (N, C, h, w) whose
        pooled features are ``pooled`` (N, C); its neighbour lists come from its rows only.
        A cache's memory map is read with file reads (:class:`FileRows`: same values, and
        its pages stay out of the client's resident set)."""
        rows = np.arange(features.shape[0]) if rows is None else np.asarray(rows)
        rows = rows.astype(np.int64)
        neighbours = nearest_neighbours(np.asarray(pooled[rows]), knn_k)
        if FileRows.readable(features):
            features = FileRows(features)  # type: ignore[assignment]
        return cls(features, rows, neighbours)

    @property
    def n_samples(self) -> int:
        return len(self.rows)

    @property
    def channels(self) -> int:
        return int(self.features.shape[1])

    def batch(self, samples: np.ndarray | slice) -> torch.Tensor:
        """Features (B, C, h, w) float32 of the client's ``samples`` (indices into ``rows``),
        in channels-last memory: the cast and the transpose the head needs in one pass."""
        values = torch.as_tensor(self.features[self.rows[samples]])
        return values.to(torch.float32, memory_format=torch.channels_last)


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


def _channel_keep(
    batch: int, channels: int, rate: float, generator: torch.Generator
) -> torch.Tensor | None:
    """Channel dropout's factors (batch, channels, 1, 1): 0 for a channel dropped with
    probability ``rate``, 1/(1 − rate) for the rest; None when ``rate`` is 0."""
    if rate <= 0:
        return None
    keep = torch.rand(batch, channels, 1, 1, generator=generator) >= rate
    return keep / (1.0 - rate)


def _pairings(count: int, n_negatives: int, generator: torch.Generator) -> torch.Tensor:
    """The partner sets (B, 2 + negatives) of the B anchors (sets 0..B−1) among the 3B
    point sets of a step: anchor n meets itself (set n), its kNN partner (set B + n) and,
    once per negative, set 2B + order[n] of a random derangement ``order`` of the batch."""
    batch = torch.arange(count)
    columns = [batch, batch + count]
    columns += [2 * count + _derangement(count, generator) for _ in range(n_negatives)]
    return torch.stack(columns, dim=1)


@functools.cache
def _pairing_weights(
    weights: CorrespondenceWeights, n_negatives: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """λ_k and b_k (2 + negatives,) of the pairings of :func:`_pairings`: self, kNN, then
    each negative with λ_rand / negatives (L_corr averages the random pairings)."""
    share = weights.lambda_rand / n_negatives if n_negatives else 0.0
    lambdas = [weights.lambda_self, weights.lambda_knn] + [share] * n_negatives
    shifts = [weights.shift_self, weights.shift_knn] + [weights.shift_rand] * n_negatives
    return torch.tensor(lambdas), torch.tensor(shifts)


def _correspondence_loss(
    model: SegmentationModel,
    data: ClientData,
    rows: np.ndarray,
    partners: np.ndarray,
    config: TrainConfig,
    generator: torch.Generator,
    bf16: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L_corr over one batch, the batch's codes (B, D, h, w) and the head's input
    (B, C, h, w): the batch's features after dropout.

    The batch and its kNN partners go through the head in one call (under bf16 autocast
    when ``bf16``; the codes come back as float32). Each image is sampled on a joint grid
    S × 2S of S × S random points of its own and S × S of its kNN partner's: in row-major
    order, the first S² points are its anchor set (a) and the last S² its set for the
    random pairing (c); the partner is sampled at its own grid (b). The 3B sets (a, then b,
    then c) of the features and of the codes are each read in one call, and all pairings
    (self, kNN, random) are one correlation product (:func:`correspondence_loss`), in
    bfloat16 when ``bf16``. Features enter the head after dropout and the feature
    correlations before it; every loss and normalisation is computed in float32.
    """
    count = len(rows)
    features = data.batch(np.concatenate([rows, partners]))  # (2B, C, h, w), channels-last
    keep = _channel_keep(len(features), data.channels, config.dropout, generator)
    grid = (count, config.feature_samples, config.feature_samples, 2)
    coords = torch.rand(grid, generator=generator) * 2 - 1
    partner_coords = torch.rand(grid, generator=generator) * 2 - 1
    joint = torch.cat([coords, partner_coords], dim=2).view(count, 2, -1, 2)
    point_coords = torch.cat([joint[:, 0], partner_coords.flatten(1, 2), joint[:, 1]])
    images = torch.arange(count)
    height, width = features.shape[2:]
    taps = bilinear_taps(point_coords, torch.cat([images, images + count, images]), height, width)
    sets = (3 * count, point_coords.shape[1], -1)
    feature_points = F.normalize(sample_rows(pixel_table(features), *taps), dim=1).view(sets)
    # dropout in place: ``data.batch`` returns a fresh tensor, and F was sampled before it
    head_input = features if keep is None else features.mul_(keep)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # cast the input once
        all_codes = model.head(head_input.to(torch.bfloat16) if bf16 else head_input)
    all_codes = all_codes.float()
    code_table = pixel_table(all_codes).contiguous()  # the head returns (D, 2B·h·w) memory
    code_points = F.normalize(sample_rows(code_table, *taps), dim=1).view(sets)
    codes = code_table[: count * height * width].view(count, height, width, -1)
    pairings = _pairings(count, config.n_negatives, generator)
    lambdas, shifts = _pairing_weights(config.weights, config.n_negatives)
    product = torch.bfloat16 if bf16 else torch.float32
    loss = correspondence_loss(feature_points, code_points, pairings, lambdas, shifts, product)
    return loss, codes.permute(0, 3, 1, 2), head_input[:count]


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
    bf16 = use_bf16(config.precision)
    head_optimiser = torch.optim.Adam(model.head.parameters(), lr=config.lr_head, fused=True)
    centroid_optimiser = torch.optim.Adam([model.centroids], lr=config.lr_centroids, fused=True)
    model.train()
    started = time.perf_counter()
    totals = np.zeros(3)
    replace = data.n_samples < config.batch_size
    for _ in range(config.local_steps):
        rows = rng.choice(data.n_samples, size=config.batch_size, replace=replace)
        picks = rng.integers(data.neighbours.shape[1], size=len(rows))
        partners = data.neighbours[rows, picks]
        corr, codes, head_input = _correspondence_loss(
            model, data, rows, partners, config, generator, bf16
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
