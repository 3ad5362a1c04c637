"""Cityscapes fine annotations: street scenes from 50 cities, 27 classes (label ids 7..33).

The benchmark uses the 2975 train frames (18 cities, one client per city or group of cities)
and evaluates on the 500 val frames (3 cities). The test split has no public labels and is
not used.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fussbench.data.samples import IGNORE_INDEX, DatasetSpec, Sample, decode_with_table
from fussbench.data.validate import pair_files
from fussbench.errors import FussbenchError

TRAIN_CITIES = (
    "aachen",
    "bochum",
    "bremen",
    "cologne",
    "darmstadt",
    "dusseldorf",
    "erfurt",
    "hamburg",
    "hanover",
    "jena",
    "krefeld",
    "monchengladbach",
    "strasbourg",
    "stuttgart",
    "tubingen",
    "ulm",
    "weimar",
    "zurich",
)
VAL_CITIES = ("frankfurt", "lindau", "munster")

FIRST_CLASS_ID = 7
"""Label ids 7..33 are the 27 classes 0..26; ids 0..6 (void) are ignored."""

LAST_LABEL_ID = 33
"""The largest label id in ``*_gtFine_labelIds.png`` (license plate, id -1, is never drawn)."""

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
FRAME_PATTERN = re.compile(r"(?P<city>[a-z]+)_\d{6}_\d{6}")
"""A frame's key, e.g. ``aachen_000000_000019``: city, sequence, frame number."""


def _label_table() -> np.ndarray:
    """(256,) int16: label id 7..33 -> class 0..26, ids 0..6 -> 255, anything else -1."""
    table = np.full(256, -1, dtype=np.int16)
    table[:FIRST_CLASS_ID] = IGNORE_INDEX
    table[FIRST_CLASS_ID : LAST_LABEL_ID + 1] = np.arange(LAST_LABEL_ID + 1 - FIRST_CLASS_ID)
    return table


LABEL_TABLE = _label_table()


class Cityscapes(DatasetSpec):
    """Cityscapes laid out as ``<root>/leftImg8bit/<split>/<city>/<key>_leftImg8bit.png`` with
    labels at ``<root>/gtFine/<split>/<city>/<key>_gtFine_labelIds.png`` (the layout of the
    official zips). A sample's name is its key ``<city>_<seq>_<frame>`` and its group its city.

    Args:
        image_size: (height, width) frames and labels are resized to before caching (param
            ``cityscapes.image_size``); the raw frames are 1024x2048.
    """

    name = "cityscapes"
    # Names of label ids 7..33 in the Cityscapes label table (cityscapesscripts labels.py).
    class_names = (
        "road",
        "sidewalk",
        "parking",
        "rail track",
        "building",
        "wall",
        "fence",
        "guard rail",
        "bridge",
        "tunnel",
        "pole",
        "polegroup",
        "traffic light",
        "traffic sign",
        "vegetation",
        "terrain",
        "sky",
        "person",
        "rider",
        "car",
        "truck",
        "bus",
        "caravan",
        "trailer",
        "train",
        "motorcycle",
        "bicycle",
    )
    split_counts = {"train": 2975, "val": 500}
    eval_split = "val"
    raw_size = (2048, 1024)

    def __init__(self, image_size: tuple[int, int] = (160, 320)) -> None:
        height, width = image_size
        self.image_size = (height, width)

    def samples(self, root: Path, split: str) -> list[Sample]:
        """Return the samples of ``split`` under ``root``, sorted by name."""
        if split not in self.split_counts:
            raise FussbenchError(
                f"unknown cityscapes split '{split}'; valid splits: {', '.join(self.split_counts)}"
            )
        root = Path(root)
        images = _index(root / "leftImg8bit" / split, IMAGE_SUFFIX)
        labels = _index(root / "gtFine" / split, LABEL_SUFFIX)
        pairs = pair_files(images, labels, f"cityscapes split '{split}'")
        return [
            Sample(name=key, image=image, label=label, group=image.parent.name)
            for key, image, label in pairs
        ]

    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Map label ids (H, W) 7..33 to classes 0..26 and ids 0..6 to 255.

        Returns:
            (H, W) uint8 class indices or ``IGNORE_INDEX``.
        """
        return decode_with_table(raw, LABEL_TABLE, path, f"0..{LAST_LABEL_ID} (Cityscapes ids)")


def _index(folder: Path, suffix: str) -> dict[str, Path]:
    """Map key -> path for the files ``<folder>/<city>/<key><suffix>``.

    Raises:
        FussbenchError: when ``folder`` is missing, or a file's name does not start with the
            ``<city>_<seq>_<frame>`` key of its city folder.
    """
    if not folder.is_dir():
        raise FussbenchError(
            f"{folder}: folder missing; run `fussbench download` to lay out cityscapes"
        )
    found: dict[str, Path] = {}
    for path in sorted(folder.glob(f"*/*{suffix}")):
        key = path.name[: -len(suffix)]
        match = FRAME_PATTERN.fullmatch(key)
        if match is None or match["city"] != path.parent.name:
            raise FussbenchError(
                f"{path}: not named <city>_<seq>_<frame>{suffix} after its folder "
                f"'{path.parent.name}'; remove it or re-download cityscapes"
            )
        found[key] = path
    return found
