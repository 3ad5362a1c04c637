"""Masks as users' tools write them: how raw mask pixels become class indices.

``folder.mask_mode`` says how a raw mask value (8- or 16-bit grey, or an RGB colour) maps to
a class:

* ``exact``: each class has one raw value (``folder.label_values``); any other value is an
  error. With two classes and no ``label_values``, both 0/1 and 0/255 masks are read (raw
  1 and 255 are class 1) unless 255 is ``folder.ignore_index``.
* ``threshold``: two classes; a raw value at or above ``folder.mask_threshold`` is class 1
  (soft-edged binary masks).
* ``nearest``: each raw value goes to the class whose label value is nearest (ties to the
  lower value): anti-aliased or lossily edited index masks.
* ``palette``: RGB masks, one colour per class (``folder.palette``).

In every grey mode, pixels equal to ``folder.ignore_index`` are unlabelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from fussbench.data.samples import IGNORE_INDEX
from fussbench.errors import FussbenchError

MASK_MODES = ("exact", "threshold", "nearest", "palette")
"""Values of ``folder.mask_mode``."""

MAX_RAW = 65535
"""Largest raw grey value a mask may hold (16-bit PNG / TIFF)."""

INSPECT = "`fussbench inspect --dataset folder` shows the values your masks hold"


@dataclass(frozen=True)
class MaskRule:
    """How a folder's raw masks decode into class indices (params ``folder.mask_*``).

    Attributes:
        mode: one of :data:`MASK_MODES`.
        label_values: the raw grey value of each class (grey modes).
        ignore_index: the raw grey value of unlabelled pixels, or ``None``.
        threshold: ``threshold`` mode: raw values >= it are class 1.
        palette: ``palette`` mode: the (r, g, b) colour of each class.
        binary_255: ``exact`` mode only: raw 255 is also class 1 (two classes, default
            label values).
    """

    mode: str
    label_values: tuple[int, ...]
    ignore_index: int | None
    threshold: int = 128
    palette: tuple[tuple[int, int, int], ...] = ()
    binary_255: bool = False

    @property
    def colour(self) -> bool:
        """Whether masks are read as RGB (``palette``) rather than one grey channel."""
        return self.mode == "palette"

    def describe(self) -> str:
        """The valid raw values in words, for error messages."""
        if self.mode == "palette":
            return f"folder.palette {[list(colour) for colour in self.palette]}"
        if self.mode == "threshold":
            return f"folder.mask_threshold {self.threshold}"
        values = list(self.label_values) + ([255] if self.binary_255 else [])
        text = f"folder.label_values {values}"
        if self.ignore_index is not None:
            text += f" and folder.ignore_index {self.ignore_index}"
        return text

    def decode(self, raw: np.ndarray, path: Path, hint: str) -> np.ndarray:
        """Map a raw mask to class indices.

        Args:
            raw: (H, W) integer grey values, or (H, W, 3) uint8 RGB in ``palette`` mode.
            path: the mask file, for error messages.
            hint: how to fix a bad file, appended to error messages.

        Returns:
            (H, W) uint8 class indices, :data:`IGNORE_INDEX` for unlabelled pixels.

        Raises:
            FussbenchError: naming ``path``, the values that fit no class and the fix.
        """
        raw = np.asarray(raw)
        if self.colour:
            return self._decode_palette(raw, path, hint)
        if raw.ndim != 2 or not (np.issubdtype(raw.dtype, np.integer) or raw.dtype == bool):
            raise FussbenchError(
                f"{path}: mask holds {raw.dtype} values of shape {raw.shape}, not one integer "
                f"per pixel; save masks as 8/16-bit grey or palette PNG, or set "
                f"folder.mask_mode: palette for colour masks; {hint}"
            )
        values = raw.astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > MAX_RAW):
            bad = np.unique(values[(values < 0) | (values > MAX_RAW)])
            self._fail(bad, path, hint)
        if self.mode == "threshold":
            decoded = (values >= self.threshold).astype(np.int16)
        elif self.mode == "nearest":
            order = np.argsort(self.label_values)
            ordered = np.asarray(self.label_values)[order]
            middles = (ordered[1:] + ordered[:-1]) / 2.0
            decoded = order[np.searchsorted(middles, values, side="left")].astype(np.int16)
        else:
            table = np.full(MAX_RAW + 1, -1, dtype=np.int16)
            table[list(self.label_values)] = np.arange(len(self.label_values))
            if self.binary_255:
                table[255] = 1
            decoded = table[values]
        if self.ignore_index is not None:
            decoded[values == self.ignore_index] = IGNORE_INDEX
        bad = np.unique(values[decoded < 0])
        if bad.size:
            self._fail(bad, path, hint)
        return decoded.astype(np.uint8)

    def _decode_palette(self, raw: np.ndarray, path: Path, hint: str) -> np.ndarray:
        if raw.ndim != 3 or raw.shape[2] != 3:
            raise FussbenchError(
                f"{path}: folder.mask_mode palette needs RGB masks, this one has shape "
                f"{raw.shape}; {hint}"
            )
        codes = (raw[..., 0].astype(np.int64) << 16) | (raw[..., 1].astype(np.int64) << 8)
        codes |= raw[..., 2].astype(np.int64)
        known = np.array([(r << 16) | (g << 8) | b for r, g, b in self.palette], np.int64)
        unique, inverse = np.unique(codes, return_inverse=True)
        lookup = np.full(len(unique), -1, dtype=np.int16)
        for index, code in enumerate(known):
            lookup[unique == code] = index
        missing = unique[lookup < 0]
        if missing.size:
            colours = ", ".join(
                f"({code >> 16}, {(code >> 8) & 255}, {code & 255})" for code in missing[:5]
            )
            more = f" and {missing.size - 5} more" if missing.size > 5 else ""
            raise FussbenchError(
                f"{path}: mask colours {colours}{more} are not in {self.describe()}; add each "
                f"class's colour to folder.palette ({INSPECT}); {hint}"
            )
        return lookup[inverse.reshape(codes.shape)].astype(np.uint8)

    def _fail(self, bad: np.ndarray, path: Path, hint: str) -> None:
        """Raise the error for raw grey values ``bad`` (sorted) that fit no class."""
        shown = ", ".join(str(value) for value in bad[:10])
        more = f" ({bad.size} distinct)" if bad.size > 10 else ""
        advice = (
            "soft edges? set folder.mask_mode: threshold (two classes) or nearest"
            if bad.size > 2 and self.mode == "exact"
            else "set folder.label_values to your masks' values"
        )
        raise FussbenchError(
            f"{path}: mask values {shown}{more} are outside {self.describe()}; {advice} "
            f"({INSPECT}); {hint}"
        )


def mask_rule(
    n_classes: int,
    mode: str = "exact",
    label_values: Sequence[int] | None = None,
    ignore_index: int | None = None,
    threshold: int = 128,
    palette: Sequence[Sequence[int]] | None = None,
) -> MaskRule:
    """Build and check the :class:`MaskRule` of the ``folder.*`` params.

    Raises:
        FussbenchError: naming the ``folder.*`` param that does not fit the others.
    """
    if mode not in MASK_MODES:
        raise FussbenchError(f"folder.mask_mode '{mode}' is not one of {', '.join(MASK_MODES)}")
    if mode == "palette":
        return MaskRule(mode, (), None, palette=_check_palette(palette, n_classes))
    if palette is not None:
        raise FussbenchError(
            "folder.palette is set but folder.mask_mode is not palette; set "
            "folder.mask_mode: palette for RGB masks, or folder.palette: null"
        )
    values = list(range(n_classes)) if label_values is None else list(label_values)
    binary_255 = mode == "exact" and label_values is None and n_classes == 2
    binary_255 = binary_255 and ignore_index != 255
    if len(values) != n_classes:
        raise FussbenchError(
            f"folder.label_values has {len(values)} values for {n_classes} folder.class_names; "
            "give one raw mask value per class, or null for 0..C-1"
        )
    if len(set(values)) != len(values) or not all(0 <= value <= MAX_RAW for value in values):
        raise FussbenchError(
            f"folder.label_values {values} must be distinct values in 0..{MAX_RAW}"
        )
    if ignore_index is not None and (ignore_index in values or not 0 <= ignore_index <= MAX_RAW):
        raise FussbenchError(
            f"folder.ignore_index {ignore_index} must be in 0..{MAX_RAW} and not a class's label "
            f"value {values}; set it to null when every pixel is labelled"
        )
    if mode == "threshold":
        if n_classes != 2:
            raise FussbenchError(
                f"folder.mask_mode threshold needs exactly 2 folder.class_names, got {n_classes}; "
                "use nearest for more classes"
            )
        if not 0 < threshold <= MAX_RAW:
            raise FussbenchError(f"folder.mask_threshold must be in 1..{MAX_RAW}, got {threshold}")
    return MaskRule(mode, tuple(values), ignore_index, threshold, (), binary_255)


def _check_palette(
    palette: Sequence[Sequence[int]] | None, n_classes: int
) -> tuple[tuple[int, int, int], ...]:
    """The palette as (r, g, b) tuples, one per class, distinct, each channel in 0..255."""
    if palette is None or len(palette) != n_classes:
        count = "no" if palette is None else str(len(palette))
        raise FussbenchError(
            f"folder.mask_mode palette needs folder.palette with one [r, g, b] per class: "
            f"{count} colours for {n_classes} folder.class_names ({INSPECT})"
        )
    colours = []
    for colour in palette:
        if len(colour) != 3 or not all(0 <= channel <= 255 for channel in colour):
            raise FussbenchError(f"folder.palette entry {list(colour)} must be [r, g, b] in 0..255")
        colours.append((int(colour[0]), int(colour[1]), int(colour[2])))
    if len(set(colours)) != len(colours):
        raise FussbenchError(f"folder.palette {palette} repeats a colour")
    return tuple(colours)


def read_raw_mask(path: Path, colour: bool) -> np.ndarray:
    """A mask file's raw pixels, upright (EXIF orientation applied).

    Args:
        path: the mask file.
        colour: read as RGB (palette masks) instead of one grey channel.

    Returns:
        (H, W) integer grey values (uint8, or int32 for 16-bit files), or (H, W, 3) uint8
        with ``colour``. A palette-indexed PNG gives its indices unless ``colour``; a
        1-bit mask gives 0/255; an RGB mask whose channels agree gives one of them.

    Raises:
        FussbenchError: naming ``path`` when it is unreadable, or RGB with differing
            channels while ``colour`` is off.
    """
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if colour:
                return np.asarray(image.convert("RGB"))
            if image.mode == "1":
                image = image.convert("L")
            raw = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise FussbenchError(f"{path}: not a readable mask image ({error})") from error
    if raw.ndim == 3:
        channels = raw[..., :3]
        if not (channels == channels[..., :1]).all():
            raise FussbenchError(
                f"{path}: colour mask (its RGB channels differ); set folder.mask_mode: palette "
                f"and list each class's colour in folder.palette ({INSPECT})"
            )
        raw = raw[..., 0]
    return raw
