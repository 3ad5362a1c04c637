"""Aggregator names and what each one does on the server."""

from __future__ import annotations

from fussbench.errors import FussbenchError
from fussbench.federation.rounds import Aggregate

NO_AGGREGATION: dict[str, str] = {
    "local": "no federation: every client trains and is evaluated on its own (lower bound)",
    "centralized": "one model trained on the union of all clients' data (upper bound)",
}

AGGREGATORS: dict[str, Aggregate] = {}
"""Server aggregation functions by name; each takes client models and sample counts."""


def valid_names() -> list[str]:
    return [*NO_AGGREGATION, *AGGREGATORS]


def get_aggregator(name: str) -> Aggregate | None:
    """The aggregation function of ``name`` (None for ``local`` and ``centralized``).

    Raises:
        FussbenchError: for an unknown name, listing the valid ones.
    """
    if name in NO_AGGREGATION:
        return None
    if name not in AGGREGATORS:
        raise FussbenchError(
            f"unknown aggregator '{name}' (params: aggregator); valid names: "
            + ", ".join(valid_names())
        )
    return AGGREGATORS[name]
