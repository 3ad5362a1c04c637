"""The dense-feature cache: every image's backbone features, computed once, on disk.

One folder per split holds
- ``features.npy``: (N, C, h, w) float16, opened as a memory map;
- ``labels.npy``: (N, H, W) uint8 class indices at the dataset's image size (255 = ignore);
- ``pooled.npy``: (N, C) float32 global-average-pooled features (for neighbour lists);
- ``index.json``: sample names in row order and the fingerprint of what built the cache.

Training and evaluation read only this folder: the backbone never runs during training.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from fussbench.atomic import atomic_path
from fussbench.data.samples import DatasetSpec, Sample
from fussbench.errors import FussbenchError
from fussbench.features.config import BackboneConfig

if TYPE_CHECKING:
    from fussbench.features.backbones import DenseBackbone

CACHE_FORMAT = 2
"""Bumped whenever the cache layout or its contents change meaning."""


def cache_fingerprint(spec: DatasetSpec, split: str, config: BackboneConfig) -> dict[str, object]:
    """What a cache must have been built with to be valid for these params."""
    return {
        "format": CACHE_FORMAT,
        "dataset": spec.name,
        "split": split,
        "image_size": list(spec.image_size),
        "backbone": config.name,
        "layers": config.layers,
        "pretrained": config.pretrained,
        "checkpoint": config.checkpoint,
    }


@dataclass(frozen=True)
class FeatureSplit:
    """A cached split, opened read-only.

    Attributes:
        names: sample names, in row order.
        features: (N, C, h, w) float16 memory map.
        labels: (N, H, W) uint8 memory map.
        pooled: (N, C) float32.
        fingerprint: see :func:`cache_fingerprint`.
        backbone_nbytes: size of the backbone's weights (float32), the cost of shipping it.
    """

    directory: Path
    names: list[str]
    features: np.ndarray
    labels: np.ndarray
    pooled: np.ndarray
    fingerprint: dict[str, object]
    backbone_nbytes: int

    def rows(self, names: list[str]) -> np.ndarray:
        """Row indices (len(names),) of the given sample names.

        Raises:
            FussbenchError: naming the first sample missing from the cache.
        """
        position = {name: row for row, name in enumerate(self.names)}
        missing = [name for name in names if name not in position]
        if missing:
            raise FussbenchError(
                f"{self.directory}: {len(missing)} sample(s) missing from the feature cache, "
                f"first '{missing[0]}'; rerun `fussbench features` after `fussbench partition`"
            )
        return np.array([position[name] for name in names], dtype=np.int64)


def open_split(directory: Path, expected: dict[str, object]) -> FeatureSplit:
    """Open a cached split and check it was built with the ``expected`` fingerprint.

    Raises:
        FussbenchError: when the cache is missing, incomplete or built with other params.
    """
    index_path = directory / "index.json"
    if not index_path.is_file():
        raise FussbenchError(
            f"{directory}: no feature cache here; run `fussbench features` (or `dvc repro`)"
        )
    index = json.loads(index_path.read_text(encoding="utf-8"))
    built_with = index.get("fingerprint", {})
    differences = [
        f"{key}={built_with.get(key)!r} (params say {value!r})"
        for key, value in expected.items()
        if built_with.get(key) != value
    ]
    if differences:
        raise FussbenchError(
            f"{index_path}: feature cache does not match params: {', '.join(differences)}; "
            "rerun `fussbench features` with the current params"
        )
    features = np.load(directory / "features.npy", mmap_mode="r")
    labels = np.load(directory / "labels.npy", mmap_mode="r")
    pooled = np.load(directory / "pooled.npy")
    names = list(index["names"])
    if not (features.shape[0] == labels.shape[0] == pooled.shape[0] == len(names)):
        raise FussbenchError(
            f"{directory}: feature cache arrays disagree in length; rerun `fussbench features`"
        )
    return FeatureSplit(
        directory, names, features, labels, pooled, built_with, int(index["backbone_nbytes"])
    )


def _load_batch(spec: DatasetSpec, batch: list[Sample]) -> tuple[torch.Tensor, np.ndarray]:
    """Decode a batch: images (B, 3, H, W) float in [0, 1] and labels (B, H, W) uint8."""
    images = np.stack([np.asarray(spec.read_image(sample.image)) for sample in batch])
    labels = np.stack([spec.read_label(sample.label) for sample in batch])
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    return tensor, labels


def _batches(samples: list[Sample], batch_size: int) -> Iterator[list[Sample]]:
    for start in range(0, len(samples), batch_size):
        yield samples[start : start + batch_size]


def build_split(
    spec: DatasetSpec,
    samples: list[Sample],
    split: str,
    config: BackboneConfig,
    backbone: DenseBackbone,
    directory: Path,
    batch_size: int = 16,
) -> None:
    """Compute and cache the features of ``samples`` into ``directory``, atomically.

    ``backbone`` is ``build_backbone(config)``, built once by the caller for all splits.
    """
    if not samples:
        raise FussbenchError(f"split '{split}' of {spec.name} has no samples to cache")
    if batch_size < 1:
        raise FussbenchError(f"features.batch_size must be >= 1, got {batch_size}")
    height, width = spec.image_size
    grid = (height // backbone.stride, width // backbone.stride)
    count = len(samples)
    with atomic_path(directory) as tmp:
        tmp.mkdir(parents=True)
        features = np.lib.format.open_memmap(
            tmp / "features.npy",
            mode="w+",
            dtype=np.float16,
            shape=(count, backbone.channels, *grid),
        )
        labels = np.lib.format.open_memmap(
            tmp / "labels.npy", mode="w+", dtype=np.uint8, shape=(count, height, width)
        )
        pooled = np.zeros((count, backbone.channels), dtype=np.float32)
        row = 0
        batches = _batches(samples, batch_size)
        total = -(-count // batch_size)
        for batch in tqdm(batches, total=total, desc=f"features {spec.name}/{split}", unit="batch"):
            images, batch_labels = _load_batch(spec, batch)
            with torch.inference_mode():
                maps = backbone(images)
            end = row + maps.shape[0]
            features[row:end] = maps.numpy().astype(np.float16)
            labels[row:end] = batch_labels
            pooled[row:end] = maps.mean(dim=(2, 3)).numpy()
            row = end
        features.flush()
        labels.flush()
        del features, labels
        np.save(tmp / "pooled.npy", pooled)
        index = {
            "names": [sample.name for sample in samples],
            "fingerprint": cache_fingerprint(spec, split, config),
            "feature_shape": [count, backbone.channels, *grid],
            "backbone_nbytes": sum(p.numel() * 4 for p in backbone.parameters()),
        }
        (tmp / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
