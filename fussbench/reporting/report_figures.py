"""The report's figures, per setup: mIoU per round, the centroids' distances, the clients'
class distribution and the qualitative grid, each drawn only where its inputs exist."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from fussbench.errors import FussbenchError
from fussbench.methods import parse_method
from fussbench.reporting import figures
from fussbench.reporting.palettes import palette
from fussbench.reporting.qualitative import QualitativeLoader
from fussbench.reporting.runs import read_centroid_distances, read_curves, read_partition

ROUNDS_CAPTION = (
    "local: mean over the clients' own models; centralized: one model trained on the pooled data."
)
"""Caption of the rounds figure: what its two bounds plot."""


def write_figures(
    out_dir: Path,
    runs_dir: Path,
    partitions_dir: Path,
    methods: Sequence[str],
    setups: Sequence[str],
    seeds: Sequence[int],
    qualitative: QualitativeLoader | None,
    missing: list[str],
) -> list[Path]:
    """Every figure that has inputs, per setup; what cannot be drawn goes to ``missing``."""
    folder = out_dir / "figures"
    written = []
    heatmap_methods = [m for m in methods if parse_method(m).spec.centroid_heatmap]
    for setup in setups:
        curves = read_curves(runs_dir, setup, methods, seeds)
        if len(curves):
            title = f"{setup}: global mIoU after each round"
            figure = figures.rounds_figure(curves, methods, title, ROUNDS_CAPTION)
            written.append(save_figure(figure, folder, "rounds", setup))
        distances = read_centroid_distances(runs_dir, setup, heatmap_methods, seeds[0])
        if distances:
            title = f"{setup}: pairwise cosine distance of the final centroids (seed {seeds[0]})"
            figure = figures.centroid_heatmaps(distances, title)
            written.append(save_figure(figure, folder, "centroids", setup))
        written += _partition_figure(partitions_dir, setup, folder, missing)
        if qualitative is not None:
            written += _qualitative_figure(qualitative, setup, seeds[0], folder, missing)
    return written


def save_figure(figure: Figure, folder: Path, kind: str, setup: str) -> Path:
    """Write ``figures/<kind>_<setup>.png``; return its path."""
    path = folder / f"{kind}_{setup}.png"
    figures.save_png(figure, path)
    return path


def _partition_figure(
    partitions_dir: Path, setup: str, folder: Path, missing: list[str]
) -> list[Path]:
    """The client class-distribution figure of ``setup``, or none (the reason in ``missing``)."""
    partition = read_partition(partitions_dir, setup)
    if partition is None:
        missing.append(f"partition figure of {setup}: no summary in {partitions_dir / setup}")
        return []
    if partition.js_mean is None:
        missing.append(f"partition figure of {setup}: no labels (no masks), no class counts")
        return []
    colours = palette(partition.dataset, len(partition.class_names))
    title = f"{setup}: class distribution per client"
    figure = figures.partition_figure(
        partition.counts,
        partition.class_names,
        colours,
        partition.js_mean,
        title,
        partition.feature_skew,
    )
    return [save_figure(figure, folder, "partition", setup)]


def _qualitative_figure(
    loader: QualitativeLoader, setup: str, seed: int, folder: Path, missing: list[str]
) -> list[Path]:
    """The qualitative grid of ``setup``, or none (the reason in ``missing``)."""
    try:
        grid = loader(setup)
    except FussbenchError as error:
        missing.append(f"qualitative figure of {setup}: {error}")
        return []
    if not grid.rows or not grid.rows[0].predictions:
        missing.append(f"qualitative figure of {setup}: no trained model of seed {seed}")
        return []
    title = f"{setup}: predictions of seed {seed}, clusters matched to classes over the split"
    return [save_figure(figures.qualitative_figure(grid, title), folder, "qualitative", setup)]
