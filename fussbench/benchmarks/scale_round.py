"""One client's round on a feature cache, measured in a process of its own.

``python -m fussbench.benchmarks.scale_round CACHE_DIR SETTINGS_JSON`` prints one JSON line:
``{"images", "neighbours_s", "round_s", "round_cpu_s", "local_steps", "peak_rss_mb"}``
(``round_cpu_s``: the round's CPU seconds, steadier than wall time on a shared machine).
The peak resident set is this process's own high-water mark (``VmHWM`` of
``/proc/self/status``; not ``getrusage``, whose ``ru_maxrss`` keeps the forking parent's
peak across ``exec``), so each cache size is measured from a fresh interpreter.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from fussbench.benchmarks.synthetic_cache import FINGERPRINT
from fussbench.features.cache import open_split
from fussbench.federation.client import FederatedClient
from fussbench.model.config import CorrespondenceWeights, TrainConfig
from fussbench.model.head import initial_arrays
from fussbench.model.training import ClientData


def measure_round(
    directory: Path, config: TrainConfig, dim: int, n_clusters: int, seed: int
) -> dict[str, float]:
    """Open the cache, build the client (neighbour lists over all its rows), train one
    round of ``config.local_steps`` batches; seconds of each part and the peak RSS."""
    split = open_split(directory, FINGERPRINT)
    started = time.perf_counter()
    data = ClientData.from_cache(split.features, split.pooled, config.knn_k)
    neighbours_s = time.perf_counter() - started
    client = FederatedClient(data, config)
    initial = initial_arrays(data.channels, dim, n_clusters, seed)
    started, cpu_started = time.perf_counter(), time.process_time()
    client.fit(initial, seed)
    round_s = time.perf_counter() - started
    round_cpu_s = time.process_time() - cpu_started
    return {
        "images": data.n_samples,
        "local_steps": config.local_steps,
        "neighbours_s": round(neighbours_s, 2),
        "round_s": round(round_s, 3),
        "round_cpu_s": round(round_cpu_s, 3),
        "peak_rss_mb": round(peak_rss_kb() / 1024, 1),
    }


def peak_rss_kb() -> int:
    """This process's peak resident set size in kB (``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM: peak RSS needs Linux")


def main(directory: str, settings: str) -> None:
    """Entry point of the child process: ``settings`` is a JSON object with ``train``
    (a :class:`TrainConfig` as a dict), ``dim``, ``n_clusters``, ``seed``, ``threads``."""
    values = json.loads(settings)
    train = dict(values["train"])
    config = TrainConfig(weights=CorrespondenceWeights(**train.pop("weights")), **train)
    torch.set_num_threads(values["threads"])
    result = measure_round(
        Path(directory), config, values["dim"], values["n_clusters"], values["seed"]
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
