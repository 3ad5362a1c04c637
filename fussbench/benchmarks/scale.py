"""Memory and time of one local round against the number of cached images.

For each N, a synthetic cache of lite0-sized maps (:mod:`fussbench.benchmarks.synthetic_cache`)
is written to a scratch folder, one round is run in a fresh process
(:mod:`fussbench.benchmarks.scale_round`), and the cache is deleted before the next N.
Streaming from the memory-mapped cache should keep the peak RSS flat in N, and a round's
time should follow its steps, not N.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fussbench.benchmarks.synthetic_cache import LITE0_SHAPE, cache_nbytes, write_synthetic_cache
from fussbench.errors import FussbenchError
from fussbench.model.config import TrainConfig

SCALE_IMAGES = (1000, 5000, 20000)


def _check_disk(scratch: Path, images: int) -> None:
    need = cache_nbytes(images)
    free = shutil.disk_usage(scratch).free
    if need > free:
        raise FussbenchError(
            f"a synthetic cache of {images} images needs {need / 1e9:.1f} GB and {scratch} has "
            f"{free / 1e9:.1f} GB free; pass fewer --scale-images or set TMPDIR to a larger disk"
        )


def scale_benchmark(
    images: list[int],
    config: TrainConfig,
    dim: int,
    n_clusters: int,
    seed: int,
    threads: int,
    scratch: Path | None = None,
) -> list[dict[str, float]]:
    """One round per cache size in ``images``; returns one entry per size:
    ``{"images", "peak_rss_mb", "round_s", "round_cpu_s", "neighbours_s", "local_steps"}``.

    Raises:
        FussbenchError: a size below 2, or a cache that would not fit in ``scratch``.
    """
    if not images or min(images) < 2:
        raise FussbenchError(f"--scale-images must be sizes of at least 2, got {images}")
    settings = json.dumps(
        {
            "train": dataclasses.asdict(config),
            "dim": dim,
            "n_clusters": n_clusters,
            "seed": seed,
            "threads": threads,
        }
    )
    results = []
    with tempfile.TemporaryDirectory(dir=scratch, prefix="fussbench-scale-") as folder:
        for count in images:
            _check_disk(Path(folder), count)
            cache = Path(folder) / f"n{count}"
            write_synthetic_cache(cache, count, LITE0_SHAPE, seed)
            child = subprocess.run(
                [sys.executable, "-m", "fussbench.benchmarks.scale_round", str(cache), settings],
                capture_output=True,
                text=True,
                check=False,
            )
            shutil.rmtree(cache)
            if child.returncode != 0:
                raise FussbenchError(
                    f"the round on {count} synthetic images failed: {child.stderr.strip()[-500:]}"
                )
            results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    return results
