"""The number of clusters found by the federation (``model.n_clusters: auto``): the
estimator on Gaussian mixtures of known K, the global choice, aggregation of sets of
different sizes, evaluation for any K, params, the round loop and privacy."""

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from synthetic import CAMVID_COUNTS, ROUND_CONFIG, make_camvid
from typer.testing import CliRunner

from fussbench.benchmarks.cluster_count import gaussian_mixture
from fussbench.cli import app
from fussbench.data.camvid import CamVid
from fussbench.errors import FussbenchError
from fussbench.evaluation.metrics import hungarian_match, majority_match, scores_from_confusion
from fussbench.evaluation.predict import evaluate_model
from fussbench.federation.aggregators import (
    FedCCKMeans,
    FedCCMatched,
    FedCCMaximin,
    make_aggregator,
)
from fussbench.federation.balanced import FedCCBalanced
from fussbench.federation.build import build_method
from fussbench.federation.checkpoint import load_checkpoint, save_checkpoint
from fussbench.federation.client import FederatedClient, LocalObjective
from fussbench.federation.cluster_count import (
    check_clients,
    client_cluster_count,
    estimate_cluster_count,
    global_cluster_count,
    sample_pixels,
)
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.oneshot import FedCCOneShot
from fussbench.federation.rounds import run_rounds
from fussbench.federation.run import FederationRun
from fussbench.model.head import CENTROIDS_KEY, initial_arrays
from fussbench.model.training import ClientData
from fussbench.params import FederationParams, load_params
from fussbench.reporting.results import RESULT_COLUMNS, _row
from fussbench.reporting.tables import cluster_count_table

# --- the estimator ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_clusters", "dim", "separation"),
    [(2, 8, 2.0), (3, 32, 4.0), (5, 128, 2.0), (8, 16, 4.0), (11, 64, 4.0), (15, 32, 4.0)],
)
def test_the_estimate_on_a_gaussian_mixture_is_within_one_of_its_k(n_clusters, dim, separation):
    points, _ = gaussian_mixture(n_clusters, dim, separation, 600, seed=n_clusters + dim)
    assert abs(estimate_cluster_count(points, (2, 30)) - n_clusters) <= 1


def test_the_estimate_follows_k_and_stays_in_k_range():
    """Not a constant: different mixtures give different answers, each inside k_range."""
    estimates = [
        estimate_cluster_count(gaussian_mixture(k, 16, 4.0, 500, seed=k)[0], (2, 30))
        for k in (2, 6, 12)
    ]
    assert estimates == sorted(set(estimates))
    wide, _ = gaussian_mixture(12, 16, 4.0, 500, seed=12)
    assert estimate_cluster_count(wide, (2, 5)) <= 5
    assert estimate_cluster_count(wide, (14, 20)) >= 14


def test_pixels_are_sampled_from_the_clients_rows_only_and_deterministically():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(6, 4, 2, 3)).astype(np.float16)
    rows = np.array([1, 4])
    points = sample_pixels(features, rows, 8, seed=3)
    np.testing.assert_array_equal(points, sample_pixels(features, rows, 8, seed=3))
    assert points.shape == (8, 4)
    own = features[rows].transpose(0, 2, 3, 1).reshape(-1, 4).astype(np.float64)
    assert all((own == point).all(axis=1).any() for point in points)
    assert len({tuple(point) for point in points}) == 8  # without replacement
    assert sample_pixels(features, rows, 100, seed=3).shape == (12, 4)  # all of them


def test_a_k_range_above_a_clients_pixels_names_the_param_and_the_fix():
    features = np.zeros((2, 4, 2, 3), dtype=np.float16)  # 12 pixels
    with pytest.raises(FussbenchError, match=r"model\.k_range maximum 30 .* below 12"):
        client_cluster_count(features, np.arange(2), (2, 30), seed=0)


def test_a_run_checks_every_client_before_it_starts():
    check_clients((2, 30), [3, 1], image_pixels=40)  # 120 and 40 pixels: both above 30
    with pytest.raises(FussbenchError, match=r"model\.k_range maximum 50 .*client 1's .* below 40"):
        check_clients((2, 50), [3, 1], image_pixels=40)


# --- the global K -------------------------------------------------------------------------


def _client_sets(groups, dim=70, noise=0.05, seed=0):
    """One (len(g), dim) centroid set per client: noisy copies of shared group centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(max(g) for g in groups) + 1, dim))
    return [centres[list(g)] + noise * rng.standard_normal((len(g), dim)) for g in groups]


@pytest.mark.parametrize(("n_clusters", "n_clients"), [(2, 2), (5, 3), (11, 4), (20, 6)])
def test_the_global_k_of_clients_holding_the_same_groups_is_their_k(n_clusters, n_clients):
    sets = _client_sets([range(n_clusters)] * n_clients, seed=n_clusters)
    assert global_cluster_count(sets, (2, 30)) == n_clusters


def test_the_global_k_is_the_union_of_overlapping_client_groups_and_in_k_range():
    sets = _client_sets([range(0, 6), range(4, 10), range(2, 8)])
    assert global_cluster_count(sets, (2, 30)) == 10
    assert global_cluster_count(sets, (2, 7)) == 7
    assert global_cluster_count(sets, (12, 30)) == 12


# --- aggregating sets of different sizes --------------------------------------------------


def _update(centroids, n_samples=10, seed=0):
    rng = np.random.default_rng(seed)
    head = {"head.linear.weight": rng.normal(size=(6, 4, 1, 1)).astype(np.float32)}
    return ClientUpdate({**head, CENTROIDS_KEY: centroids.astype(np.float32)}, n_samples)


def _auto_round(aggregator, sets):
    updates = [_update(c, seed=n) for n, c in enumerate(sets)]
    previous = {**updates[0].arrays, CENTROIDS_KEY: np.zeros((0, 70), np.float32)}
    return aggregator.aggregate(updates, previous)


@pytest.mark.parametrize(
    "aggregator",
    [
        FedCCKMeans(k_range=(2, 30)),
        FedCCKMeans(mode="faithful", k_range=(2, 30)),
        FedCCMaximin(k_range=(2, 30)),
        FedCCMaximin(mode="faithful", k_range=(2, 30)),
        FedCCMatched(k_range=(2, 30)),
        FedCCOneShot(k_range=(2, 30)),
        FedCCOneShot(mode="maximin", k_range=(2, 30)),
        FedCCBalanced(k_range=(2, 30)),
    ],
)
def test_fedcc_merges_client_sets_of_different_sizes_into_the_global_k(aggregator):
    sets = _client_sets([range(0, 6), range(4, 10), range(2, 8), range(0, 10)])
    merged = _auto_round(aggregator, sets)
    assert merged[CENTROIDS_KEY].shape == (10, 70)
    assert np.isfinite(merged[CENTROIDS_KEY]).all()
    # each of the 10 groups gets its own global centroid (cosine to its centre > 0.9)
    centres = _client_sets([range(10)], noise=0.0)[0]
    unit = merged[CENTROIDS_KEY] / np.linalg.norm(merged[CENTROIDS_KEY], axis=1, keepdims=True)
    cosine = unit @ (centres / np.linalg.norm(centres, axis=1, keepdims=True)).T
    assert sorted(cosine.argmax(axis=1)) == list(range(10))
    assert cosine.max(axis=1).min() > 0.9


def test_matched_hungarian_aligns_a_smaller_and_a_larger_set_rectangularly():
    centres = _client_sets([range(4)], noise=0.0)[0]
    unit = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    smaller = centres[[2, 0]]  # two of the four, shuffled
    larger = np.concatenate([centres[[3, 1, 0, 2]], np.ones((1, 70))])  # all four and one more
    matched = FedCCMatched()
    merged = matched.aggregate_centroids(
        [_update(smaller), _update(larger)], np.array([0.5, 0.5]), unit
    )
    # every global centroid keeps its meaning; the larger set's extra centroid is left out
    np.testing.assert_allclose(merged, unit, atol=1e-6)
    # rows the one smaller client does not match keep their previous value
    alone = matched.aggregate_centroids([_update(smaller)], np.array([1.0]), unit)
    np.testing.assert_allclose(alone, unit, atol=1e-6)


@pytest.mark.parametrize("name", ["fedavg", "fedprox", "fedmoon"])
def test_auto_with_an_index_by_index_average_is_refused_naming_both_params(name):
    with pytest.raises(FussbenchError, match=rf"aggregator '{name}'.*model\.n_clusters: auto"):
        make_aggregator(name, k_range=(2, 30))
    with pytest.raises(FussbenchError, match="model.n_clusters"):
        build_method(name, FederationParams(), seed=0, k_range=(2, 30))


def test_a_fixed_k_aggregator_refuses_a_model_without_centroids():
    sets = _client_sets([range(3), range(3)])
    with pytest.raises(FussbenchError, match="k_range"):
        _auto_round(FedCCKMeans(), sets)


# --- evaluation for any K -----------------------------------------------------------------


def test_more_clusters_than_classes_hungarian_counts_the_unmatched_as_errors():
    confusion = np.array([[10, 0], [0, 10], [6, 4]])
    hungarian = scores_from_confusion(confusion, hungarian_match(confusion))
    majority = scores_from_confusion(confusion, majority_match(confusion))
    assert hungarian_match(confusion).tolist() == [0, 1, -1]
    assert hungarian.accuracy == pytest.approx(100 * 20 / 30)
    assert hungarian.miou == pytest.approx(100 * (10 / 16 + 10 / 14) / 2)
    assert majority_match(confusion).tolist() == [0, 1, 0]
    assert majority.accuracy == pytest.approx(100 * 26 / 30)
    assert majority.miou == pytest.approx(100 * (16 / 20 + 10 / 14) / 2)


def test_fewer_clusters_than_classes_leaves_a_class_at_zero_iou():
    confusion = np.array([[8, 0, 3], [0, 9, 1]])
    scores = scores_from_confusion(confusion, hungarian_match(confusion))
    assert scores.per_class_iou.tolist() == pytest.approx([100 * 8 / 11, 100 * 9 / 10, 0.0])


# --- params -------------------------------------------------------------------------------


def _params(tmp_path, model):
    path = tmp_path / "params.yaml"
    path.write_text(f"model: {model}\n")
    return load_params(path)


def test_auto_and_k_range_parse(tmp_path):
    model = _params(tmp_path, "{n_clusters: auto, k_range: [3, 12]}").model
    assert model.auto and model.k_range == [3, 12]
    assert not _params(tmp_path, "{n_clusters: 7}").model.auto
    assert _params(tmp_path, "{}").model.k_range == [2, 30]


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        ("{n_clusters: many}", "model.n_clusters must be an integer >= 2, null .* or auto"),
        ("{n_clusters: 1}", "model.n_clusters must be an integer >= 2"),
        ("{k_range: [1, 5]}", "model.k_range must be \\[low, high\\] with 2 <= low <= high"),
        ("{k_range: [9, 5]}", "model.k_range must be \\[low, high\\]"),
        ("{k_range: [4]}", "model.k_range must be \\[low, high\\]"),
        ("{k_range: [2, 7.5]}", "model.k_range\\[1\\] must be of type int"),
        ("{n_clusters: 2.5}", "model.n_clusters must be of type int"),
    ],
)
def test_bad_cluster_params_are_one_line_naming_the_key(tmp_path, model, fragment):
    with pytest.raises(FussbenchError, match=fragment) as raised:
        _params(tmp_path, model)
    assert "\n" not in str(raised.value)


# --- the round loop -----------------------------------------------------------------------

CONFIG = ROUND_CONFIG
RNG = np.random.default_rng(0)
FEATURES = RNG.normal(size=(12, 8, 4, 5)).astype(np.float16)
LABELS = RNG.integers(0, 3, size=(12, 6, 8)).astype(np.uint8)
SPLITS = [np.arange(0, 5), np.arange(5, 12)]
K_RANGE = (2, 8)


def _clients(k_range=K_RANGE, objective=None):
    return [
        FederatedClient(
            ClientData.from_cache(FEATURES, FEATURES.mean(axis=(2, 3)), 2, rows),
            CONFIG,
            objective,
            k_range,
        )
        for rows in SPLITS
    ]


def _run(aggregator, rounds=2, **kwargs):
    run = FederationRun(
        aggregator,
        LocalObjective(),
        initial_arrays(8, 6, 0, seed=0),
        rounds,
        0,
        lambda arrays: evaluate_model(arrays, FEATURES, LABELS, 3),
        **kwargs,
    )
    return run_rounds(
        run,
        _clients(),
        lambda c, arrays: evaluate_model(arrays, FEATURES[SPLITS[c]], LABELS[SPLITS[c]], 3),
    )


def test_each_client_trains_its_own_k_then_everyone_the_global_k():
    result = _run(FedCCKMeans(k_range=K_RANGE), rounds=2)
    first, second = result.state.records
    own = [
        client_cluster_count(FEATURES, rows, K_RANGE, 0)  # any seed: K is in range
        for rows in SPLITS
    ]
    assert all(K_RANGE[0] <= k <= K_RANGE[1] for k in first.client_n_clusters + own)
    assert K_RANGE[0] <= first.n_clusters <= K_RANGE[1]
    assert second.client_n_clusters == [first.n_clusters] * 2
    assert second.n_clusters == first.n_clusters
    assert result.state.models[0][CENTROIDS_KEY].shape == (first.n_clusters, 6)
    assert np.isfinite(result.evaluations[0].scores.miou)


def test_local_auto_clients_keep_their_own_k():
    result = _run(None, rounds=2)
    first, second = result.state.records
    assert first.n_clusters is None
    assert second.client_n_clusters == first.client_n_clusters
    assert [len(m[CENTROIDS_KEY]) for m in result.state.models] == first.client_n_clusters


def test_an_auto_run_is_deterministic_and_resumes_bit_for_bit(tmp_path):
    full = _run(FedCCMaximin(k_range=K_RANGE), rounds=3)
    again = _run(FedCCMaximin(k_range=K_RANGE), rounds=3)
    saved = []
    _run(FedCCMaximin(k_range=K_RANGE), rounds=2, on_round=saved.append)
    save_checkpoint(tmp_path / "ck.npz", saved[-1], "abc")
    resumed = _run(
        FedCCMaximin(k_range=K_RANGE), rounds=3, resume=load_checkpoint(tmp_path / "ck.npz", "abc")
    )
    for other in (again, resumed):
        for key, value in full.state.models[0].items():
            np.testing.assert_array_equal(value, other.state.models[0][key])
        assert [r.client_n_clusters for r in other.state.records] == [
            r.client_n_clusters for r in full.state.records
        ]


def test_an_auto_client_sends_only_head_weights_and_its_own_k_centroids():
    """Privacy, auto case: the same message fields as with a fixed K; the estimate leaves
    the client only as the number of centroid rows."""
    start = initial_arrays(8, 6, 0, seed=0)
    for objective in (None, LocalObjective(cluster_counts=True)):
        update, _ = _clients(objective=objective)[0].fit(start, seed=1)
        fields = {field.name for field in dataclasses.fields(update)}
        assert fields == {"arrays", "n_samples", "cluster_counts"}
        assert set(update.arrays) == set(start)
        count = len(update.centroids)
        assert K_RANGE[0] <= count <= K_RANGE[1]
        assert update.centroids.shape == (count, 6)
        assert all(value.shape[0] != 5 for value in update.arrays.values())
        if objective is not None:
            assert update.cluster_counts.shape == (count,)
    with pytest.raises(FussbenchError, match="model.k_range"):
        _clients(k_range=None)[0].fit(start, seed=1)


# --- end to end ---------------------------------------------------------------------------


@pytest.fixture
def camvid_workspace(tmp_path, monkeypatch):
    """A tiny synthetic CamVid (2 clients), downloaded, partitioned and cached."""
    monkeypatch.setattr(CamVid, "split_counts", CAMVID_COUNTS)
    make_camvid(tmp_path / "mirror" / "camvid")
    repo = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["download"]["mirror"] = str(tmp_path / "mirror")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    for stage in ("download", "partition", "features"):
        assert _invoke(stage).exit_code == 0
    return tmp_path


def _invoke(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _federate(out, *overrides):
    quick = ["train.local_steps=2", "train.batch_size=2", "federation.rounds=2", "train.knn_k=1"]
    args = [arg for item in (*quick, "model.n_clusters=auto", *overrides) for arg in ("-S", item)]
    return _invoke("federate", *args, "--out", out)


def test_federate_with_auto_k_records_the_counts_and_both_matchings(camvid_workspace):
    result = _federate("runs/auto", "aggregator=fedcc_maximin", "model.k_range=[2, 12]")
    assert result.exit_code == 0, result.output
    metrics = json.loads((camvid_workspace / "runs/auto/metrics.json").read_text())
    assert metrics["n_clusters"] == "auto"
    assert len(metrics["n_clusters_clients"]) == 2
    assert all(2 <= k <= 12 for k in metrics["n_clusters_clients"])
    first, second = metrics["n_clusters_global"]
    assert 2 <= first <= 12 and second == first and metrics["n_clusters_final"] == [first]
    assert metrics["miou_hungarian"] == metrics["miou"]
    assert metrics["accuracy_majority"] >= metrics["accuracy_hungarian"]
    rounds = (camvid_workspace / "runs/auto/rounds.csv").read_text().splitlines()
    header = rounds[0].split(",")
    assert header[-3:] == ["n_clusters_global", "client0_n_clusters", "client1_n_clusters"]
    assert rounds[2].split(",")[-3:] == [str(first)] * 3
    again = _federate("runs/again", "aggregator=fedcc_maximin", "model.k_range=[2, 12]")
    assert again.exit_code == 0
    repeat = json.loads((camvid_workspace / "runs/again/metrics.json").read_text())
    assert {k: v for k, v in repeat.items() if k != "seconds"} == {
        k: v for k, v in metrics.items() if k != "seconds"
    }


def test_federate_refuses_auto_with_fedavg_in_one_line(camvid_workspace):
    result = _federate("runs/bad", "aggregator=fedavg")
    assert result.exit_code == 2
    message = result.output.strip().splitlines()
    assert len(message) == 1
    assert "model.n_clusters: auto" in message[0] and "aggregator 'fedavg'" in message[0]


# --- results and tables -------------------------------------------------------------------


def test_results_and_the_cluster_table_add_the_counts_and_both_matchings():
    base = {"setup": "s", "method": "m", "models": [], "n_clusters": "auto"}
    rows = [
        _row(
            {**base, "seed": seed, "n_clusters_final": [k], "miou_hungarian": h, "miou_majority": m}
        )
        for seed, k, h, m in [(0, 10, 20.0, 30.0), (1, 12, 22.0, 34.0)]
    ]
    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    assert results["n_clusters_final"].tolist() == [10.0, 12.0]
    table = cluster_count_table(results, ["m"], ["s"])
    assert "| m | auto | 11.0 ± 1.4 | 21.0 ± 1.4 | 32.0 ± 2.8 |" in table.markdown
    numbers = pd.read_csv(io.StringIO(table.csv))
    assert numbers.loc[0, "miou_majority_mean"] == pytest.approx(32.0)
    older = results.drop(columns=["n_clusters_final", "miou_hungarian", "miou_majority"])
    assert "| m |" not in cluster_count_table(older, ["m"], ["s"]).markdown
