"""A federated client: private data in, only a :class:`ClientUpdate` (and the answers to
an aggregator's queries) out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fussbench.errors import FussbenchError
from fussbench.federation.cluster_count import client_cluster_count
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.query import Query
from fussbench.model.config import TrainConfig
from fussbench.model.head import CENTROIDS_KEY, ModelArrays, SegmentationModel
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

    The only ways out are :meth:`fit`, which returns a :class:`ClientUpdate` — head weights,
    centroids, the image count and, when the objective asks, per-centroid pixel counts —
    and :meth:`answer`, an aggregator's query answered with exactly the arrays it declares.
    """

    def __init__(
        self,
        data: ClientData,
        config: TrainConfig,
        objective: LocalObjective | None = None,
        k_range: tuple[int, int] | None = None,
    ) -> None:
        """``k_range``: (low, high) of ``model.k_range`` when ``model.n_clusters`` is auto
        (the client then estimates its own K when the global model has no centroids)."""
        self._data = data
        self._config = config
        self._objective = objective or LocalObjective()
        self._previous: ModelArrays | None = None
        self._k_range = k_range

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
        """Train from ``global_arrays`` for one round; return the update and its stats.

        A global model without centroids (round 1 of ``model.n_clusters: auto``) gets the
        client's own K_k centroids first (:meth:`_own_centroids`)."""
        if len(global_arrays[CENTROIDS_KEY]) == 0:
            global_arrays = self._own_centroids(global_arrays, seed)
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

    def _own_centroids(self, global_arrays: ModelArrays, seed: int) -> ModelArrays:
        """``global_arrays`` with K_k centroids ~ randn(K_k, dim), K_k estimated from this
        client's own features (:func:`~fussbench.federation.cluster_count.
        client_cluster_count`); pixels and centroids drawn from a seed derived from
        ``seed``. Only the centroids' count leaves the client, as their shape."""
        if self._k_range is None:
            raise FussbenchError(
                "the global model has no centroids, which only model.n_clusters: auto sends; "
                "the client was built without model.k_range"
            )
        own_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
        count = client_cluster_count(self._data.features, self._data.rows, self._k_range, own_seed)
        dim = global_arrays[CENTROIDS_KEY].shape[1]
        generator = torch.Generator().manual_seed(own_seed)
        centroids = torch.randn(count, dim, generator=generator).numpy()
        return {**global_arrays, CENTROIDS_KEY: centroids}

    def answer(self, query: Query) -> ModelArrays:
        """The answer to an aggregator's ``query`` from this client's data (arrays named
        as ``query.answer_keys``, e.g. FedCC-Auto's (J,) scores); the only thing it sends
        back besides its update."""
        return query.answer(self._data)

    def state(self) -> ModelArrays | None:
        """What the client must keep between rounds (FedMOON's previous model), to resume."""
        return self._previous

    def restore(self, previous: ModelArrays | None) -> None:
        """Restore :meth:`state` after a restart."""
        self._previous = previous
