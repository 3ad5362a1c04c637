"""The label-free partition ``embedding_dirichlet``: k-means clusters of the pooled features
split by a Dirichlet, the embeddings read from the feature cache, and the stage on a folder
without masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_workspace import TINY, invoke, make_workspace
from PIL import Image

from fussbench.data.embedding_partition import embedding_clusters
from fussbench.data.partition import partition_indices
from fussbench.errors import FussbenchError
from fussbench.features.cache import FeatureSplit
from fussbench.features.config import BackboneConfig
from fussbench.features.embeddings import image_embeddings, open_training_features
from fussbench.params import load_params

N_IMAGES = 100


def two_blobs(n_images: int = N_IMAGES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n_images, 8) unit embeddings in two well-separated blobs (image i in blob i % 2),
    and the (n_images,) blob of each."""
    rng = np.random.default_rng(seed)
    blob = np.arange(n_images) % 2
    points = np.eye(8)[blob] + 0.05 * rng.standard_normal((n_images, 8))
    return points / np.linalg.norm(points, axis=1, keepdims=True), blob


def embedding_split(embeddings: np.ndarray, seed: int, **overrides) -> list[np.ndarray]:
    """``embedding_dirichlet`` on unlabelled images (every histogram empty), 2 clients."""
    settings = {
        "groups": ["g"] * len(embeddings),
        "histograms": np.zeros((len(embeddings), 3), np.int64),
        "n_clients": 2,
        "alpha": 0.05,
        "shares": None,
        "seed": seed,
        "embeddings": embeddings,
        "n_embedding_clusters": 2,
    } | overrides
    return partition_indices("embedding_dirichlet", **settings)


# --------------------------------------------------------------------------- clustering


def test_kmeans_finds_the_two_blobs() -> None:
    embeddings, blob = two_blobs()
    clusters = embedding_clusters(embeddings, 2, seed=0)
    assert clusters.dtype == np.int64 and clusters.shape == (N_IMAGES,)
    assert np.array_equal(clusters, blob) or np.array_equal(clusters, 1 - blob)


def test_more_clusters_than_images_names_the_param() -> None:
    with pytest.raises(FussbenchError, match=r"partition\.embedding_clusters=5 exceeds the 4"):
        embedding_clusters(two_blobs(4)[0], 5, seed=0)


# --------------------------------------------------------------------------- the split


@pytest.mark.parametrize("seed", range(6))
def test_small_alpha_gives_each_blob_to_one_client(seed: int) -> None:
    embeddings, blob = two_blobs()
    clients = embedding_split(embeddings, seed)
    counts = np.array([np.bincount(blob[rows], minlength=2) for rows in clients])  # (K, 2)
    assert (counts.max(axis=0) >= 0.95 * counts.sum(axis=0)).all()


def test_small_alpha_makes_each_client_one_blob_without_labels() -> None:
    embeddings, blob = two_blobs()
    clients = embedding_split(embeddings, seed=0)  # seed 0 draws the blobs to two clients
    counts = np.array([np.bincount(blob[rows], minlength=2) for rows in clients])
    assert (counts.max(axis=1) >= 0.95 * counts.sum(axis=1)).all()
    assert sorted(counts.argmax(axis=1)) == [0, 1]
    # the label Dirichlet puts all unlabelled images in one bucket: no blob skew to draw
    by_labels = partition_indices(
        "dirichlet",
        groups=["g"] * N_IMAGES,
        histograms=np.zeros((N_IMAGES, 3)),
        n_clients=2,
        alpha=1.0,
        shares=None,
        seed=0,
    )
    assert all(set(blob[rows]) == {0, 1} for rows in by_labels)


def test_same_seed_same_partition_and_another_seed_another() -> None:
    embeddings, _ = two_blobs()
    first = embedding_split(embeddings, seed=3, alpha=1.0)
    again = embedding_split(embeddings, seed=3, alpha=1.0)
    other = embedding_split(embeddings, seed=4, alpha=1.0)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_an_empty_client_names_the_params_and_the_clusters() -> None:
    embeddings, _ = two_blobs()
    with pytest.raises(FussbenchError, match=r"partition\.alpha=0\.05.*k-means clusters"):
        embedding_split(embeddings, seed=0, n_clients=6)


# --------------------------------------------------------------------------- embeddings


def test_embeddings_average_each_images_unit_views_in_the_order_asked() -> None:
    pooled = np.array([[3.0, 4.0], [0.0, 2.0], [5.0, 0.0], [0.0, 0.0]], np.float32)
    split = FeatureSplit(Path("cache"), ["a", "b"], pooled, pooled, pooled, {}, 0, views=2)
    embeddings = image_embeddings(split, ["b", "a"])
    # image a: views (0.6, 0.8) and (0, 1) -> mean (0.3, 0.9), normalised
    assert np.allclose(embeddings[1], np.array([0.3, 0.9]) / np.hypot(0.3, 0.9))
    assert np.allclose(embeddings[0], [1.0, 0.0])  # image b: a zero view counts as zero
    with pytest.raises(FussbenchError, match="missing from the feature cache, first 'c'"):
        image_embeddings(split, ["c"])


def test_a_missing_cache_says_which_command_writes_it(tmp_path: Path) -> None:
    spec = load_params(Path(__file__).parents[1] / "params.yaml").dataset_spec("camvid")
    config = BackboneConfig("effnet_lite0")
    with pytest.raises(FussbenchError, match=r"run `fussbench features --dataset camvid` first"):
        open_training_features(spec, config, tmp_path / "train", "embedding_dirichlet")


# --------------------------------------------------------------------------- the stage


def write_unlabelled_folder(root: Path, n_images: int = 12) -> None:
    """``images/<n>.jpg`` and no masks: half flat reddish images, half grey noise."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(n_images):
        if index % 2:
            pixels = rng.integers(0, 256, (24, 24, 3), np.uint8)
        else:
            pixels = np.full((24, 24, 3), (200, 40 + index, 30), np.uint8)
        Image.fromarray(pixels, "RGB").save(root / "images" / f"{index:03d}.jpg")


def test_folder_without_masks_partitions_by_embedding(tmp_path, monkeypatch) -> None:
    write_unlabelled_folder(tmp_path / "mine")
    folder = {"root": "mine", "class_names": ["a", "b"], "image_size": [32, 32]}
    make_workspace(tmp_path, monkeypatch, {"folder": folder})
    setup = ["-S", "setup=folder_quantity"]
    partition = [
        *setup,
        "-S",
        "partition.method=embedding_dirichlet",
        "-S",
        "partition.n_clients=2",
        "-S",
        "partition.embedding_clusters=2",
        "-S",
        "partition.alpha=10",
    ]
    assert invoke("download", *setup).exit_code == 0
    missing = invoke("partition", *partition)
    assert missing.exit_code == 2
    assert "run `fussbench features --dataset folder` first" in missing.output
    assert invoke("features", *setup).exit_code == 0
    done = invoke("partition", *partition)
    assert done.exit_code == 0, done.output
    assert "feature skew" in done.output and "label skew" in done.output
    assert "n/a (no labels)" in done.output
    summary = json.loads(Path("data/partitions/folder_quantity/partition.json").read_text())
    assert summary["method"] == "embedding_dirichlet"
    assert summary["params"]["embedding_clusters"] == 2
    assert sum(summary["client_sizes"]) == summary["n_images"] and min(summary["client_sizes"])
    assert summary["label_skew"]["js_mean"] is None
    assert any("no label skew" in note for note in summary["notes"])
    skew = summary["feature_skew"]
    assert skew["n_clients"] == 2 and 0.0 <= skew["cosine_mean"] < 1.0
    # one source: a run measures the same feature skew from the same cached features
    tiny = [arg for item in TINY for arg in ("-S", item)]
    run = invoke("federate", *partition, *tiny, "--out", "runs/x")
    assert run.exit_code == 0, run.output
    metrics = json.loads(Path("runs/x/metrics.json").read_text())
    assert metrics["partition"] == "embedding_dirichlet" and metrics["label_skew_js"] is None
    assert metrics["feature_skew_cosine"] == pytest.approx(skew["cosine_mean"])
