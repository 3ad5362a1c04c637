"""Any image folder (e.g. private industrial data): ``images/`` plus, optionally, ``masks/``.

``fussbench download --dataset folder`` copies the pairs found under ``folder.root`` into
``<root>/<split>/{images,masks}/`` (see :mod:`fussbench.data.folder_import`); this module
reads that layout. How a mask's raw values become classes is ``folder.mask_mode`` (see
:mod:`fussbench.data.masks`). A split without ``masks/`` is unlabelled: its samples have no
label file and decode to all-ignore labels, so the pipeline trains but cannot score.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps

from fussbench.data.masks import MaskRule, mask_rule, read_raw_mask
from fussbench.data.samples import DatasetSpec, Sample
from fussbench.data.validate import pair_files
from fussbench.errors import FussbenchError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")
"""Masks must be lossless: JPEG would blur the class values."""

FLAT_GROUP = "all"
"""The group of a sample directly in ``images/``; nested samples take their first folder."""


def index_files(folder: Path, suffixes: tuple[str, ...], what: str) -> dict[str, Path]:
    """Map key -> path for the files under ``folder`` (recursively) with one of ``suffixes``.

    The key is the path relative to ``folder`` without its suffix, e.g. ``"lineA/0001"``.
    Hidden files and folders are skipped.

    Raises:
        FussbenchError: when ``folder`` is missing (``what`` names it, e.g. ``"images"``), or
            two files share a key (``0001.jpg`` and ``0001.png``).
    """
    if not folder.is_dir():
        raise FussbenchError(
            f"{folder}: no {what}/ folder here; the folder dataset needs <folder.root>/images/ "
            "and <folder.root>/masks/ with one mask per image (same name, any suffix)"
        )
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        relative = PurePosixPath(path.relative_to(folder).as_posix())
        if (
            path.suffix.lower() not in suffixes
            or any(part.startswith(".") for part in relative.parts)
            or not path.is_file()
        ):
            continue
        key = relative.with_suffix("").as_posix()
        if key in found:
            raise FussbenchError(
                f"{path}: {found[key].name} has the same name in {folder}; keep one of the two"
            )
        found[key] = path
    return found


def group_of(key: str) -> str:
    """The group of a sample key: its first folder, or :data:`FLAT_GROUP`."""
    parts = PurePosixPath(key).parts
    return parts[0] if len(parts) > 1 else FLAT_GROUP


class FolderDataset(DatasetSpec):
    """Image/mask pairs laid out as ``<root>/{train,test}/images/<key>.<ext>`` with masks at
    ``<root>/{train,test}/masks/<key>.<ext>`` (no ``masks/``: unlabelled). A sample's name is
    its key (relative path without suffix); its group is its first folder (``domain``
    partition: one client per folder), or ``"all"``. Images may be grey, RGB or 16-bit and
    are read upright (EXIF orientation applied).

    Args:
        class_names: param ``folder.class_names``, one name per class.
        label_values: param ``folder.label_values``: the raw mask value of each class;
            ``None`` means ``0..C-1`` (see :func:`~fussbench.data.masks.mask_rule`).
        ignore_index: param ``folder.ignore_index``: the raw mask value of unlabelled pixels,
            or ``None`` when every pixel is labelled.
        image_size: param ``folder.image_size``, (height, width).
        mask_mode: param ``folder.mask_mode`` (:data:`~fussbench.data.masks.MASK_MODES`).
        mask_threshold: param ``folder.mask_threshold`` (``threshold`` mode).
        palette: param ``folder.palette``: one (r, g, b) per class (``palette`` mode).

    Raises:
        FussbenchError: naming the ``folder.*`` param when the class list is empty, has
            duplicates, or does not fit the mask settings.
    """

    name = "folder"
    split_counts = {"train": None, "test": None}
    eval_split = "test"
    fix_hint = "fix the file under folder.root, or the folder.mask_* params that describe it"

    def __init__(
        self,
        class_names: Sequence[str] = (),
        label_values: Sequence[int] | None = None,
        ignore_index: int | None = None,
        image_size: tuple[int, int] = (224, 224),
        mask_mode: str = "exact",
        mask_threshold: int = 128,
        palette: Sequence[Sequence[int]] | None = None,
    ) -> None:
        self.class_names = tuple(class_names)
        if not self.class_names:
            raise FussbenchError(
                "folder.class_names is empty; list the class of each mask value in params.yaml"
            )
        if len(set(self.class_names)) != len(self.class_names):
            raise FussbenchError(f"folder.class_names {list(class_names)} has duplicate names")
        self.rule: MaskRule = mask_rule(
            len(self.class_names), mask_mode, label_values, ignore_index, mask_threshold, palette
        )
        height, width = image_size
        self.image_size = (height, width)

    def samples(self, root: Path, split: str) -> list[Sample]:
        """Return the samples of ``split`` under ``root``, sorted by name (without labels
        when the split has no ``masks/`` folder)."""
        if split not in self.split_counts:
            raise FussbenchError(
                f"unknown folder split '{split}'; valid splits: {', '.join(self.split_counts)}"
            )
        base = Path(root) / split
        images = index_files(base / "images", IMAGE_SUFFIXES, "images")
        if not (base / "masks").is_dir():
            return [
                Sample(name=key, image=image, label=None, group=group_of(key))
                for key, image in sorted(images.items())
            ]
        masks = index_files(base / "masks", MASK_SUFFIXES, "masks")
        pairs = pair_files(images, masks, f"folder split '{split}'", self.fix_hint)
        return [
            Sample(name=key, image=image, label=mask, group=group_of(key))
            for key, image, mask in pairs
        ]

    def open_image(self, path: Path) -> Image.Image:
        """Read ``path`` upright as RGB; 16-bit grey is scaled to 8 bits over its full
        0..65535 range."""
        return read_image_upright(path, self.fix_hint)

    def read_raw_label(self, path: Path) -> np.ndarray:
        """The mask's raw values: (H, W) grey, or (H, W, 3) RGB in ``palette`` mode."""
        return read_raw_mask(path, self.rule.colour)

    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Map a raw mask (see :meth:`read_raw_label`) to class indices by ``folder.mask_mode``.

        Returns:
            (H, W) uint8 class indices, or ``IGNORE_INDEX`` for unlabelled pixels.
        """
        return self.rule.decode(raw, path, self.fix_hint)


def read_image_upright(path: Path, hint: str) -> Image.Image:
    """An image file as RGB with its EXIF orientation applied; 16-bit and 32-bit grey
    (modes ``I;16``, ``I``) are scaled from 0..65535 to 0..255, float (``F``) from 0..1.

    Raises:
        FussbenchError: naming ``path`` and ``hint`` when it is not a readable image.
    """
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode.startswith("I"):
                pixels = np.asarray(image, dtype=np.float64) / 257.0
                image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
            elif image.mode == "F":
                pixels = np.asarray(image, dtype=np.float64) * 255.0
                image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:
        raise FussbenchError(f"{path}: not a readable image ({error}); {hint}") from error
