"""The datasets fussbench knows, by the name ``params.yaml`` uses.

Some datasets take settings from ``params.yaml`` (``cityscapes.image_size``, the ``folder``
section, ...); :func:`get_dataset` builds a spec from a name and those settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fussbench.data.camvid import CamVid
from fussbench.data.cityscapes import Cityscapes
from fussbench.data.cocostuff import CocoStuff27
from fussbench.data.folder import FolderDataset
from fussbench.data.magnetic_tile import MagneticTile
from fussbench.data.samples import DatasetSpec
from fussbench.errors import FussbenchError

DATASETS: dict[str, type[DatasetSpec]] = {
    spec.name: spec for spec in (CamVid, MagneticTile, Cityscapes, CocoStuff27, FolderDataset)
}


def get_dataset(name: str, settings: Mapping[str, Any] | None = None) -> DatasetSpec:
    """Return the dataset called ``name``, built with ``settings`` (its constructor
    arguments: the dataset's section of params.yaml; None: its defaults).

    Commands build specs through :meth:`fussbench.params.Params.dataset_spec`, which passes
    the dataset's section of the params.

    Raises:
        FussbenchError: listing the valid names when ``name`` is unknown, or naming the param
            when the dataset's settings are invalid.
    """
    if name not in DATASETS:
        raise FussbenchError(f"unknown dataset '{name}'; valid names: {', '.join(DATASETS)}")
    return DATASETS[name](**(settings or {}))
