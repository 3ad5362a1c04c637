import numpy as np
import pytest

from fussbench.errors import FussbenchError
from fussbench.federation.aggregators import (
    FedAvg,
    FedCCKMeans,
    FedCCMatched,
    FedCCMaximin,
    FedMoon,
    FedProx,
    average_arrays,
    centroid_diagnostics,
    client_weights,
    make_aggregator,
)
from fussbench.federation.auto import FedCCAuto
from fussbench.federation.balanced import FedCCBalanced
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.sums import FedCCSums
from fussbench.methods import names

ALL_CONFIGS = [
    ("fedavg", None),
    ("fedprox", None),
    ("fedmoon", None),
    ("fedcc_kmeans", "cosine"),
    ("fedcc_kmeans", "faithful"),
    ("fedcc_maximin", "cosine"),
    ("fedcc_maximin", "faithful"),
    ("fedcc_matched", "hungarian"),
    ("fedcc_matched", "pooled_counts"),
    ("fedcc_oneshot", "kmeans"),
    ("fedcc_oneshot", "maximin"),
    ("fedcc_balanced", None),
    ("fedcc_sums", None),
]

OWN_HEAD_RULES = [
    ("fedmedian", None),
    ("fedtrimmedavg", None),
    ("fedcc_screened", "kmeans"),
    ("fedcc_screened", "maximin"),
]
"""Aggregators whose head is not FedAvg's (tests/test_federation_robust.py)."""


def update(centroids, n_samples=1, head_value=0.0, counts=None) -> ClientUpdate:
    centroids = np.asarray(centroids, dtype=np.float32)
    arrays = {
        "head.linear.weight": np.full((2, 3), head_value, dtype=np.float32),
        "head.linear.bias": np.arange(2, dtype=np.float32) * head_value,
        "centroids": centroids,
    }
    if counts is None:
        counts = np.ones(len(centroids), dtype=np.int64)
    return ClientUpdate(arrays, n_samples, np.asarray(counts, dtype=np.int64))


def random_updates(n_clients=4, n_clusters=3, dim=5, seed=0) -> list[ClientUpdate]:
    rng = np.random.default_rng(seed)
    return [
        update(rng.normal(size=(n_clusters, dim)), n_samples=k + 1, head_value=float(k))
        for k in range(n_clients)
    ]


def previous_like(updates: list[ClientUpdate]) -> dict[str, np.ndarray]:
    return {key: np.zeros_like(value) for key, value in updates[0].arrays.items()}


def test_client_weights():
    updates = [update(np.eye(2), n_samples=1), update(np.eye(2), n_samples=3)]
    np.testing.assert_allclose(client_weights(updates, "samples"), [0.25, 0.75])
    np.testing.assert_allclose(client_weights(updates, "uniform"), [0.5, 0.5])


def test_fedavg_weighted_and_uniform_math():
    a, b = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[3.0, 4.0], [8.0, 6.0]])
    updates = [update(a, n_samples=1, head_value=1.0), update(b, n_samples=3, head_value=5.0)]
    previous = previous_like(updates)
    weighted = FedAvg().aggregate(updates, previous)
    np.testing.assert_allclose(weighted["centroids"], 0.25 * a + 0.75 * b)
    np.testing.assert_allclose(weighted["head.linear.weight"], np.full((2, 3), 4.0))
    np.testing.assert_allclose(weighted["head.linear.bias"], [0.0, 4.0])
    uniform = FedAvg(weighting="uniform").aggregate(updates, previous)
    np.testing.assert_allclose(uniform["centroids"], (a + b) / 2)
    np.testing.assert_allclose(uniform["head.linear.weight"], np.full((2, 3), 3.0))
    assert all(value.dtype == np.float32 for value in weighted.values())


@pytest.mark.parametrize(("name", "mode"), ALL_CONFIGS)
def test_every_aggregator_averages_the_head_like_fedavg(name, mode):
    updates = random_updates()
    result = make_aggregator(name, mode=mode).aggregate(updates, previous_like(updates))
    heads = [{k: v for k, v in u.arrays.items() if k != "centroids"} for u in updates]
    expected = average_arrays(heads, client_weights(updates, "samples"))
    assert set(result) == {*expected, "centroids"}
    for key, value in expected.items():
        np.testing.assert_array_equal(result[key], value)
    assert result["centroids"].shape == (3, 5)
    assert result["centroids"].dtype == np.float32


@pytest.mark.parametrize(("name", "mode"), ALL_CONFIGS + OWN_HEAD_RULES)
def test_aggregation_is_deterministic(name, mode):
    updates = random_updates(seed=1)
    aggregator = make_aggregator(name, mode=mode)
    first = aggregator.aggregate(updates, previous_like(updates))
    second = make_aggregator(name, mode=mode).aggregate(updates, previous_like(updates))
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


@pytest.mark.parametrize("mode", ["cosine", "faithful"])
def test_maximin_outputs_are_pool_rows(mode):
    updates = random_updates(n_clients=3, n_clusters=4, dim=6)
    pool = np.concatenate([u.centroids for u in updates]).astype(np.float64)
    if mode == "cosine":
        pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    result = FedCCMaximin(mode=mode).aggregate(updates, previous_like(updates))["centroids"]
    distances = np.linalg.norm(result[:, None, :] - pool[None, :, :], axis=2)
    assert distances.min(axis=1).max() < 1e-6
    assert len(set(distances.argmin(axis=1))) == 4


def test_faithful_maximin_starts_at_client_zero_and_depends_on_client_order():
    small = update([[1.0, 0.0], [0.0, 1.0]])
    large = update([[5.0, 0.0], [0.0, 5.0]])
    aggregator = FedCCMaximin(mode="faithful")
    forward = aggregator.aggregate([small, large], previous_like([small]))["centroids"]
    backward = aggregator.aggregate([large, small], previous_like([small]))["centroids"]
    np.testing.assert_array_equal(forward, [[1.0, 0.0], [0.0, 5.0]])
    np.testing.assert_array_equal(backward, [[5.0, 0.0], [0.0, 5.0]])


@pytest.mark.parametrize(
    "aggregator", [FedCCMaximin(mode="cosine"), FedCCKMeans(), FedCCBalanced()]
)
def test_cosine_fedcc_is_invariant_to_client_order(aggregator):
    updates = random_updates(n_clients=4, n_clusters=3, dim=5, seed=2)
    reference = aggregator.aggregate(updates, previous_like(updates))["centroids"]
    for permutation in ([3, 1, 0, 2], [2, 3, 1, 0]):
        permuted = [updates[index] for index in permutation]
        result = aggregator.aggregate(permuted, previous_like(updates))["centroids"]
        np.testing.assert_array_equal(result, reference)
    np.testing.assert_allclose(np.linalg.norm(reference, axis=1), 1.0, rtol=1e-6)


def test_matched_recovers_permuted_centroids_where_fedavg_collapses():
    rng = np.random.default_rng(3)
    truth = np.linalg.qr(rng.normal(size=(8, 4)))[0].T  # 4 orthonormal centroids in 8-D
    updates = [
        update(np.roll(truth, shift, axis=0) + 0.01 * rng.normal(size=truth.shape))
        for shift in range(4)
    ]
    previous = {**previous_like(updates), "centroids": truth.astype(np.float32)}
    fedavg = FedAvg().aggregate(updates, previous)["centroids"]
    matched = FedCCMatched().aggregate(updates, previous)["centroids"]
    np.testing.assert_allclose(matched, truth, atol=0.02)
    assert centroid_diagnostics(fedavg)["min_offdiagonal"] < 0.1
    assert centroid_diagnostics(matched)["min_offdiagonal"] > 0.9


def test_pooled_counts_ignores_zero_count_centroids():
    e1, e2, e3 = np.eye(3)
    updates = [
        update([e1, e2], counts=[10, 10]),
        update([e1 + 0.05 * e2, e3], counts=[10, 0]),
    ]
    previous = previous_like(updates)
    result = FedCCMatched(variant="pooled_counts").aggregate(updates, previous)["centroids"]
    assert np.abs(result @ e3).max() < 1e-6
    assert (result @ e1).max() > 0.99 and (result @ e2).max() > 0.99


def test_pooled_counts_needs_counts_from_every_client():
    updates = random_updates(n_clients=2)
    updates[1] = ClientUpdate(updates[1].arrays, updates[1].n_samples)
    with pytest.raises(FussbenchError, match="client 1 sent no cluster_counts"):
        FedCCMatched(variant="pooled_counts").aggregate(updates, previous_like(updates))


def test_pooled_counts_with_all_zero_counts_warns_and_weighs_equally():
    updates = [update(np.eye(3)[:2], counts=[0, 0]), update(np.eye(3)[1:], counts=[0, 0])]
    with pytest.warns(UserWarning, match="every cluster_count is zero"):
        result = FedCCMatched(variant="pooled_counts").aggregate(updates, previous_like(updates))
    assert np.isfinite(result["centroids"]).all()


def test_sums_take_the_normalised_total_and_keep_a_centroid_nobody_chose():
    """Two clients' code sums and counts: g'_c = normalise(S_1c + S_2c) where a pixel chose
    c, else the previous g_c; the head is FedAvg of the heads."""
    first = update([[2.0, 0.0], [0.0, 0.0], [0.0, 1.0]], 1, head_value=1.0, counts=[2, 0, 1])
    second = update([[0.0, 2.0], [0.0, 0.0], [0.0, 3.0]], 3, head_value=5.0, counts=[2, 0, 3])
    previous = {**previous_like([first]), "centroids": np.array([[5, 5], [0, 7], [1, 1]], "f4")}
    result = make_aggregator("fedcc_sums").aggregate([first, second], previous)
    half = np.sqrt(0.5)
    np.testing.assert_allclose(result["centroids"], [[half, half], [0, 7], [0, 1]], rtol=1e-6)
    np.testing.assert_allclose(result["head.linear.weight"], np.full((2, 3), 4.0))
    assert result["centroids"].dtype == np.float32
    uncounted = ClientUpdate(second.arrays, second.n_samples)
    with pytest.raises(FussbenchError, match="client 1 sent no cluster_counts"):
        FedCCSums().aggregate([first, uncounted], previous)


def test_centroid_diagnostics():
    diagnostics = centroid_diagnostics(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]))
    np.testing.assert_allclose(
        diagnostics["pairwise_cosine_distance"], [[0, 1, 0], [1, 0, 1], [0, 1, 0]], atol=1e-12
    )
    assert diagnostics["min_offdiagonal"] == pytest.approx(0.0)


def test_registry_builds_configured_aggregators():
    # every aggregator but FedCC-Auto, whose choice needs the clients' scores
    # (tests/test_federation_auto.py)
    scored = ["fedcc_auto"]
    configured = [name for name, _ in ALL_CONFIGS + OWN_HEAD_RULES]
    assert list(dict.fromkeys(configured)) == [
        name for name in names("aggregator") if name not in scored
    ]
    assert make_aggregator("fedcc_auto", seed=7, knobs={"candidates": ["fedavg"]}) == FedCCAuto(
        candidates=("fedavg",), seed=7
    )
    assert make_aggregator("fedprox", weighting="uniform", knobs={"mu": 0.5}) == FedProx(
        weighting="uniform", mu=0.5
    )
    assert make_aggregator("fedmoon", knobs={"moon_temperature": 0.2}) == FedMoon(temperature=0.2)
    assert make_aggregator("fedcc_kmeans", seed=7) == FedCCKMeans(mode="cosine", seed=7)
    assert make_aggregator("fedcc_maximin", mode="faithful") == FedCCMaximin(mode="faithful")
    assert make_aggregator("fedcc_matched") == FedCCMatched(variant="hungarian")
    assert make_aggregator("fedcc_sums", weighting="uniform") == FedCCSums(weighting="uniform")


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: make_aggregator("fedsgd"), r"\(params: aggregator\); valid: fedavg, fedprox"),
        (lambda: make_aggregator("fedavg", mode="cosine"), "federation.mode"),
        (lambda: make_aggregator("fedcc_matched", mode="cosine"), "hungarian, pooled_counts"),
        (
            lambda: make_aggregator("fedcc_sums", k_range=(2, 30)),
            "'fedcc_sums' needs the same K on every client.*model.n_clusters: auto",
        ),
        (lambda: FedCCKMeans(mode="spherical"), r"federation\.mode\); valid: cosine, faithful"),
        (lambda: FedCCMaximin(mode="spherical"), "federation.mode"),
        (lambda: FedAvg(weighting="pixels"), r"federation\.weighting\); valid: samples, uniform"),
        (lambda: FedProx(mu=-1.0), "federation.mu"),
        (lambda: FedMoon(temperature=0.0), "federation.moon_temperature"),
        (lambda: FedMoon(weight=-1.0), "federation.moon_weight"),
    ],
)
def test_bad_configuration_names_the_parameter(build, fragment):
    with pytest.raises(FussbenchError, match=fragment):
        build()


def test_bad_updates_raise():
    updates = random_updates(n_clients=2, n_clusters=3)
    previous = previous_like(updates)
    with pytest.raises(FussbenchError, match="zero client updates"):
        FedAvg().aggregate([], previous)
    fewer = update(np.zeros((2, 5)))
    with pytest.raises(FussbenchError, match="model.n_clusters"):
        FedAvg().aggregate([*updates, fewer], previous)
    wrong_head = update(np.zeros((3, 5)))
    wrong_head.arrays["head.linear.bias"] = np.zeros(4, dtype=np.float32)
    with pytest.raises(FussbenchError, match="head.linear.bias"):
        FedAvg().aggregate([*updates, wrong_head], previous)
    with pytest.raises(FussbenchError, match="head.extra"):
        FedAvg().aggregate(updates, {**previous, "head.extra": np.zeros(1, np.float32)})
    with pytest.raises(FussbenchError, match="model.n_clusters"):
        FedCCMaximin().aggregate_centroids(updates[:1], np.ones(1), np.zeros((4, 5)))


def test_average_arrays_names_the_mismatched_key():
    with pytest.raises(FussbenchError, match="'w'"):
        average_arrays([{"w": np.zeros(2)}, {"w": np.zeros(3)}], np.array([0.5, 0.5]))


def test_degenerate_settings_warn():
    with pytest.warns(UserWarning, match="plain FedAvg"):
        FedProx(mu=0.0)
    with pytest.warns(UserWarning, match="plain FedAvg"):
        make_aggregator("fedmoon", knobs={"moon_weight": 0.0})
