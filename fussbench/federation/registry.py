"""The method registry: one declaration per aggregator, bound and reference row.

A *method* names one cell of the comparison: ``<aggregator>[.<mode>][.<weighting>]``, for
example ``fedcc_maximin.faithful`` or ``fedavg.uniform``. Every name accepted in params is
an :class:`AggregatorSpec` registered here with :func:`register`; the server code, the
clients' objective (:mod:`fussbench.federation.build`), the Flower engine, the report's
tables and figures and the tests all read this registry.

Adding an aggregator is one class (a subclass of
:class:`~fussbench.federation.aggregators.Aggregator`) and one :func:`register` call.

This module imports no numpy, torch or scikit-learn: method names parse without them, and
an aggregator class is imported only when a run builds it (``factory``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fussbench.errors import FussbenchError

WEIGHTINGS = ("samples", "uniform")
"""Valid values of ``federation.weighting``."""

FEDCC_MODES = ("cosine", "faithful")
"""Valid modes of FedCC-kMeans and FedCC-Maximin."""

MATCHED_VARIANTS = ("hungarian", "pooled_counts")
"""Valid variants (``federation.mode``) of FedCC-Matched."""

Kind = Literal["aggregator", "bound", "reference"]
"""``aggregator``: a server aggregates the clients' models every round; ``bound``: trained
without server aggregation (``local``, ``centralized``); ``reference``: scored without
training (``kmeans``, ...)."""


@dataclass(frozen=True)
class AggregatorSpec:
    """One method name accepted in params (``aggregator``) and everything that lists it.

    Attributes:
        name: the name in params, e.g. ``"fedcc_kmeans"``.
        description: one line for the report and ``--help``-style listings.
        kind: see :data:`Kind`; default ``"aggregator"``.
        label: the name in the report's tables, e.g. ``"FedCC-kMeans"``; default ``name``.
        factory: the server aggregator class or a ``"module:Class"`` path to it (imported
            only when built); None for bounds and references.
        modes: valid ``federation.mode`` values, the first is the default; empty: the
            aggregator has no modes and a mode is an error.
        mode_argument: the factory's keyword that receives the mode.
        mode_labels: the report's name of a mode when it differs from the mode.
        options: factory keyword -> ``federation:`` setting (or ``"seed"``) it receives,
            besides ``weighting`` which every aggregator takes.
        client_term: the clients' local regulariser (a ``LocalObjective`` kind, e.g.
            ``"fedprox"``); None: plain local training.
        client_options: ``LocalObjective`` keyword -> ``federation:`` setting.
        cluster_count_modes: the modes in which the server reads the clients' per-cluster
            pixel counts (clients send them only then); ``("*",)``: in every mode.
        aggregation_table: whether it has rows in the report's aggregation-type table.
        centroid_heatmap: whether the report's heatmap compares its global centroids.
    """

    name: str
    description: str
    kind: Kind = "aggregator"
    label: str = ""
    factory: Callable[..., Any] | str | None = None
    modes: tuple[str, ...] = ()
    mode_argument: str = "mode"
    mode_labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    client_term: str | None = None
    client_options: Mapping[str, str] = field(default_factory=dict)
    cluster_count_modes: tuple[str, ...] = ()
    aggregation_table: bool = False
    centroid_heatmap: bool = False

    @property
    def default_mode(self) -> str | None:
        """The mode a method name without one runs in (None: no modes)."""
        return self.modes[0] if self.modes else None

    def reads_cluster_counts(self, mode: str | None) -> bool:
        """Whether the server reads ``cluster_counts`` in ``mode`` (None: the default)."""
        chosen = self.default_mode if mode is None else mode
        return "*" in self.cluster_count_modes or chosen in self.cluster_count_modes

    def table_label(self, mode: str | None) -> str:
        """``label`` with the mode in brackets, e.g. ``"FedCC-Matched (pooled counts)"``."""
        label = self.label or self.name
        if mode is None:
            return label
        return f"{label} ({self.mode_labels.get(mode, mode)})"

    def load_factory(self) -> Callable[..., Any]:
        """The aggregator class (importing it when given as ``"module:Class"``)."""
        if self.factory is None:
            raise FussbenchError(f"'{self.name}' has no server aggregator")
        if not isinstance(self.factory, str):
            return self.factory
        module, attribute = self.factory.split(":")
        return getattr(importlib.import_module(module), attribute)


_REGISTRY: dict[str, AggregatorSpec] = {}


def register(spec: AggregatorSpec) -> AggregatorSpec:
    """Add ``spec`` to the registry and return it.

    Raises:
        FussbenchError: the name is taken, or contains a dot (dots separate mode and
            weighting in a method name).
    """
    if spec.name in _REGISTRY:
        raise FussbenchError(f"aggregator '{spec.name}' is already registered")
    if "." in spec.name:
        raise FussbenchError(f"aggregator name '{spec.name}' must not contain a dot")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (for tests that register a toy aggregator)."""
    _REGISTRY.pop(name, None)


def specs(kind: Kind | None = None) -> list[AggregatorSpec]:
    """Registered specs in registration order, only those of ``kind`` when given."""
    return [spec for spec in _REGISTRY.values() if kind is None or spec.kind == kind]


def names(kind: Kind | None = None) -> list[str]:
    """Registered names in registration order, only those of ``kind`` when given."""
    return [spec.name for spec in specs(kind)]


def get_spec(name: str) -> AggregatorSpec:
    """The spec of ``name``.

    Raises:
        FussbenchError: unknown name, listing the valid ones.
    """
    if name not in _REGISTRY:
        raise FussbenchError(
            f"unknown aggregator '{name}' (params: aggregator); valid names: " + ", ".join(names())
        )
    return _REGISTRY[name]


@dataclass(frozen=True)
class Method:
    """One comparison cell: aggregator, mode (None: its default) and weighting."""

    aggregator: str
    mode: str | None
    weighting: str

    @property
    def name(self) -> str:
        """``aggregator[.mode][.weighting]``, the weighting shown only when not "samples"."""
        parts = [self.aggregator]
        if self.mode is not None:
            parts.append(self.mode)
        if self.weighting != "samples":
            parts.append(self.weighting)
        return ".".join(parts)

    @property
    def spec(self) -> AggregatorSpec:
        """The registry entry of :attr:`aggregator`."""
        return get_spec(self.aggregator)

    @property
    def resolved_mode(self) -> str | None:
        """:attr:`mode` with the aggregator's default filled in."""
        return self.spec.default_mode if self.mode is None else self.mode


def parse_method(text: str) -> Method:
    """Parse ``<aggregator>[.<mode>][.<weighting>]``.

    Raises:
        FussbenchError: naming the unknown part and the valid choices.
    """
    aggregator, *rest = text.split(".")
    spec = get_spec(aggregator)
    mode, weighting = None, "samples"
    for part in rest:
        if part in WEIGHTINGS:
            weighting = part
        elif part in spec.modes:
            mode = part
        else:
            valid = [*spec.modes, *WEIGHTINGS]
            raise FussbenchError(
                f"method '{text}': '{part}' is not a mode or weighting of {aggregator}; "
                f"valid: {', '.join(valid)}"
            )
    return Method(aggregator, mode, weighting)


_AGGREGATORS = "fussbench.federation.aggregators"

register(
    AggregatorSpec(
        "local",
        "no federation: every client trains and is evaluated on its own (lower bound)",
        kind="bound",
    )
)
register(
    AggregatorSpec(
        "centralized",
        "one model trained on the union of all clients' data (upper bound)",
        kind="bound",
    )
)
register(
    AggregatorSpec(
        "fedavg",
        "FedAvg of head and centroids",
        label="FedAvg",
        factory=f"{_AGGREGATORS}:FedAvg",
        aggregation_table=True,
        centroid_heatmap=True,
    )
)
register(
    AggregatorSpec(
        "fedprox",
        "FedAvg with a proximal term in the clients' loss",
        label="FedProx",
        factory=f"{_AGGREGATORS}:FedProx",
        options={"mu": "mu"},
        client_term="fedprox",
        client_options={"mu": "mu"},
    )
)
register(
    AggregatorSpec(
        "fedmoon",
        "FedAvg with a model-contrastive term in the clients' loss (MOON)",
        label="FedMOON",
        factory=f"{_AGGREGATORS}:FedMoon",
        options={"temperature": "moon_temperature", "weight": "moon_weight"},
        client_term="fedmoon",
        client_options={"temperature": "moon_temperature", "weight": "moon_weight"},
    )
)
register(
    AggregatorSpec(
        "fedcc_kmeans",
        "head by FedAvg, centroids by k-means over every client's centroids",
        label="FedCC-kMeans",
        factory=f"{_AGGREGATORS}:FedCCKMeans",
        modes=FEDCC_MODES,
        options={"seed": "seed"},
        aggregation_table=True,
        centroid_heatmap=True,
    )
)
register(
    AggregatorSpec(
        "fedcc_maximin",
        "head by FedAvg, centroids by maximin selection over every client's centroids",
        label="FedCC-Maximin",
        factory=f"{_AGGREGATORS}:FedCCMaximin",
        modes=FEDCC_MODES,
        aggregation_table=True,
        centroid_heatmap=True,
    )
)
register(
    AggregatorSpec(
        "fedcc_matched",
        "head by FedAvg, centroids matched to the previous global ones (ours)",
        label="FedCC-Matched",
        factory=f"{_AGGREGATORS}:FedCCMatched",
        modes=MATCHED_VARIANTS,
        mode_argument="variant",
        mode_labels={"pooled_counts": "pooled counts"},
        options={"seed": "seed"},
        cluster_count_modes=("pooled_counts",),
        aggregation_table=True,
        centroid_heatmap=True,
    )
)
register(
    AggregatorSpec(
        "fedcc_auto",
        "head by FedAvg, centroids by the candidate aggregation the clients score best (ours)",
        label="FedCC-Auto",
        factory="fussbench.federation.auto:FedCCAuto",
        options={"candidates": "candidates", "score_images": "score_images", "seed": "seed"},
        aggregation_table=True,
        centroid_heatmap=True,
    )
)
register(
    AggregatorSpec(
        "kmeans",
        "k-means on the frozen features pooled over all clients (no training)",
        kind="reference",
    )
)
register(
    AggregatorSpec(
        "kmeans_local",
        "k-means on each client's frozen features alone, mean over clients",
        kind="reference",
    )
)
register(
    AggregatorSpec(
        "majority", "every pixel gets the training split's most frequent class", kind="reference"
    )
)
