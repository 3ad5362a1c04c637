"""The datasets fussbench knows, by the name ``params.yaml`` uses."""

from __future__ import annotations

from fussbench.data.camvid import CamVid
from fussbench.data.magnetic_tile import MagneticTile
from fussbench.data.samples import DatasetSpec
from fussbench.errors import FussbenchError

DATASETS: dict[str, type[DatasetSpec]] = {spec.name: spec for spec in (CamVid, MagneticTile)}


def get_dataset(name: str) -> DatasetSpec:
    """Return the dataset called ``name``.

    Raises:
        FussbenchError: listing the valid names when ``name`` is unknown.
    """
    if name not in DATASETS:
        raise FussbenchError(f"unknown dataset '{name}'; valid names: {', '.join(DATASETS)}")
    return DATASETS[name]()
