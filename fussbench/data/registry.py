"""The datasets fussbench knows, by the name ``params.yaml`` uses.

A dataset is one :class:`~fussbench.data.samples.DatasetSpec` subclass (its name, class
names, colours, splits and evaluation split, how its files pair up and how its labels
decode) and one :func:`register_dataset` call. One with its own public source also has a
provider in :data:`fussbench.data.download.PROVIDERS`; without one it is copied from
``download.mirror/<name>``.

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

DATASETS: dict[str, type[DatasetSpec]] = {}
"""The registry: dataset name -> spec class, in registration order."""


def register_dataset(spec: type[DatasetSpec]) -> type[DatasetSpec]:
    """Add ``spec`` under ``spec.name`` and return it (usable as a class decorator).

    Raises:
        FussbenchError: the name is taken.
    """
    if spec.name in DATASETS:
        raise FussbenchError(f"dataset '{spec.name}' is already registered")
    DATASETS[spec.name] = spec
    return spec


def unregister_dataset(name: str) -> None:
    """Remove ``name`` from the registry (for tests that register a toy dataset)."""
    DATASETS.pop(name, None)


for _builtin in (CamVid, MagneticTile, Cityscapes, CocoStuff27, FolderDataset):
    register_dataset(_builtin)


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
