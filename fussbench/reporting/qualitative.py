"""The report's qualitative grid: a few evaluation images, their labels, and each trained
method's predictions, every cluster mapped to its class as ``metrics.json`` scored it.

Reads a run's ``model.npz``, the evaluation split's feature cache and the raw images; runs
the head on the cached features (no backbone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from fussbench.data.samples import IGNORE_INDEX, DatasetSpec
from fussbench.evaluation.predict import evaluate_clusters, predict_clusters
from fussbench.evaluation.subsets import evenly_spaced
from fussbench.features.cache import cache_fingerprint, open_split
from fussbench.features.config import BackboneConfig
from fussbench.methods import parse_method
from fussbench.model.head import CENTROIDS_KEY, ModelArrays
from fussbench.params import Params
from fussbench.paths import features_dir, raw_dir, run_dir
from fussbench.reporting.figures import QualitativeGrid, QualitativeRow

QualitativeLoader = Callable[[str], QualitativeGrid]
"""Loads the qualitative grid of a setup (raises FussbenchError when it cannot)."""


def load_model(path: Path, index: int = 0) -> ModelArrays:
    """Model ``index`` of a run's ``model.npz`` (model 0: the global model of a federated
    run, client 0's model for ``local``)."""
    prefix = f"model{index}/"
    with np.load(path) as archive:
        return {key[len(prefix) :]: archive[key] for key in archive.files if key.startswith(prefix)}


def load_qualitative(
    params: Params, runs_dir: Path, methods: Sequence[str], n_images: int, seed: int
) -> QualitativeGrid:
    """Predictions of each trained method's ``seed`` run on ``n_images`` evenly spaced
    evaluation images of ``params.setup``, each cluster mapped to its class by the
    matching over the whole evaluation split (as scored in ``metrics.json``).

    ``params`` must be the params of that setup (its dataset, backbone, evaluation split
    and matching). Methods without a ``model.npz`` (the reference rows) are left out.

    Raises:
        FussbenchError: when the feature cache or the raw images are missing or stale.
    """
    spec = params.dataset_spec()
    split = params.evaluation.split or spec.eval_split
    config = params.backbone_config()
    cache = open_split(
        features_dir(spec.name, params.backbone) / split,
        cache_fingerprint(spec, split, config),
    )
    rows = evenly_spaced(len(cache.names), n_images)
    labels = np.asarray(cache.labels)
    predictions: dict[str, np.ndarray] = {}
    for method in methods:
        path = run_dir(runs_dir, params.setup, method, seed) / "model.npz"
        if not path.is_file():
            continue
        arrays = load_model(path)
        clusters = predict_clusters(arrays, cache.features, labels.shape[1:])
        n_clusters = arrays[CENTROIDS_KEY].shape[0]
        mapping = evaluate_clusters(
            clusters, labels, n_clusters, spec.n_classes, params.evaluation.matching
        ).mapping
        classes = np.where(mapping >= 0, mapping, IGNORE_INDEX).astype(np.uint8)
        own = parse_method(method).spec.keeps_client_models  # local: one model per client
        label = f"{method} (client 0)" if own else method
        predictions[label] = classes[clusters[rows].astype(np.int64)]
    samples = {sample.name: sample for sample in spec.samples(raw_dir(spec.name), split)}
    grid_rows = [
        QualitativeRow(
            name=cache.names[row],
            image=_evaluation_view(spec, config, samples[cache.names[row]].image),
            labels=labels[row],
            predictions={method: maps[index] for method, maps in predictions.items()},
        )
        for index, row in enumerate(rows)
    ]
    return QualitativeGrid(spec.name, spec.class_names, grid_rows)


def _evaluation_view(spec: DatasetSpec, config: BackboneConfig, path: Path) -> np.ndarray:
    """The image (H, W, 3) uint8 exactly as the evaluation split's features saw it."""
    image = spec.open_image(path)
    views = config.preprocessing.views(image, False, Image.Resampling.BICUBIC, spec.fit)
    return np.asarray(views[0])


def qualitative_loader(
    params_for: Callable[[str], Params],
    runs_dir: Path,
    methods: Sequence[str],
    n_images: int,
    seed: int,
) -> QualitativeLoader:
    """A :data:`QualitativeLoader` for :func:`fussbench.reporting.report.write_report`;
    ``params_for(setup)`` returns the params with that setup chosen (e.g.
    ``load_params(file, [*overrides, f"setup={s}"])``)."""

    def load(setup: str) -> QualitativeGrid:
        return load_qualitative(params_for(setup), runs_dir, methods, n_images, seed)

    return load
