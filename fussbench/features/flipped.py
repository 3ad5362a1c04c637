"""The features of a cached split's images mirrored left to right, for flip averaging at
evaluation (``evaluation.flip``, :mod:`fussbench.evaluation.flip`).

They live in the split's cache folder, ``data/features/<dataset>/<backbone>/<split>/``,
as one sub-folder ``flipped/``:
- ``features.npy``: (N * V, C, h, w) float16; row r is F(flip(x_r)), the backbone's
  features of the mirror image of the view x_r whose features are row r of the split's
  ``features.npy`` (as the backbone gives them: not flipped back);
- ``index.json``: the split's fingerprint (:func:`~fussbench.features.cache.cache_fingerprint`),
  its sample names in row order and the array's shape, as they were when it was built.

:func:`build_flipped` writes the folder atomically, from the images decoded exactly as for
the split's cache, for a split already cached with the same params. :func:`open_flipped`
refuses a folder that is missing or stale (built with other params or for other samples
than the split it is opened with) with the command that rebuilds it. Rebuilding a split
(``fussbench features``) replaces its whole folder, the flipped features with it.

Only ``fussbench features --flip`` and the features stage under ``evaluation.flip: true``
compute them: the default pipeline never does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from fussbench.atomic import atomic_path
from fussbench.data.samples import DatasetSpec, Sample
from fussbench.errors import FussbenchError
from fussbench.features.cache import (
    FeatureSplit,
    cache_fingerprint,
    decoding_loader,
    fingerprint_differences,
    forward_batch,
    open_split,
)
from fussbench.features.config import BackboneConfig
from fussbench.features.device import Placement

if TYPE_CHECKING:
    from fussbench.features.backbones import DenseBackbone

FLIPPED = "flipped"
"""The sub-folder of a split's cache that holds its flipped features."""


def flip_command(dataset: str, split: str) -> str:
    """The command that (re)builds the flipped features of ``split`` of ``dataset``."""
    return f"fussbench features --flip --dataset {dataset} -S evaluation.split={split}"


def build_flipped(
    spec: DatasetSpec,
    samples: list[Sample],
    split: str,
    config: BackboneConfig,
    backbone: DenseBackbone,
    directory: Path,
    batch_size: int = 16,
    placement: Placement | None = None,
    loader_workers: int = 0,
) -> Path:
    """Compute the flipped features of the split cached in ``directory`` (built with
    ``config``) into ``directory``/flipped/, atomically, and return that folder.

    ``samples``: the split's samples (any order; the cache's row order is kept);
    ``backbone``, ``batch_size``, ``placement`` and ``loader_workers`` as for
    :func:`~fussbench.features.cache.build_split`.

    Raises:
        FussbenchError: when the split is not cached with ``config``, or a cached sample
            is not among ``samples``.
    """
    cache = open_split(directory, cache_fingerprint(spec, split, config))
    by_name = {sample.name: sample for sample in samples}
    missing = [name for name in cache.names if name not in by_name]
    if missing:
        raise FussbenchError(
            f"{directory}: cached sample '{missing[0]}' is not among the {split} images of "
            f"{spec.name}; rerun `fussbench features`"
        )
    placement = placement or Placement(torch.device("cpu"), "fp32")
    training = split == spec.train_split
    loader = decoding_loader(
        spec,
        [by_name[name] for name in cache.names],
        config.preprocessing,
        training,
        batch_size,
        placement,
        loader_workers,
    )
    with atomic_path(directory / FLIPPED) as tmp:
        tmp.mkdir()
        features = np.lib.format.open_memmap(
            tmp / "features.npy", mode="w+", dtype=np.float16, shape=cache.features.shape
        )
        row = 0
        for images, _ in tqdm(loader, desc=f"flipped features {spec.name}/{split}", unit="batch"):
            # (B, V, 3, H, W) -> (B * V, 3, H, W), each view mirrored along its width
            maps = forward_batch(backbone, images.flatten(0, 1).flip(-1), placement)
            features[row : row + maps.shape[0]] = maps.numpy().astype(np.float16)
            row += maps.shape[0]
        features.flush()
        del features
        index = {
            "fingerprint": cache.fingerprint,
            "names": cache.names,
            "feature_shape": list(cache.features.shape),
            "computed_on": {"device": placement.device.type, "precision": placement.precision},
        }
        (tmp / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    return directory / FLIPPED


def open_flipped(split: FeatureSplit) -> np.ndarray:
    """The flipped features (N * V, C, h, w) float16 memory map of an opened ``split``,
    row for row with ``split.features``.

    Raises:
        FussbenchError: when they are missing, or stale: built with another fingerprint,
            for other samples or with another shape than ``split``; the message names the
            command that builds them.
    """
    folder = split.directory / FLIPPED
    command = flip_command(str(split.fingerprint["dataset"]), str(split.fingerprint["split"]))
    index_path = folder / "index.json"
    if not index_path.is_file():
        raise FussbenchError(
            f"{folder}: no flipped features of this split; evaluation.flip: true and "
            f"`fussbench flip-effect` need them: run `{command}` (or set evaluation.flip: false)"
        )
    index = json.loads(index_path.read_text(encoding="utf-8"))
    features = np.load(folder / "features.npy", mmap_mode="r")
    stale = fingerprint_differences(index.get("fingerprint", {}), split.fingerprint)
    if index.get("names") != split.names:
        stale.append("the samples differ from the split's")
    if features.shape != split.features.shape:
        stale.append(f"shape {features.shape} (the split's: {split.features.shape})")
    if stale:
        raise FussbenchError(
            f"{index_path}: flipped features are stale: {', '.join(stale)}; rerun `{command}`"
        )
    return features
