"""From a method name in params to the server aggregator and the client's local objective.

A *method* names one cell of the comparison: ``<aggregator>[.<mode>][.<weighting>]``, for
example ``fedcc_maximin.faithful`` or ``fedavg.uniform``. ``local`` and ``centralized``
are the two bounds without server aggregation.
"""

from __future__ import annotations

from dataclasses import dataclass

from fussbench.errors import FussbenchError
from fussbench.federation.aggregators import (
    AGGREGATOR_NAMES,
    FEDCC_MODES,
    MATCHED_VARIANTS,
    WEIGHTINGS,
    Aggregator,
    make_aggregator,
)
from fussbench.federation.client import LocalObjective
from fussbench.params import FederationParams

NO_AGGREGATION: dict[str, str] = {
    "local": "no federation: every client trains and is evaluated on its own (lower bound)",
    "centralized": "one model trained on the union of all clients' data (upper bound)",
}

REFERENCES: dict[str, str] = {
    "kmeans": "k-means on the frozen features pooled over all clients (no training)",
    "kmeans_local": "k-means on each client's frozen features alone, mean over clients",
    "majority": "every pixel gets the training split's most frequent class",
}
"""Reference rows that need no training; a trained method should beat them."""

_MODES = {
    "fedcc_kmeans": FEDCC_MODES,
    "fedcc_maximin": FEDCC_MODES,
    "fedcc_matched": MATCHED_VARIANTS,
}


def valid_names() -> list[str]:
    """Every aggregator name accepted in params."""
    return [*NO_AGGREGATION, *AGGREGATOR_NAMES, *REFERENCES]


def check_aggregator_name(name: str) -> None:
    """Raise FussbenchError for an unknown aggregator name, listing the valid ones."""
    if name not in valid_names():
        raise FussbenchError(
            f"unknown aggregator '{name}' (params: aggregator); valid names: "
            + ", ".join(valid_names())
        )


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


def parse_method(text: str) -> Method:
    """Parse ``<aggregator>[.<mode>][.<weighting>]``.

    Raises:
        FussbenchError: naming the unknown part and the valid choices.
    """
    aggregator, *rest = text.split(".")
    check_aggregator_name(aggregator)
    mode, weighting = None, "samples"
    for part in rest:
        if part in WEIGHTINGS:
            weighting = part
        elif part in _MODES.get(aggregator, ()):
            mode = part
        else:
            valid = [*_MODES.get(aggregator, ()), *WEIGHTINGS]
            raise FussbenchError(
                f"method '{text}': '{part}' is not a mode or weighting of {aggregator}; "
                f"valid: {', '.join(valid)}"
            )
    return Method(aggregator, mode, weighting)


@dataclass(frozen=True)
class FederationSettings:
    """The ``federation:`` knobs an aggregator and its clients need."""

    weighting: str = "samples"
    mode: str | None = None
    mu: float = 0.001
    moon_temperature: float = 0.5
    moon_weight: float = 1.0

    @classmethod
    def from_params(cls, federation: FederationParams) -> FederationSettings:
        """The settings of ``federation:`` in params.yaml."""
        return cls(
            weighting=federation.weighting,
            mode=federation.mode,
            mu=federation.mu,
            moon_temperature=federation.moon_temperature,
            moon_weight=federation.moon_weight,
        )


def build_method(
    aggregator: str, settings: FederationSettings, seed: int
) -> tuple[Aggregator | None, LocalObjective]:
    """The server aggregator (None for local / centralized) and the clients' objective.

    Raises:
        FussbenchError: for an unknown name, mode or weighting, listing the valid ones.
    """
    check_aggregator_name(aggregator)
    if aggregator in NO_AGGREGATION or aggregator in REFERENCES:
        return None, LocalObjective()
    server = make_aggregator(
        aggregator,
        weighting=settings.weighting,
        mode=settings.mode,
        mu=settings.mu,
        moon_temperature=settings.moon_temperature,
        moon_weight=settings.moon_weight,
        seed=seed,
    )
    counts = server.uses_cluster_counts
    if aggregator == "fedprox":
        return server, LocalObjective("fedprox", mu=settings.mu, cluster_counts=counts)
    if aggregator == "fedmoon":
        return server, LocalObjective(
            "fedmoon",
            temperature=settings.moon_temperature,
            weight=settings.moon_weight,
            cluster_counts=counts,
        )
    return server, LocalObjective(cluster_counts=counts)
