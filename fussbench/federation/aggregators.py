"""Server aggregation for federated unsupervised segmentation, as pure functions of arrays.

The same code serves the in-process engine, the Flower strategy and the tests: an
aggregator takes the clients' :class:`~fussbench.federation.messages.ClientUpdate` messages
and the global model broadcast at the start of the round, and returns the next global model.
Nothing here touches torch, files or the network.

An aggregator has two rules: one for the segmentation head (``head.*``;
:meth:`Aggregator.aggregate_head`, FedAvg unless a subclass overrides it) and one for the
cluster centroids (``centroids``, shape (n_clusters, dim); :meth:`Aggregator.
aggregate_centroids`). What a method *means* beyond its rules (its knobs, family and
capabilities) is its registry entry (:mod:`fussbench.methods.catalog`).

Papers:
    - FedAvg: McMahan et al., "Communication-Efficient Learning of Deep Networks from
      Decentralized Data", AISTATS 2017 (arXiv 1602.05629).
    - FedProx: Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020
      (arXiv 1812.06127).
    - MOON: Li, He and Song, "Model-Contrastive Federated Learning", CVPR 2021
      (arXiv 2103.16257).
    - FUSS / FedCC: "Federated Unsupervised Semantic Segmentation", arXiv 2505.23292
      (Eqs. 12-13 for the averaged centroids; FedCC-kMeans and FedCC-Maximin).
    - FedCC-Matched is ours, not in any of these papers.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from fussbench.errors import FussbenchError
from fussbench.federation.cluster_count import global_cluster_count
from fussbench.federation.exchange import Exchange, ServerStep
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.pooled import (
    canonical_order,
    pool_centroids,
    pool_counts,
    unit_rows,
)
from fussbench.methods import WEIGHTINGS, get_spec, specs
from fussbench.methods.catalog import FEDCC_MERGES, FEDCC_MODES, MATCHED_VARIANTS
from fussbench.model.head import CENTROIDS_KEY, ModelArrays, head_arrays


def client_weights(updates: Sequence[ClientUpdate], weighting: str) -> np.ndarray:
    """Per-client aggregation weights, float64 of shape (K,), summing to 1.

    Args:
        updates: the K client messages of this round.
        weighting: ``"samples"`` (w_k = n_k / sum_j n_j) or ``"uniform"`` (w_k = 1 / K).

    Raises:
        FussbenchError: unknown ``weighting``, no updates, or sample counts that are
            negative or sum to zero.
    """
    check_choice(weighting, WEIGHTINGS, "weighting", "federation.weighting")
    if not updates:
        raise FussbenchError("cannot aggregate zero client updates")
    if weighting == "uniform":
        return np.full(len(updates), 1.0 / len(updates))
    counts = np.array([update.n_samples for update in updates], dtype=np.float64)
    if (counts < 0).any() or counts.sum() <= 0:
        raise FussbenchError(
            f"sample weighting needs non-negative n_samples with a positive sum, got "
            f"{counts.astype(np.int64).tolist()}; use federation.weighting=uniform instead"
        )
    return counts / counts.sum()


def average_arrays(arrays: Sequence[ModelArrays], weights: np.ndarray) -> ModelArrays:
    """Weighted element-wise mean of every key: out[key] = sum_k weights[k] * arrays[k][key].

    Args:
        arrays: K models with the same keys and shapes.
        weights: (K,) weights, normally summing to 1 (see :func:`client_weights`).

    Returns:
        One model with the same keys and shapes, float32.

    Raises:
        FussbenchError: no models, a weight count that differs from K, or keys or shapes
            that disagree (the message names the key).
    """
    weights = np.asarray(weights, dtype=np.float64)
    if not arrays or weights.shape != (len(arrays),):
        raise FussbenchError(
            f"need one weight per model: got {len(arrays)} models and weights of shape "
            f"{weights.shape}"
        )
    reference = arrays[0]
    for index, model in enumerate(arrays[1:], start=1):
        _check_same_layout(reference, model, f"model {index}")
    return {
        key: np.tensordot(weights, np.stack([model[key] for model in arrays]), axes=1).astype(
            np.float32
        )
        for key in reference
    }


@dataclass(frozen=True)
class Aggregator:
    """Base aggregator: the head by :meth:`aggregate_head` (FedAvg), the centroids by
    :meth:`aggregate_centroids`.

    Contract of :meth:`aggregate`: every update has the keys and shapes of ``previous``
    (in particular the same n_clusters); the result has them too, float32. Subclasses
    override :meth:`aggregate_centroids`, :meth:`aggregate_head` for a head rule of their
    own, and :meth:`server_round` when they ask the clients something during the round
    (FedCC-Auto).

    With ``model.n_clusters: auto`` the first global model has no centroids (0, dim): each
    client then sends its own K_k centroids, and an aggregator built with ``k_range`` (its
    registry entry declares ``any_k``) chooses the global K from them
    (:func:`~fussbench.federation.cluster_count.global_cluster_count`, within ``k_range``);
    from then on every client holds that K.

    Attributes:
        weighting: how clients are weighted (``federation.weighting``): ``"samples"``
            (default; by number of training images) or ``"uniform"``.
        k_range: (low, high) of ``model.k_range`` for ``model.n_clusters: auto``; None
            (default): the number of clusters is fixed.
    """

    weighting: str = "samples"
    k_range: tuple[int, int] | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        check_choice(self.weighting, WEIGHTINGS, "weighting", "federation.weighting")

    def aggregate(self, updates: Sequence[ClientUpdate], previous: ModelArrays) -> ModelArrays:
        """The next global model from this round's updates.

        Args:
            updates: the K client messages; each ``arrays`` has the layout of ``previous``.
            previous: the global model broadcast at the start of the round.

        Returns:
            ``head.*`` = weighted FedAvg of the clients' heads; ``centroids`` (n_clusters,
            dim) from :meth:`aggregate_centroids`. All float32.

        Raises:
            FussbenchError: no updates, or an update whose keys or shapes differ from
                ``previous`` (a different n_clusters is named as such).
        """
        if not updates:
            raise FussbenchError("cannot aggregate zero client updates")
        previous_centroids = previous[CENTROIDS_KEY]
        choose_k = len(previous_centroids) == 0
        for index, update in enumerate(updates):
            _check_same_layout(previous, update.arrays, f"client {index}", any_k=choose_k)
        weights = client_weights(updates, self.weighting)
        previous_head = head_arrays(previous)
        head = self.aggregate_head(updates, weights, previous_head)
        if choose_k:
            previous_centroids = self._first_centroids(updates)
        centroids = self.aggregate_centroids(updates, weights, previous_centroids)
        return {**head, CENTROIDS_KEY: centroids.astype(np.float32)}

    def aggregate_head(
        self, updates: Sequence[ClientUpdate], weights: np.ndarray, previous_head: ModelArrays
    ) -> ModelArrays:
        """The global head (every ``head.*`` array, float32) from the clients' heads.

        Math (this default, FedAvg): theta = sum_k w_k theta_k for every head array.

        Args:
            updates: the K client messages (``head.*`` arrays with the shapes of
                ``previous_head``).
            weights: (K,) client weights summing to 1.
            previous_head: the global head of the previous round.
        """
        return average_arrays([update.head for update in updates], weights)

    def server_round(
        self, updates: Sequence[ClientUpdate], previous: ModelArrays, exchange: Exchange
    ) -> ServerStep:
        """The server's half of a round, as both engines run it.

        Args:
            updates: the updates of the clients that finished the round.
            previous: the global model broadcast at the start of the round.
            exchange: the line to those clients: :meth:`Exchange.ask` sends them a
                :class:`~fussbench.federation.query.Query` and returns each one's answer
                or failure (``exchange.clients[i]`` is the client of ``updates[i]``).

        Returns:
            By default, asking nothing: ``ServerStep(self.aggregate(updates, previous))``.
        """
        return ServerStep(self.aggregate(updates, previous))

    def aggregate_centroids(
        self,
        updates: Sequence[ClientUpdate],
        weights: np.ndarray,
        previous_centroids: np.ndarray,
    ) -> np.ndarray:
        """Global centroids (n_clusters, dim) from the clients' centroids.

        Args:
            updates: the K client messages (centroids (n_clusters, dim) each).
            weights: (K,) client weights summing to 1.
            previous_centroids: (n_clusters, dim) global centroids of the previous round.
        """
        raise NotImplementedError

    def _first_centroids(self, updates: Sequence[ClientUpdate]) -> np.ndarray:
        """(K, dim) stand-in for the previous centroids of an auto round 1: zeros, with the
        global K chosen from the clients' sets (K_k, dim) of any size.

        Raises:
            FussbenchError: this aggregator cannot merge sets of different sizes, or no
                ``k_range`` was given.
        """
        if self.k_range is None:
            raise FussbenchError(
                f"{type(self).__name__} received a global model without centroids; only "
                "an aggregator built with model.k_range for model.n_clusters: auto can "
                "choose the number of clusters"
            )
        count = global_cluster_count([update.centroids for update in updates], self.k_range)
        return np.zeros((count, updates[0].centroids.shape[1]))


@dataclass(frozen=True)
class FedAvg(Aggregator):
    """FedAvg of head and centroids (FUSS paper Eqs. 12-13).

    Math: with client weights w_k (sum 1), theta = sum_k w_k theta_k for every head array and
    mu_c = sum_k w_k mu_{k,c} for every centroid index c.

    Averaging centroids index by index assumes that index c means the same cluster on every
    client. Under label skew clients drift to different clusters at the same index, and the
    average collapses distinct prototypes into one (see :func:`centroid_diagnostics`).

    Attributes:
        weighting: ``"samples"`` (default) or ``"uniform"``.
    """

    def aggregate_centroids(
        self,
        updates: Sequence[ClientUpdate],
        weights: np.ndarray,
        previous_centroids: np.ndarray,
    ) -> np.ndarray:
        """(n_clusters, dim): weighted element-wise mean of the clients' centroids."""
        stacked = np.stack([update.centroids for update in updates]).astype(np.float64)
        return np.tensordot(weights, stacked, axes=1)


@dataclass(frozen=True)
class FedProx(FedAvg):
    """FedProx: FedAvg on the server; the proximal term lives on the client.

    Each client minimises its loss plus (mu / 2) * ||w - w_global||^2 over the head's
    nonlinear branch (``head.nonlinear.*``); the server aggregates exactly as
    :class:`FedAvg`. ``mu`` is carried here so that the engine can hand it to the clients.

    Attributes:
        weighting: ``"samples"`` (default) or ``"uniform"``.
        mu: proximal coefficient (``federation.mu``), default 0.001, must be >= 0. With
            mu = 0 FedProx is plain FedAvg, which is warned about.
    """

    mu: float = 0.001

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mu < 0:
            raise FussbenchError(f"federation.mu must be >= 0, got {self.mu}")
        if self.mu == 0:
            warnings.warn(
                "FedProx with federation.mu = 0 is plain FedAvg; use aggregator=fedavg "
                "or set federation.mu > 0",
                stacklevel=3,
            )


@dataclass(frozen=True)
class FedMoon(FedAvg):
    """MOON: FedAvg on the server; the model-contrastive term lives on the client.

    Each client adds weight * l_con, with l_con = -log(exp(sim(z, z_glob)/T) /
    (exp(sim(z, z_glob)/T) + exp(sim(z, z_prev)/T))) on the nonlinear branch's output, z
    from the local model, z_glob from the global one and z_prev from the client's previous
    local model. The server aggregates exactly as :class:`FedAvg`.

    Attributes:
        weighting: ``"samples"`` (default) or ``"uniform"``.
        temperature: T (``federation.moon_temperature``), default 0.5, must be > 0.
        weight: coefficient of the contrastive term (``federation.moon_weight``), default
            1.0, must be >= 0. With weight = 0 MOON is plain FedAvg, which is warned about.
    """

    temperature: float = 0.5
    weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temperature <= 0:
            raise FussbenchError(f"federation.moon_temperature must be > 0, got {self.temperature}")
        if self.weight < 0:
            raise FussbenchError(f"federation.moon_weight must be >= 0, got {self.weight}")
        if self.weight == 0:
            warnings.warn(
                "FedMOON with federation.moon_weight = 0 is plain FedAvg; use "
                "aggregator=fedavg or set federation.moon_weight > 0",
                stacklevel=3,
            )


@dataclass(frozen=True)
class FedCCKMeans(Aggregator):
    """FedCC-kMeans: k-means over the pool of all clients' centroids (FUSS paper).

    Math: pool P = the K * n_clusters client centroids; the global centroids are the
    n_clusters centres of k-means on P (``n_init`` restarts, ``random_state=seed``). Client
    weights do not enter. The pool is sorted lexicographically by rows before fitting, so
    the result does not depend on client order.

    Attributes:
        weighting: ``"samples"`` (default) or ``"uniform"``; used for the head only.
        mode: ``"cosine"`` (default): L2-normalise the pool rows, return the re-normalised
            centres. ``"faithful"``: Euclidean k-means on the raw centroids, as the authors'
            code does.
        n_init: k-means restarts, default 10, must be >= 1.
        seed: k-means random state, default 0.
    """

    mode: str = "cosine"
    n_init: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.mode, FEDCC_MODES, "mode", "federation.mode")
        if self.n_init < 1:
            raise FussbenchError(f"FedCC-kMeans n_init must be >= 1, got {self.n_init}")

    def aggregate_centroids(
        self,
        updates: Sequence[ClientUpdate],
        weights: np.ndarray,
        previous_centroids: np.ndarray,
    ) -> np.ndarray:
        """(n_clusters, dim) k-means centres of the (normalised in cosine mode) pool."""
        n_clusters = previous_centroids.shape[0]
        pool = pool_centroids(updates, n_clusters)
        if self.mode == "cosine":
            pool = unit_rows(pool)
        centres = _kmeans(pool[canonical_order(pool)], n_clusters, self.n_init, self.seed)
        return unit_rows(centres) if self.mode == "cosine" else centres


@dataclass(frozen=True)
class FedCCMaximin(Aggregator):
    """FedCC-Maximin: farthest-point selection from the pool of client centroids (FUSS paper).

    Math: pool P = the K * n_clusters client centroids. Start from one vector s_1; then
    s_{i+1} = argmax_{p in P \\ S} min_{s in S} d(p, s) until n_clusters are chosen (ties go
    to the first candidate). The outputs are pool vectors, never averages. Client weights
    do not enter.

    Attributes:
        weighting: ``"samples"`` (default) or ``"uniform"``; used for the head only.
        mode: ``"cosine"`` (default): d = 1 - cosine on L2-normalised vectors; the pool is
            sorted lexicographically and the start is the vector closest to the pool's
            normalised mean, so the result does not depend on client order; the outputs are
            the chosen centroids L2-normalised. ``"faithful"``: d = Euclidean on the raw
            centroids, starting from client 0's first centroid, as the authors' code does
            (so the result depends on client order); the outputs are raw centroids.
    """

    mode: str = "cosine"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.mode, FEDCC_MODES, "mode", "federation.mode")

    def aggregate_centroids(
        self,
        updates: Sequence[ClientUpdate],
        weights: np.ndarray,
        previous_centroids: np.ndarray,
    ) -> np.ndarray:
        """(n_clusters, dim) rows of the (normalised in cosine mode) pool."""
        n_clusters = previous_centroids.shape[0]
        pool = pool_centroids(updates, n_clusters)
        if self.mode == "faithful":
            chosen = _farthest_points(_euclidean(pool), start=0, count=n_clusters)
            return pool[chosen]
        pool = unit_rows(pool)
        pool = pool[canonical_order(pool)]
        start = int(np.argmax(pool @ unit_rows(pool.mean(axis=0, keepdims=True))[0]))
        chosen = _farthest_points(1.0 - pool @ pool.T, start=start, count=n_clusters)
        return pool[chosen]


@dataclass(frozen=True)
class FedCCMatched(Aggregator):
    """FedCC-Matched (ours, not in the FUSS paper): merge centroids that mean the same cluster.

    Math, variant ``"hungarian"`` (default): with unit vectors, for each client k find the
    permutation pi_k maximising sum_c cos(mu_{k,pi_k(c)}, g_c) against the previous global
    centroids g (scipy's linear_sum_assignment), then g'_c = normalise(sum_k w_k
    mu_{k,pi_k(c)}). This is FedAvg after undoing each client's relabelling. Sets of another
    size (``model.n_clusters: auto``) are matched rectangularly: a client with fewer
    centroids adds to only as many global ones, a client with more leaves its extra ones
    out, and a global centroid no client matched keeps its previous value. In an auto
    round 1 the previous centroids are the k-means centres (global K) of the normalised
    pool, as in ``pooled_counts`` without counts.

    Variant ``"pooled_counts"``: k-means (10 restarts, ``random_state=seed``) over the pool
    of normalised client centroids, each weighted by its pixel count (``cluster_counts``),
    returning re-normalised centres. Zero-count centroids get zero weight; if every count is
    zero, all centroids weigh the same (with a warning). The pool is sorted lexicographically
    before fitting, so the result does not depend on client order. Client weights do not
    enter.

    Attributes:
        weighting: ``"samples"`` (default) or ``"uniform"``; used for the head and, in the
            hungarian variant, for the centroids.
        variant: ``"hungarian"`` (default) or ``"pooled_counts"`` (``federation.mode``).
        seed: k-means random state of the pooled_counts variant, default 0.
    """

    variant: str = "hungarian"
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.variant, MATCHED_VARIANTS, "mode", "federation.mode")

    def aggregate_centroids(
        self,
        updates: Sequence[ClientUpdate],
        weights: np.ndarray,
        previous_centroids: np.ndarray,
    ) -> np.ndarray:
        """(n_clusters, dim) unit-norm global centroids."""
        if self.variant == "hungarian":
            return _matched_average(updates, weights, previous_centroids)
        return self._pooled_counts(updates, previous_centroids.shape[0])

    def _first_centroids(self, updates: Sequence[ClientUpdate]) -> np.ndarray:
        """(K, dim) k-means centres of the normalised pool, the global K chosen as the base
        class does: the reference the hungarian variant aligns round 1's sets to."""
        count = len(super()._first_centroids(updates))
        pool = unit_rows(pool_centroids(updates, count))
        return unit_rows(_kmeans(pool[canonical_order(pool)], count, 10, self.seed))

    def _pooled_counts(self, updates: Sequence[ClientUpdate], n_clusters: int) -> np.ndarray:
        """(n_clusters, dim) count-weighted k-means centres of the normalised pool."""
        pool = unit_rows(pool_centroids(updates, n_clusters))
        counts = pool_counts(updates)
        if counts.sum() == 0:
            warnings.warn(
                "every cluster_count is zero; FedCC-Matched pooled_counts weighs all "
                "centroids equally this round",
                stacklevel=4,
            )
            counts = np.ones_like(counts)
        order = canonical_order(pool)
        centres = _kmeans(pool[order], n_clusters, 10, self.seed, sample_weight=counts[order])
        return unit_rows(centres)


def fedcc_merge(
    mode: str, weighting: str, seed: int, k_range: tuple[int, int] | None
) -> FedCCKMeans | FedCCMaximin:
    """The cosine FedCC aggregator that ``mode`` names, for a method that ends in a FedCC
    merge of its choosing (FedCC-Screened, FedCC-OneShot).

    Args:
        mode: ``"kmeans"`` (FedCC-kMeans) or ``"maximin"`` (FedCC-Maximin), as
            ``federation.mode``.
        weighting, k_range: those of the calling aggregator.
        seed: the k-means random state (FedCC-Maximin takes none).

    Raises:
        FussbenchError: an unknown ``mode``, naming ``federation.mode`` and the valid ones.
    """
    check_choice(mode, FEDCC_MERGES, "mode", "federation.mode")
    if mode == "maximin":
        return FedCCMaximin(weighting, mode="cosine", k_range=k_range)
    return FedCCKMeans(weighting, mode="cosine", seed=seed, k_range=k_range)


def make_aggregator(
    name: str,
    *,
    mode: str | None = None,
    weighting: str = "samples",
    seed: int = 0,
    knobs: Mapping[str, Any] | None = None,
    k_range: tuple[int, int] | None = None,
) -> Aggregator:
    """The aggregator called ``name``, built as its registry entry
    (:class:`~fussbench.methods.registry.MethodSpec`) declares: its class, its mode, its
    knobs' values and, when the entry is ``seeded``, the run's seed.

    Args:
        name: a registered method of kind ``"aggregator"`` (``aggregator``).
        mode: ``federation.mode``; None (default) takes the entry's default mode. Must be
            None for an aggregator without modes.
        weighting: ``"samples"`` (default) or ``"uniform"`` (``federation.weighting``).
        seed: the run's seed, for the entries that take one (k-means), default 0.
        knobs: the ``federation:`` knobs (``FederationParams.knobs``); the entry's knobs
            missing from it take their defaults. None: every default.
        k_range: (low, high) of ``model.k_range`` when ``model.n_clusters`` is auto; None
            (default): fixed K.

    Raises:
        FussbenchError: unknown name, a mode for an aggregator without modes, auto K for
            an aggregator whose entry does not declare ``any_k``, or a knob that breaks
            its rule.
    """
    aggregators = [spec.name for spec in specs("aggregator")]
    check_choice(name, aggregators, "aggregator", "aggregator")
    spec = get_spec(name)
    arguments: dict[str, object] = {"weighting": weighting}
    if spec.modes:
        arguments[spec.mode_argument] = spec.default_mode if mode is None else mode
    elif mode is not None:
        with_modes = [other.name for other in specs("aggregator") if other.modes]
        raise FussbenchError(
            f"aggregator '{name}' has no modes, got mode '{mode}' (params: federation.mode);"
            f" modes exist for {', '.join(with_modes)}"
        )
    values = spec.knob_values(knobs or {})
    for knob in spec.knobs:
        arguments[knob.argument or knob.name] = knob.handed_on(values[knob.name])
    if spec.seeded:
        arguments["seed"] = seed
    if k_range is not None:
        if not spec.any_k:
            accepting = [other.name for other in specs("aggregator") if other.any_k]
            raise FussbenchError(
                f"aggregator '{name}' needs the same K on every client, so it cannot run with "
                f"model.n_clusters: auto; use aggregator {', '.join(accepting)} (or local, "
                "centralized), or set model.n_clusters to an integer or null"
            )
        arguments["k_range"] = tuple(k_range)
    return spec.load_factory()(**arguments)


def centroid_diagnostics(centroids: np.ndarray) -> dict:
    """Pairwise cosine distances of (K, D) centroids, to detect prototype collapse.

    Returns:
        ``{"pairwise_cosine_distance": K x K nested list of 1 - cos,
        "min_offdiagonal": smallest distance between two different centroids}``; the
        minimum is ``nan`` for K < 2. A minimum near 0 means two prototypes merged.
    """
    unit = unit_rows(np.asarray(centroids, dtype=np.float64))
    distance = 1.0 - unit @ unit.T
    offdiagonal = distance[~np.eye(len(unit), dtype=bool)]
    minimum = float(offdiagonal.min()) if offdiagonal.size else float("nan")
    return {"pairwise_cosine_distance": distance.tolist(), "min_offdiagonal": minimum}


def check_choice(value: str, valid: Sequence[str], what: str, param: str) -> None:
    """Raise FussbenchError naming ``param`` and listing ``valid`` unless value is valid."""
    if value not in valid:
        raise FussbenchError(
            f"unknown {what} '{value}' (params: {param}); valid: {', '.join(valid)}"
        )


def _check_same_layout(
    reference: ModelArrays, model: ModelArrays, what: str, any_k: bool = False
) -> None:
    """Raise FussbenchError unless ``model`` has the keys and shapes of ``reference``
    (with ``any_k``, any number of centroids of the same dimension)."""
    if set(model) != set(reference):
        difference = sorted(set(model) ^ set(reference))
        raise FussbenchError(f"{what} has different array keys; differing: {difference}")
    for key, value in reference.items():
        shape = np.shape(model[key])
        if shape == np.shape(value):
            continue
        if any_k and key == CENTROIDS_KEY and shape[1:] == np.shape(value)[1:]:
            continue
        if key == CENTROIDS_KEY and shape[:1] != np.shape(value)[:1]:
            raise FussbenchError(
                f"{what} has {shape[0]} centroids, the global model {len(value)} "
                "(params: model.n_clusters must be the same on every client)"
            )
        raise FussbenchError(f"{what}: array '{key}' has shape {shape}, expected {value.shape}")


def _euclidean(pool: np.ndarray) -> np.ndarray:
    """(N, N) Euclidean distances between the rows of (N, D) ``pool``."""
    squared = np.sum(pool**2, axis=1)
    return np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2.0 * pool @ pool.T, 0.0))


def _farthest_points(distance: np.ndarray, start: int, count: int) -> list[int]:
    """``count`` indices chosen greedily from an (N, N) distance matrix, starting at ``start``.

    Each step adds the unchosen index whose minimum distance to the chosen set is largest
    (the lowest index on ties).
    """
    chosen = [start]
    nearest = distance[start].copy()
    nearest[start] = -np.inf
    while len(chosen) < count:
        index = int(np.argmax(nearest))
        chosen.append(index)
        nearest = np.minimum(nearest, distance[index])
        nearest[chosen] = -np.inf
    return chosen


def _kmeans(
    pool: np.ndarray,
    n_clusters: int,
    n_init: int,
    seed: int,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """(n_clusters, D) k-means centres of the (N, D) ``pool``."""
    kmeans = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed)
    with warnings.catch_warnings():
        # Identical clients give duplicate pool vectors; fewer distinct points than
        # clusters is expected then, and the duplicate centres are still returned.
        warnings.filterwarnings("ignore", message="Number of distinct clusters")
        kmeans.fit(pool, sample_weight=sample_weight)
    return kmeans.cluster_centers_


def _matched_average(
    updates: Sequence[ClientUpdate], weights: np.ndarray, previous_centroids: np.ndarray
) -> np.ndarray:
    """(n_clusters, dim) weighted mean of client centroids aligned to the previous ones.

    A client set (K_k, dim) of another size is matched rectangularly (min(K_k, n_clusters)
    pairs); a global row no client matched keeps its previous (normalised) value. Rows are
    normalised at the end, so a row matched by only some clients needs no re-weighting.
    """
    reference = unit_rows(previous_centroids.astype(np.float64))
    total = np.zeros_like(reference)
    matched = np.zeros(len(reference), dtype=bool)
    for weight, update in zip(weights, updates, strict=True):
        unit = unit_rows(update.centroids.astype(np.float64))
        rows, columns = linear_sum_assignment(unit @ reference.T, maximize=True)
        aligned = np.zeros_like(reference)
        aligned[columns] = unit[rows]
        matched[columns] = True
        total += weight * aligned
    total[~matched] = reference[~matched]
    return unit_rows(total)
