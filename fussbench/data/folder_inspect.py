"""Look at a user's folder before importing it: what pairs up, image sizes, the values the
masks hold, and the ``folder:`` params that would read them. Reads files, writes nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageOps
from tqdm import tqdm

from fussbench.data.folder import FolderDataset
from fussbench.data.folder_import import FolderSource, scan_folder
from fussbench.data.validate import MAX_LISTED, check_samples
from fussbench.errors import FussbenchError

TOP_VALUES = 12
"""Mask values (or colours) listed by pixel count before the rest are summed up."""

DOMINANT_SHARE = 0.01
"""A raw value holding at least this share of the mask pixels counts as a class value when
many values occur (soft or anti-aliased masks)."""

COLOUR_MODES = ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
"""PIL modes read as colours (a grey mask saved as RGB is recognised by equal channels)."""

MAX_EXACT_VALUES = 32
"""At most this many distinct grey values, each of them dominant, are suggested as one class
each (exact mode); otherwise the masks are taken as soft (threshold or nearest)."""


@dataclass
class FolderReport:
    """What :func:`inspect_folder` found.

    Attributes:
        root: ``folder.root``.
        n_images, n_masks: files found (``n_masks`` is ``None`` without masks).
        pairs: usable samples (pairs, or images without masks).
        unpaired: one line per image without mask or mask without image.
        sizes: (width, height) upright -> number of images.
        mask_modes: PIL mode of the masks -> count (``"L"``, ``"I;16"``, ``"RGB"`` ...).
        values: raw grey mask value -> pixels (empty for colour masks).
        colours: (r, g, b) -> pixels, for masks whose RGB channels differ.
        suggested: the ``folder:`` params that would read the masks.
        problems: what still fails with the suggested params (first few lines).
    """

    root: Path
    n_images: int
    n_masks: int | None
    pairs: int
    unpaired: list[str]
    sizes: Counter = field(default_factory=Counter)
    mask_modes: Counter = field(default_factory=Counter)
    values: Counter = field(default_factory=Counter)
    colours: Counter = field(default_factory=Counter)
    suggested: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def render(self) -> str:
        """The report as text: counts, sizes, the mask histogram and a params snippet."""
        masks = "no masks (unlabelled)" if self.n_masks is None else f"{self.n_masks} masks"
        lines = [
            f"folder.root = {self.root}",
            f"{self.n_images} images, {masks}, {self.pairs} usable "
            + ("pairs" if self.n_masks is not None else "images"),
        ]
        if self.unpaired:
            lines.append(
                f"{len(self.unpaired)} unpaired file(s); `fussbench download` refuses them, "
                "so pair or remove them:"
            )
            lines += [f"  {line}" for line in self.unpaired[:MAX_LISTED]]
            if len(self.unpaired) > MAX_LISTED:
                lines.append(f"  ... and {len(self.unpaired) - MAX_LISTED} more")
        lines.append(_sizes_line(self.sizes))
        if self.mask_modes:
            modes = ", ".join(f"{mode} ({n})" for mode, n in self.mask_modes.most_common())
            lines.append(f"mask image modes: {modes}")
        if self.values:
            lines += ["mask values (raw value: pixels, share):", *_histogram(self.values)]
        if self.colours:
            lines += ["mask colours ((r, g, b): pixels, share):", *_histogram(self.colours)]
        snippet = yaml.safe_dump(
            {"folder": self.suggested}, sort_keys=False, width=100, default_flow_style=None
        )
        lines += ["", "params that read this folder (put them in params.yaml or pass -S):", snippet]
        if self.problems:
            lines += ["with these params, still failing:", *(f"  {p}" for p in self.problems)]
        elif self.n_masks is not None:
            lines.append(f"with these params, all {self.pairs} masks decode.")
        return "\n".join(lines).rstrip() + "\n"


def _sizes_line(sizes: Counter) -> str:
    if not sizes:
        return "image sizes: none readable"
    widths = [w for w, _ in sizes]
    heights = [h for _, h in sizes]
    common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(5))
    return (
        f"image sizes (width x height, upright): {len(sizes)} distinct, width "
        f"{min(widths)}..{max(widths)}, height {min(heights)}..{max(heights)}; most common: "
        f"{common}"
    )


def _histogram(counts: Counter) -> list[str]:
    total = sum(counts.values())
    lines = [f"  {key}: {n} ({100 * n / total:.2f} %)" for key, n in counts.most_common(TOP_VALUES)]
    rest = len(counts) - TOP_VALUES
    if rest > 0:
        pixels = total - sum(n for _, n in counts.most_common(TOP_VALUES))
        lines.append(f"  ... {rest} other values: {pixels} ({100 * pixels / total:.2f} %)")
    return lines


def _read_mask(path: Path) -> tuple[str, np.ndarray]:
    """(PIL mode, raw pixels upright: (H, W) grey or (H, W, 3) RGB when channels differ)."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            image = ImageOps.exif_transpose(image)
            if image.mode == "1":
                image = image.convert("L")
            if image.mode in ("LA", "PA"):
                image = image.getchannel(0)
            if image.mode in COLOUR_MODES:
                raw = np.asarray(image.convert("RGB"))
            else:
                raw = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise FussbenchError(f"{path}: not a readable mask image ({error})") from error
    if raw.ndim == 3 and (raw == raw[..., :1]).all():
        raw = raw[..., 0]
    return mode, raw


def suggest(
    values: Counter, colours: Counter, class_names: Sequence[str], has_masks: bool
) -> dict[str, object]:
    """The ``folder:`` params that read masks holding ``values`` (grey) or ``colours``.

    ``class_names`` are kept when their number fits; otherwise placeholders are given
    (``class_0``...) for the user to rename.
    """

    def names(count: int) -> list[str]:
        if len(class_names) == count:
            return list(class_names)
        if count == 2:
            return ["background", "foreground"]
        return [f"class_{index}" for index in range(count)]

    if not has_masks:
        return {"masks": None, "class_names": names(max(len(class_names), 2))}
    if colours:
        palette = [list(colour) for colour, _ in colours.most_common()]
        return {"class_names": names(len(palette)), "mask_mode": "palette", "palette": palette}
    found = sorted(values)
    total = sum(values.values())
    dominant = [v for v in found if values[v] >= DOMINANT_SHARE * total]
    if set(found) <= {0, 1, 255} and len(found) <= 2:
        return {
            "class_names": names(2),
            "mask_mode": "exact",
            "label_values": None,
            "ignore_index": None,
        }
    if len(dominant) == len(found) and len(found) <= MAX_EXACT_VALUES:
        return {
            "class_names": names(len(found)),
            "mask_mode": "exact",
            "label_values": [int(v) for v in found],
            "ignore_index": None,
        }
    if len(dominant) <= 2 or len(class_names) == 2:  # soft-edged binary masks
        low, high = (dominant[0], dominant[-1]) if len(dominant) >= 2 else (found[0], found[-1])
        return {
            "class_names": names(2),
            "mask_mode": "threshold",
            "mask_threshold": int((low + high) // 2 + 1),
            "ignore_index": None,
        }
    return {
        "class_names": names(len(dominant)),
        "mask_mode": "nearest",
        "label_values": [int(v) for v in dominant],
        "ignore_index": None,
    }


def inspect_folder(source: FolderSource | None, class_names: Sequence[str] = ()) -> FolderReport:
    """Read every image header and mask of ``source``; suggest and check ``folder:`` params.

    Raises:
        FussbenchError: no ``folder.root`` or no ``images/`` folder.
    """
    contents = scan_folder(source)
    assert source is not None  # scan_folder refuses None
    report = FolderReport(
        root=Path(source.root),
        n_images=len(contents.images),
        n_masks=None if contents.masks is None else len(contents.masks),
        pairs=len(contents.keys),
        unpaired=contents.unpaired,
    )
    for sample in tqdm(contents.samples(), desc="inspect folder", unit="image", disable=None):
        try:
            with Image.open(sample.image) as image:
                report.sizes[ImageOps.exif_transpose(image).size] += 1
        except (OSError, SyntaxError, ValueError) as error:
            report.problems.append(f"{sample.image}: not a readable image ({error})")
        if sample.label is None:
            continue
        try:
            mode, raw = _read_mask(sample.label)
        except FussbenchError as error:
            report.problems.append(str(error))
            continue
        report.mask_modes[mode] += 1
        if raw.ndim == 3:
            flat = raw.reshape(-1, 3)
            unique, counts = np.unique(flat, axis=0, return_counts=True)
            report.colours.update(
                {tuple(int(c) for c in u): int(n) for u, n in zip(unique, counts, strict=True)}
            )
        else:
            unique, counts = np.unique(raw, return_counts=True)
            report.values.update({int(u): int(n) for u, n in zip(unique, counts, strict=True)})
    if report.colours and report.values:
        report.values, report.colours = Counter(), _merged_colours(report)
    report.suggested = {
        "root": str(source.root),
        **({"mask_suffix": source.mask_suffix} if source.mask_suffix else {}),
        **suggest(report.values, report.colours, class_names, contents.masks is not None),
    }
    if contents.masks is not None and not report.problems:
        report.problems = _check(report.suggested, contents.samples())
    return report


def _merged_colours(report: FolderReport) -> Counter:
    """Grey values as colours, when some masks are grey and others colour."""
    merged = Counter(report.colours)
    for value, n in report.values.items():
        merged[(value, value, value)] += n
    return merged


def _check(suggested: dict[str, object], samples: list) -> list[str]:
    """The first problems left when the masks are read with the ``suggested`` params."""
    settings = {
        key: suggested[key]
        for key in ("class_names", "label_values", "ignore_index", "mask_mode", "palette")
        if key in suggested
    }
    if "mask_threshold" in suggested:
        settings["mask_threshold"] = suggested["mask_threshold"]
    try:
        spec = FolderDataset(**settings)
    except FussbenchError as error:
        return [str(error)]
    return check_samples(spec, samples)[:MAX_LISTED]
