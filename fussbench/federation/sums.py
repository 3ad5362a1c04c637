"""FedCC-Sums (ours): a FedCC whose server step needs only sums over the clients, so that
secure aggregation or central differential privacy can serve it.

Background: the step is Lloyd's k-means update distributed over sites, each sending per
cluster the sum and the count of its points (the textbook distributed k-means step, which
is why secure aggregation serves it: Bonawitz et al., "Practical Secure Aggregation for
Privacy-Preserving Machine Learning", CCS 2017). k-FED (Dennis, Li and Smith,
"Heterogeneity for the Win: One-Shot Federated Clustering", ICML 2021) instead clusters
the clients' local centres, as FedCC-kMeans does every round.

Server side only: numpy, no torch. The client half (the sums) is
:func:`~fussbench.federation.client.cluster_code_sums`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fussbench.federation.aggregators import Aggregator
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.pooled import pool_counts, unit_rows


@dataclass(frozen=True)
class FedCCSums(Aggregator):
    """FedCC-Sums (ours): head by FedAvg, centroids by one federated Lloyd step on the
    clients' codes.

    Every client starts the round from the global centroids g (n_clusters, dim), so its
    trained centroid c descends from g_c. After training it assigns each feature pixel p of
    its own images to its nearest trained centroid, a(p) = argmax_c cos(s_p, mu_{k,c})
    (the training's assignment), and sends, in its centroids' place, the code sums
    S_{k,c} = sum_{p : a(p) = c} s_p / ||s_p|| (``update.centroids``, (n_clusters, dim))
    and the counts n_{k,c} = |{p : a(p) = c}| (``update.cluster_counts``, (n_clusters,)).
    Its trained centroids never leave it.

    Math: g'_c = normalise(sum_k S_{k,c}) where sum_k n_{k,c} > 0, else g'_c = g_c (no
    client's pixel chose centroid c: it keeps its previous value). The head is FedAvg,
    theta = sum_k w_k theta_k. Client weights do not enter the centroids: every pixel counts
    once, so with ``weighting: samples`` and images of one size (one feature cache) the
    centroids weigh the clients as the head does; ``uniform`` changes the head only.

    What the server sees: only sum_k S_{k,c}, sum_k n_{k,c} and the weighted sum of the
    heads; this simulation hands it every update (the round record's suspicion ratios read
    them), but the rule reads nothing else, so the registry declares ``server_needs:
    weighted_sum``.

    First centroids: the initial model's seeded centroids, randn(n_clusters, dim), which
    every client receives (public and data-free); round 1's Lloyd step starts from them.
    Sums over a fixed index need the same K on every client: no ``model.n_clusters: auto``.

    Attributes:
        weighting: ``"samples"`` (default) or ``"uniform"``; for the head only.
    """

    def aggregate_centroids(
        self,
        updates: Sequence[ClientUpdate],
        weights: np.ndarray,
        previous_centroids: np.ndarray,
    ) -> np.ndarray:
        """(n_clusters, dim): the normalised summed code sums; the previous row where no
        client counted a pixel.

        Raises:
            FussbenchError: a client sent no counts, or counts of another length.
        """
        counts = pool_counts(updates).reshape(len(updates), -1).sum(axis=0)
        sums = np.sum([update.centroids for update in updates], axis=0, dtype=np.float64)
        chosen = (counts > 0)[:, None]
        return np.where(chosen, unit_rows(sums), previous_centroids.astype(np.float64))
