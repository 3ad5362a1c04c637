"""Import a user's ``images/`` + ``masks/`` folder as the ``folder`` dataset, split into train
and test, in the layout :class:`~fussbench.data.folder.FolderDataset` reads."""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fussbench.data.folder import IMAGE_SUFFIXES, MASK_SUFFIXES, index_files
from fussbench.data.validate import format_problems
from fussbench.errors import FussbenchError

SPLIT_SEED = 0
"""Seed of the permutation that picks the test pairs from ``folder.test_fraction``."""

LAYOUT = "{train,test}/images/<name>.<ext> and {train,test}/masks/<name>.<ext>"


@dataclass(frozen=True)
class FolderSource:
    """Where the ``folder`` dataset comes from (params ``folder.*``).

    Attributes:
        root: holds ``images/`` and ``masks/`` (subfolders allowed; a mask has its image's
            relative path and name, with a lossless suffix).
        split_file: a text file listing the test pairs, one name per line (the relative
            path without suffix, e.g. ``lineA/0001``); ``None``: use ``test_fraction``.
        test_fraction: share of the pairs, picked by a permutation seeded with
            :data:`SPLIT_SEED`, that form the test split.
    """

    root: Path
    split_file: Path | None = None
    test_fraction: float = 0.2


def import_folder(source: FolderSource | None, tmp: Path) -> dict[str, object]:
    """Copy the pairs of ``source`` into ``tmp/<split>/{images,masks}/``.

    Returns:
        The origin fields of ``SOURCE.json``: the folder and how it was split.

    Raises:
        FussbenchError: no ``folder.root``, missing folders, unmatched images or masks, or a
            bad split; each names the file or param and the fix.
    """
    if source is None:
        raise FussbenchError(
            "folder.root is not set; set it in params.yaml to a folder holding images/ and masks/"
        )
    root = Path(source.root)
    if not root.is_dir():
        raise FussbenchError(f"folder.root={root}: no such folder; set folder.root in params.yaml")
    images = index_files(root / "images", IMAGE_SUFFIXES, "images")
    masks = index_files(root / "masks", MASK_SUFFIXES, "masks")
    problems = [f"{images[key]}: image has no mask" for key in sorted(images.keys() - masks)]
    problems += [f"{masks[key]}: mask has no image" for key in sorted(masks.keys() - images)]
    if problems:
        header = (
            f"folder.root={root}: {len(problems)} unmatched file(s); every images/<name>.<ext> "
            f"needs masks/<name>.<{'|'.join(suffix[1:] for suffix in MASK_SUFFIXES)}>"
        )
        raise FussbenchError(format_problems(header, problems))
    keys = sorted(images)
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
        for kind, path in (("images", images[key]), ("masks", masks[key])):
            target = tmp / split / kind / (key + path.suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return {"obtained_from": "folder", "location": str(root), "split": rule}


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
