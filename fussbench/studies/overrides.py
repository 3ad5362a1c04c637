"""The params overrides of a comparison cell ``AGGREGATOR[.MODE][.WEIGHTING]``."""

from __future__ import annotations

from fussbench.methods import parse_method


def method_overrides(method: str) -> list[str]:
    """``-S`` overrides that run ``method``: aggregator, federation.weighting and
    federation.mode (``null`` where the cell names no mode), e.g. ``fedavg.uniform`` ->
    ``["aggregator=fedavg", "federation.weighting=uniform", "federation.mode=null"]``."""
    cell = parse_method(method)
    mode = cell.mode if cell.mode is not None else "null"
    return [
        f"aggregator={cell.aggregator}",
        f"federation.weighting={cell.weighting}",
        f"federation.mode={mode}",
    ]
