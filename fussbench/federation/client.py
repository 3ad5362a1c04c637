"""A federated client: private data in, only a :class:`ClientUpdate` (and the answers to
an aggregator's queries) out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fussbench.errors import FussbenchError
from fussbench.federation.cluster_count import client_cluster_count
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.query import Query
from fussbench.model.config import TrainConfig
from fussbench.model.head import CENTROIDS_KEY, ModelArrays, SegmentationModel
from fussbench.model.losses import assign_clusters, pixel_table
from fussbench.model.regularisers import ModelContrastiveTerm, ProximalTerm, Regulariser
from fussbench.model.training import ClientData, TrainStats, train_locally

REGULARISERS = ("none", "fedprox", "fedmoon")


@dataclass(frozen=True)
class LocalObjective:
    """What the aggregator asks of every client: a loss term, whether to count pixels, and
    whether to send code sums in its centroids' place.

    Attributes:
        kind: "none", "fedprox" (μ/2·‖w − w_global‖²) or "fedmoon" (model-contrastive).
        mu: FedProx μ.
        temperature: FedMOON τ.
        weight: FedMOON weight.
        cluster_counts: send the per-centroid pixel counts (only an aggregator that uses
            them asks: computing them costs a head pass over all the client's images).
        code_sums: send, in the centroids' place, each centroid's sum of the unit codes it
            wins (:func:`cluster_code_sums`); the trained centroids stay on the client.
            Needs ``cluster_counts`` (each sum goes with its count).
    """

    kind: str = "none"
    mu: float = 0.001
    temperature: float = 0.5
    weight: float = 1.0
    cluster_counts: bool = False
    code_sums: bool = False

    def __post_init__(self) -> None:
        if self.kind not in REGULARISERS:
            raise FussbenchError(
                f"unknown local objective '{self.kind}'; valid: {', '.join(REGULARISERS)}"
            )
        if self.code_sums and not self.cluster_counts:
            raise FussbenchError(
                "LocalObjective: code_sums are sent with their cluster_counts; set "
                "cluster_counts=True too"
            )


def cluster_code_sums(model: SegmentationModel, data: ClientData) -> tuple[np.ndarray, np.ndarray]:
    """Per centroid, the sum of the client's unit codes it wins, and how many it wins.

    Math: with u_p = s_p / ||s_p|| the head's code at feature pixel p of the client's images
    and a(p) = argmax_c cos(u_p, mu_c) its centroid (:func:`~fussbench.model.losses.
    assign_clusters`, the training's assignment), sums_c = sum_{p : a(p) = c} u_p and
    counts_c = |{p : a(p) = c}|.

    Returns:
        sums (n_clusters, dim) float32 (accumulated in float64; a row no pixel chose is
        zero) and counts (n_clusters,) int64, a histogram over the client's pixels.
    """
    sums = torch.zeros(model.n_clusters, model.centroids.shape[1], dtype=torch.float64)
    counts = np.zeros(model.n_clusters, dtype=np.int64)
    with torch.inference_mode():
        for start in range(0, data.n_samples, 64):
            codes = model.head(data.batch(slice(start, start + 64)))
            winners = assign_clusters(codes, model.centroids).argmax(dim=1).flatten()
            units = F.normalize(pixel_table(codes), dim=1).to(torch.float64)
            sums.index_add_(0, winners, units)
            counts += np.bincount(winners.numpy(), minlength=model.n_clusters)
    return sums.numpy().astype(np.float32), counts


class FederatedClient:
    """One client: holds its data (and FedMOON's previous local model) privately.

    The only ways out are :meth:`fit`, which returns a :class:`ClientUpdate` — head weights,
    centroids (or, when the objective asks, code sums in their place), the image count and,
    when the objective asks, per-centroid pixel counts — and :meth:`answer`, an
    aggregator's query answered with exactly the arrays it declares.
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
        self._previous = model.to_arrays()
        return self._message(model, self._previous), stats

    def _message(self, model: SegmentationModel, arrays: ModelArrays) -> ClientUpdate:
        """The update of the trained ``model`` (``arrays``, its array form): as trained, or
        with the code sums in the centroids' place; with the pixel counts when asked."""
        if not self._objective.cluster_counts:
            return ClientUpdate(arrays=arrays, n_samples=self._data.n_samples)
        sums, counts = cluster_code_sums(model, self._data)
        if self._objective.code_sums:
            arrays = {**arrays, CENTROIDS_KEY: sums}
        return ClientUpdate(arrays=arrays, n_samples=self._data.n_samples, cluster_counts=counts)

    def trained(self) -> ModelArrays:
        """The model of the last :meth:`fit` (head and this client's own centroids), as it
        stays on the client: its scores on its own images are computed on it, whatever
        the update carries in the centroids' place.

        Raises:
            FussbenchError: before any :meth:`fit` or :meth:`restore`.
        """
        if self._previous is None:
            raise FussbenchError("the client has not trained yet; call fit first")
        return self._previous

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
