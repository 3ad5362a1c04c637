"""Any labelled image folder (e.g. private industrial data): ``images/`` plus ``masks/``.

``fussbench download --dataset folder`` copies the pairs found under ``folder.root`` into
``<root>/<split>/{images,masks}/`` (see :mod:`fussbench.data.folder_import`); this module
reads that layout. A mask holds one raw value per pixel (a grayscale or palette PNG): the
value ``folder.label_values[i]`` (default ``i``) is class ``folder.class_names[i]`` and
``folder.ignore_index`` marks unlabelled pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from fussbench.data.samples import IGNORE_INDEX, DatasetSpec, Sample, decode_with_table
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
    ``<root>/{train,test}/masks/<key>.<ext>``. A sample's name is its key (relative path
    without suffix); its group is its first folder (``domain`` partition: one client per
    folder), or ``"all"``.

    Args:
        class_names: param ``folder.class_names``, one name per class.
        label_values: param ``folder.label_values``: the raw mask value of each class;
            ``None`` means ``0..C-1``.
        ignore_index: param ``folder.ignore_index``: the raw mask value of unlabelled pixels,
            or ``None`` when every pixel is labelled.
        image_size: param ``folder.image_size``, (height, width).

    Raises:
        FussbenchError: naming the ``folder.*`` param when the class list is empty, has
            duplicates, or does not fit the label values.
    """

    name = "folder"
    split_counts = {"train": None, "test": None}
    eval_split = "test"

    def __init__(
        self,
        class_names: Sequence[str] = (),
        label_values: Sequence[int] | None = None,
        ignore_index: int | None = IGNORE_INDEX,
        image_size: tuple[int, int] = (224, 224),
    ) -> None:
        self.class_names = tuple(class_names)
        values = list(range(len(class_names))) if label_values is None else list(label_values)
        _check_classes(self.class_names, values, ignore_index)
        self.label_values = tuple(values)
        self.ignore_index = ignore_index
        height, width = image_size
        self.image_size = (height, width)
        self._table = np.full(256, -1, dtype=np.int16)
        self._table[values] = np.arange(len(values))
        if ignore_index is not None:
            self._table[ignore_index] = IGNORE_INDEX

    def samples(self, root: Path, split: str) -> list[Sample]:
        """Return the samples of ``split`` under ``root``, sorted by name."""
        if split not in self.split_counts:
            raise FussbenchError(
                f"unknown folder split '{split}'; valid splits: {', '.join(self.split_counts)}"
            )
        base = Path(root) / split
        images = index_files(base / "images", IMAGE_SUFFIXES, "images")
        masks = index_files(base / "masks", MASK_SUFFIXES, "masks")
        pairs = pair_files(images, masks, f"folder split '{split}'")
        return [
            Sample(name=key, image=image, label=mask, group=group_of(key))
            for key, image, mask in pairs
        ]

    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Map raw mask values (H, W) to class indices through ``folder.label_values``.

        Returns:
            (H, W) uint8 class indices, or ``IGNORE_INDEX`` for ``folder.ignore_index``.
        """
        valid = f"folder.label_values {list(self.label_values)}"
        if self.ignore_index is not None:
            valid += f" and folder.ignore_index {self.ignore_index}"
        return decode_with_table(raw, self._table, path, valid)


def _check_classes(names: tuple[str, ...], values: list[int], ignore_index: int | None) -> None:
    """Raise FussbenchError unless names, raw values and the ignore value fit together."""
    if not names:
        raise FussbenchError(
            "folder.class_names is empty; list the class of each mask value in params.yaml"
        )
    if len(set(names)) != len(names):
        raise FussbenchError(f"folder.class_names {list(names)} has duplicate names")
    if len(values) != len(names):
        raise FussbenchError(
            f"folder.label_values has {len(values)} values for {len(names)} folder.class_names; "
            "give one raw mask value per class, or null for 0..C-1"
        )
    if len(set(values)) != len(values) or not all(0 <= value <= 255 for value in values):
        raise FussbenchError(
            f"folder.label_values {values} must be distinct values in 0..255 (8-bit masks)"
        )
    if ignore_index is not None and (ignore_index in values or not 0 <= ignore_index <= 255):
        raise FussbenchError(
            f"folder.ignore_index {ignore_index} must be in 0..255 and not a class's label "
            f"value {values}; set it to null when every pixel is labelled"
        )
