"""``fussbench bench`` (not a DVC stage): feature-caching throughput, the seconds of one
local round on cached features against recomputed ones, and local training's speed against
the CPU's matrix-product rate; with ``--scale``, memory and time of a round against the
number of cached images (:mod:`fussbench.benchmarks.speed`)."""

from __future__ import annotations

from pathlib import Path

from fussbench.atomic import write_json
from fussbench.benchmarks.speed import scale_record, speed_benchmark
from fussbench.errors import FussbenchError
from fussbench.params import Params


def run(params: Params, images: int, out: Path | None) -> dict[str, object]:
    """Time the first ``images`` training images of the setup's dataset; the timings are
    written to ``out`` (JSON) when given, and returned."""
    result = speed_benchmark(params, images)
    if out is not None:
        write_json(out, result)
    return result


def run_scale(params: Params, images: str, out: Path | None) -> dict[str, object]:
    """One round on synthetic caches of each size in ``images`` (comma-separated); the
    result is written to ``out`` (JSON) when given, and returned."""
    try:
        sizes = [int(size) for size in images.split(",") if size.strip()]
    except ValueError:
        raise FussbenchError(
            f"--scale-images must be comma-separated integers, got '{images}'"
        ) from None
    result = scale_record(params, sizes)
    if out is not None:
        write_json(out, result)
    return result
