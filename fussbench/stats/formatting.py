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


def format_difference(mean: float | None, low: float | None, high: float | None) -> str:
    """A mean difference in mIoU points and its CI, ``"+1.50 [+0.50, +2.50]"``; the CI left
    out where a bound is missing (``None`` or NaN); :data:`MISSING` without a mean."""
    if mean is None or math.isnan(mean):
        return MISSING
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{mean:+.2f}"
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"
