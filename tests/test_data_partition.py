"""Client partitions: method invariants, label skew, and the partition folder on disk."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fussbench.data.partition import (
    class_histograms,
    client_list_paths,
    js_divergence,
    label_histograms,
    label_skew,
    partition_indices,
    read_client_lists,
    read_partition,
    select_listed,
    write_partition,
)
from fussbench.data.samples import IGNORE_INDEX, DatasetSpec, Sample
from fussbench.errors import FussbenchError

N_CLASSES = 6


class FakeSpec(DatasetSpec):
    """Three classes, 4×6 labels whose raw values are the class indices."""

    name = "fake"
    class_names = ("road", "sky", "car")
    image_size = (4, 6)
    split_counts = {"train": 2}

    def samples(self, root: Path, split: str) -> list[Sample]:
        return sorted(
            (Sample(path.stem, path, path, "g") for path in root.glob("*.png")),
            key=lambda sample: sample.name,
        )

    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        return raw


def skewed_histograms(n_images: int, seed: int = 0) -> np.ndarray:
    """(n_images, N_CLASSES) counts, each image with one clearly dominant class."""
    rng = np.random.default_rng(seed)
    histograms = rng.integers(0, 50, size=(n_images, N_CLASSES))
    histograms[np.arange(n_images), rng.integers(0, N_CLASSES, n_images)] += 500
    return histograms


def blob_embeddings(n_images: int, n_blobs: int = 3, seed: int = 0) -> np.ndarray:
    """(n_images, 8) unit rows around ``n_blobs`` orthogonal directions, image i in blob
    ``i % n_blobs``."""
    rng = np.random.default_rng(seed)
    points = np.eye(8)[np.arange(n_images) % n_blobs] + 0.05 * rng.standard_normal((n_images, 8))
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def split(method: str, n_images: int = 120, **overrides) -> list[np.ndarray]:
    """partition_indices with defaults suited to the synthetic inputs."""
    settings = {
        "groups": [f"seq{i % 3}" for i in range(n_images)],
        "histograms": skewed_histograms(n_images),
        "n_clients": 4,
        "alpha": 1.0,
        "shares": None,
        "seed": 0,
        "embeddings": blob_embeddings(n_images),
        "n_embedding_clusters": 3,
    }
    settings.update(overrides)
    return partition_indices(method, **settings)


def assert_disjoint_complete(clients: list[np.ndarray], n_images: int) -> None:
    used = np.concatenate(clients)
    assert np.array_equal(np.sort(used), np.arange(n_images))
    assert all(np.array_equal(part, np.sort(part)) for part in clients)


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------- histograms


def test_class_histograms_count_pixels_and_skip_ignore() -> None:
    labels = [np.array([[0, 1], [1, IGNORE_INDEX]]), np.full((2, 2), IGNORE_INDEX)]
    histograms = class_histograms(labels, 3)
    assert histograms.dtype == np.int64
    assert histograms.tolist() == [[1, 2, 0], [0, 0, 0]]
    assert class_histograms([], 3).shape == (0, 3)


def test_class_histograms_rejects_values_outside_classes() -> None:
    with pytest.raises(FussbenchError, match="value 7"):
        class_histograms([np.array([[0, 7]])], 3)


def test_label_histograms_reads_labels_through_spec(tmp_path: Path) -> None:
    first = np.zeros((4, 6), dtype=np.uint8)
    first[0] = IGNORE_INDEX
    second = np.full((4, 6), 2, dtype=np.uint8)
    second[:, :2] = 1
    Image.fromarray(first).save(tmp_path / "a.png")
    Image.fromarray(second).save(tmp_path / "b.png")
    spec = FakeSpec()
    histograms = label_histograms(spec, spec.samples(tmp_path, "train"))
    assert histograms.tolist() == [[18, 0, 0], [0, 8, 16]]


# --------------------------------------------------------------------------- methods


@pytest.mark.parametrize(
    ("method", "overrides"),
    [
        ("domain", {"n_clients": 0}),
        ("iid", {}),
        ("dirichlet", {}),
        ("quantity", {"n_clients": 3, "shares": [0.7, 0.15, 0.15]}),
        ("embedding_dirichlet", {}),
    ],
)
def test_every_method_is_disjoint_complete_and_deterministic(method: str, overrides) -> None:
    clients = split(method, **overrides)
    assert_disjoint_complete(clients, 120)
    assert all(part.size > 0 for part in clients)
    assert same(clients, split(method, **overrides))


@pytest.mark.parametrize("method", ["iid", "dirichlet", "embedding_dirichlet"])
def test_different_seeds_give_different_partitions(method: str) -> None:
    assert not same(split(method, seed=0), split(method, seed=1))


def test_domain_makes_one_client_per_sorted_group() -> None:
    groups = ["b", "a", "c", "a", "b", "a"]
    clients = partition_indices(
        "domain",
        groups=groups,
        histograms=np.zeros((6, 2)),
        n_clients=None,
        alpha=1.0,
        shares=None,
        seed=0,
    )
    assert [part.tolist() for part in clients] == [[1, 3, 5], [0, 4], [2]]
    assert same(clients, split("domain", n_images=6, groups=groups, n_clients=3))


def test_domain_with_wrong_client_count_names_param_and_groups() -> None:
    with pytest.raises(FussbenchError, match=r"partition.n_clients=5.*3 groups \(seq0, seq1"):
        split("domain", n_clients=5)


def test_iid_parts_differ_in_size_by_at_most_one() -> None:
    sizes = [part.size for part in split("iid", n_images=103, n_clients=5)]
    assert sum(sizes) == 103 and max(sizes) - min(sizes) <= 1


def test_dirichlet_small_alpha_skews_labels_more() -> None:
    histograms = skewed_histograms(600, seed=3)

    def skew(alpha: float) -> float:
        clients = split("dirichlet", n_images=600, histograms=histograms, alpha=alpha, seed=7)
        return label_skew(histograms, clients)["js_weighted_mean"]

    assert skew(0.3) > 3 * skew(100.0)


def test_dirichlet_keeps_unlabelled_images() -> None:
    histograms = skewed_histograms(40)
    histograms[:5] = 0
    clients = split("dirichlet", n_images=40, histograms=histograms, n_clients=2, alpha=10.0)
    assert_disjoint_complete(clients, 40)


def test_dirichlet_empty_client_raises_naming_params() -> None:
    with pytest.raises(FussbenchError, match="partition.alpha=0.01") as error:
        split("dirichlet", n_images=30, alpha=0.01, n_clients=20)
    message = str(error.value)
    assert "partition.n_clients=20" in message and "raise partition.alpha" in message


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan")])
def test_dirichlet_rejects_non_positive_alpha(alpha: float) -> None:
    with pytest.raises(FussbenchError, match="partition.alpha"):
        split("dirichlet", alpha=alpha)


def test_quantity_follows_shares_and_zero_clients_means_one_per_share() -> None:
    clients = split("quantity", n_images=100, n_clients=0, shares=[0.7, 0.15, 0.15])
    assert [part.size for part in clients] == [70, 15, 15]
    sizes = [part.size for part in split("quantity", n_images=10, shares=[0.25] * 4)]
    assert sum(sizes) == 10 and sorted(sizes) == [2, 2, 3, 3]


@pytest.mark.parametrize(
    "shares",
    [
        None,
        [0.5, 0.5],  # two shares for four clients
        [0.5, 0.5, 0.2, -0.2],
        [0.3, 0.3, 0.3, 0.3],
        [0.97, 0.01, 0.01, 0.01],  # rounds to no image for small clients of 20
    ],
)
def test_quantity_bad_shares_raise(shares) -> None:
    with pytest.raises(FussbenchError, match="partition.shares"):
        split("quantity", n_images=20, shares=shares)


@pytest.mark.parametrize("n_clients", [0, -1, 121])
@pytest.mark.parametrize("method", ["iid", "dirichlet", "embedding_dirichlet"])
def test_client_count_out_of_range_raises(method: str, n_clients: int) -> None:
    with pytest.raises(FussbenchError, match="partition.n_clients"):
        split(method, n_clients=n_clients)


def test_unknown_method_lists_valid_names() -> None:
    with pytest.raises(FussbenchError, match="domain, iid, dirichlet, quantity"):
        split("random")


# --------------------------------------------------------------------------- label skew


def test_js_divergence_bounds() -> None:
    assert js_divergence(np.array([1, 2]), np.array([2, 4])) == pytest.approx(0.0)
    assert js_divergence(np.array([1, 0]), np.array([0, 3])) == pytest.approx(1.0)
    assert np.isnan(js_divergence(np.zeros(2), np.array([1, 1])))


def test_label_skew_means() -> None:
    histograms = np.array([[10, 0], [0, 10], [5, 5], [5, 5]])
    skew = label_skew(histograms, [np.array([0]), np.array([1, 2, 3])])
    per_client = skew["js_per_client"]
    assert per_client[0] == pytest.approx(js_divergence(np.array([1, 0]), np.array([1, 1])))
    assert skew["js_mean"] == pytest.approx(np.mean(per_client))
    assert skew["js_weighted_mean"] == pytest.approx((per_client[0] + 3 * per_client[1]) / 4)
    assert label_skew(np.array([[0, 0], [1, 0]]), [np.array([0]), np.array([1])])[
        "js_per_client"
    ] == [None, 0.0]


# --------------------------------------------------------------------------- files


def fake_samples(n_images: int) -> list[Sample]:
    return [Sample(f"img{i:03d}", Path(f"{i}.png"), Path(f"{i}.png"), "g") for i in range(n_images)]


def write(out_dir: Path, n_images: int, n_clients: int) -> list[np.ndarray]:
    histograms = skewed_histograms(n_images)[:, :3]
    clients = split("iid", n_images=n_images, histograms=histograms, n_clients=n_clients)
    write_partition(
        out_dir,
        fake_samples(n_images),
        clients,
        histograms,
        ("road", "sky", "car"),
        {"dataset": "fake", "split": "train"},
        method="iid",
        params={"n_clients": n_clients},
        seed=0,
    )
    return clients


def test_write_read_round_trip(tmp_path: Path) -> None:
    out_dir = tmp_path / "partitions" / "fake"
    clients = write(out_dir, 30, 3)
    samples = fake_samples(30)
    expected = [[samples[i].name for i in part] for part in clients]
    assert read_partition(out_dir) == expected

    manifest = json.loads((out_dir / "client_01.json").read_text())
    assert manifest == {"client": 1, "n_images": len(expected[1]), "samples": expected[1]}
    summary = json.loads((out_dir / "partition.json").read_text())
    assert summary["method"] == "iid" and summary["n_clients"] == 3 and summary["seed"] == 0
    assert summary["meta"] == {"dataset": "fake", "split": "train"}
    assert len(summary["label_skew"]["js_per_client"]) == 3
    with open(out_dir / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["client", "n_images", "road", "sky", "car", "js_divergence"]
    assert [int(row["n_images"]) for row in rows] == [len(names) for names in expected]
    assert sorted(path.name for path in tmp_path.joinpath("partitions").iterdir()) == ["fake"]


def test_rewrite_with_fewer_clients_removes_stale_files(tmp_path: Path) -> None:
    out_dir = tmp_path / "p"
    write(out_dir, 30, 5)
    write(out_dir, 30, 2)
    clients = sorted(path.name for path in out_dir.glob("client_*.json"))
    assert clients == ["client_00.json", "client_01.json"]
    assert len(read_partition(out_dir)) == 2
    assert [path.name for path in tmp_path.iterdir()] == ["p"]


def test_failed_write_keeps_previous_partition(tmp_path: Path) -> None:
    write(tmp_path / "p", 30, 3)
    with pytest.raises(ValueError):
        write_partition(
            tmp_path / "p",
            fake_samples(30),
            [np.arange(30)],
            np.zeros((30, 2)),
            ("road", "sky", "car"),
            {},
            method="iid",
            params={},
            seed=0,
        )
    assert len(read_partition(tmp_path / "p")) == 3


def test_read_partition_errors_name_file_and_fix(tmp_path: Path) -> None:
    with pytest.raises(FussbenchError, match="rerun `fussbench partition`"):
        read_partition(tmp_path / "missing")
    write(tmp_path / "p", 30, 3)
    (tmp_path / "p" / "client_02.json").unlink()
    with pytest.raises(FussbenchError, match=r"client_02\.json: missing.*fussbench partition"):
        read_partition(tmp_path / "p")
    (tmp_path / "p" / "client_02.json").write_text("[1, 2]")
    with pytest.raises(FussbenchError, match=r"client_02\.json: malformed"):
        read_partition(tmp_path / "p")
    (tmp_path / "p" / "client_02.json").write_text("{not json")
    with pytest.raises(FussbenchError, match=r"client_02\.json: not readable JSON"):
        read_partition(tmp_path / "p")
    (tmp_path / "p" / "partition.json").write_text("{}")
    with pytest.raises(FussbenchError, match=r"partition\.json: no positive integer"):
        read_partition(tmp_path / "p")


# --------------------------------------------------------------------------- client lists


def test_client_list_paths_expand_the_client_placeholder() -> None:
    pattern = ["lists/train__client{client}.txt"]
    assert client_list_paths(pattern, 3) == [Path(f"lists/train__client{k}.txt") for k in range(3)]
    assert client_list_paths(["a.txt", "b.txt"], 0) == [Path("a.txt"), Path("b.txt")]
    with pytest.raises(FussbenchError, match="set partition.n_clients"):
        client_list_paths(pattern, 0)
    with pytest.raises(FussbenchError, match="partition.n_clients=3 but partition.client_lists"):
        client_list_paths(["a.txt", "b.txt"], 3)
    with pytest.raises(FussbenchError, match="partition.client_lists is empty"):
        client_list_paths([], 0)


def test_client_lists_select_the_listed_samples_and_name_problems(tmp_path: Path) -> None:
    samples = [Sample(f"s{k}", Path(f"s{k}.png"), None, "g") for k in range(6)]
    paths = [tmp_path / "a.txt", tmp_path / "b.txt"]
    paths[0].write_text("s4\n\ns1\n")
    paths[1].write_text("s2\n")
    listed, clients = select_listed(samples, read_client_lists(paths), paths)
    assert [sample.name for sample in listed] == ["s1", "s2", "s4"]
    assert [part.tolist() for part in clients] == [[0, 2], [1]]
    paths[1].write_text("s2\ns9\ns8\n")
    with pytest.raises(FussbenchError, match=r"b\.txt: 2 of its 3 images are not in.*first s9, s8"):
        select_listed(samples, read_client_lists(paths), paths)
    paths[1].write_text("s2\ns1\n")
    with pytest.raises(FussbenchError, match=r"b\.txt: 's1' is listed twice \(also in .*a\.txt\)"):
        read_client_lists(paths)
    paths[1].write_text("s2\ns2\n")
    with pytest.raises(FussbenchError, match=r"b\.txt: 's2' is listed twice"):
        read_client_lists(paths)
    with pytest.raises(FussbenchError, match="client list not readable"):
        read_client_lists([tmp_path / "none.txt"])
    with pytest.raises(ValueError, match="select_listed"):
        split("lists")
