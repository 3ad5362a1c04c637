"""How many bytes a feature cache takes, computed before anything is written.

A cached split of N images with V views each (see :mod:`fussbench.features.cache`) holds
three arrays, saved as ``.npy`` files (a header, then the raw data):

- ``features.npy``: (N * V, C, h, w) float16, h = H / stride, w = W / stride;
- ``labels.npy``: (N * V, H, W) uint8;
- ``pooled.npy``: (N * V, C) float32;

with (H, W) the view size of :class:`~fussbench.features.views.Preprocessing` and (C,
stride) the backbone's geometry. :func:`split_size` gives the exact size of those three
files; ``index.json`` (the image names, a few bytes each) is not counted.

:func:`check_free_space` refuses, before ``fussbench features`` writes anything, when the
disk holding the cache cannot take it.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fussbench.data.samples import DatasetSpec
from fussbench.errors import FussbenchError
from fussbench.features.views import Preprocessing

FEATURE_DTYPE = np.dtype(np.float16)
LABEL_DTYPE = np.dtype(np.uint8)
POOLED_DTYPE = np.dtype(np.float32)
ALTERNATIVE = (
    "set features.store: online (the backbone runs inside local training, nothing is "
    "cached), or choose a smaller backbone or features.preprocess: resize"
)
"""What to do instead when a cache does not fit."""


def npy_nbytes(shape: Sequence[int], dtype: np.dtype) -> int:
    """Bytes of a C-ordered ``.npy`` file of ``shape`` and ``dtype``: its header plus data."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": tuple(int(side) for side in shape),
    }
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.tell() + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


@dataclass(frozen=True)
class SplitSize:
    """The size of one cached split.

    Attributes:
        split: the split's name.
        images: N.
        views: V, rows per image.
        channels: C.
        view_size: (H, W) of each view.
        grid: (h, w) of each view's feature map.
    """

    split: str
    images: int
    views: int
    channels: int
    view_size: tuple[int, int]
    grid: tuple[int, int]

    @property
    def rows(self) -> int:
        """N * V."""
        return self.images * self.views

    def files(self) -> dict[str, int]:
        """Bytes of each ``.npy`` file of the split."""
        return {
            "features.npy": npy_nbytes((self.rows, self.channels, *self.grid), FEATURE_DTYPE),
            "labels.npy": npy_nbytes((self.rows, *self.view_size), LABEL_DTYPE),
            "pooled.npy": npy_nbytes((self.rows, self.channels), POOLED_DTYPE),
        }

    @property
    def total_bytes(self) -> int:
        """The three files together."""
        return sum(self.files().values())

    @property
    def bytes_per_image(self) -> int:
        """The data of one image's V views (headers left out)."""
        height, width = self.view_size
        per_view = (
            self.channels * self.grid[0] * self.grid[1] * FEATURE_DTYPE.itemsize
            + height * width * LABEL_DTYPE.itemsize
            + self.channels * POOLED_DTYPE.itemsize
        )
        return self.views * per_view


def split_size(
    split: str,
    images: int,
    training: bool,
    image_size: tuple[int, int],
    preprocessing: Preprocessing,
    channels: int,
    stride: int,
) -> SplitSize:
    """The size of a split's cache, as :func:`fussbench.features.cache.build_split` writes it.

    Args:
        split: the split's name.
        images: N, the split's images.
        training: whether it is the training split (STEGO's five crops apply to it only).
        image_size: the dataset's (height, width) (``resize`` preprocessing).
        preprocessing: ``features.preprocess`` with its sizes.
        channels: C of the backbone.
        stride: the backbone's stride (patch size).

    Raises:
        FussbenchError: when the view size is not a multiple of the stride (the cache cannot
            be built).
    """
    height, width = preprocessing.view_size(tuple(image_size), training)
    if height % stride or width % stride:
        raise FussbenchError(
            f"views of {height}x{width} are not a multiple of the backbone's patch size / "
            f"stride {stride}; choose a size divisible by it (the dataset's image_size, or "
            "features.train_size / features.eval_size under features.preprocess: stego), or "
            "another backbone"
        )
    return SplitSize(
        split=split,
        images=images,
        views=preprocessing.views_per_image(training),
        channels=channels,
        view_size=(height, width),
        grid=(height // stride, width // stride),
    )


def dataset_sizes(
    spec: DatasetSpec,
    counts: Mapping[str, int],
    preprocessing: Preprocessing,
    channels: int,
    stride: int,
) -> list[SplitSize]:
    """The size of each split's cache, for ``counts`` images per split (split -> N)."""
    return [
        split_size(
            split,
            images,
            split == spec.train_split,
            spec.image_size,
            preprocessing,
            channels,
            stride,
        )
        for split, images in counts.items()
    ]


def human(nbytes: float) -> str:
    """``nbytes`` in decimal units: ``512 B``, ``6.0 MB``, ``74.8 GB``."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(nbytes) < 1000:
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"


def describe_sizes(sizes: Sequence[SplitSize]) -> list[str]:
    """One line per split (per image and in all), then the total."""
    lines = [
        f"  {size.split}: {size.images} images x {size.views} view(s), "
        f"{human(size.bytes_per_image)} per image, {human(size.total_bytes)} in all"
        for size in sizes
    ]
    lines.append(f"  total: {human(sum(size.total_bytes for size in sizes))}")
    return lines


def free_bytes(directory: Path) -> int:
    """Free bytes on the disk that holds ``directory`` (or its nearest existing parent)."""
    existing = Path(directory).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


def check_free_space(sizes: Sequence[SplitSize], directory: Path) -> None:
    """Raise when the cache of ``sizes`` does not fit on the disk of ``directory``.

    Raises:
        FussbenchError: one line naming the size, the free space and the alternative.
    """
    needed = sum(size.total_bytes for size in sizes)
    free = free_bytes(directory)
    if needed > free:
        raise FussbenchError(
            f"the feature cache needs {human(needed)} but {directory} has {human(free)} free; "
            f"free some space, or {ALTERNATIVE}"
        )
