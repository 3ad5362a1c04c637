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

REDOWNLOAD = "re-run `fussbench download` (or fix the mirror folder) to restore the dataset"
"""How to fix a bad file of a downloadable dataset."""


@dataclass(frozen=True)
class Sample:
    """One image with its label.

    Attributes:
        name: unique within its split, e.g. ``"0001TP_006690"``.
        image: path of the RGB or grayscale image.
        label: path of the label image; ``None`` for an unlabelled image (its labels read
            as all :data:`IGNORE_INDEX`).
        group: metadata used by the ``domain`` partition (CamVid: video sequence).
    """

    name: str
    image: Path
    label: Path | None
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
    split_counts: dict[str, int | None]
    """Expected number of samples per split, checked by validation (``None``: any number)."""
    train_split: str = "train"
    eval_split: str = "test"
    raw_size: tuple[int, int] | None = None
    """(width, height) every raw image must have, checked by validation (``None``: any)."""
    center_crop: bool = False
    """Fit :attr:`image_size` by scaling the short side and cropping the centre (keeps the
    aspect ratio) instead of stretching the whole image."""
    fix_hint: str = REDOWNLOAD
    """How to fix a bad file, the end of every validation error (user data: fix the file)."""
    colours: tuple[tuple[int, int, int], ...] | None = None
    """The report's (r, g, b) of each class, in class-index order (``None``: evenly spaced
    colours, see :func:`fussbench.reporting.palettes.palette`)."""

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

    def open_image(self, path: Path) -> Image.Image:
        """Read ``path`` as an RGB image at its own resolution."""
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except (OSError, SyntaxError) as error:
            raise FussbenchError(
                f"{path}: not a readable image ({error}); {self.fix_hint}"
            ) from error

    def read_raw_label(self, path: Path) -> np.ndarray:
        """A label file's raw values, (H, W) (the first channel of a multi-channel file).

        Raises:
            FussbenchError: naming ``path`` when it is not a readable image.
        """
        try:
            with Image.open(path) as image:
                raw = np.asarray(image)
        except (OSError, SyntaxError) as error:
            raise FussbenchError(
                f"{path}: not a readable label image ({error}); {self.fix_hint}"
            ) from error
        return raw[..., 0] if raw.ndim == 3 else raw

    def open_label(self, path: Path) -> Image.Image:
        """Read ``path`` as class indices (or 255) at its own resolution, a mode "L" image."""
        return Image.fromarray(self.decode_label(self.read_raw_label(path), path).astype(np.uint8))

    def sample_label(self, sample: Sample) -> Image.Image:
        """The sample's labels as :meth:`open_label` gives them; all :data:`IGNORE_INDEX`,
        at the image's size, for an unlabelled sample."""
        if sample.label is not None:
            return self.open_label(sample.label)
        return Image.new("L", self.open_image(sample.image).size, IGNORE_INDEX)

    def read_sample_label(self, sample: Sample) -> np.ndarray:
        """The sample's labels (H, W) uint8 at :attr:`image_size` (nearest)."""
        return np.asarray(self.fit(self.sample_label(sample), Image.Resampling.NEAREST))

    def read_image(self, path: Path) -> Image.Image:
        """Read ``path`` as an RGB image at :attr:`image_size` (bicubic)."""
        return self.fit(self.open_image(path), Image.Resampling.BICUBIC)

    def read_label(self, path: Path) -> np.ndarray:
        """Read ``path`` as class indices, shape (H, W) uint8 at :attr:`image_size` (nearest)."""
        return np.asarray(self.fit(self.open_label(path), Image.Resampling.NEAREST))

    def fit(self, image: Image.Image, resample: Image.Resampling) -> Image.Image:
        """Return ``image`` at :attr:`image_size`: stretched, or with :attr:`center_crop`
        scaled so that it covers the target and cropped at the centre."""
        height, width = self.image_size
        if image.size == (width, height):
            return image
        if not self.center_crop:
            return image.resize((width, height), resample)
        scale = max(width / image.width, height / image.height)
        scaled = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
        left = (scaled[0] - width) // 2
        top = (scaled[1] - height) // 2
        return image.resize(scaled, resample).crop((left, top, left + width, top + height))


def decode_with_table(
    raw: np.ndarray, table: np.ndarray, path: Path, valid: str, hint: str = REDOWNLOAD
) -> np.ndarray:
    """Map raw label values through a lookup table.

    Args:
        raw: (H, W) raw label values.
        table: (256,) int16: the class index (or :data:`IGNORE_INDEX`) of each raw value,
            -1 for a value that must not occur.
        path: the label file, for the error message.
        valid: the valid raw values in words, e.g. ``"0..33 (Cityscapes label ids)"``.
        hint: how to fix the file, the end of the error message.

    Returns:
        (H, W) uint8 class indices or :data:`IGNORE_INDEX`.

    Raises:
        FussbenchError: naming ``path`` and the first invalid values.
    """
    raw = np.asarray(raw)
    if not (np.issubdtype(raw.dtype, np.integer) or raw.dtype == bool):
        raise FussbenchError(
            f"{path}: label image holds {raw.dtype} values, not integers; save labels as "
            "8-bit grayscale or palette PNG"
        )
    if raw.size and (raw.min() < 0 or raw.max() >= len(table)):
        bad = np.unique(raw[(raw < 0) | (raw >= len(table))])
    else:
        decoded = table[raw]
        bad = np.unique(raw[decoded < 0])
        if not bad.size:
            return decoded.astype(np.uint8)
    shown = ", ".join(str(value) for value in bad[:10])
    raise FussbenchError(f"{path}: label values {shown} are outside {valid}; {hint}")
