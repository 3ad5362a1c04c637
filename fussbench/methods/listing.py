"""The registry as text a person reads: ``fussbench methods`` and the docs' method table."""

from __future__ import annotations

from collections.abc import Collection

from fussbench.methods.registry import MethodSpec, specs
from fussbench.rules import Interval


def _capabilities(spec: MethodSpec) -> str:
    """What the entry declares besides its knobs, comma-separated ("" for none)."""
    flags = [
        ("baseline", spec.baseline),
        ("pools the clients' data", spec.pools_clients),
        ("one merge after rounds × local steps", spec.one_shot),
        ("model.n_clusters: auto", spec.any_k),
        ("fedcc_auto candidate", spec.auto_candidate),
        (f"client term {spec.client_term}", spec.client_term is not None),
        ("clients send code sums, not centroids", spec.sends_code_sums),
        ("server needs each client's update", spec.server_needs == "individual"),
        ("server needs only the weighted sum", spec.server_needs == "weighted_sum"),
        ("server queries the clients", bool(spec.asks)),
    ]
    return ", ".join(text for text, present in flags if present)


def _knobs(spec: MethodSpec) -> str:
    """``federation.mu = 0.001 (a number >= 0)``, one per knob, ``; ``-separated."""
    parts = []
    for knob in spec.knobs:
        valid = f" ({knob.rule.describe()})" if isinstance(knob.rule, Interval) else ""
        parts.append(f"federation.{knob.name} = {knob.default!r}{valid}")
    return "; ".join(parts)


def methods_table() -> str:
    """A Markdown table of every registered method: name, family, modes, knobs, what it
    declares, and its one-line description."""
    lines = [
        "| method | family | modes | knobs | declares | what it is |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for spec in specs():
        modes = ", ".join(spec.modes)
        lines.append(
            f"| `{spec.name}` | {spec.family} | {modes} | {_knobs(spec)} | "
            f"{_capabilities(spec)} | {spec.description} |"
        )
    return "\n".join(lines) + "\n"


SERVER_SEES_START = "<!-- server-sees:start (fussbench methods --server-sees) -->"
SERVER_SEES_END = "<!-- server-sees:end -->"
"""The markers around the generated table in README.md (a test keeps it current)."""


def _sent(spec: MethodSpec) -> str:
    """What each client's update holds, in words."""
    centroids = (
        "per-centroid sums of its codes (K × D)"
        if spec.sends_code_sums
        else "its trained centroids (K × D)"
    )
    parts = ["head weights", centroids, "image count"]
    if spec.sends_code_sums or "*" in spec.cluster_count_modes:
        parts.append("per-centroid pixel counts (K)")
    elif spec.cluster_count_modes:
        modes = ", ".join(spec.cluster_count_modes)
        parts.append(f"per-centroid pixel counts (K; mode {modes})")
    if spec.asks:
        parts.append(spec.asks)
    return "; ".join(parts)


def server_sees_table(aggregators: Collection[str] | None = None) -> str:
    """A Markdown table of what the server sees of each client under every federated
    method (those of ``aggregators`` only, when given), and whether secure aggregation and
    central differential privacy (which give the server only a sum) can serve its server
    step (registry ``server_needs``); local differential privacy applies to every method."""
    lines = [
        "| method | each client sends | its server step needs | secure aggregation, central DP |",
        "| --- | --- | --- | --- |",
    ]
    for spec in specs("aggregator"):
        if aggregators is not None and spec.name not in aggregators:
            continue
        if spec.server_needs == "weighted_sum":
            needs, served = "only the sum over clients", "can serve it"
        else:
            needs, served = "each client's update", "cannot serve it"
        lines.append(f"| `{spec.name}` | {_sent(spec)} | {needs} | {served} |")
    return "\n".join(lines) + "\n"
