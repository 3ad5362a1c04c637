"""Read what the report draws from a runs tree (``<runs>/<setup>/<method>/seed<k>/``) and
from a partitions folder (``<partitions>/<setup>/``).

Only finished runs count: a run is finished once its ``metrics.json`` exists, as in
:func:`fussbench.reporting.results.collect_runs`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fussbench.methods import parse_method
from fussbench.paths import run_dir


def read_metrics(runs: Path, setup: str, method: str, seed: int) -> dict | None:
    """A finished run's ``metrics.json``, or None when the run has not finished."""
    path = run_dir(runs, setup, method, seed) / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_curves(
    runs: Path, setup: str, methods: Sequence[str], seeds: Sequence[int]
) -> pd.DataFrame:
    """Global mIoU after each round of every finished run that has a ``rounds.csv``
    (reference methods have none): columns method, seed, round, miou.

    A one-shot method's single round (registry entry ``one_shot``) is placed at its budget's
    last round R (``rounds`` in its ``metrics.json``): its clients have trained R rounds'
    worth of local steps before its only merge."""
    frames = []
    for method in methods:
        one_shot = parse_method(method).spec.one_shot
        for seed in seeds:
            folder = run_dir(runs, setup, method, seed)
            if (folder / "metrics.json").is_file() and (folder / "rounds.csv").is_file():
                rounds = pd.read_csv(folder / "rounds.csv", usecols=["round", "miou"])
                if one_shot:
                    rounds["round"] = read_metrics(runs, setup, method, seed)["rounds"]
                frames.append(rounds.assign(method=method, seed=seed))
    columns = ["method", "seed", "round", "miou"]
    return pd.concat(frames)[columns] if frames else pd.DataFrame(columns=columns)


def read_centroid_distances(
    runs: Path, setup: str, methods: Sequence[str], seed: int
) -> dict[str, np.ndarray]:
    """Pairwise cosine distances (K, K) of the first model's final centroids (the global
    model of a federated run), per method whose run at ``seed`` finished with them."""
    found = {}
    for method in methods:
        metrics = read_metrics(runs, setup, method, seed)
        centroids = metrics["models"][0].get("centroids") if metrics else None
        if centroids:
            found[method] = np.asarray(centroids["pairwise_cosine_distance"], dtype=float)
    return found


def read_communication(
    runs: Path, setups: Sequence[str], methods: Sequence[str], seeds: Sequence[int]
) -> pd.DataFrame:
    """Traffic of every finished run that reports it: columns setup, method, seed,
    bytes_up, bytes_down (per client per round), backbone_bytes, backbone."""
    rows = []
    for setup in setups:
        for method in methods:
            for seed in seeds:
                metrics = read_metrics(runs, setup, method, seed)
                traffic = metrics.get("communication") if metrics else None
                if traffic:
                    rows.append(
                        {
                            "setup": setup,
                            "method": method,
                            "seed": seed,
                            "bytes_up": traffic["bytes_up_per_client_round"],
                            "bytes_down": traffic["bytes_down_per_client_round"],
                            "backbone_bytes": traffic["backbone_bytes"],
                            "backbone": metrics.get("backbone"),
                        }
                    )
    columns = ["setup", "method", "seed", "bytes_up", "bytes_down", "backbone_bytes", "backbone"]
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class PartitionSummary:
    """A partition's per-client class counts and its label skew.

    Attributes:
        dataset: the dataset partitioned.
        class_names: column names of the class counts, in class order.
        counts: one row per client: client, n_images, a pixel count per class,
            js_divergence.
        js_mean: mean over clients of the JS divergence to the pooled distribution;
            ``None`` when no pixel is labelled (a folder without masks).
        feature_skew: mean over clients of the cosine distance of the client's mean
            pooled feature to the pooled mean, as the partition stage recorded it (methods
            that read the features: ``embedding_dirichlet``); ``None`` otherwise.
    """

    dataset: str
    class_names: tuple[str, ...]
    counts: pd.DataFrame
    js_mean: float | None
    feature_skew: float | None = None


def read_partition(partitions: Path, setup: str) -> PartitionSummary | None:
    """The summary of ``<partitions>/<setup>/``, or None when it has not been written."""
    folder = partitions / setup
    if not (folder / "summary.csv").is_file() or not (folder / "partition.json").is_file():
        return None
    counts = pd.read_csv(folder / "summary.csv")
    info = json.loads((folder / "partition.json").read_text(encoding="utf-8"))
    class_names = tuple(
        c for c in counts.columns if c not in {"client", "n_images", "js_divergence"}
    )
    return PartitionSummary(
        dataset=info["meta"]["dataset"],
        class_names=class_names,
        counts=counts,
        js_mean=info["label_skew"]["js_mean"],
        feature_skew=(info.get("feature_skew") or {}).get("cosine_mean"),
    )
