"""FedCC-Balanced: the pool of client centroids clustered into equal-size clusters by a
Sinkhorn-Knopp assignment (Orchestra's global clustering)."""

import numpy as np
import pytest
from cli_workspace import REPO
from test_federation_aggregators import random_updates, update

from fussbench.errors import FussbenchError
from fussbench.federation.aggregators import FedCCKMeans, make_aggregator
from fussbench.federation.balanced import FedCCBalanced, sinkhorn
from fussbench.federation.identity import run_fingerprint
from fussbench.methods.check import load_checked_params
from fussbench.params import load_params

PARAMS = REPO / "params.yaml"


def model(centroids) -> dict[str, np.ndarray]:
    """A global model with ``update``'s head and these centroids."""
    return {**update(centroids).arrays}


def unit(vector) -> np.ndarray:
    return np.asarray(vector, dtype=np.float64) / np.linalg.norm(vector)


def test_sinkhorn_balances_the_rows_exactly_and_the_columns_to_the_tolerance():
    scores = np.random.default_rng(0).uniform(-1.0, 1.0, size=(12, 4))
    plan = sinkhorn(scores, epsilon=0.05)
    assert (plan >= 0).all()
    np.testing.assert_allclose(plan.sum(axis=1), 1 / 12, rtol=1e-12)
    np.testing.assert_allclose(plan.sum(axis=0), 1 / 4, rtol=1e-5)


def test_sinkhorn_stays_finite_where_plain_exponentials_overflow():
    scores = np.random.default_rng(1).uniform(-1.0, 1.0, size=(9, 3))
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.exp(scores / 1e-3)).all()
    plan = sinkhorn(scores, epsilon=1e-3)
    assert np.isfinite(plan).all()
    np.testing.assert_allclose(plan.sum(axis=1), 1 / 9, rtol=1e-12)


def test_every_global_cluster_draws_the_same_share_of_the_pool_where_kmeans_does_not():
    """Client A sends 3 near-identical centroids (x), client B spread ones (x, y, z). Of the
    6 pool members, 4 lie at x: k-means gives them one cluster (4 members) and y and z one
    each. The balanced rule allows 6 / 3 = 2 members per cluster, so x keeps one cluster
    with 2 of its members, and its other 2 members' mass fills the clusters of y and of z:
    the global centroids are x, normalise(x + y) and normalise(x + z)."""
    x, y, z, _ = np.eye(4)
    near = x + 1e-3 * np.random.default_rng(2).normal(size=(3, 4))
    updates = [update(near), update([x, y, z])]
    previous = model([x, y, z])

    balanced = FedCCBalanced().aggregate(updates, previous)["centroids"]
    np.testing.assert_allclose(balanced, [x, unit(x + y), unit(x + z)], atol=2e-3)
    pool = np.concatenate([near / np.linalg.norm(near, axis=1, keepdims=True), [x, y, z]])
    shares = sinkhorn(pool @ balanced.T, epsilon=0.05).sum(axis=0)
    np.testing.assert_allclose(shares, 1 / 3, rtol=1e-5)

    kmeans = FedCCKMeans(seed=0).aggregate(updates, previous)["centroids"]
    cosine = kmeans @ np.array([x, y, z]).T
    assert sorted(cosine.argmax(axis=1)) == [0, 1, 2] and cosine.max(axis=1).min() > 0.999


def test_the_previous_global_centroids_start_the_clustering_and_keep_their_order():
    x, y, z, _ = np.eye(4)
    updates = [update([y, x, z]), update([z, y, x])]
    for order in ([x, y, z], [z, x, y]):
        merged = FedCCBalanced().aggregate(updates, model(order))["centroids"]
        np.testing.assert_allclose(merged, order, atol=1e-6)


def test_a_zero_start_takes_the_kmeans_centres_of_the_pool():
    """Zero previous centroids (round 1 of model.n_clusters: auto, or a zero initial model):
    the start is FedCC-kMeans's centres, and the balanced clustering of three tight groups
    of equal size returns them."""
    rng = np.random.default_rng(3)
    centres = np.linalg.qr(rng.normal(size=(6, 3)))[0].T
    updates = [update(centres + 0.01 * rng.normal(size=centres.shape)) for _ in range(3)]
    zero = model(np.zeros((3, 6)))
    balanced = FedCCBalanced(seed=4).aggregate(updates, zero)["centroids"]
    kmeans = FedCCKMeans(seed=4).aggregate(updates, zero)["centroids"]
    np.testing.assert_allclose(balanced, kmeans, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(balanced, axis=1), 1.0, rtol=1e-6)


def test_the_result_does_not_depend_on_client_order_with_previous_centroids():
    updates = random_updates(n_clients=4, n_clusters=3, dim=5, seed=5)
    previous = model(np.random.default_rng(6).normal(size=(3, 5)))
    reference = FedCCBalanced().aggregate(updates, previous)["centroids"]
    for permutation in ([3, 1, 0, 2], [2, 3, 1, 0]):
        permuted = [updates[index] for index in permutation]
        result = FedCCBalanced().aggregate(permuted, previous)["centroids"]
        np.testing.assert_array_equal(result, reference)


def test_the_epsilon_knob_reaches_the_aggregator_and_is_checked_when_params_load():
    built = make_aggregator("fedcc_balanced", seed=3, knobs={"sinkhorn_epsilon": 0.1})
    assert built == FedCCBalanced(epsilon=0.1, seed=3)
    assert make_aggregator("fedcc_balanced") == FedCCBalanced(epsilon=0.05)
    assert load_params(PARAMS).federation.knobs["sinkhorn_epsilon"] == 0.05
    with pytest.raises(FussbenchError) as error:
        load_checked_params(PARAMS, ["federation.sinkhorn_epsilon=0"])
    assert "federation.sinkhorn_epsilon must be a number > 0" in str(error.value)
    with pytest.raises(FussbenchError, match="federation.sinkhorn_epsilon must be > 0"):
        FedCCBalanced(epsilon=-1.0)


def test_the_epsilon_enters_the_fingerprint_of_balanced_runs_only():
    def fingerprint(*overrides: str) -> str:
        return run_fingerprint(load_params(PARAMS, list(overrides)))

    balanced = "aggregator=fedcc_balanced"
    assert fingerprint(balanced) != fingerprint(balanced, "federation.sinkhorn_epsilon=0.1")
    kmeans = "aggregator=fedcc_kmeans"
    assert fingerprint(kmeans) == fingerprint(kmeans, "federation.sinkhorn_epsilon=0.1")
