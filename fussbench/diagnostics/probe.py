"""The frozen-feature ceiling diagnostic of ``fussbench probe``.

Fits the supervised linear probe of :mod:`fussbench.evaluation.probe` on the training
split's cached features and labels, scores it on the evaluation split, and scores the
k-means reference and the feature grid's own ceiling at the same settings. The probe uses
labels: it is a diagnostic of what the frozen features can separate, never a benchmark row.

With ``cache`` (a scratch folder) the features are built there when missing, at the
dataset's image size or ``image_size``: ``<cache>/<dataset>/<backbone>/<layers>/<H>x<W>/
<split>/``. Without it the pipeline's cache in ``data/features`` is read (never written).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from fussbench.data.samples import DatasetSpec
from fussbench.errors import FussbenchError
from fussbench.evaluation.probe import evaluate_probe, fit_probe, grid_ceiling
from fussbench.evaluation.reference import evaluate_kmeans
from fussbench.features.cache import FeatureSplit, build_split, cache_fingerprint, open_split
from fussbench.features.config import BackboneConfig
from fussbench.params import Params
from fussbench.paths import features_dir, raw_dir

NOTE = (
    "supervised linear probe trained with the training split's labels: a diagnostic "
    "ceiling of the frozen features, never a benchmark row"
)


def _spec(params: Params, dataset: str | None, image_size: tuple[int, int] | None) -> DatasetSpec:
    """The dataset, resized to ``image_size`` (height, width) when given."""
    spec = params.dataset_spec(dataset)
    if image_size is not None:
        spec = copy.copy(spec)
        spec.image_size = image_size
    return spec


def _build(
    params: Params, spec: DatasetSpec, config: BackboneConfig, folder: Path, splits: list[str]
) -> None:
    """Cache each of ``splits`` missing from ``folder`` (``folder/<split>/``)."""
    missing = [split for split in splits if not (folder / split).is_dir()]
    if not missing:
        return
    from fussbench.features.backbones import build_backbone  # imports timm: only here
    from fussbench.features.device import resolve_placement

    placement = resolve_placement(params.features.device, params.features.precision)
    backbone = build_backbone(config).to(placement.device)
    for split in missing:
        samples = spec.samples(raw_dir(spec.name), split)
        build_split(
            spec,
            samples,
            split,
            config,
            backbone,
            folder / split,
            params.features.batch_size,
            placement,
            params.features.loader_workers,
        )


def _open(
    params: Params, spec: DatasetSpec, cache: Path | None, image_size: tuple[int, int] | None
) -> tuple[FeatureSplit, FeatureSplit]:
    """The training and evaluation splits' caches (built under ``cache`` when missing)."""
    config = params.backbone_config()
    splits = [spec.train_split, params.evaluation.split or spec.eval_split]
    if cache is None:
        if image_size is not None:
            raise FussbenchError(
                "--image-size needs --cache: the pipeline's cache in data/features is built at "
                "the dataset's own size and the probe never writes there"
            )
        folder = features_dir(spec.name, params.backbone)
    else:
        height, width = spec.image_size
        folder = cache / spec.name / params.backbone / config.layers / f"{height}x{width}"
        _build(params, spec, config, folder, splits)
    train, evaluation = (
        open_split(folder / split, cache_fingerprint(spec, split, config)) for split in splits
    )
    return train, evaluation


def probe_record(
    params: Params,
    dataset: str | None = None,
    cache: Path | None = None,
    image_size: tuple[int, int] | None = None,
    regularisation: float = 1.0,
) -> dict[str, object]:
    """Probe, k-means and grid ceiling of one dataset / backbone / layers / input size;
    returns them as a JSON-ready record (per-class IoU in percent)."""
    started = time.perf_counter()
    spec = _spec(params, dataset, image_size)
    train, evaluation = _open(params, spec, cache, image_size)
    n_clusters = params.model.n_clusters or spec.n_classes
    with threadpool_limits(params.runtime.threads):
        probe = fit_probe(train.features, train.labels, spec.n_classes, regularisation)
        probe_scores = evaluate_probe(probe, evaluation.features, evaluation.labels, spec.n_classes)
        kmeans = evaluate_kmeans(
            train.features,
            evaluation.features,
            evaluation.labels,
            n_clusters,
            spec.n_classes,
            params.seed,
            params.evaluation.matching,
        )
    grid = tuple(int(side) for side in evaluation.features.shape[2:])
    ceiling = grid_ceiling(evaluation.labels, grid, spec.n_classes)
    return {
        "note": NOTE,
        "dataset": spec.name,
        "backbone": params.backbone,
        "layers": params.features.layers,
        "image_size": list(spec.image_size),
        "feature_grid": list(grid),
        "channels": int(train.features.shape[1]),
        "train_split": spec.train_split,
        "eval_split": evaluation.fingerprint["split"],
        "train_images": len(train.names),
        "eval_images": len(evaluation.names),
        "probe": {
            **probe_scores.as_dict(spec.class_names),
            "regularisation": regularisation,
            "lbfgs_iterations": probe.iterations,
            "converged": probe.converged,
            "weighted_samples": probe.n_samples,
        },
        "kmeans": {
            **kmeans.scores.as_dict(spec.class_names),
            "n_clusters": n_clusters,
            "seed": params.seed,
            "matching": params.evaluation.matching,
        },
        "grid_ceiling": ceiling.as_dict(spec.class_names),
        "seconds": round(time.perf_counter() - started, 2),
    }
