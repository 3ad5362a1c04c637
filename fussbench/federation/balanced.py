"""FedCC-Balanced: the pool of client centroids clustered into equal-size clusters with a
Sinkhorn-Knopp assignment.

Paper read (not copied): Lubana et al., "Orchestra: Unsupervised Federated Learning via
Globally Consistent Clustering", ICML 2022. Its server clusters the pooled local centroids of
every client into global centroids under an equal-size constraint solved by Sinkhorn-Knopp
(Cuturi, "Sinkhorn Distances", NeurIPS 2013), keeping the global centroids from round to
round. Orchestra fits its global centroids by gradient steps that pull softmax assignments
towards the Sinkhorn ones; here each iteration takes the closed-form step instead, the
normalised mean of each global centroid's assigned members (a balanced spherical k-means).

Server side only: numpy and scipy, no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from fussbench.errors import FussbenchError
from fussbench.federation.aggregators import Aggregator, FedCCKMeans
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.pooled import EPS, canonical_order, pool_centroids, unit_rows

SINKHORN_TOLERANCE = 1e-6
"""Sinkhorn-Knopp stops once every column sums to 1/K within this relative error."""

SINKHORN_MAX_ITERATIONS = 1000
"""At most this many Sinkhorn-Knopp scalings per assignment (each of the columns, then the
rows); a near-hard assignment (small epsilon) may need them all."""

BALANCED_ITERATIONS = 20
"""Assignment-and-update iterations of :func:`balanced_centroids`."""


def sinkhorn(scores: np.ndarray, epsilon: float) -> np.ndarray:
    """(N, K) equal-size soft assignment of N members to K clusters (Sinkhorn-Knopp).

    Math: Q = diag(u) exp(S / epsilon) diag(v), with u (N,) and v (K,) found by alternately
    scaling the columns to sum 1/K and the rows to sum 1/N, in the log domain (log-sum-exp,
    so a small epsilon cannot overflow), until every column sum is within
    :data:`SINKHORN_TOLERANCE` of 1/K (relative) or after :data:`SINKHORN_MAX_ITERATIONS`
    scalings. The rows are scaled last: every member's row sums to exactly 1/N. Q maximises
    <Q, S> + epsilon H(Q) over those marginals; as epsilon -> 0 it tends to the hard
    assignment of N/K members per cluster that maximises the summed scores.

    Args:
        scores: (N, K) member-to-cluster similarities S.
        epsilon: the entropic temperature, > 0.
    """
    count, clusters = scores.shape
    kernel = np.asarray(scores, dtype=np.float64) / epsilon
    log_rows = np.zeros(count)
    for _ in range(SINKHORN_MAX_ITERATIONS):
        log_columns = -np.log(clusters) - logsumexp(kernel + log_rows[:, None], axis=0)
        log_rows = -np.log(count) - logsumexp(kernel + log_columns[None, :], axis=1)
        plan = np.exp(kernel + log_rows[:, None] + log_columns[None, :])
        if np.abs(plan.sum(axis=0) * clusters - 1.0).max() <= SINKHORN_TOLERANCE:
            break
    return plan


def balanced_centroids(pool: np.ndarray, start: np.ndarray, epsilon: float) -> np.ndarray:
    """(K, D) unit centroids of an equal-size clustering of the (N, D) unit ``pool``.

    Math: from G_0 = ``start`` (K, D unit rows), :data:`BALANCED_ITERATIONS` times:
    S = P G^T (N, K cosine similarities), Q = :func:`sinkhorn` (S, epsilon) (rows sum 1/N,
    columns 1/K), G' = normalise(Q^T P). Every global centroid draws the same share of the
    pool, so none rests on one lone member and none absorbs many; a direction that holds
    more than N/K members (several clients agreeing, or one client's near-duplicates) is
    spread over as many global centroids as its share. Row c of the result descends from
    row c of ``start``; a row whose update vanishes (members that cancel) keeps its value.
    """
    centroids = start
    for _ in range(BALANCED_ITERATIONS):
        plan = sinkhorn(pool @ centroids.T, epsilon)
        moved = plan.T @ pool
        norms = np.linalg.norm(moved, axis=1, keepdims=True)
        centroids = np.where(norms > EPS, moved / np.maximum(norms, EPS), centroids)
    return centroids


@dataclass(frozen=True)
class FedCCBalanced(Aggregator):
    """FedCC-Balanced (after Orchestra's global clustering): the pool of unit client
    centroids clustered into n_clusters equal-size clusters by Sinkhorn-Knopp.

    Math: P (N, D) = every client's centroids, L2-normalised and sorted lexicographically
    (so the result does not depend on client order); G_0 (n_clusters, D) = the previous
    global centroids, normalised, when none of them is zero, else (round 1 of
    ``model.n_clusters: auto``, or a zero initial model) the FedCC-kMeans centres of P
    (k-means, 10 restarts, ``random_state=seed``, re-normalised). Then
    :func:`balanced_centroids`: :data:`BALANCED_ITERATIONS` times S = P G^T,
    Q = Sinkhorn(exp(S / epsilon)) with row sums 1/N and column sums 1/n_clusters
    (:func:`sinkhorn`, log domain), G = normalise(Q^T P). Pool members weigh the same;
    client weights do not enter the centroids. Starting from the previous
    global centroids, which every client started its round from, keeps index c meaning
    the same cluster from round to round.

    Attributes:
        weighting: ``"samples"`` (default) or ``"uniform"``; for the head.
        epsilon: the Sinkhorn temperature (``federation.sinkhorn_epsilon``), > 0, default
            0.05: every 0.05 of cosine multiplies a member's odds for a cluster by e, so
            the assignment is nearly hard.
        seed: k-means random state of the start when the previous centroids are zero,
            default 0.
    """

    epsilon: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.epsilon > 0:
            raise FussbenchError(f"federation.sinkhorn_epsilon must be > 0, got {self.epsilon}")

    def aggregate_centroids(
        self,
        updates: Sequence[ClientUpdate],
        weights: np.ndarray,
        previous_centroids: np.ndarray,
    ) -> np.ndarray:
        """(n_clusters, dim) unit-norm centroids of the balanced clustering of the pool."""
        pool = unit_rows(pool_centroids(updates, previous_centroids.shape[0]))
        pool = pool[canonical_order(pool)]
        previous = previous_centroids.astype(np.float64)
        if (np.linalg.norm(previous, axis=1) > EPS).all():
            start = unit_rows(previous)
        else:
            start = FedCCKMeans(mode="cosine", seed=self.seed).aggregate_centroids(
                updates, weights, previous
            )
        return balanced_centroids(pool, start, self.epsilon)
