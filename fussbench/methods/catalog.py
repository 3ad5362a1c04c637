"""fussbench's built-in methods, one :class:`~fussbench.methods.registry.MethodSpec` each.

Adding a method is one entry here (or a :func:`register` call in your own code) and, for an
aggregator, its class; a knob's default belongs in ``params.yaml`` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fussbench.errors import FussbenchError
from fussbench.methods.registry import Knob, MethodSpec, candidate_names, parse_candidate, register
from fussbench.rules import Interval

_AGGREGATORS = "fussbench.federation.aggregators"
_ROBUST = "fussbench.federation.robust"
_ONESHOT = "fussbench.federation.oneshot"
_BALANCED = "fussbench.federation.balanced"

FEDCC_MODES = ("cosine", "faithful")
"""Valid modes of FedCC-kMeans and FedCC-Maximin: cosine (default), or the authors' code."""

MATCHED_VARIANTS = ("hungarian", "pooled_counts")
"""Valid variants (``federation.mode``) of FedCC-Matched."""

FEDCC_MERGES = ("kmeans", "maximin")
"""Valid modes of the methods that end in a FedCC merge of their own choosing (FedCC-Screened,
FedCC-OneShot): FedCC-kMeans (default) or FedCC-Maximin, both cosine."""

DEFAULT_CANDIDATES = ("fedcc_kmeans", "fedcc_maximin", "fedcc_matched", "fedavg")
"""``federation.candidates`` by default: the three FedCC variants and FedAvg."""


@dataclass(frozen=True)
class CandidateList:
    """FedCC-Auto's ``federation.candidates``: distinct ``<aggregator>[.<mode>]`` names of
    aggregators declared ``auto_candidate``, at least one."""

    def problem(self, value: Any) -> str | None:
        """What is wrong with the list, naming the valid candidates."""
        valid = ", ".join(candidate_names())
        if not isinstance(value, list | tuple) or not value:
            return f"list at least one of {valid}"
        if len(set(value)) != len(value):
            return "not repeat a name"
        for text in value:
            try:
                parse_candidate(str(text))
            except FussbenchError:
                return f"name aggregators among {valid} (optionally .<mode>; '{text}' is not)"
        return None


register(
    MethodSpec(
        "local",
        "no federation: every client trains and is evaluated on its own (lower bound)",
        family="bound",
        baseline=True,
    )
)
register(
    MethodSpec(
        "centralized",
        "one model trained on the union of all clients' data (upper bound)",
        family="bound",
        pools_clients=True,
    )
)
register(
    MethodSpec(
        "fedavg",
        "FedAvg of head and centroids",
        family="averaging",
        label="FedAvg",
        factory=f"{_AGGREGATORS}:FedAvg",
        auto_candidate=True,
        server_needs="weighted_sum",
        baseline=True,
        aggregation_table=True,
        centroid_heatmap=True,
    )
)
register(
    MethodSpec(
        "fedprox",
        "FedAvg with a proximal term in the clients' loss",
        family="averaging",
        label="FedProx",
        factory=f"{_AGGREGATORS}:FedProx",
        knobs=(
            Knob(
                "mu",
                0.001,
                Interval(float, 0.0),
                "FedProx: proximal weight μ on the nonlinear branch (0 is plain FedAvg)",
                client="mu",
            ),
        ),
        client_term="fedprox",
        server_needs="weighted_sum",
    )
)
register(
    MethodSpec(
        "fedmoon",
        "FedAvg with a model-contrastive term in the clients' loss (MOON)",
        family="averaging",
        label="FedMOON",
        factory=f"{_AGGREGATORS}:FedMoon",
        knobs=(
            Knob(
                "moon_temperature",
                0.5,
                Interval(float, 0.0, closed="neither"),
                "FedMOON: temperature τ of the contrastive term",
                argument="temperature",
                client="temperature",
            ),
            Knob(
                "moon_weight",
                1.0,
                Interval(float, 0.0),
                "FedMOON: weight of the contrastive term (0 is plain FedAvg)",
                argument="weight",
                client="weight",
            ),
        ),
        client_term="fedmoon",
        server_needs="weighted_sum",
    )
)
register(
    MethodSpec(
        "fedcc_kmeans",
        "head by FedAvg, centroids by k-means over every client's centroids",
        family="fedcc",
        label="FedCC-kMeans",
        factory=f"{_AGGREGATORS}:FedCCKMeans",
        modes=FEDCC_MODES,
        seeded=True,
        any_k=True,
        auto_candidate=True,
        server_needs="individual",
        aggregation_table=True,
        centroid_heatmap=True,
    )
)
register(
    MethodSpec(
        "fedcc_maximin",
        "head by FedAvg, centroids by maximin selection over every client's centroids",
        family="fedcc",
        label="FedCC-Maximin",
        factory=f"{_AGGREGATORS}:FedCCMaximin",
        modes=FEDCC_MODES,
        any_k=True,
        auto_candidate=True,
        server_needs="individual",
        aggregation_table=True,
        centroid_heatmap=True,
    )
)
register(
    MethodSpec(
        "fedcc_matched",
        "head by FedAvg, centroids matched to the previous global ones (ours)",
        family="fedcc",
        label="FedCC-Matched",
        factory=f"{_AGGREGATORS}:FedCCMatched",
        modes=MATCHED_VARIANTS,
        mode_argument="variant",
        mode_labels={"pooled_counts": "pooled counts"},
        seeded=True,
        cluster_count_modes=("pooled_counts",),
        any_k=True,
        auto_candidate=True,
        server_needs="individual",
        aggregation_table=True,
        centroid_heatmap=True,
    )
)
register(
    MethodSpec(
        "fedcc_oneshot",
        "clients train alone for rounds × local steps, then one FedCC merge (k-FED)",
        family="fedcc",
        label="FedCC-OneShot",
        factory=f"{_ONESHOT}:FedCCOneShot",
        modes=FEDCC_MERGES,
        seeded=True,
        any_k=True,
        server_needs="individual",
        one_shot=True,
        aggregation_table=True,
        centroid_heatmap=True,
    )
)
register(
    MethodSpec(
        "fedcc_balanced",
        "head by FedAvg, centroids by equal-size Sinkhorn-Knopp clustering of every client's "
        "centroids (Orchestra)",
        family="fedcc",
        label="FedCC-Balanced",
        factory=f"{_BALANCED}:FedCCBalanced",
        knobs=(
            Knob(
                "sinkhorn_epsilon",
                0.05,
                Interval(float, 0.0, closed="neither"),
                "fedcc_balanced: entropic temperature ε of the Sinkhorn-Knopp assignment",
                argument="epsilon",
            ),
        ),
        seeded=True,
        any_k=True,
        server_needs="individual",
        aggregation_table=True,
        centroid_heatmap=True,
    )
)
register(
    MethodSpec(
        "fedcc_auto",
        "head by FedAvg, centroids by the candidate aggregation the clients score best (ours)",
        family="fedcc",
        label="FedCC-Auto",
        factory="fussbench.federation.auto:FedCCAuto",
        knobs=(
            Knob(
                "candidates",
                list(DEFAULT_CANDIDATES),
                CandidateList(),
                "FedCC-Auto: the global models clients score each round (<aggregator>[.<mode>])",
                convert=tuple,
            ),
            Knob(
                "score_images",
                32,
                Interval(int, 1),
                "FedCC-Auto: at most this many of its images each client scores the candidates on",
            ),
        ),
        seeded=True,
        asks="each candidate global model's score on its own images, (J,) numbers",
        server_needs="individual",
        aggregation_table=True,
        centroid_heatmap=True,
    )
)
register(
    MethodSpec(
        "fedcc_sums",
        "head by FedAvg, centroids by a Lloyd step on the clients' code sums (ours; "
        "the server needs only sums)",
        family="fedcc",
        label="FedCC-Sums",
        factory="fussbench.federation.sums:FedCCSums",
        client_sends="code_sums",
        server_needs="weighted_sum",
        aggregation_table=True,
        centroid_heatmap=True,
    )
)
register(
    MethodSpec(
        "fedmedian",
        "coordinate-wise median of heads and of centroids, index by index (robust)",
        family="averaging",
        label="FedMedian",
        factory=f"{_ROBUST}:FedMedian",
        server_needs="individual",
        aggregation_table=True,
    )
)
register(
    MethodSpec(
        "fedtrimmedavg",
        "coordinate-wise trimmed mean of heads and of centroids, index by index (robust)",
        family="averaging",
        label="FedTrimmedAvg",
        factory=f"{_ROBUST}:FedTrimmedAvg",
        knobs=(
            Knob(
                "trim_beta",
                0.2,
                Interval(float, 0.0, 0.5, "left"),
                "fedtrimmedavg: share trimmed at each end (with 3 clients, < 1/3 trims none)",
                argument="beta",
            ),
        ),
        server_needs="individual",
    )
)
register(
    MethodSpec(
        "fedcc_screened",
        "FedCC over the clients whose centroids the others share (robust, ours)",
        family="fedcc",
        label="FedCC-Screened",
        factory=f"{_ROBUST}:FedCCScreened",
        modes=FEDCC_MERGES,
        knobs=(
            Knob(
                "screen_factor",
                2.5,
                Interval(float, 1.0, closed="neither"),
                "fedcc_screened: drop a client whose suspicion ratio exceeds this",
                argument="factor",
            ),
            Knob(
                "max_bad",
                1,
                Interval(int, 0),
                "fedcc_screened: bad clients the suspicion score allows for (Krum's f)",
            ),
        ),
        seeded=True,
        any_k=True,
        server_needs="individual",
        aggregation_table=True,
        centroid_heatmap=True,
    )
)
register(
    MethodSpec(
        "kmeans",
        "k-means on the frozen features pooled over all clients (no training)",
        family="reference",
    )
)
register(
    MethodSpec(
        "kmeans_local",
        "k-means on each client's frozen features alone, mean over clients",
        family="reference",
    )
)
register(
    MethodSpec(
        "majority",
        "every pixel gets the training split's most frequent class",
        family="reference",
    )
)
