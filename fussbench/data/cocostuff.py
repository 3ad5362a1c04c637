"""COCO-Stuff-27: the curated COCO-Stuff 164k subset of IIC / PiCIE / STEGO, 27 coarse classes.

Labels are the ``stuffthingmaps`` PNGs of COCO-Stuff: pixel value = COCO-Stuff class id - 1
(0..181, 171 of them used: 80 things, 91 stuff) and 255 = unlabeled. They are mapped to the
27 coarse classes with STEGO's table (``Coco.fine_to_coarse`` in STEGO's ``src/data.py``).
The curated image lists are ``curated/{train2017,val2017}/Coco164kFull_Stuff_Coarse_7.txt``
(IIC's, 49 629 training images); ``train_list="fuss"`` takes the training images from the
FUSS authors' shorter list instead (12 408 images, see :mod:`fussbench.data.cocostuff_fuss`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fussbench.data.cocostuff_fuss import CURATED as FUSS_CURATED
from fussbench.data.cocostuff_fuss import fuss_file
from fussbench.data.samples import IGNORE_INDEX, DatasetSpec, Sample, decode_with_table
from fussbench.data.validate import format_problems
from fussbench.errors import FussbenchError

CURATED_LIST = "Coco164kFull_Stuff_Coarse_7.txt"
SPLIT_FOLDERS = {"train": "train2017", "val": "val2017"}
"""The benchmark's split -> COCO's folder name."""

IMAGE_ID = re.compile(r"\d{12}")
"""A COCO 2017 image id as the curated lists and file names write it, e.g. ``000000000025``."""

TRAIN_LISTS = ("iic", "fuss")
"""Where the training images come from: IIC's curated list, or the FUSS authors' subset."""

UNLABELED = 255

# fmt: off
FINE_TO_COARSE = (
    9, 11, 11, 11, 11, 11, 11, 11, 11, 8, 8, 8, 8, 8, 8, 7, 7, 7, 7, 7,  # 0..19
    7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6, 6, 6, 10, 10, 10, 10, 10, 10, 10,  # 20..39
    10, 10, 10, 5, 5, 5, 5, 5, 5, 5, 5, 2, 2, 2, 2, 2, 2, 2, 2, 2,  # 40..59
    2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0, 1, 1, 1,  # 60..79
    1, 1, 1, 4, 4, 4, 4, 4, 4, 4, 4, 17, 17, 22, 20, 20, 22, 15, 25, 16,  # 80..99
    13, 12, 12, 17, 17, 23, 15, 15, 17, 15, 21, 15, 25, 13, 13, 13, 13, 13, 22, 26,  # 100..119
    14, 14, 15, 22, 21, 21, 24, 20, 22, 15, 17, 16, 15, 22, 24, 21, 17, 25, 16, 21,  # 120..139
    17, 22, 16, 21, 21, 25, 21, 26, 21, 24, 20, 17, 14, 21, 26, 15, 23, 20, 21, 24,  # 140..159
    15, 24, 22, 25, 15, 20, 17, 17, 22, 14, 18, 18, 18, 18, 18, 18, 18, 26, 26, 19,  # 160..179
    19, 24,  # 180..181
)
# fmt: on
"""Coarse class of each stuffthingmaps value 0..181 (STEGO's ``fine_to_coarse``; it also maps
the 11 COCO thing ids that no image uses)."""


def _label_table() -> np.ndarray:
    """(256,) int16: values 0..181 -> coarse class, 255 -> 255, anything else -1."""
    table = np.full(256, -1, dtype=np.int16)
    table[: len(FINE_TO_COARSE)] = FINE_TO_COARSE
    table[UNLABELED] = IGNORE_INDEX
    return table


LABEL_TABLE = _label_table()


def read_curated_list(path: Path) -> list[str]:
    """The image ids of a curated list, in file order.

    Raises:
        FussbenchError: when the file is missing or a line is not a 12-digit COCO image id.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").split()
    except OSError as error:
        raise FussbenchError(
            f"{path}: curated image list not readable ({error}); run `fussbench download`"
        ) from error
    bad = [line for line in lines if not IMAGE_ID.fullmatch(line)]
    if bad:
        raise FussbenchError(
            f"{path}: '{bad[0]}' is not a 12-digit COCO image id ({len(bad)} bad line(s)); "
            f"this is not {CURATED_LIST}, download it again"
        )
    return lines


class CocoStuff27(DatasetSpec):
    """COCO-Stuff-27 laid out as STEGO's ``cocostuff/`` folder:
    ``<root>/curated/<folder>/Coco164kFull_Stuff_Coarse_7.txt`` lists the image ids of a
    split, images are ``<root>/images/<folder>/<id>.jpg`` and labels
    ``<root>/annotations/<folder>/<id>.png``, with ``<folder>`` = ``train2017`` or
    ``val2017``. A sample's name is its image id; all samples share the group ``coco``.

    Images and labels are scaled to cover :attr:`image_size` and centre-cropped, as STEGO's
    evaluation does (short side resize + centre crop).

    Args:
        image_size: (height, width), param ``cocostuff27.image_size``.
        train_list: param ``cocostuff27.train_list``: "iic" (the training split is IIC's
            curated list) or "fuss" (the FUSS authors' curated list, ``fuss/curated/...``).
    """

    name = "cocostuff27"
    # STEGO's cocostuff27 class names; its two duplicate names (food, furniture, once as
    # things and once as stuff) carry -things / -stuff here.
    class_names = (
        "electronic",
        "appliance",
        "food-things",
        "furniture-things",
        "indoor",
        "kitchen",
        "accessory",
        "animal",
        "outdoor",
        "person",
        "sports",
        "vehicle",
        "ceiling",
        "floor",
        "food-stuff",
        "furniture-stuff",
        "rawmaterial",
        "textile",
        "wall",
        "window",
        "building",
        "ground",
        "plant",
        "sky",
        "solid",
        "structural",
        "water",
    )
    split_counts = {"train": 49629, "val": 2175}
    fuss_train_images = 12408
    """Images of the FUSS authors' curated training list."""
    eval_split = "val"
    center_crop = True

    def __init__(self, image_size: tuple[int, int] = (224, 224), train_list: str = "iic") -> None:
        height, width = image_size
        self.image_size = (height, width)
        if train_list not in TRAIN_LISTS:
            raise FussbenchError(
                f"cocostuff27.train_list must be one of {', '.join(TRAIN_LISTS)}, got "
                f"'{train_list}'"
            )
        self.train_list = train_list
        if train_list == "fuss":
            self.split_counts = {**type(self).split_counts, "train": self.fuss_train_images}

    def samples(self, root: Path, split: str) -> list[Sample]:
        """Return the samples of ``split`` under ``root``, sorted by name."""
        if split not in SPLIT_FOLDERS:
            raise FussbenchError(
                f"unknown cocostuff27 split '{split}'; valid splits: {', '.join(SPLIT_FOLDERS)}"
            )
        root = Path(root)
        folder = SPLIT_FOLDERS[split]
        if split == "train" and self.train_list == "fuss":
            ids = read_curated_list(fuss_file(root, FUSS_CURATED))
        else:
            ids = read_curated_list(root / "curated" / folder / CURATED_LIST)
        samples = [
            Sample(
                name=image_id,
                image=root / "images" / folder / f"{image_id}.jpg",
                label=root / "annotations" / folder / f"{image_id}.png",
                group="coco",
            )
            for image_id in sorted(set(ids))
        ]
        missing = [str(path) for sample in samples for path in (sample.image, sample.label)]
        missing = [path for path in missing if not Path(path).is_file()]
        if missing:
            header = (
                f"cocostuff27 split '{split}': {len(missing)} file(s) of the curated list "
                f"missing; run `fussbench download` to restore the dataset"
            )
            raise FussbenchError(format_problems(header, missing))
        return samples

    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Map stuffthingmaps values (H, W) 0..181 to the 27 coarse classes, 255 to 255.

        Returns:
            (H, W) uint8 class indices or ``IGNORE_INDEX``.
        """
        return decode_with_table(raw, LABEL_TABLE, path, "0..181 and 255 (stuffthingmaps)")
