"""``fussbench bench --scale``: synthetic caches in the real format, one round per size in
a fresh process, and a clear refusal when the scratch disk is too small."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fussbench.benchmarks import scale as scale_module
from fussbench.benchmarks.scale import scale_benchmark
from fussbench.benchmarks.synthetic_cache import FINGERPRINT, cache_nbytes, write_synthetic_cache
from fussbench.errors import FussbenchError
from fussbench.features.cache import open_split
from fussbench.model.config import CorrespondenceWeights, TrainConfig

CONFIG = TrainConfig(
    local_steps=2,
    batch_size=2,
    lr_head=1e-3,
    lr_centroids=1e-3,
    feature_samples=3,
    knn_k=2,
    n_negatives=1,
    dropout=0.1,
    weights=CorrespondenceWeights(1.0, 1.0, 1.0, 0.1, 0.1, 0.1),
)


def test_synthetic_cache_opens_like_a_real_one(tmp_path: Path) -> None:
    write_synthetic_cache(tmp_path / "c", 70, shape=(6, 3, 4), chunk=16)
    split = open_split(tmp_path / "c", FINGERPRINT)
    assert split.features.shape == (70, 6, 3, 4) and split.features.dtype == np.float16
    assert isinstance(split.features, np.memmap)
    assert split.pooled.shape == (70, 6) and split.labels.shape == (70, 3, 4)
    assert np.array_equal(split.features[16:32], split.features[:16])  # a repeated block
    assert np.isfinite(split.features[69]).all() and np.abs(split.features[69]).sum() > 0
    on_disk = sum(path.stat().st_size for path in (tmp_path / "c").glob("*.npy"))
    assert abs(on_disk - cache_nbytes(70, (6, 3, 4))) < 1024  # .npy headers only


def test_scale_runs_one_round_per_size_in_a_fresh_process(tmp_path: Path) -> None:
    results = scale_benchmark(
        [12, 30], CONFIG, dim=4, n_clusters=3, seed=0, threads=1, scratch=tmp_path
    )
    assert [entry["images"] for entry in results] == [12, 30]
    for entry in results:
        assert entry["local_steps"] == 2 and entry["peak_rss_mb"] > 50
        assert entry["round_s"] > 0 and entry["round_cpu_s"] > 0
    assert list(tmp_path.iterdir()) == []  # every cache deleted


def test_scale_refuses_a_cache_that_will_not_fit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(scale_module, "cache_nbytes", lambda images: 10**15)
    with pytest.raises(FussbenchError, match=r"needs 1000000\.0 GB .* fewer --scale-images"):
        scale_benchmark([10], CONFIG, dim=4, n_clusters=3, seed=0, threads=1, scratch=tmp_path)
    with pytest.raises(FussbenchError, match="at least 2"):
        scale_benchmark([1], CONFIG, dim=4, n_clusters=3, seed=0, threads=1, scratch=tmp_path)


@pytest.mark.parametrize(("value", "expected"), [("auto", 11), ("null", 11), ("16", 16)])
def test_bench_times_auto_and_null_at_the_number_of_classes(value: str, expected: int) -> None:
    from fussbench.benchmarks.speed import timed_clusters
    from fussbench.params import load_params

    params = load_params(
        Path("params.yaml"), [f"model.n_clusters={value}", "aggregator=fedcc_kmeans"]
    )
    assert timed_clusters(params, params.dataset_spec()) == expected
