"""Builders of tiny synthetic datasets in the real on-disk layouts, shared by the tests."""

from pathlib import Path

import numpy as np
from PIL import Image

from fussbench.model.config import CorrespondenceWeights, TrainConfig

SIZE = (8, 6)
"""(width, height) of the synthetic images."""

CAMVID_NAMES = {
    "train": ["0001TP_000010", "0001TP_000020", "0006R0_f00930"],
    "val": ["0016E5_07959"],
    "test": ["0001TP_008550", "Seq05VD_f00000"],
}
CAMVID_COUNTS = {split: len(names) for split, names in CAMVID_NAMES.items()}


def write_image(path: Path, mode: str = "RGB") -> None:
    """Write a random ``SIZE`` image to ``path`` (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = 3 if mode == "RGB" else 1
    pixels = np.random.default_rng(0).integers(0, 256, (SIZE[1], SIZE[0], channels), np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)


def write_label(path: Path, values: tuple[int, ...] = (0, 3, 10, 11), size=SIZE) -> None:
    """Write an 8-bit label PNG of ``size`` that cycles through ``values``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.resize(np.array(values, np.uint8), size[0] * size[1]).reshape(size[1], size[0])
    Image.fromarray(pixels, "L").save(path)


def make_camvid(root: Path, suffix: str = ".jpg") -> Path:
    """Lay out :data:`CAMVID_NAMES` as CamVid under ``root``; images use ``suffix``."""
    for split, names in CAMVID_NAMES.items():
        for name in names:
            write_image(root / split / f"{name}{suffix}")
            write_label(root / f"{split}annot" / f"{name}.png")
    return root


def make_magnetic_tile(root: Path, kind_counts: dict[str, int]) -> Path:
    """Lay out ``kind_counts`` image/mask pairs per kind as magnetic tile under ``root``."""
    for kind, count in kind_counts.items():
        for index in range(count):
            folder = root / f"MT_{kind}" / "Imgs"
            write_image(folder / f"exp1_num_{index:03d}.jpg", mode="L")
            write_label(folder / f"exp1_num_{index:03d}.png", values=(0, 100, 200, 255))
    return root


ROUND_CONFIG = TrainConfig(
    local_steps=2,
    batch_size=3,
    lr_head=5e-4,
    lr_centroids=5e-3,
    feature_samples=4,
    knn_k=2,
    n_negatives=1,
    dropout=0.1,
    weights=CorrespondenceWeights(1.0, 0.577, 0.906, 0.46, 0.20, 0.40),
)
"""Two steps of batch 3 with the default loss weights: a round-loop test's training budget."""
