"""The registry as text a person reads: ``fussbench methods`` and the docs' method table."""

from __future__ import annotations

from fussbench.methods.registry import MethodSpec, specs
from fussbench.rules import Interval


def _capabilities(spec: MethodSpec) -> str:
    """What the entry declares besides its knobs, comma-separated ("" for none)."""
    flags = [
        ("baseline", spec.baseline),
        ("pools the clients' data", spec.pools_clients),
        ("model.n_clusters: auto", spec.any_k),
        ("fedcc_auto candidate", spec.auto_candidate),
        (f"client term {spec.client_term}", spec.client_term is not None),
        ("server needs each client's update", spec.server_needs == "individual"),
        ("server needs only the weighted sum", spec.server_needs == "weighted_sum"),
        ("server queries the clients", spec.queries_clients),
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
