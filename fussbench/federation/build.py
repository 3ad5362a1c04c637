"""From a method in params to the server aggregator and the clients' local objective, as
its registry entry (:mod:`fussbench.methods`) declares them."""

from __future__ import annotations

from fussbench.federation.aggregators import Aggregator, make_aggregator
from fussbench.federation.client import LocalObjective
from fussbench.methods import get_spec
from fussbench.params import FederationParams


def build_method(
    aggregator: str,
    federation: FederationParams,
    seed: int,
    k_range: tuple[int, int] | None = None,
) -> tuple[Aggregator | None, LocalObjective]:
    """The server aggregator (None for bounds and references) and the clients' objective.

    Args:
        aggregator: a registered method name.
        federation: ``federation:`` of params (weighting, mode and the knobs).
        seed: the run's seed.
        k_range: ``model.k_range`` when ``model.n_clusters`` is auto, else None.

    Raises:
        FussbenchError: for an unknown name, mode, weighting or knob value, listing the
            valid ones, or auto K with an aggregator that needs the same K on every client.
    """
    spec = get_spec(aggregator)
    if not spec.federated:
        return None, LocalObjective()
    server = make_aggregator(
        aggregator,
        mode=federation.mode,
        weighting=federation.weighting,
        seed=seed,
        knobs=federation.knobs,
        k_range=k_range,
    )
    sent = {
        "cluster_counts": spec.reads_cluster_counts(federation.mode),
        "code_sums": spec.sends_code_sums,
    }
    if spec.client_term is None:
        return server, LocalObjective(**sent)
    values = spec.knob_values(federation.knobs)
    options = {knob.client: knob.handed_on(values[knob.name]) for knob in spec.knobs if knob.client}
    return server, LocalObjective(spec.client_term, **sent, **options)
