"""Magnetic tile surface defects: grayscale tiles with a binary defect mask, six kinds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fussbench.data.samples import DatasetSpec, Sample
from fussbench.data.validate import pair_files
from fussbench.errors import FussbenchError

KIND_COUNTS = {"Blowhole": 115, "Break": 85, "Crack": 57, "Fray": 32, "Free": 150, "Uneven": 103}
"""Image/mask pairs per kind (folder ``MT_<Kind>``) in the benchmark's copy."""

TEST_EVERY = 5
"""Within each kind, in sorted order, sample ``i`` is a test sample when ``i % 5 == 4``."""

MASK_THRESHOLD = 128
"""Mask values ``>= 128`` are defect; edges hold values in between."""


def split_of(index: int) -> str:
    """Return the split of the ``index``-th pair (sorted by file name) of one kind."""
    return "test" if index % TEST_EVERY == TEST_EVERY - 1 else "train"


def count_splits(kind_counts: dict[str, int]) -> dict[str, int]:
    """Return the samples per split that :func:`split_of` makes from ``kind_counts``."""
    test = sum(count // TEST_EVERY for count in kind_counts.values())
    return {"train": sum(kind_counts.values()) - test, "test": test}


class MagneticTile(DatasetSpec):
    """Magnetic tiles laid out as ``<root>/MT_<Kind>/Imgs/<name>.jpg`` with the mask at
    ``<name>.png``. There is no official split: see :func:`split_of`. The group of a sample is
    its kind (e.g. ``"Blowhole"``)."""

    name = "magnetic_tile"
    class_names = ("background", "defect")
    colours = ((0, 0, 0), (255, 255, 255))
    """Background black, defect white."""
    image_size = (224, 224)
    split_counts = count_splits(KIND_COUNTS)
    pair_limits = {"Free": 150}
    """The source has 952 defect-free pairs; the benchmark keeps the first 150 by file name."""

    def samples(self, root: Path, split: str) -> list[Sample]:
        """Return the samples of ``split`` under ``root``, sorted by name."""
        if split not in self.split_counts:
            raise FussbenchError(
                f"unknown magnetic_tile split '{split}'; valid splits: "
                f"{', '.join(self.split_counts)}"
            )
        found = []
        for kind in KIND_COUNTS:
            pairs = _kind_pairs(Path(root) / f"MT_{kind}" / "Imgs")
            found += [
                Sample(name=f"{kind}__{stem}", image=image, label=label, group=kind)
                for index, (stem, image, label) in enumerate(pairs)
                if split_of(index) == split
            ]
        return sorted(found, key=lambda sample: sample.name)

    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Threshold a raw mask (H, W) at 128: returns (H, W) uint8, 1 = defect, 0 = background."""
        return (raw >= MASK_THRESHOLD).astype(np.uint8)


def _kind_pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    """Return ``(stem, image, mask)`` for the pairs in ``folder``, sorted by stem."""
    if not folder.is_dir():
        raise FussbenchError(
            f"{folder}: folder missing; run `fussbench download` to fetch magnetic_tile"
        )
    images = {path.stem: path for path in folder.glob("*.jpg")}
    masks = {path.stem: path for path in folder.glob("*.png")}
    return pair_files(images, masks, f"magnetic_tile folder {folder}")
