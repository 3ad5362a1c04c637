"""Command ``inspect``: describe the ``folder`` dataset's source folder without writing."""

from __future__ import annotations

from pathlib import Path

from fussbench.data.folder_import import FolderSource
from fussbench.data.folder_inspect import inspect_folder
from fussbench.errors import FussbenchError
from fussbench.params import Params


def run(params: Params, dataset: str | None = None) -> str:
    """The report of ``folder.root``: pairs, unpaired files, image sizes, the mask values
    and a ``folder:`` params snippet that reads them (see :mod:`fussbench.data.folder_inspect`).

    Raises:
        FussbenchError: for a dataset other than ``folder`` (``fussbench download``
            validates those), or a missing ``folder.root``.
    """
    name = dataset or params.dataset
    if name != "folder":
        raise FussbenchError(
            f"`fussbench inspect` reads your own folder (--dataset folder), not '{name}'; "
            "`fussbench download` checks the downloadable datasets"
        )
    folder = params.folder
    source = (
        FolderSource(Path(folder.root), masks=folder.masks, mask_suffix=folder.mask_suffix)
        if folder.root
        else None
    )
    return inspect_folder(source, folder.class_names).render()
