"""The privacy-utility figure: mIoU against the ε a method spent, one panel per setup."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from fussbench.reporting.figures import MARKERS, method_colours
from fussbench.reporting.privacy_levels import releases_nothing

INFINITY_GAP = 4.0
"""ε ∞ is drawn at this factor right of the largest finite ε (on the log axis)."""


def _infinity_at(levels: pd.DataFrame) -> float:
    """Where ε ∞ goes: :data:`INFINITY_GAP` × the largest finite positive ε (1 if none)."""
    epsilon = levels["epsilon"].to_numpy(dtype=float)
    finite = epsilon[np.isfinite(epsilon) & (epsilon > 0)]
    return INFINITY_GAP * (float(finite.max()) if len(finite) else 1.0)


def privacy_figure(levels: pd.DataFrame, setups: Sequence[str], methods: Sequence[str]) -> Figure:
    """mIoU (mean over seeds, ± std as error bars) against mean ε spent, log x axis, one
    line per method through its levels in ε order; ε ∞ at a position labelled ∞ right of
    the largest finite ε; a method that releases nothing as a dashed horizontal line at its
    mean mIoU.

    Args:
        levels: :func:`fussbench.reporting.privacy_levels.privacy_levels`.
        setups, methods: the panels and the legend's order (those without rows skipped).
    """
    shown = [setup for setup in setups if (levels["setup"] == setup).any()]
    figure = Figure(figsize=(6.0 * len(shown), 4.5))
    infinity = _infinity_at(levels)
    colours = method_colours(list(methods))
    for axes, setup in zip(figure.subplots(1, len(shown), squeeze=False)[0], shown, strict=True):
        mine = levels[levels["setup"] == setup]
        for index, method in enumerate(methods):
            rows = mine[mine["method"] == method]
            if rows.empty:
                continue
            if releases_nothing(method):
                axes.axhline(
                    rows["miou_mean"].mean(),
                    color=colours[method],
                    linestyle="--",
                    label=f"{method} (releases nothing)",
                )
                continue
            rows = rows[rows["epsilon"].notna()].sort_values("epsilon")
            axes.errorbar(
                rows["epsilon"].replace(math.inf, infinity),
                rows["miou_mean"],
                yerr=rows["miou_std"].fillna(0.0),
                color=colours[method],
                marker=MARKERS[index % len(MARKERS)],
                capsize=3,
                label=method,
            )
        axes.set_xscale("log")
        ticks = sorted({*mine["epsilon"].dropna().replace(math.inf, infinity)} - {0.0})
        axes.set_xticks(ticks, [f"{tick:.3g}" if tick < infinity else "∞" for tick in ticks])
        axes.xaxis.set_minor_locator(NullLocator())
        axes.set_xlabel("ε spent over the run (log scale)")
        axes.set_ylabel("mIoU (%) on the evaluation split")
        axes.set_title(f"{setup}: mIoU against privacy")
        axes.grid(alpha=0.3)
        axes.legend(title="method: mean ± std over seeds", fontsize="small", title_fontsize="small")
    return figure
