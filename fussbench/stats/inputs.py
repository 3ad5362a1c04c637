"""What the significance tests read: the finished runs of ``results.csv`` and each run's
per-image mIoU (``images.csv``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from fussbench.errors import FussbenchError
from fussbench.paths import run_dir

RESULTS_NEEDED = ("dataset", "partition", "setup", "method", "seed", "miou", "status")
"""Columns of ``results.csv`` the tests read."""

EXAMPLES = 3
"""How many differing image names an error message shows."""

ImageReader = Callable[[Path], pd.Series]
"""Reads one run's ``images.csv`` (:func:`read_images`, or a cached one)."""


def read_ok_results(path: Path) -> pd.DataFrame:
    """The runs with status ok from ``results.csv``.

    Raises:
        FussbenchError: when the file is missing, lacks a column of :data:`RESULTS_NEEDED`
            or lists a run (setup, method, seed) more than once.
    """
    if not path.is_file():
        raise FussbenchError(f"{path} does not exist: run `fussbench collect` first")
    results = pd.read_csv(path)
    missing = [column for column in RESULTS_NEEDED if column not in results.columns]
    if missing:
        raise FussbenchError(
            f"{path} lacks the columns {missing}: rerun `fussbench collect` to rewrite it"
        )
    ok = results[results["status"] == "ok"]
    duplicated = ok[ok.duplicated(["setup", "method", "seed"])]
    if not duplicated.empty:
        first = duplicated.iloc[0]
        raise FussbenchError(
            f"{path} lists {first.setup}/{first.method}/seed{first.seed} more than once: "
            "rerun `fussbench collect` to rewrite it"
        )
    return ok


def images_csv(runs_dir: Path, setup: str, method: str, seed: int) -> Path:
    """Where a run's per-image mIoU lives."""
    return run_dir(runs_dir, setup, method, seed) / "images.csv"


def read_images(path: Path) -> pd.Series:
    """Per-image mIoU of one run, indexed by image name, shape (n_images,).

    Raises:
        FussbenchError: when the file is missing, its header is not ``image,miou`` or it
            lists an image twice.
    """
    if not path.is_file():
        raise FussbenchError(
            f"{path} does not exist although results.csv lists the run as ok: rerun that "
            "method with `fussbench federate`, or rerun `fussbench collect`"
        )
    table = pd.read_csv(path, dtype={"image": str})
    if list(table.columns) != ["image", "miou"]:
        raise FussbenchError(f"{path} must have the header `image,miou`, not {list(table.columns)}")
    if table["image"].duplicated().any():
        repeated = table.loc[table["image"].duplicated(), "image"].iloc[0]
        raise FussbenchError(f"{path} lists the image {repeated!r} more than once: rerun the run")
    return table.set_index("image")["miou"].astype(np.float64)


def check_same_images(path_a: Path, a: pd.Index, path_b: Path, b: pd.Index) -> None:
    """Raise unless the image names ``a`` (from ``path_a``) and ``b`` (from ``path_b``) match.

    Raises:
        FussbenchError: naming up to :data:`EXAMPLES` images found on one side only.
    """
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    if not only_a and not only_b:
        return
    raise FussbenchError(
        f"{path_a} ({len(a)} images) and {path_b} ({len(b)} images) evaluate different "
        f"images: {len(only_a)} only in the first (e.g. {only_a[:EXAMPLES]}), {len(only_b)} "
        f"only in the second (e.g. {only_b[:EXAMPLES]}); rerun both methods on the same "
        "evaluation split"
    )
