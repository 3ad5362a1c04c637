"""How an image becomes the views whose features are cached: resized whole, or STEGO's crops.

- ``resize``: one view per image, at the dataset's ``image_size`` (stretched, or scaled and
  centre-cropped for datasets that ask for it).
- ``stego``: the original preprocessing. A training image gives five views, the four corner
  crops and the centre crop of half its height and half its width, each resized to
  ``train_size`` × ``train_size``. An evaluation image gives one view: its short side
  resized to ``eval_size``, then the centre ``eval_size`` × ``eval_size`` crop.

Images are resampled bicubically and labels with nearest neighbour, so class indices stay
class indices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from fussbench.errors import FussbenchError

PREPROCESSINGS = ("resize", "stego")
FIVE_CROPS = 5


@dataclass(frozen=True)
class Preprocessing:
    """``features.preprocess`` with its sizes (see the module docstring).

    Attributes:
        mode: "resize" or "stego".
        train_size: side of each training crop in ``stego`` mode.
        eval_size: short side and crop side of evaluation images in ``stego`` mode.
    """

    mode: str = "resize"
    train_size: int = 224
    eval_size: int = 320

    def __post_init__(self) -> None:
        if self.mode not in PREPROCESSINGS:
            raise FussbenchError(
                f"unknown features.preprocess '{self.mode}'; valid: {', '.join(PREPROCESSINGS)}"
            )
        if self.train_size < 1 or self.eval_size < 1:
            raise FussbenchError(
                "features.train_size and features.eval_size must be >= 1, got "
                f"{self.train_size} and {self.eval_size}"
            )

    def views_per_image(self, training: bool) -> int:
        """How many cached rows one image gives: 5 for a stego training image, else 1."""
        return FIVE_CROPS if self.mode == "stego" and training else 1

    def view_size(self, image_size: tuple[int, int], training: bool) -> tuple[int, int]:
        """(height, width) of every view, given the dataset's ``image_size``."""
        if self.mode == "resize":
            return image_size
        side = self.train_size if training else self.eval_size
        return side, side

    def views(
        self,
        image: Image.Image,
        training: bool,
        resample: Image.Resampling,
        fit: Callable[[Image.Image, Image.Resampling], Image.Image],
    ) -> list[Image.Image]:
        """The views of one full-resolution image (or label image).

        Args:
            image: the image as read from disk.
            training: whether it belongs to the training split.
            resample: bicubic for images, nearest for labels.
            fit: the dataset's own resize to its ``image_size`` (``resize`` mode).
        """
        if self.mode == "resize":
            return [fit(image, resample)]
        if training:
            side = self.train_size
            return [crop.resize((side, side), resample) for crop in five_crops(image)]
        return [centre_square(image, self.eval_size, resample)]


def five_crops(image: Image.Image) -> list[Image.Image]:
    """The four corner crops and the centre crop of half the height and half the width."""
    width, height = image.size
    crop_w, crop_h = width // 2, height // 2
    left_centre, top_centre = (width - crop_w) // 2, (height - crop_h) // 2
    corners = [
        (0, 0),
        (width - crop_w, 0),
        (0, height - crop_h),
        (width - crop_w, height - crop_h),
        (left_centre, top_centre),
    ]
    return [image.crop((left, top, left + crop_w, top + crop_h)) for left, top in corners]


def centre_square(image: Image.Image, side: int, resample: Image.Resampling) -> Image.Image:
    """Scale so the short side is ``side``, then crop the centre ``side`` × ``side``."""
    width, height = image.size
    scale = side / min(width, height)
    scaled = (max(side, round(width * scale)), max(side, round(height * scale)))
    left, top = (scaled[0] - side) // 2, (scaled[1] - side) // 2
    return image.resize(scaled, resample).crop((left, top, left + side, top + side))
