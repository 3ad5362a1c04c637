"""The round loop: privacy of the client message, faults, resume, regularisers."""

import dataclasses

import numpy as np
import pytest
import torch
from synthetic import ROUND_CONFIG

from fussbench.errors import FussbenchError
from fussbench.evaluation.predict import evaluate_model
from fussbench.federation.aggregators import FedAvg
from fussbench.federation.build import build_method
from fussbench.federation.checkpoint import load_checkpoint, save_checkpoint
from fussbench.federation.client import FederatedClient, LocalObjective
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.rounds import run_rounds
from fussbench.federation.run import FederationRun
from fussbench.methods import get_spec, parse_method
from fussbench.model.head import CENTROIDS_KEY, SegmentationModel, initial_arrays
from fussbench.model.training import ClientData
from fussbench.params import FederationParams

CONFIG = ROUND_CONFIG
RNG = np.random.default_rng(0)
FEATURES = RNG.normal(size=(12, 8, 3, 4)).astype(np.float16)
LABELS = RNG.integers(0, 3, size=(12, 6, 8)).astype(np.uint8)
SPLITS = [np.arange(0, 5), np.arange(5, 12)]


def make_clients(objective=None):
    return [
        FederatedClient(
            ClientData.from_cache(FEATURES[rows], FEATURES[rows].mean(axis=(2, 3)), 2),
            CONFIG,
            objective,
        )
        for rows in SPLITS
    ]


def evaluate(arrays):
    return evaluate_model(arrays, FEATURES, LABELS, 3)


def evaluate_local(client, arrays):
    rows = SPLITS[client]
    return evaluate_model(arrays, FEATURES[rows], LABELS[rows], 3)


def run(aggregator=None, clients=None, rounds=2, federated=True, **kwargs):
    if aggregator is None and federated:
        aggregator = FedAvg()
    spec = FederationRun(
        aggregator, LocalObjective(), initial_arrays(8, 6, 3, seed=0), rounds, 0, evaluate, **kwargs
    )
    return run_rounds(spec, clients or make_clients(), evaluate_local)


def test_a_client_sends_only_head_weights_centroids_and_counts():
    """Privacy: the message holds exactly head.* arrays, centroids, n_samples, and counts
    only when the aggregator asks for them."""
    start = initial_arrays(8, 6, 3, seed=0)
    update, _ = make_clients()[0].fit(start, seed=1)
    counted, _ = make_clients(LocalObjective(cluster_counts=True))[0].fit(start, seed=1)
    for message in (update, counted):
        fields = {field.name for field in dataclasses.fields(message)}
        assert fields == {"arrays", "n_samples", "cluster_counts"}
        assert all(key.startswith("head.") or key == CENTROIDS_KEY for key in message.arrays)
        assert message.centroids.shape == (3, 6)
        assert message.n_samples == 5 and isinstance(message.n_samples, int)
        # no array in the message has the shape of the client's features, labels or neighbours
        assert all(array.shape[0] != 5 for array in message.arrays.values())
    assert update.cluster_counts is None
    assert update.nbytes() == sum(a.nbytes for a in update.arrays.values()) + 8
    assert counted.cluster_counts.shape == (3,)
    assert counted.cluster_counts.sum() == 5 * 3 * 4  # a histogram over the client's pixels
    assert counted.nbytes() == update.nbytes() + counted.cluster_counts.nbytes


def test_under_code_sums_a_client_sends_its_sums_and_counts_never_its_centroids():
    """Privacy (fedcc_sums): the message holds exactly the head.* arrays, the code sums in
    the centroids' place, the counts and n_samples. The sums and counts are those of a
    pixel-by-pixel recomputation from the client's trained model, which stays on the
    client: its trained centroids are nowhere in the message."""
    _, objective = build_method("fedcc_sums", FederationParams(), seed=0)
    assert objective.code_sums and objective.cluster_counts
    client = make_clients(objective)[0]
    message, _ = client.fit(initial_arrays(8, 6, 3, seed=0), seed=1)
    trained = client.trained()
    assert {field.name for field in dataclasses.fields(message)} == {
        "arrays",
        "n_samples",
        "cluster_counts",
    }
    assert set(message.arrays) == set(trained) and message.n_samples == 5
    for key, value in trained.items():
        if key != CENTROIDS_KEY:
            np.testing.assert_array_equal(message.arrays[key], value)
    model = SegmentationModel.from_arrays(trained)
    with torch.no_grad():
        codes = model.head(torch.as_tensor(FEATURES[SPLITS[0]], dtype=torch.float32)).numpy()
    centroids = trained[CENTROIDS_KEY] / np.linalg.norm(trained[CENTROIDS_KEY], axis=1)[:, None]
    sums, counts = np.zeros((3, 6)), np.zeros(3, dtype=np.int64)
    for pixel in codes.transpose(0, 2, 3, 1).reshape(-1, 6).astype(np.float64):
        unit = pixel / np.linalg.norm(pixel)
        winner = int(np.argmax(centroids @ unit))
        sums[winner] += unit
        counts[winner] += 1
    np.testing.assert_allclose(message.centroids, sums, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(message.cluster_counts, counts)
    assert counts.sum() == 5 * 3 * 4
    sent = np.concatenate([np.ravel(array) for array in message.arrays.values()])
    for row in trained[CENTROIDS_KEY]:
        assert not np.isin(row, sent).any()  # no trained centroid value leaves the client
    with pytest.raises(FussbenchError, match="code_sums are sent with their cluster_counts"):
        LocalObjective(code_sums=True)


@pytest.mark.parametrize(
    ("method", "counts"),
    [
        ("fedcc_matched.pooled_counts", True),
        ("fedcc_matched", False),
        ("fedavg", False),
        ("fedcc_sums", True),
    ],
)
def test_clients_count_pixels_only_for_an_aggregator_that_uses_counts(method, counts):
    cell = parse_method(method)
    settings = FederationParams(mode=cell.mode)
    aggregator, objective = build_method(cell.aggregator, settings, seed=0)
    assert get_spec(cell.aggregator).reads_cluster_counts(cell.mode) is counts
    assert objective.cluster_counts is counts
    assert objective.code_sums is get_spec(cell.aggregator).sends_code_sums
    clients = make_clients(objective)
    result = run(aggregator, clients, rounds=1)
    assert np.isfinite(result.evaluations[0].scores.miou)
    # a client's own score is its trained model's, whatever it sent in the centroids' place
    trained = [evaluate_local(k, client.trained()).scores.miou for k, client in enumerate(clients)]
    assert result.state.records[0].client_local_miou == trained


def test_federated_rounds_overwrite_every_client_and_record_bytes():
    result = run()
    records = result.state.records
    assert [record.round for record in records] == [1, 2]
    assert len(result.state.models) == 1
    model_bytes = sum(a.nbytes for a in result.state.models[0].values())
    assert records[0].bytes_down == [model_bytes, model_bytes]
    assert records[0].bytes_up == [model_bytes + 8, model_bytes + 8]  # model + n_samples
    assert all(value is not None for value in records[-1].client_local_miou)
    assert 0.0 <= records[-1].min_centroid_distance <= 2.0


def test_local_clients_keep_their_own_models_and_send_nothing():
    result = run(federated=False)
    assert len(result.state.models) == 2 and len(result.evaluations) == 2
    record = result.state.records[-1]
    assert record.bytes_up == [0, 0] and record.bytes_down == [0, 0]
    assert record.miou == pytest.approx(np.mean(record.client_miou))


class Exploding(FederatedClient):
    def fit(self, global_arrays, seed):
        raise RuntimeError("disk on fire")


class Diverging(FederatedClient):
    def fit(self, global_arrays, seed):
        update, stats = super().fit(global_arrays, seed)
        arrays = {**update.arrays, CENTROIDS_KEY: update.centroids * np.nan}
        return ClientUpdate(arrays, update.n_samples, update.cluster_counts), stats


@pytest.mark.parametrize("bad_class", [Exploding, Diverging])
def test_a_failing_client_is_skipped_and_recorded(bad_class):
    good = make_clients()[1]
    bad = bad_class(good._data, CONFIG)
    result = run(clients=[bad, good], min_clients=1)
    record = result.state.records[-1]
    assert [failure["client"] for failure in record.failures] == [0]
    assert record.bytes_up[0] == 0 and record.client_loss[0] is None
    assert np.isfinite(record.miou)


def test_too_few_clients_stop_the_run_but_keep_completed_rounds():
    saved = []

    class FailsInRoundTwo(FederatedClient):
        calls = 0

        def fit(self, global_arrays, seed):
            FailsInRoundTwo.calls += 1
            if FailsInRoundTwo.calls > 1:
                raise RuntimeError("node lost")
            return super().fit(global_arrays, seed)

    clients = make_clients()
    flaky = FailsInRoundTwo(clients[0]._data, CONFIG)
    with pytest.raises(FussbenchError, match=r"round 2: only 1 of 2 clients.*node lost"):
        run(clients=[flaky, clients[1]], min_clients=2, on_round=saved.append)
    assert [state.round for state in saved] == [1]


@pytest.mark.parametrize("method", ["fedavg", "fedmoon", "local"])
def test_resumed_run_gives_identical_numbers(tmp_path, method):
    aggregator, objective = build_method(method, FederationParams(), seed=0)
    federated = aggregator is not None
    full = run(aggregator, make_clients(objective), rounds=3, federated=federated)
    saved = []
    run(aggregator, make_clients(objective), rounds=2, federated=federated, on_round=saved.append)
    save_checkpoint(tmp_path / "ck.npz", saved[-1], "abc")
    assert load_checkpoint(tmp_path / "ck.npz", "other params") is None
    state = load_checkpoint(tmp_path / "ck.npz", "abc")
    resumed = run(aggregator, make_clients(objective), rounds=3, federated=federated, resume=state)
    for full_model, resumed_model in zip(full.state.models, resumed.state.models, strict=True):
        for key in full_model:
            np.testing.assert_array_equal(full_model[key], resumed_model[key])
    assert [r.miou for r in full.state.records] == [r.miou for r in resumed.state.records]


@pytest.mark.parametrize("kind", ["fedprox", "fedmoon"])
def test_regularised_clients_train_differently(kind):
    """Second round: FedMOON's previous local model now differs from the global one."""
    start = initial_arrays(8, 6, 3, seed=0)
    plain_client = make_clients()[0]
    regularised_client = make_clients(LocalObjective(kind, mu=10.0, weight=5.0))[0]
    for client in (plain_client, regularised_client):
        client.fit(start, seed=2)
    plain, _ = plain_client.fit(start, seed=3)
    regularised, _ = regularised_client.fit(start, seed=3)
    key = "head.nonlinear.0.weight"
    assert not np.array_equal(plain.arrays[key], regularised.arrays[key])


def test_methods_parse_and_bad_names_list_the_choices():
    assert parse_method("fedcc_maximin.faithful.uniform").name == "fedcc_maximin.faithful.uniform"
    assert parse_method("fedavg").mode is None
    with pytest.raises(FussbenchError, match="valid names: local, centralized, fedavg"):
        parse_method("fedsgd")
    with pytest.raises(FussbenchError, match="valid: cosine, faithful, samples, uniform"):
        parse_method("fedcc_kmeans.euclid")
