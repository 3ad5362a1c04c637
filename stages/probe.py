"""``fussbench probe`` (not a DVC stage): the frozen-feature ceiling diagnostic
(:mod:`fussbench.diagnostics.probe`), printed and optionally written as JSON."""

from __future__ import annotations

from pathlib import Path

from fussbench.atomic import write_json
from fussbench.diagnostics.probe import probe_record
from fussbench.params import Params


def run(
    params: Params,
    dataset: str | None,
    cache: Path | None,
    image_size: tuple[int, int] | None,
    regularisation: float,
    out: Path | None,
) -> dict[str, object]:
    """Probe, k-means and grid ceiling of ``dataset`` (default: the setup's) at the
    backbone of ``params``, its features read from ``data/features`` or built under
    ``cache`` (at ``image_size``, height and width, when given); the record is written to
    ``out`` when given, and returned."""
    record = probe_record(params, dataset, cache, image_size, regularisation)
    if out is not None:
        write_json(out, record)
    return record
