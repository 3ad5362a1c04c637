"""From a method in params to the server aggregator and the clients' local objective, as
the registry (:mod:`fussbench.federation.registry`) declares them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fussbench.federation.aggregators import Aggregator, make_aggregator
from fussbench.federation.client import LocalObjective
from fussbench.federation.registry import get_spec
from fussbench.params import FederationParams


@dataclass(frozen=True)
class FederationSettings:
    """The ``federation:`` knobs an aggregator and its clients need."""

    weighting: str = "samples"
    mode: str | None = None
    mu: float = 0.001
    moon_temperature: float = 0.5
    moon_weight: float = 1.0
    candidates: tuple[str, ...] | None = None
    score_images: int = 32

    @classmethod
    def from_params(cls, federation: FederationParams) -> FederationSettings:
        """The settings of ``federation:`` in params.yaml."""
        return cls(
            weighting=federation.weighting,
            mode=federation.mode,
            mu=federation.mu,
            moon_temperature=federation.moon_temperature,
            moon_weight=federation.moon_weight,
            candidates=tuple(federation.candidates),
            score_images=federation.score_images,
        )


def build_method(
    aggregator: str,
    settings: FederationSettings,
    seed: int,
    k_range: tuple[int, int] | None = None,
) -> tuple[Aggregator | None, LocalObjective]:
    """The server aggregator (None for bounds and references) and the clients' objective.

    ``k_range``: ``model.k_range`` when ``model.n_clusters`` is auto, else None.

    Raises:
        FussbenchError: for an unknown name, mode or weighting, listing the valid ones, or
            auto K with an aggregator that needs the same K on every client.
    """
    spec = get_spec(aggregator)
    if spec.kind != "aggregator":
        return None, LocalObjective()
    values = asdict(settings)
    server = make_aggregator(aggregator, seed=seed, k_range=k_range, **values)
    counts = spec.reads_cluster_counts(settings.mode)
    if spec.client_term is None:
        return server, LocalObjective(cluster_counts=counts)
    options = {argument: values[name] for argument, name in spec.client_options.items()}
    return server, LocalObjective(spec.client_term, cluster_counts=counts, **options)
