"""Which criterion estimates the number of clusters best: a measurement on Gaussian mixtures.

Run ``python -m fussbench.benchmarks.cluster_count [points]`` (default 800 points per
mixture; about 3 minutes on one core). It draws 63 mixtures with known K (K in {2, 3, 5,
8, 11, 15, 20}, dimension 8 / 32 / 128, separation s in {1, 2, 4}) and prints, for each
criterion, the share of mixtures where the estimate is exact and within ±1, and its time.
:mod:`fussbench.federation.cluster_count` states the result and the choice it led to.

``python -m fussbench.benchmarks.cluster_count --setups camvid_domain tile_quantity``
instead prints each client's estimate on a setup's cached training features (params.yaml
of the working folder, no training, no labels) for pixel-sample seeds 0-2, with the
estimate on all clients' features pooled.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

from fussbench.data.partition import read_partition
from fussbench.features.cache import cache_fingerprint, open_split
from fussbench.federation.cluster_count import client_cluster_count, estimate_cluster_count
from fussbench.params import load_params
from fussbench.paths import features_dir, partition_dir

K_VALUES = (2, 3, 5, 8, 11, 15, 20)
DIMENSIONS = (8, 32, 128)
SEPARATIONS = (1.0, 2.0, 4.0)


def gaussian_mixture(
    n_clusters: int, dim: int, separation: float, n_points: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Points (n_points, dim) from ``n_clusters`` unit-variance Gaussians, and their labels.

    Centres ~ N(0, (3 s)^2 / dim) per coordinate, so two centres are about 4.2 s noise
    standard deviations apart whatever the dimension; cluster shares ~ Dirichlet(5), so
    sizes differ.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)) * 3.0 * separation / np.sqrt(dim)
    shares = rng.dirichlet(np.full(n_clusters, 5.0))
    labels = rng.choice(n_clusters, size=n_points, p=shares)
    return centres[labels] + rng.standard_normal((n_points, dim)), labels


def silhouette_count(points: np.ndarray, k_range: tuple[int, int], seed: int = 0) -> int:
    """The K in ``k_range`` whose k-means partition (3 restarts) has the best silhouette."""
    scores = {
        k: silhouette_score(points, KMeans(k, n_init=3, random_state=seed).fit_predict(points))
        for k in range(k_range[0], k_range[1] + 1)
    }
    return max(scores, key=scores.get)


CRITERIA: dict[str, Callable[[np.ndarray, tuple[int, int]], int]] = {
    "eigengap of a kNN affinity": estimate_cluster_count,
    "silhouette over k-means": silhouette_count,
}


def measure(n_points: int, k_range: tuple[int, int] = (2, 30)) -> dict[str, dict[str, float]]:
    """Exact and ±1 shares and seconds of each criterion over the 63 mixtures."""
    results = {}
    for name, criterion in CRITERIA.items():
        errors, seconds = [], 0.0
        for dim in DIMENSIONS:
            for separation in SEPARATIONS:
                for k in K_VALUES:
                    points, _ = gaussian_mixture(k, dim, separation, n_points, 100 * k + dim)
                    started = time.perf_counter()
                    errors.append(criterion(points, k_range) - k)
                    seconds += time.perf_counter() - started
        errors = np.abs(errors)
        results[name] = {
            "exact": float(np.mean(errors == 0)),
            "within_1": float(np.mean(errors <= 1)),
            "seconds": seconds,
        }
    return results


def setup_estimates(setup: str, seeds: Sequence[int] = (0, 1, 2)) -> list[str]:
    """One line per seed: each client's K on ``setup``'s cached training features, and K
    of all clients' features pooled (k_range of params.yaml)."""
    params = load_params("params.yaml", [f"setup={setup}"])
    spec = params.dataset_spec()
    split = spec.train_split
    train = open_split(
        features_dir(spec.name, params.backbone) / split,
        cache_fingerprint(spec, split, params.backbone_config()),
    )
    clients = [train.rows(names) for names in read_partition(partition_dir(setup))]
    k_range = tuple(params.model.k_range)
    lines = [f"{setup}: {spec.n_classes} classes, clients of {[len(r) for r in clients]} rows"]
    for seed in seeds:
        counts = [client_cluster_count(train.features, rows, k_range, seed) for rows in clients]
        pooled = client_cluster_count(train.features, np.concatenate(clients), k_range, seed)
        lines.append(f"  pixel seed {seed}: clients K = {counts}, pooled K = {pooled}")
    return lines


if __name__ == "__main__":
    threadpool_limits(1)
    if sys.argv[1:2] == ["--setups"]:
        for name in sys.argv[2:]:
            print("\n".join(setup_estimates(name)), flush=True)
        sys.exit(0)
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 800
    for criterion, result in measure(count).items():
        print(
            f"{criterion}: exact {result['exact']:.2f}, within ±1 {result['within_1']:.2f}, "
            f"{result['seconds']:.1f} s"
        )
