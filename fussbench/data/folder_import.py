"""Import a user's ``images/`` (+ ``masks/``) folder as the ``folder`` dataset, split into
train and test, in the layout :class:`~fussbench.data.folder.FolderDataset` reads. Every file
is checked where the user keeps it, so errors name it there."""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fussbench.data.folder import IMAGE_SUFFIXES, MASK_SUFFIXES, group_of, index_files
from fussbench.data.samples import DatasetSpec, Sample
from fussbench.data.validate import check_samples, format_problems
from fussbench.errors import FussbenchError

SPLIT_SEED = 0
"""Seed of the permutation that picks the test pairs from ``folder.test_fraction``."""

LAYOUT = "{train,test}/images/<name>.<ext> and {train,test}/masks/<name>.<ext>"


@dataclass(frozen=True)
class FolderSource:
    """Where the ``folder`` dataset comes from (params ``folder.*``).

    Attributes:
        root: holds ``images/`` and, unless unlabelled, the masks folder (subfolders
            allowed; a mask has its image's relative path and name, plus ``mask_suffix``,
            with a lossless suffix).
        split_file: a text file listing the test pairs, one name per line (the relative
            path without suffix, e.g. ``lineA/0001``); ``None``: use ``test_fraction``.
        test_fraction: share of the pairs, picked by a permutation seeded with
            :data:`SPLIT_SEED`, that form the test split.
        masks: the masks folder relative to ``root``; ``None`` (or a folder that does not
            exist): the images are unlabelled.
        mask_suffix: what a mask's name adds to its image's, e.g. ``"_mask"`` for
            ``masks/0001_mask.png`` beside ``images/0001.jpg``.
    """

    root: Path
    split_file: Path | None = None
    test_fraction: float = 0.2
    masks: str | None = "masks"
    mask_suffix: str = ""


@dataclass(frozen=True)
class FolderContents:
    """What a user's folder holds.

    Attributes:
        images: key -> image path (key: the path below ``images/`` without suffix).
        masks: key -> mask path (the mask suffix removed from the key); ``None`` when the
            folder has no masks.
        unpaired: ``"<path>: image has no mask"`` / ``"<path>: mask has no image"`` lines.
    """

    images: dict[str, Path]
    masks: dict[str, Path] | None
    unpaired: list[str]

    @property
    def keys(self) -> list[str]:
        """The keys of the usable samples, sorted: the pairs, or every image without masks."""
        if self.masks is None:
            return sorted(self.images)
        return sorted(self.images.keys() & self.masks.keys())

    def samples(self) -> list[Sample]:
        """The usable samples, at their place in the user's folder."""
        return [
            Sample(
                name=key,
                image=self.images[key],
                label=self.masks[key] if self.masks is not None else None,
                group=group_of(key),
            )
            for key in self.keys
        ]


def scan_folder(source: FolderSource | None) -> FolderContents:
    """Find the images and masks of ``source`` and pair them, without reading any.

    Raises:
        FussbenchError: no ``folder.root``, or no ``images/`` folder, naming the param.
    """
    if source is None:
        raise FussbenchError(
            "folder.root is not set; set it in params.yaml to a folder holding images/ (and masks/)"
        )
    root = Path(source.root)
    if not root.is_dir():
        raise FussbenchError(f"folder.root={root}: no such folder; set folder.root in params.yaml")
    images = index_files(root / "images", IMAGE_SUFFIXES, "images")
    if source.masks is None or not (root / source.masks).is_dir():
        return FolderContents(images, None, [])
    found = index_files(root / source.masks, MASK_SUFFIXES, source.masks)
    suffix = source.mask_suffix
    masks = {
        key[: len(key) - len(suffix)] if suffix else key: path
        for key, path in found.items()
        if key.endswith(suffix)
    }
    unpaired = [f"{images[key]}: image has no mask" for key in sorted(images.keys() - masks)]
    unpaired += [f"{masks[key]}: mask has no image" for key in sorted(masks.keys() - images)]
    unpaired += [
        f"{path}: mask name does not end in folder.mask_suffix '{suffix}'"
        for key, path in sorted(found.items())
        if not key.endswith(suffix)
    ]
    return FolderContents(images, masks, unpaired)


def import_folder(source: FolderSource | None, tmp: Path, spec: DatasetSpec) -> dict[str, object]:
    """Check the pairs of ``source`` where they are, then copy them into
    ``tmp/<split>/{images,masks}/`` (masks named like their images, without the suffix).

    Returns:
        The origin fields of ``SOURCE.json``: the folder, its masks folder (``None``:
        unlabelled) and how it was split.

    Raises:
        FussbenchError: no ``folder.root``, missing folders, unmatched images or masks,
            unsound files (each named at its place under ``folder.root``) or a bad split.
    """
    contents = scan_folder(source)
    assert source is not None
    root = Path(source.root)
    if contents.unpaired:
        header = (
            f"folder.root={root}: {len(contents.unpaired)} unmatched file(s); every "
            f"images/<name>.<ext> needs {source.masks}/<name>{source.mask_suffix}."
            f"<{'|'.join(suffix[1:] for suffix in MASK_SUFFIXES)}>"
        )
        raise FussbenchError(format_problems(header, contents.unpaired))
    problems = check_samples(spec, contents.samples())
    if problems:
        header = f"folder.root={root}: {len(problems)} problem(s); {spec.fix_hint}"
        raise FussbenchError(format_problems(header, problems))
    keys = contents.keys
    if source.split_file is not None:
        test, rule = _listed_test(Path(source.split_file), keys), f"split_file {source.split_file}"
    else:
        test = _random_test(keys, source.test_fraction)
        rule = f"test_fraction {source.test_fraction}, seed {SPLIT_SEED}"
    if not test or len(test) == len(keys):
        raise FussbenchError(
            f"folder.root={root}: the split puts {len(test)} of {len(keys)} pairs in test; both "
            "train and test need pairs (fix folder.split_file or folder.test_fraction)"
        )
    for key in tqdm(keys, desc="copy folder", unit="pair", disable=None):
        split = "test" if key in test else "train"
        files = [("images", contents.images[key])]
        if contents.masks is not None:
            files.append(("masks", contents.masks[key]))
        for kind, path in files:
            target = tmp / split / kind / (key + path.suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    masks = source.masks if contents.masks is not None else None
    return {"obtained_from": "folder", "location": str(root), "masks": masks, "split": rule}


def _listed_test(split_file: Path, keys: list[str]) -> set[str]:
    """The test names listed in ``split_file`` (blank lines and ``#`` comments skipped).

    Raises:
        FussbenchError: when the file is unreadable or names a pair that does not exist.
    """
    try:
        lines = split_file.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise FussbenchError(
            f"folder.split_file={split_file}: not readable ({error}); fix the path or set it "
            "to null to use folder.test_fraction"
        ) from error
    names = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    unknown = sorted(names - set(keys))
    if unknown:
        raise FussbenchError(
            f"folder.split_file={split_file}: {len(unknown)} name(s) match no image/mask pair, "
            f"first '{unknown[0]}'; write names as paths below images/ without suffix"
        )
    return names


def _random_test(keys: list[str], fraction: float) -> set[str]:
    """``round(fraction * N)`` of the keys (at least one), picked by a seeded permutation."""
    count = min(max(1, math.floor(fraction * len(keys) + 0.5)), len(keys))
    order = np.random.default_rng(SPLIT_SEED).permutation(len(keys))
    return {keys[index] for index in order[:count]}
