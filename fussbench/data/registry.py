"""The datasets fussbench knows, by the name ``params.yaml`` uses.

Some datasets take settings from ``params.yaml`` (``cityscapes.image_size``, the ``folder``
section, ...). Every stage receives only a dataset name, so the settings are installed once
per process by :func:`configure_datasets` (``load_params`` does it) and every later
:func:`get_dataset` builds its spec with them.
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

_settings: dict[str, dict[str, Any]] = {}
"""Constructor arguments per dataset name, from :func:`configure_datasets`."""


def configure_datasets(settings: Mapping[str, Mapping[str, Any]]) -> None:
    """Use ``settings[name]`` as the constructor arguments of dataset ``name`` from now on.

    Replaces any earlier settings; a dataset without an entry gets its defaults.

    Raises:
        FussbenchError: for a name that is not a dataset.
    """
    unknown = sorted(set(settings) - set(DATASETS))
    if unknown:
        raise FussbenchError(
            f"settings for unknown dataset '{unknown[0]}'; valid names: {', '.join(DATASETS)}"
        )
    _settings.clear()
    _settings.update({name: dict(values) for name, values in settings.items()})


def get_dataset(name: str) -> DatasetSpec:
    """Return the dataset called ``name``, built with its configured settings.

    Raises:
        FussbenchError: listing the valid names when ``name`` is unknown, or naming the param
            when the dataset's settings are invalid.
    """
    if name not in DATASETS:
        raise FussbenchError(f"unknown dataset '{name}'; valid names: {', '.join(DATASETS)}")
    return DATASETS[name](**_settings.get(name, {}))
