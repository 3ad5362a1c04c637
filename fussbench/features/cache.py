"""The dense-feature cache: every image's backbone features, computed once, on disk.

One folder per split holds, for N samples of V views each (V = 5 for STEGO's training
crops, else 1; see :mod:`fussbench.features.views`), one row per view:
- ``features.npy``: (N * V, C, h, w) float16, opened as a memory map;
- ``labels.npy``: (N * V, H, W) uint8 class indices at the view's size (255 = ignore);
- ``pooled.npy``: (N * V, C) float32 global-average-pooled features (for neighbour lists);
- ``index.json``: sample names in order, V, and the fingerprint of what built the cache;
- ``flipped/``, only where asked for: the features of the mirrored images, for flip
  averaging at evaluation (:mod:`fussbench.features.flipped`).

Training and evaluation read only this folder: the backbone never runs during training.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from fussbench.atomic import atomic_path
from fussbench.data.samples import DatasetSpec, Sample
from fussbench.errors import FussbenchError
from fussbench.features.config import BackboneConfig
from fussbench.features.device import Placement
from fussbench.features.views import Preprocessing

if TYPE_CHECKING:
    from fussbench.features.backbones import DenseBackbone

CACHE_FORMAT = 3
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
        "preprocessing": dataclasses.asdict(config.preprocessing),
    }


@dataclass(frozen=True)
class FeatureSplit:
    """A cached split, opened read-only.

    Every sample has ``views`` consecutive rows (5 for STEGO's training crops, else 1).

    Attributes:
        names: sample names (N,), in row order.
        features: (N * views, C, h, w) float16 memory map.
        labels: (N * views, H, W) uint8 memory map.
        pooled: (N * views, C) float32.
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
    views: int = 1

    def rows(self, names: list[str]) -> np.ndarray:
        """Row indices (len(names) * views,) of the given samples, each sample's views
        together.

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
        first = np.array([position[name] * self.views for name in names], dtype=np.int64)
        return (first[:, None] + np.arange(self.views)).reshape(-1)


def fingerprint_differences(
    built_with: dict[str, object], expected: dict[str, object]
) -> list[str]:
    """``key=<built> (params say <expected>)`` for every key of ``expected`` whose value
    differs in ``built_with``."""
    return [
        f"{key}={built_with.get(key)!r} (params say {value!r})"
        for key, value in expected.items()
        if built_with.get(key) != value
    ]


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
    differences = fingerprint_differences(built_with, expected)
    if differences:
        raise FussbenchError(
            f"{index_path}: feature cache does not match params: {', '.join(differences)}; "
            "rerun `fussbench features` with the current params"
        )
    features = np.load(directory / "features.npy", mmap_mode="r")
    labels = np.load(directory / "labels.npy", mmap_mode="r")
    pooled = np.load(directory / "pooled.npy")
    names = list(index["names"])
    views = int(index["views_per_image"])
    if not (features.shape[0] == labels.shape[0] == pooled.shape[0] == len(names) * views):
        raise FussbenchError(
            f"{directory}: feature cache arrays disagree in length; rerun `fussbench features`"
        )
    nbytes = int(index["backbone_nbytes"])
    return FeatureSplit(directory, names, features, labels, pooled, built_with, nbytes, views)


class _DecodedSamples(torch.utils.data.Dataset):
    """Samples decoded on demand into their views: images (V, 3, H, W) uint8 tensor and
    labels (V, H, W) uint8."""

    def __init__(
        self, spec: DatasetSpec, samples: list[Sample], preprocessing: Preprocessing, training: bool
    ) -> None:
        self._spec = spec
        self._samples = samples
        self._preprocessing = preprocessing
        self._training = training

    def __len__(self) -> int:
        return len(self._samples)

    def _views(self, image: Image.Image, resample: Image.Resampling) -> np.ndarray:
        views = self._preprocessing.views(image, self._training, resample, self._spec.fit)
        return np.stack([np.asarray(view) for view in views])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, np.ndarray]:
        sample = self._samples[index]
        images = self._views(self._spec.open_image(sample.image), Image.Resampling.BICUBIC)
        labels = self._views(self._spec.sample_label(sample), Image.Resampling.NEAREST)
        return torch.from_numpy(images).permute(0, 3, 1, 2), labels


def decoding_loader(
    spec: DatasetSpec,
    samples: list[Sample],
    preprocessing: Preprocessing,
    training: bool,
    batch_size: int,
    placement: Placement,
    loader_workers: int = 0,
) -> torch.utils.data.DataLoader:
    """``samples`` decoded into their views, in order, as batches of whole samples of
    about ``batch_size`` views: images (B, V, 3, H, W) uint8 and labels (B, V, H, W)
    uint8. ``loader_workers`` processes decode ahead (0: this one), into page-locked
    memory when ``placement`` is a GPU."""
    views = preprocessing.views_per_image(training)
    return torch.utils.data.DataLoader(
        _DecodedSamples(spec, samples, preprocessing, training),
        batch_size=max(1, batch_size // views),
        num_workers=loader_workers,
        pin_memory=placement.pin_memory,
        prefetch_factor=4 if loader_workers else None,
    )


def forward_batch(
    backbone: DenseBackbone, images: torch.Tensor, placement: Placement
) -> torch.Tensor:
    """Features (B, C, h, w) float32 on the CPU of a uint8 batch (B, 3, H, W)."""
    on_device = images.to(placement.device, non_blocking=placement.pin_memory)
    dtype = placement.autocast_dtype
    with (
        torch.inference_mode(),
        torch.autocast(placement.device.type, dtype=dtype, enabled=dtype is not None),
    ):
        # one memory layout whichever way the batch was collated (in-process or by a
        # loader worker), so the same images always give bit-identical features
        pixels = on_device.float().div_(255.0).contiguous(memory_format=torch.channels_last)
        maps = backbone(pixels)
    return maps.float().cpu()


def _check_resolution(size: tuple[int, int], spec: DatasetSpec, backbone: DenseBackbone) -> None:
    height, width = size
    if height % backbone.stride or width % backbone.stride:
        raise FussbenchError(
            f"{spec.name} views are cached at {height}x{width}, which is not a multiple of "
            f"the patch size / stride {backbone.stride} of backbone '{backbone.name}'; choose "
            "a size divisible by it (the dataset's image_size, or features.train_size / "
            "features.eval_size under features.preprocess: stego), or another backbone"
        )


def build_split(
    spec: DatasetSpec,
    samples: list[Sample],
    split: str,
    config: BackboneConfig,
    backbone: DenseBackbone,
    directory: Path,
    batch_size: int = 16,
    placement: Placement | None = None,
    loader_workers: int = 0,
) -> None:
    """Compute and cache the features of ``samples`` into ``directory``, atomically.

    ``backbone`` is ``build_backbone(config)``, built once by the caller for all splits and
    already on ``placement.device`` (default: CPU, float32). ``loader_workers`` processes
    decode images ahead of the backbone (0: decode in this process), into page-locked
    memory when the backbone runs on a GPU.
    """
    if not samples:
        raise FussbenchError(f"split '{split}' of {spec.name} has no samples to cache")
    if batch_size < 1:
        raise FussbenchError(f"features.batch_size must be >= 1, got {batch_size}")
    preprocessing = config.preprocessing
    training = split == spec.train_split
    views = preprocessing.views_per_image(training)
    height, width = preprocessing.view_size(spec.image_size, training)
    _check_resolution((height, width), spec, backbone)
    placement = placement or Placement(torch.device("cpu"), "fp32")
    grid = (height // backbone.stride, width // backbone.stride)
    count = len(samples) * views
    loader = decoding_loader(
        spec, samples, preprocessing, training, batch_size, placement, loader_workers
    )
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
        progress = tqdm(loader, desc=f"features {spec.name}/{split}", unit="batch")
        for images, batch_labels in progress:
            # (B, V, ...) -> (B * V, ...): each image's views stay consecutive
            maps = forward_batch(backbone, images.flatten(0, 1), placement)
            end = row + maps.shape[0]
            features[row:end] = maps.numpy().astype(np.float16)
            labels[row:end] = batch_labels.flatten(0, 1).numpy()
            pooled[row:end] = maps.mean(dim=(2, 3)).numpy()
            row = end
        features.flush()
        labels.flush()
        del features, labels
        np.save(tmp / "pooled.npy", pooled)
        index = {
            "names": [sample.name for sample in samples],
            "fingerprint": cache_fingerprint(spec, split, config),
            "views_per_image": views,
            "feature_shape": [count, backbone.channels, *grid],
            "backbone_nbytes": sum(p.numel() * 4 for p in backbone.parameters()),
            "computed_on": {"device": placement.device.type, "precision": placement.precision},
        }
        (tmp / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
