"""CamVid in SegNet's 11-class version: street scenes from four video sequences."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fussbench.data.samples import IGNORE_INDEX, DatasetSpec, Sample
from fussbench.data.validate import pair_files
from fussbench.errors import FussbenchError

UNLABELLED = 11
"""Raw label value of unlabelled pixels; decoded to ``IGNORE_INDEX``."""

IMAGE_SUFFIXES = (".jpg", ".png")
"""The mirror stores images as JPEG, the upstream source as PNG; labels are always PNG."""


class CamVid(DatasetSpec):
    """CamVid laid out as ``<root>/{train,val,test}/X.{jpg,png}`` with labels at
    ``<root>/{train,val,test}annot/X.png``. The group of a sample is its video sequence, the
    file name's first token before ``_`` (e.g. ``"0001TP"``)."""

    name = "camvid"
    class_names = (
        "Sky",
        "Building",
        "Pole",
        "Road",
        "Pavement",
        "Tree",
        "SignSymbol",
        "Fence",
        "Car",
        "Pedestrian",
        "Bicyclist",
    )
    colours = (
        (128, 128, 128),  # Sky
        (128, 0, 0),  # Building
        (192, 192, 128),  # Pole
        (128, 64, 128),  # Road
        (60, 40, 222),  # Pavement
        (128, 128, 0),  # Tree
        (192, 128, 128),  # SignSymbol
        (64, 64, 128),  # Fence
        (64, 0, 128),  # Car
        (64, 64, 0),  # Pedestrian
        (0, 128, 192),  # Bicyclist
    )
    """CamVid's standard 11-class colours (SegNet)."""
    image_size = (240, 320)
    split_counts = {"train": 367, "val": 101, "test": 233}

    def samples(self, root: Path, split: str) -> list[Sample]:
        """Return the samples of ``split`` under ``root``, sorted by name."""
        if split not in self.split_counts:
            raise FussbenchError(
                f"unknown camvid split '{split}'; valid splits: {', '.join(self.split_counts)}"
            )
        root = Path(root)
        images = _index(root / split, IMAGE_SUFFIXES)
        labels = _index(root / f"{split}annot", (".png",))
        pairs = pair_files(images, labels, f"camvid split '{split}'")
        return [
            Sample(name=stem, image=image, label=label, group=stem.split("_")[0])
            for stem, image, label in pairs
        ]

    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Map raw values (H, W) 0..10 to themselves and 11 (Unlabelled) to 255.

        Returns:
            (H, W) uint8 class indices or ``IGNORE_INDEX``.
        """
        bad = np.unique(raw[(raw < 0) | (raw > UNLABELLED)])
        if bad.size:
            shown = ", ".join(str(value) for value in bad[:10])
            raise FussbenchError(
                f"{path}: label values {shown} are outside 0..{UNLABELLED} "
                f"(0..10 classes, {UNLABELLED} Unlabelled); re-download the dataset"
            )
        labels = raw.astype(np.uint8)
        labels[raw == UNLABELLED] = IGNORE_INDEX
        return labels


def _index(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Map file stem -> path for the files in ``folder`` with one of ``suffixes``.

    Raises:
        FussbenchError: when ``folder`` is missing, or a stem has two files (``X.jpg`` and
            ``X.png``).
    """
    if not folder.is_dir():
        raise FussbenchError(f"{folder}: folder missing; run `fussbench download` to fetch camvid")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in suffixes or not path.is_file():
            continue
        if path.stem in found:
            raise FussbenchError(
                f"{path}: {found[path.stem].name} has the same name; keep one of the two"
            )
        found[path.stem] = path
    return found
