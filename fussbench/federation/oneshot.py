"""One-shot FedCC: the clients train alone for the whole budget and the server merges once.

Paper read (not copied): Dennis, Li and Smith, "Heterogeneity for the Win: One-Shot
Federated Clustering" (k-FED), ICML 2021: every device clusters its own data once, and the
server clusters the union of the devices' centres once. Here the devices' centres are the
clients' trained centroids, and the server's merge is a FedCC rule.

The merge itself is an ordinary FedCC round. What makes the method one-shot is its registry
entry (``one_shot``): where a run is assembled (:func:`fussbench.run.federate.
at_equal_compute`), R = ``federation.rounds`` rounds of S = ``train.local_steps`` steps
become one round of R × S steps per client, so both engines run a single round and the
clients spend the iterative methods' compute before the only merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fussbench.federation.aggregators import Aggregator, check_choice, fedcc_merge
from fussbench.federation.messages import ClientUpdate
from fussbench.methods.catalog import FEDCC_MERGES
from fussbench.model.head import ModelArrays


@dataclass(frozen=True)
class FedCCOneShot(Aggregator):
    """FedCC-OneShot (k-FED's one-shot merge): one FedCC round after the whole budget.

    Math: with every client's model trained alone for R × S steps from the initial model,
    the global model is theta = sum_k w_k theta_k (FedAvg of the heads) and the centroids are
    FedCC-kMeans (``mode="kmeans"``: k-means centres of the pool of unit client centroids,
    re-normalised) or FedCC-Maximin (``mode="maximin"``: farthest-point selection in cosine
    distance) of the pool, both cosine and independent of client order. The run's single
    round applies it once; applied every round it would be FedCC-kMeans / -Maximin.

    Attributes:
        weighting: ``"samples"`` (default) or ``"uniform"``; for the head.
        mode: ``"kmeans"`` (default) or ``"maximin"``: the merge.
        seed: k-means random state, default 0.
    """

    mode: str = "kmeans"
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.mode, FEDCC_MERGES, "mode", "federation.mode")

    def aggregate(self, updates: Sequence[ClientUpdate], previous: ModelArrays) -> ModelArrays:
        """The merge of :attr:`mode` (:func:`~fussbench.federation.aggregators.fedcc_merge`)
        over every client: head by FedAvg, (n_clusters, dim) centroids by the FedCC rule."""
        merge = fedcc_merge(self.mode, self.weighting, self.seed, self.k_range)
        return merge.aggregate(updates, previous)
