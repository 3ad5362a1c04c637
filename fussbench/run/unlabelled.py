"""What a federation run writes when its data has no labels (the ``folder`` dataset without
masks): predicted masks and overlays of a few images per client, the pixels each cluster
takes on each client's images (``clusters.csv``), and a collapse flag per model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fussbench.atomic import write_text
from fussbench.data.samples import DatasetSpec
from fussbench.evaluation.collapse import collapse_without_labels
from fussbench.evaluation.previews import write_previews
from fussbench.evaluation.subsets import evenly_spaced
from fussbench.evaluation.unlabelled import cluster_pixels
from fussbench.features.cache import FeatureSplit
from fussbench.features.rows import RowView
from fussbench.model.head import CENTROIDS_KEY, ModelArrays
from fussbench.params import Params
from fussbench.paths import raw_dir
from fussbench.reporting.palettes import palette

PREVIEWS = "predictions"
"""Folder of a run holding ``client_XX/<name>.png`` and ``<name>_overlay.png``."""


def _clusters_csv(counts: list[np.ndarray]) -> str:
    """``client,cluster,pixels,share``: one row per client and cluster."""
    lines = ["client,cluster,pixels,share"]
    for client, row in enumerate(counts):
        total = max(int(row.sum()), 1)
        lines += [f"{client},{k},{int(n)},{n / total:.4f}" for k, n in enumerate(row)]
    return "\n".join(lines) + "\n"


def _views(spec: DatasetSpec, params: Params, names: list[str]) -> list[np.ndarray]:
    """The first training view (H, W, 3) uint8 of each named image, as its features saw it."""
    samples = {s.name: s for s in spec.samples(raw_dir(spec.name), spec.train_split)}
    preprocessing = params.backbone_config().preprocessing
    return [
        np.asarray(
            preprocessing.views(
                spec.open_image(samples[name].image), True, Image.Resampling.BICUBIC, spec.fit
            )[0]
        )
        for name in names
    ]


def write_unlabelled(
    params: Params,
    spec: DatasetSpec,
    out_dir: Path,
    models: list[ModelArrays],
    train: FeatureSplit,
    client_rows: list[np.ndarray],
) -> dict[str, object]:
    """Write the previews and ``clusters.csv`` of a run's final ``models`` (one global
    model, or one per client without aggregation) on each client's training images.

    Returns:
        The ``metrics.json`` fields: ``clusters_per_client`` (pixels per cluster) and
        ``collapse`` (per client, under ``folder.collapse_share``).
    """
    size = tuple(int(side) for side in train.labels.shape[1:])
    counts, collapse = [], []
    colours = palette(spec.name, int(models[0][CENTROIDS_KEY].shape[0]))
    for client, rows in enumerate(client_rows):
        arrays = models[client] if len(models) > 1 else models[0]
        counts.append(cluster_pixels(arrays, RowView(train.features, rows), size))
        collapse.append(collapse_without_labels(counts[-1], params.folder.collapse_share))
        first = rows[:: train.views]  # each image's first view
        chosen = first[evenly_spaced(len(first), params.folder.preview_images)]
        names = [train.names[row // train.views] for row in chosen]
        write_previews(
            out_dir / PREVIEWS / f"client_{client:02d}",
            names,
            _views(spec, params, names),
            arrays,
            train.features[chosen],
            colours,
        )
    write_text(out_dir / "clusters.csv", _clusters_csv(counts))
    return {
        "clusters_per_client": [[int(n) for n in row] for row in counts],
        "collapse_per_client": collapse,
    }
