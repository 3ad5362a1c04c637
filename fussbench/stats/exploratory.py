"""The exploratory family: every comparison of :func:`~fussbench.stats.comparisons.
comparisons` that is not a primary hypothesis, two-sided, in two pairings.

``seeds`` pairs the final mIoU of the seeds both methods ran; ``images`` pairs each
evaluation image's mIoU averaged over those seeds (images without labelled pixels, whose
mIoU is NaN, left out). Holm's correction runs over the rows of one setup, pairing and test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fussbench.stats.comparisons import comparisons
from fussbench.stats.inputs import ImageReader, check_same_images, images_csv
from fussbench.stats.paired_rows import EXPLORATORY, final_miou, paired_test_rows
from fussbench.stats.tests import TWO_SIDED, holm

PAIRINGS = ("seeds", "images")
"""The pairings, in the order of the rows."""


def _method_images(
    read: ImageReader, runs_dir: Path, setup: str, method: str, seeds: list[int]
) -> tuple[Path, pd.Series]:
    """The first seed's ``images.csv`` and each image's mIoU averaged over ``seeds``.

    ``seeds`` is non-empty; the Series has shape (n_images,), indexed by image name.
    """
    paths = [images_csv(runs_dir, setup, method, seed) for seed in seeds]
    tables = [read(path) for path in paths]
    for path, table in zip(paths[1:], tables[1:], strict=True):
        check_same_images(paths[0], tables[0].index, path, table.index)
    return paths[0], pd.concat(tables, axis=1).mean(axis=1)


def _pairs(
    read: ImageReader,
    runs_dir: Path,
    setup: str,
    miou: pd.DataFrame,
    pair: tuple[str, str],
    pairing: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Paired mIoU of ``pair`` = (a, b), each of shape (n,), under ``pairing``.

    ``miou`` is the setup's final mIoU, seeds × methods, NaN where a run is not ok. Images
    whose mIoU is NaN (no labelled pixels) are left out of the ``images`` pairing.
    """
    both = miou[list(pair)].dropna()
    if pairing == "seeds":
        return both[pair[0]].to_numpy(), both[pair[1]].to_numpy()
    seeds = [int(seed) for seed in both.index]
    if not seeds:
        return np.empty(0), np.empty(0)
    path_a, images_a = _method_images(read, runs_dir, setup, pair[0], seeds)
    path_b, images_b = _method_images(read, runs_dir, setup, pair[1], seeds)
    check_same_images(path_a, images_a.index, path_b, images_b.index)
    paired = pd.concat([images_a, images_b.reindex(images_a.index)], axis=1).dropna()
    return paired.iloc[:, 0].to_numpy(), paired.iloc[:, 1].to_numpy()


def exploratory_rows(
    read: ImageReader,
    runs_dir: Path,
    ok: pd.DataFrame,
    n_resamples: int,
    seed: int,
    primary_pairs: set[frozenset[str]],
) -> list[dict[str, object]]:
    """Every exploratory comparison × pairing × test of one setup; ``ok`` is its ok runs.

    Pairs in ``primary_pairs`` are primary hypotheses of this setup and are left out of the
    seed pairing (the image pairing never tests a primary hypothesis).
    """
    first = ok.iloc[0]
    where = {"dataset": first.dataset, "partition": first.partition, "setup": first.setup}
    family = {"family": EXPLORATORY, "hypothesis": "", "alternative": TWO_SIDED, "verdict": ""}
    miou = final_miou(ok)
    rows = []
    for pairing in PAIRINGS:
        for pair in comparisons(list(ok["method"])):
            if pairing == "seeds" and frozenset(pair) in primary_pairs:
                continue
            a, b = _pairs(read, runs_dir, first.setup, miou, pair, pairing)
            names = {"method_a": pair[0], "method_b": pair[1], "pairing": pairing}
            rows.extend(
                {**family, **where, **names, **row}
                for row in paired_test_rows(a, b, n_resamples, seed, TWO_SIDED)
            )
    return rows


def with_holm(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``p_holm``: Holm over the rows of the same setup, pairing and test."""
    frame = frame.copy()
    frame["p_holm"] = np.nan
    for _, group in frame.groupby(["setup", "pairing", "test"], sort=False):
        frame.loc[group.index, "p_holm"] = holm(group["p_value"].to_numpy(dtype=np.float64))
    return frame
