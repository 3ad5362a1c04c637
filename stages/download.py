"""Stage ``download``: lay the raw dataset out under ``data/raw/<dataset>``."""

from __future__ import annotations

import json
from pathlib import Path

from fussbench.data.download import LocalSources, download_dataset
from fussbench.data.folder_import import FolderSource
from fussbench.params import Params
from fussbench.paths import raw_dir


def local_sources(params: Params) -> LocalSources:
    """The local copies of Cityscapes, COCO-Stuff-27 and the ``folder`` dataset in params."""
    download, folder = params.download, params.folder
    return LocalSources(
        cityscapes_zips=Path(download.cityscapes_zips) if download.cityscapes_zips else None,
        cocostuff_files=Path(download.cocostuff_files) if download.cocostuff_files else None,
        folder=FolderSource(
            root=Path(folder.root),
            split_file=Path(folder.split_file) if folder.split_file else None,
            test_fraction=folder.test_fraction,
            masks=folder.masks,
            mask_suffix=folder.mask_suffix,
        )
        if folder.root
        else None,
    )


def run(params: Params, dataset: str | None = None, mirror: Path | None = None) -> Path:
    """Download (or copy from the mirror or a local copy) and validate a dataset.

    Args:
        dataset: defaults to the main setup's dataset.
        mirror: overrides ``download.mirror`` from params.
    """
    spec = params.dataset_spec(dataset)
    if mirror is None and params.download.mirror:
        mirror = Path(params.download.mirror)
    root = download_dataset(spec, raw_dir(spec.name), mirror, local=local_sources(params))
    if spec.name == "folder" and json.loads((root / "SOURCE.json").read_text())["masks"] is None:
        print(
            f"{root}: no masks (folder.masks), so the images are unlabelled: runs will write "
            "predicted masks and cluster sizes instead of mIoU",
            flush=True,
        )
    return root
