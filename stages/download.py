"""Stage ``download``: lay the raw dataset out under ``data/raw/<dataset>``."""

from __future__ import annotations

from pathlib import Path

from fussbench.data.download import download_dataset
from fussbench.data.registry import get_dataset
from fussbench.params import Params
from stages.paths import raw_dir


def run(params: Params, dataset: str | None = None, mirror: Path | None = None) -> Path:
    """Download (or copy from the mirror) and validate a dataset.

    Args:
        dataset: defaults to the main setup's dataset.
        mirror: overrides ``download.mirror`` from params.
    """
    spec = get_dataset(dataset or params.dataset)
    if mirror is None and params.download.mirror:
        mirror = Path(params.download.mirror)
    return download_dataset(spec.name, raw_dir(spec.name), mirror)
