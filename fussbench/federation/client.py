"""A federated client: private data in, only a :class:`ClientUpdate` out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fussbench.errors import FussbenchError
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.scoring import candidate_scores
from fussbench.model.config import TrainConfig
from fussbench.model.head import ModelArrays, SegmentationModel
from fussbench.model.losses import assign_clusters
from fussbench.model.regularisers import ModelContrastiveTerm, ProximalTerm, Regulariser
from fussbench.model.training import ClientData, TrainStats, train_locally

REGULARISERS = ("none", "fedprox", "fedmoon")


@dataclass(frozen=True)
class LocalObjective:
    """What the aggregator asks of every client: a loss term, and whether to count pixels.

    Attributes:
        kind: "none", "fedprox" (μ/2·‖w − w_global‖²) or "fedmoon" (model-contrastive).
        mu: FedProx μ.
        temperature: FedMOON τ.
        weight: FedMOON weight.
        cluster_counts: send the per-centroid pixel counts (only an aggregator that uses
            them asks: computing them costs a head pass over all the client's images).
    """

    kind: str = "none"
    mu: float = 0.001
    temperature: float = 0.5
    weight: float = 1.0
    cluster_counts: bool = False

    def __post_init__(self) -> None:
        if self.kind not in REGULARISERS:
            raise FussbenchError(
                f"unknown local objective '{self.kind}'; valid: {', '.join(REGULARISERS)}"
            )


def cluster_pixel_counts(model: SegmentationModel, data: ClientData) -> np.ndarray:
    """How many of the client's feature pixels each centroid wins: (n_clusters,) int64."""
    counts = np.zeros(model.n_clusters, dtype=np.int64)
    with torch.inference_mode():
        for start in range(0, data.n_samples, 64):
            batch = data.batch(slice(start, start + 64))
            winners = assign_clusters(model.head(batch), model.centroids).argmax(dim=1)
            counts += np.bincount(winners.flatten().numpy(), minlength=model.n_clusters)
    return counts


class FederatedClient:
    """One client: holds its data (and FedMOON's previous local model) privately.

    The only way out is :meth:`fit`, which returns a :class:`ClientUpdate` — head weights,
    centroids, the image count and, when the objective asks, per-centroid pixel counts.
    """

    def __init__(
        self, data: ClientData, config: TrainConfig, objective: LocalObjective | None = None
    ) -> None:
        self._data = data
        self._config = config
        self._objective = objective or LocalObjective()
        self._previous: ModelArrays | None = None

    @property
    def n_samples(self) -> int:
        return self._data.n_samples

    def _regulariser(self, global_model: SegmentationModel) -> Regulariser | None:
        objective = self._objective
        if objective.kind == "fedprox":
            return ProximalTerm(global_model, objective.mu)
        if objective.kind == "fedmoon":
            previous = SegmentationModel.from_arrays(self._previous or global_model.to_arrays())
            return ModelContrastiveTerm(
                global_model, previous, objective.temperature, objective.weight
            )
        return None

    def fit(self, global_arrays: ModelArrays, seed: int) -> tuple[ClientUpdate, TrainStats]:
        """Train from ``global_arrays`` for one round; return the update and its stats."""
        global_model = SegmentationModel.from_arrays(global_arrays).eval()
        model = SegmentationModel.from_arrays(global_arrays)
        stats = train_locally(
            model, self._data, self._config, seed, self._regulariser(global_model)
        )
        arrays = model.to_arrays()
        self._previous = arrays
        counts = cluster_pixel_counts(model, self._data) if self._objective.cluster_counts else None
        update = ClientUpdate(arrays=arrays, n_samples=self._data.n_samples, cluster_counts=counts)
        return update, stats

    def score(self, head: ModelArrays, centroids: np.ndarray, max_images: int) -> np.ndarray:
        """FedCC-Auto: (J,) float64 scores of J candidates (shared ``head``, (J, n_clusters,
        dim) ``centroids``) on this client's images; the only thing it sends back
        (:func:`~fussbench.federation.scoring.candidate_scores`)."""
        return candidate_scores(head, centroids, self._data, max_images)

    def state(self) -> ModelArrays | None:
        """What the client must keep between rounds (FedMOON's previous model), to resume."""
        return self._previous

    def restore(self, previous: ModelArrays | None) -> None:
        """Restore :meth:`state` after a restart."""
        self._previous = previous
