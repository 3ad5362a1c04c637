"""``features.store: online``: the frozen backbone runs while training and evaluating, on
the images themselves, instead of reading a feature cache (for datasets whose cache does not
fit on disk, as the original FUSS code works).

:func:`open_online` gives a :class:`~fussbench.features.cache.FeatureSplit` whose
``features`` and ``labels`` decode and compute the views they are asked for: the same rows,
shapes and code paths (neighbour lists, local training, evaluation) as a cached split, but
float32 features where the cache holds float16. Only the pooled features (N · V, C) of the
training split are computed up front (one pass), for the neighbour lists.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from fussbench.data.samples import DatasetSpec, Sample
from fussbench.errors import FussbenchError
from fussbench.features.cache import FeatureSplit, cache_fingerprint, forward_batch
from fussbench.features.config import BackboneConfig
from fussbench.features.device import Placement, resolve_placement
from fussbench.features.rows import gather
from fussbench.features.views import Preprocessing

if TYPE_CHECKING:
    from fussbench.features.backbones import DenseBackbone


class _Views:
    """The views of a split's samples, decoded when asked: row r is view r % V of sample
    r // V (V views per sample), as the cache orders them."""

    def __init__(
        self, spec: DatasetSpec, samples: list[Sample], preprocessing: Preprocessing, training: bool
    ) -> None:
        self.spec = spec
        self.samples = samples
        self.preprocessing = preprocessing
        self.training = training
        self.views = preprocessing.views_per_image(training)
        self.size = preprocessing.view_size(spec.image_size, training)
        self.count = len(samples) * self.views

    def _decode(self, rows: np.ndarray, labels: bool) -> np.ndarray:
        """(B, H, W, 3) uint8 images or (B, H, W) uint8 labels of ``rows``; each sample's
        file is decoded once per call."""
        decoded: dict[int, list[np.ndarray]] = {}
        for sample in {int(row) // self.views for row in rows}:
            entry = self.samples[sample]
            if labels:
                picture, resample = self.spec.sample_label(entry), Image.Resampling.NEAREST
            else:
                picture = self.spec.open_image(entry.image)
                resample = Image.Resampling.BICUBIC
            views = self.preprocessing.views(picture, self.training, resample, self.spec.fit)
            decoded[sample] = [np.asarray(view) for view in views]
        return np.stack([decoded[int(row) // self.views][int(row) % self.views] for row in rows])

    def images(self, rows: np.ndarray) -> torch.Tensor:
        """(B, 3, H, W) uint8 images of ``rows``."""
        return torch.from_numpy(self._decode(rows, labels=False)).permute(0, 3, 1, 2)

    def labels(self, rows: np.ndarray) -> np.ndarray:
        """(B, H, W) uint8 labels of ``rows`` (255 = ignore)."""
        return self._decode(rows, labels=True)


def _rows(count: int, key: object) -> np.ndarray:
    """Row indices (B,) int64 that ``key`` (an int, a slice or an index array) selects."""
    return np.arange(count)[key].reshape(-1).astype(np.int64)


class OnlineFeatures:
    """Features (N · V, C, h, w) float32 of a split's views, computed when indexed.

    ``features[key]`` runs the backbone on the selected views, ``batch_size`` at a time:
    ``key`` is a slice or an index array (B, C, h, w), an int (C, h, w), or a tuple whose
    first entry is an index array of rows and the rest index each map (the pixel gather of
    the k-means reference, ``features[image, :, y, x]``).
    """

    def __init__(
        self, views: _Views, backbone: DenseBackbone, placement: Placement, batch_size: int
    ) -> None:
        self._views = views
        self._backbone = backbone
        self._placement = placement
        self.batch_size = batch_size
        height, width = views.size
        stride = backbone.stride
        self.shape = (views.count, backbone.channels, height // stride, width // stride)
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def _forward(self, rows: np.ndarray) -> np.ndarray:
        """(B, C, h, w) float32 features of ``rows``."""
        maps = [
            forward_batch(
                self._backbone,
                self._views.images(rows[start : start + self.batch_size]),
                self._placement,
            ).numpy()
            for start in range(0, len(rows), self.batch_size)
        ]
        return np.concatenate(maps) if maps else np.empty((0, *self.shape[1:]), np.float32)

    def __getitem__(self, key: object) -> np.ndarray:
        if isinstance(key, tuple):
            rows = np.asarray(key[0], dtype=np.int64)
            return gather(self._forward, rows, key[1:], self.batch_size)
        rows = _rows(len(self), key)
        maps = self._forward(rows)
        return maps[0] if np.ndim(key) == 0 and not isinstance(key, slice) else maps


class OnlineLabels:
    """Labels (N · V, H, W) uint8 of a split's views, decoded when indexed or iterated."""

    def __init__(self, views: _Views) -> None:
        self._views = views
        self.shape = (views.count, *views.size)
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: object) -> np.ndarray:
        labels = self._views.labels(_rows(len(self), key))
        return labels[0] if np.ndim(key) == 0 and not isinstance(key, slice) else labels

    def __iter__(self) -> Iterator[np.ndarray]:
        for row in range(len(self)):
            yield self._views.labels(np.array([row]))[0]


@functools.cache
def _backbone(config: BackboneConfig, device: str, precision: str) -> DenseBackbone:
    """The backbone, built once per process and config, on its device."""
    from fussbench.features.backbones import build_backbone  # imports timm: only here

    placement = resolve_placement(device, precision)
    try:
        backbone = build_backbone(config)
    except FussbenchError:
        raise
    except Exception as error:  # whatever stops the weights loading here: one line
        raise FussbenchError(
            f"features.store: online needs backbone '{config.name}' in the training process, "
            f"and it cannot be built here ({type(error).__name__}: {error}); build a cache "
            "where it runs (`fussbench features`) and use features.store: cache"
        ) from None
    return backbone.to(placement.device)


def pooled_features(features: OnlineFeatures) -> np.ndarray:
    """(N · V, C) float32 global-average-pooled features, as the cache computes them (from
    the float32 maps), one batch at a time."""
    pooled = np.empty(features.shape[:2], dtype=np.float32)
    step = features.batch_size
    for start in range(0, len(features), step):
        maps = torch.from_numpy(features[start : start + step])
        pooled[start : start + len(maps)] = maps.mean(dim=(2, 3)).numpy()
    return pooled


def open_online(
    spec: DatasetSpec,
    source: Path,
    samples: list[Sample],
    split: str,
    config: BackboneConfig,
    device: str,
    precision: str,
    batch_size: int,
    with_pooled: bool,
) -> FeatureSplit:
    """A split of ``samples`` (decoded from ``source``, the raw dataset folder) whose
    features are computed by the backbone when read.

    ``pooled`` is computed (one pass) only ``with_pooled``; otherwise it is an empty
    (0, C) array: evaluation never reads it.

    Raises:
        FussbenchError: the backbone cannot be built or placed here (one line, naming
            ``features.store`` and the alternative), or the views are not a multiple of
            its stride.
    """
    if not samples:
        raise FussbenchError(f"split '{split}' of {spec.name} has no samples")
    backbone = _backbone(config, device, precision)
    placement = resolve_placement(device, precision)
    training = split == spec.train_split
    views = _Views(spec, samples, config.preprocessing, training)
    height, width = views.size
    if height % backbone.stride or width % backbone.stride:
        raise FussbenchError(
            f"{spec.name} views are {height}x{width}, not a multiple of the stride "
            f"{backbone.stride} of backbone '{backbone.name}'; choose another size or backbone"
        )
    features = OnlineFeatures(views, backbone, placement, batch_size)
    pooled = (
        pooled_features(features)
        if with_pooled
        else np.empty((0, backbone.channels), dtype=np.float32)
    )
    return FeatureSplit(
        directory=source,
        names=[sample.name for sample in samples],
        features=features,  # type: ignore[arg-type]
        labels=OnlineLabels(views),  # type: ignore[arg-type]
        pooled=pooled,
        fingerprint={**cache_fingerprint(spec, split, config), "store": "online"},
        backbone_nbytes=sum(p.numel() * 4 for p in backbone.parameters()),
        views=views.views,
    )
