"""The report's figures, drawn with matplotlib from already-loaded arrays and tables.

Figures are built with the object-oriented API (no pyplot, so no GUI backend and no global
figure registry); PNGs are rendered by Agg. Every function returns a
:class:`~matplotlib.figure.Figure`; :func:`save_png` writes it atomically. Reading runs,
caches and images is left to the callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from fussbench.atomic import atomic_path
from fussbench.data.samples import IGNORE_INDEX
from fussbench.reporting.palettes import colourise, palette

DPI = 120
"""Resolution of every PNG."""

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
"""Markers cycled over methods, so lines that coincide stay distinguishable."""

DODGE = 0.025
"""Shift along x (in rounds) between neighbouring methods of the rounds figure."""


def save_png(figure: Figure, path: Path, dpi: int = DPI) -> None:
    """Write ``figure`` as a PNG to ``path`` atomically (a temporary sibling renamed over
    it)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")


def method_colours(methods: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """A distinct colour per method, stable in the order given."""
    cmap = matplotlib.colormaps["tab10" if len(methods) <= 10 else "tab20"]
    return {method: cmap(index % cmap.N) for index, method in enumerate(methods)}


def rounds_figure(
    curves: pd.DataFrame, methods: Sequence[str], title: str, caption: str = ""
) -> Figure:
    """Global mIoU after every round: the mean over seeds as a line, ± one standard
    deviation over seeds as a band, one colour and marker per method; methods are shifted
    slightly along x so that coinciding lines stay visible.

    Args:
        curves: one row per (method, seed, round), columns method, seed, round, miou.
        methods: the methods to draw, in legend order (those without rows are skipped).
        caption: a line of small text under the plot.
    """
    figure = Figure(figsize=(7.5, 4.5))
    axes = figure.subplots()
    shown = [method for method in methods if (curves["method"] == method).any()]
    colours = method_colours(shown)
    for index, method in enumerate(shown):
        stats = curves[curves["method"] == method].groupby("round")["miou"]
        stats = stats.agg(["mean", "std", "count"]).fillna({"std": 0.0})
        colour = colours[method]
        x = stats.index.to_numpy(dtype=float) + DODGE * (index - (len(shown) - 1) / 2)
        axes.plot(
            x,
            stats["mean"],
            marker=MARKERS[index % len(MARKERS)],
            color=colour,
            label=f"{method} ({int(stats['count'].max())})",
        )
        low, high = stats["mean"] - stats["std"], stats["mean"] + stats["std"]
        axes.fill_between(x, low, high, color=colour, alpha=0.08, linewidth=0)
    axes.set_xticks(sorted(curves["round"].unique()))
    axes.set_xlabel("round")
    axes.set_ylabel("mIoU (%) on the evaluation split")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if caption:
        figure.text(0.01, -0.02, caption, fontsize="small", va="top")
    axes.legend(
        title="method (seeds): mean ± std",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize="small",
        title_fontsize="small",
    )
    return figure


def min_offdiagonal(distances: np.ndarray) -> float:
    """Smallest off-diagonal entry of a square matrix (K, K)."""
    mask = ~np.eye(len(distances), dtype=bool)
    return float(distances[mask].min())


def centroid_heatmaps(distances: dict[str, np.ndarray], title: str) -> Figure:
    """Pairwise cosine distances (K, K) between each method's final centroids, side by
    side on one colour scale, each titled with its smallest off-diagonal distance (near 0:
    collapsed prototypes). Values are printed in the cells when K <= 6."""
    count = len(distances)
    figure = Figure(figsize=(3.3 * count + 1.0, 3.6))
    axes = figure.subplots(1, count, squeeze=False)
    figure.subplots_adjust(top=0.8, wspace=0.35)
    top = max(float(matrix.max()) for matrix in distances.values())
    image = None
    for axis, (method, raw) in zip(axes[0], distances.items(), strict=True):
        matrix = np.clip(raw, 0.0, None)  # the diagonal holds rounding noise around 0
        image = axis.imshow(matrix, cmap="viridis", vmin=0.0, vmax=top)
        axis.set_title(f"{method}\nmin off-diag {min_offdiagonal(matrix):.3f}", fontsize="medium")
        axis.set_xlabel("centroid")
        axis.set_ylabel("centroid")
        ticks = np.arange(len(matrix))
        axis.set_xticks(ticks)
        axis.set_yticks(ticks)
        axis.tick_params(labelsize="x-small")
        if len(matrix) <= 6:
            for (row, column), value in np.ndenumerate(matrix):
                shade = "black" if value > 0.6 * top else "white"
                axis.text(column, row, f"{value:.2f}", ha="center", va="center", color=shade)
    figure.colorbar(image, ax=list(axes[0]), label="cosine distance", shrink=0.85)
    figure.draw_without_rendering()  # square panels end below ``top``: title right above
    panel_top = max(axis.title.get_window_extent().y1 for axis in axes[0])
    figure.suptitle(title, y=panel_top / figure.bbox.height + 0.02, va="bottom")
    return figure


@dataclass(frozen=True)
class QualitativeRow:
    """One evaluation image with its ground truth and each method's prediction.

    Attributes:
        name: the sample's name.
        image: (H, W, 3) uint8 RGB.
        labels: (H, W) class indices, 255 = ignore.
        predictions: method -> (H, W) class indices after the split-wide matching
            (255 for a cluster matched to no class).
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    predictions: dict[str, np.ndarray]


@dataclass(frozen=True)
class QualitativeGrid:
    """What the qualitative figure of one setup shows."""

    dataset: str
    class_names: tuple[str, ...]
    rows: list[QualitativeRow]


def qualitative_figure(grid: QualitativeGrid, title: str) -> Figure:
    """Rows = images; columns = image, ground truth, then each method's prediction, painted
    in the dataset's palette (ignored pixels black), with a legend of the classes."""
    colours = palette(grid.dataset, len(grid.class_names))
    methods = list(grid.rows[0].predictions)
    columns = ["image", "ground truth", *methods]
    height, width = grid.rows[0].labels.shape
    panel = 2.2
    figure = Figure(figsize=(panel * len(columns), panel * height / width * len(grid.rows) + 0.9))
    axes = figure.subplots(len(grid.rows), len(columns), squeeze=False)
    for row_axes, row in zip(axes, grid.rows, strict=True):
        panels = [row.image, colourise(row.labels, colours)]
        panels += [colourise(row.predictions[method], colours) for method in methods]
        for axis, picture in zip(row_axes, panels, strict=True):
            axis.imshow(picture, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
        row_axes[0].set_ylabel(row.name, fontsize="x-small")
    for axis, column in zip(axes[0], columns, strict=True):
        axis.set_title(column, fontsize="small")
    handles = [
        Patch(facecolor=colour / 255, edgecolor="0.5", label=name)
        for name, colour in zip(grid.class_names, colours, strict=True)
    ]
    maps = [row.labels for row in grid.rows]
    maps += [prediction for row in grid.rows for prediction in row.predictions.values()]
    if any(np.any((m == IGNORE_INDEX) | (m >= len(colours))) for m in maps):
        handles.append(Patch(facecolor="black", edgecolor="0.5", label="ignore / unmatched"))
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 12), fontsize="small")
    figure.suptitle(title)
    legend_inches = 0.45
    figure.tight_layout(rect=(0, legend_inches / figure.get_figheight(), 1, 1))
    return figure


def partition_figure(
    counts: pd.DataFrame,
    class_names: Sequence[str],
    colours: np.ndarray,
    js_mean: float,
    title: str,
    feature_skew: float | None = None,
) -> Figure:
    """Each client's class distribution as a stacked bar (pixel shares summing to 1), with
    the client's image count and JS divergence and the partition's mean JS divergence (and
    its feature skew, when the partition recorded one).

    Args:
        counts: one row per client, columns client, n_images, one pixel count per class
            name, js_divergence (a partition's ``summary.csv``).
        colours: (n_classes, 3) uint8 colours of the classes.
        feature_skew: mean cosine distance of the client mean features to the pooled mean.
    """
    shares = counts[list(class_names)].to_numpy(dtype=float)
    shares = shares / np.maximum(shares.sum(axis=1, keepdims=True), 1.0)
    positions = np.arange(len(counts))
    figure = Figure(figsize=(max(5.0, 1.1 * len(counts) + 3.5), 4.5))
    axes = figure.subplots()
    bottom = np.zeros(len(counts))
    for index, name in enumerate(class_names):
        axes.bar(
            positions,
            shares[:, index],
            bottom=bottom,
            color=colours[index] / 255,
            edgecolor="0.3",
            linewidth=0.4,
            label=name,
        )
        bottom += shares[:, index]
    for position, js in zip(positions, counts["js_divergence"], strict=True):
        axes.text(position, 1.01, f"JS {js:.2g}", ha="center", va="bottom", fontsize="x-small")
    axes.set_xticks(positions)
    axes.set_xticklabels(
        [f"client {c}\n{n} img" for c, n in zip(counts["client"], counts["n_images"], strict=True)]
    )
    axes.set_ylim(0, 1.08)
    axes.set_ylabel("share of the client's labelled pixels")
    skews = f"mean JS divergence to the pooled distribution: {js_mean:.3g}"
    if feature_skew is not None:
        skews += f"; feature skew {feature_skew:.3g}"
    axes.set_title(f"{title}\n{skews}")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", title="class")
    return figure
