"""Robust aggregation: hand-made cases whose answers are known."""

import numpy as np
import pytest

from fussbench.errors import FussbenchError
from fussbench.federation.aggregators import FedCCKMeans, make_aggregator
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.robust import (
    FedCCScreened,
    FedMedian,
    FedTrimmedAvg,
    chamfer_distances,
    coordinate_median,
    suspicion_ratios,
    suspicion_scores,
    trimmed_mean,
)

DIM = 8


def client(centroids: np.ndarray, head: float = 0.0, n_samples: int = 10) -> ClientUpdate:
    """An update with a (2, 3) head filled with ``head`` and the given centroids."""
    arrays = {
        "head.w": np.full((2, 3), head, dtype=np.float32),
        "centroids": np.asarray(centroids, dtype=np.float32),
    }
    return ClientUpdate(arrays, n_samples)


def honest_sets(count: int, seed: int = 0, noise: float = 0.05) -> list[np.ndarray]:
    """``count`` noisy copies of one set of 4 well-separated unit centroids."""
    rng = np.random.default_rng(seed)
    base = np.eye(DIM)[:4]
    return [base + noise * rng.normal(size=base.shape) for _ in range(count)]


def test_suspicion_reads_code_sums_by_their_directions_and_survives_an_empty_cluster():
    """Code sums in the centroids' place (fedcc_sums): the score reads their directions
    (scaling a client's sums changes nothing), leaves out an empty cluster's zero row
    (it has no direction), and still names a client whose sums point elsewhere."""
    sets = [centroids * 40.0 for centroids in honest_sets(3)]
    ratios = suspicion_ratios([client(sums) for sums in sets])
    scaled = suspicion_ratios([client(sums * (k + 1)) for k, sums in enumerate(sets)])
    np.testing.assert_allclose(scaled, ratios, rtol=1e-6)
    sets[0][3] = 0.0  # no pixel of client 0 chose centroid 3
    np.testing.assert_allclose(
        chamfer_distances([sets[0][:3], sets[1]]), chamfer_distances(sets[:2]), rtol=1e-12
    )
    assert np.isfinite(suspicion_ratios([client(sums) for sums in sets])).all()
    rng = np.random.default_rng(1)
    bad = suspicion_ratios([*map(client, sets), client(rng.normal(size=(4, DIM)) * 40.0)])
    assert np.argmax(bad) == 3 and bad[3] > 2.0


def test_median_and_trimmed_mean_of_three_models():
    models = [
        {"w": np.array([1.0, 10.0])},
        {"w": np.array([2.0, -5.0])},
        {"w": np.array([9.0, 0.0])},
    ]
    np.testing.assert_array_equal(coordinate_median(models)["w"], [2.0, 0.0])
    np.testing.assert_array_equal(trimmed_mean(models, 0.34)["w"], [2.0, 0.0])
    np.testing.assert_allclose(trimmed_mean(models, 0.2)["w"], [4.0, 5.0 / 3.0])  # trims none


def test_chamfer_distance_is_zero_for_the_same_set_and_one_for_orthogonal_sets():
    identity = np.eye(DIM)
    distances = chamfer_distances([identity[:2], identity[:2] * 3.0, identity[4:6]])
    np.testing.assert_allclose(distances[0, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(distances[0, 2], 1.0)
    np.testing.assert_allclose(distances, distances.T)


@pytest.mark.parametrize("bad", ["random", "collapsed"])
def test_a_client_whose_centroids_nobody_shares_scores_highest_and_is_screened(bad):
    sets = honest_sets(2)
    rng = np.random.default_rng(1)
    if bad == "random":
        sets.append(rng.normal(size=(4, DIM)))
    else:
        sets.append(np.repeat(sets[0][:1], 4, axis=0))  # one centroid repeated
    scores = suspicion_scores(sets)
    assert int(np.argmax(scores)) == 2
    updates = [client(centroids) for centroids in sets]
    kept = FedCCScreened().kept(updates)
    np.testing.assert_array_equal(kept, [True, True, False])
    honest = [client(centroids) for centroids in honest_sets(3)]
    np.testing.assert_array_equal(FedCCScreened().kept(honest), [True] * 3)


def test_screened_fedcc_merges_only_the_honest_clients():
    honest = [client(centroids, head=1.0) for centroids in honest_sets(2)]
    hostile = client(np.random.default_rng(2).normal(size=(4, DIM)), head=100.0, n_samples=50)
    previous = {"head.w": np.zeros((2, 3), np.float32), "centroids": np.zeros((4, DIM))}
    robust = FedCCScreened(seed=3).aggregate([*honest, hostile], previous)
    plain = FedCCKMeans(seed=3).aggregate(honest, previous)
    np.testing.assert_allclose(robust["centroids"], plain["centroids"], rtol=1e-6)
    np.testing.assert_allclose(robust["head.w"], 1.0)  # the hostile head left out too
    everyone = [client(centroids) for centroids in honest_sets(3)]
    np.testing.assert_allclose(
        FedCCScreened(seed=3).aggregate(everyone, previous)["centroids"],
        FedCCKMeans(seed=3).aggregate(everyone, previous)["centroids"],
        rtol=1e-6,
    )


def test_a_poisoned_head_is_screened_by_its_distance_to_the_median_head():
    heads = (1.0, 1.1, -9.0)
    updates = [client(sets, head) for sets, head in zip(honest_sets(3), heads, strict=True)]
    ratios = suspicion_ratios(updates)
    assert int(np.argmax(ratios)) == 2 and ratios[2] > 2.5
    np.testing.assert_array_equal(FedCCScreened().kept(updates), [True, True, False])


def test_median_head_ignores_one_poisoned_head():
    updates = [client(np.eye(DIM)[:4], head=value) for value in (1.0, 1.2, -500.0)]
    previous = {"head.w": np.zeros((2, 3), np.float32), "centroids": np.zeros((4, DIM))}
    np.testing.assert_allclose(FedMedian().aggregate(updates, previous)["head.w"], 1.0)
    trimmed = FedTrimmedAvg(beta=0.34).aggregate(updates, previous)
    np.testing.assert_allclose(trimmed["head.w"], 1.0)


def test_registry_builds_the_robust_methods_with_their_knobs():
    built = make_aggregator("fedcc_screened", mode="maximin", seed=4, knobs={"screen_factor": 3})
    assert built == FedCCScreened(mode="maximin", factor=3.0, max_bad=1, seed=4)
    assert make_aggregator("fedtrimmedavg", knobs={"trim_beta": 0.3}) == FedTrimmedAvg(beta=0.3)
    with pytest.raises(FussbenchError, match="federation.screen_factor"):
        make_aggregator("fedcc_screened", knobs={"screen_factor": 1.0})
