"""What every dataset provides: a list of image/label samples and a way to read them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fussbench.errors import FussbenchError

IGNORE_INDEX = 255
"""Label value of pixels that evaluation and partitioning skip."""


@dataclass(frozen=True)
class Sample:
    """One image with its label.

    Attributes:
        name: unique within its split, e.g. ``"0001TP_006690"``.
        image: path of the RGB or grayscale image.
        label: path of the label image.
        group: metadata used by the ``domain`` partition (CamVid: video sequence).
    """

    name: str
    image: Path
    label: Path
    group: str


class DatasetSpec(ABC):
    """A dataset laid out on disk under one root folder.

    Subclasses set the class attributes and implement :meth:`samples` and
    :meth:`decode_label`.
    """

    name: str
    class_names: tuple[str, ...]
    image_size: tuple[int, int]
    """(height, width) every image and label is resized to before features are computed."""
    split_counts: dict[str, int]
    """Expected number of samples per split, checked by validation."""
    train_split: str = "train"
    eval_split: str = "test"

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @abstractmethod
    def samples(self, root: Path, split: str) -> list[Sample]:
        """Return the samples of ``split`` under ``root``, sorted by name."""

    @abstractmethod
    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Map a raw label array (H, W) to class indices in ``[0, n_classes)`` or 255.

        Raises:
            FussbenchError: naming ``path`` when a value is outside the class list.
        """

    def read_image(self, path: Path) -> Image.Image:
        """Read ``path`` as an RGB image at :attr:`image_size` (bicubic)."""
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
        except (OSError, SyntaxError) as error:
            raise FussbenchError(
                f"{path}: not a readable image ({error}); re-download the dataset"
            ) from error
        height, width = self.image_size
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BICUBIC)
        return image

    def read_label(self, path: Path) -> np.ndarray:
        """Read ``path`` as class indices, shape (H, W) uint8 at :attr:`image_size` (nearest)."""
        try:
            with Image.open(path) as image:
                height, width = self.image_size
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.NEAREST)
                raw = np.asarray(image)
        except (OSError, SyntaxError) as error:
            raise FussbenchError(
                f"{path}: not a readable label image ({error}); re-download the dataset"
            ) from error
        if raw.ndim == 3:
            raw = raw[..., 0]
        return self.decode_label(raw, path).astype(np.uint8)
