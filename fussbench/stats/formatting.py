"""How p-values are written, in ``significance.md`` and in the report's tables alike."""

from __future__ import annotations

import math

MISSING = "—"
"""Text of a cell without a value (an em dash)."""

SMALLEST_SHOWN = 0.001
"""p-values below this are written as a bound, not as digits."""


def format_p(p: float | None) -> str:
    """A p-value to 3 significant digits (``"0.0312"``, ``"1"``); ``"< 0.001"`` below
    :data:`SMALLEST_SHOWN`; :data:`MISSING` for ``None`` or NaN."""
    if p is None or math.isnan(p):
        return MISSING
    return f"< {SMALLEST_SHOWN}" if p < SMALLEST_SHOWN else f"{p:.3g}"
