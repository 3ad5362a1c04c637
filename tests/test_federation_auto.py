"""FedCC-Auto: candidates, the clients' scores, the weighted choice, bad scores, bytes, and
one tiny run end to end through the CLI."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from cli_workspace import camvid_workspace
from test_federation_rounds import CONFIG, make_clients, run
from typer.testing import CliRunner

from fussbench.cli import app
from fussbench.errors import FussbenchError
from fussbench.federation.aggregators import FedAvg, FedCCKMeans, FedCCMatched, FedCCMaximin
from fussbench.federation.auto import FedCCAuto
from fussbench.federation.build import build_method
from fussbench.federation.checkpoint import load_checkpoint, save_checkpoint
from fussbench.federation.client import FederatedClient
from fussbench.federation.identity import run_fingerprint
from fussbench.federation.messages import ClientUpdate, model_nbytes
from fussbench.federation.scoring import SCORES, ScoreCandidates
from fussbench.methods import candidate_names, get_spec, parse_method
from fussbench.methods.catalog import DEFAULT_CANDIDATES
from fussbench.model.head import CENTROIDS_KEY, initial_arrays
from fussbench.params import FederationParams, load_params

REPO = Path(__file__).resolve().parents[1]


def random_updates(n_samples=(1, 3), n_clusters=3, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    return [
        ClientUpdate(
            {
                "head.linear.weight": rng.normal(size=(dim, 5, 1, 1)).astype(np.float32),
                CENTROIDS_KEY: rng.normal(size=(n_clusters, dim)).astype(np.float32),
            },
            n_samples=count,
        )
        for count in n_samples
    ]


def previous_model(n_clusters=3, dim=4):
    rng = np.random.default_rng(9)
    return {
        "head.linear.weight": np.zeros((dim, 5, 1, 1), np.float32),
        CENTROIDS_KEY: rng.normal(size=(n_clusters, dim)).astype(np.float32),
    }


def test_each_candidate_is_exactly_what_its_aggregator_alone_returns():
    updates, previous = random_updates(), previous_model()
    candidates = FedCCAuto(seed=3).propose(updates, previous)
    assert candidates.names == DEFAULT_CANDIDATES
    alone = [FedCCKMeans(seed=3), FedCCMaximin(), FedCCMatched(seed=3), FedAvg()]
    for index, aggregator in enumerate(alone):
        expected = aggregator.aggregate(updates, previous)
        for key, value in candidates.model(index).items():
            np.testing.assert_array_equal(value, expected[key], err_msg=f"{index} {key}")
    assert candidates.centroids.shape == (4, 3, 4) and candidates.centroids.dtype == np.float32
    assert candidates.query().nbytes() == (
        candidates.head["head.linear.weight"].nbytes + candidates.centroids.nbytes + 8
    )


@pytest.mark.parametrize(("weighting", "winner"), [("samples", 1), ("uniform", 0)])
def test_the_candidate_with_the_best_weighted_score_wins(weighting, winner):
    """Client 0 (1 image) prefers candidate 0, client 1 (3 images) candidate 1: weighted by
    samples S = (0.25, 0.375), uniformly S = (0.5, 0.25)."""
    auto = FedCCAuto(weighting=weighting, candidates=("fedcc_kmeans", "fedcc_maximin"))
    updates, previous = random_updates(), previous_model()
    candidates = auto.propose(updates, previous)
    choice = auto.choose(candidates, updates, [np.array([1.0, 0.0]), np.array([0.0, 0.5])])
    expected = {"samples": [0.25, 0.375], "uniform": [0.5, 0.25]}[weighting]
    assert choice.selection["scores"] == pytest.approx(expected)
    assert choice.selection["winner"] == candidates.names[winner]
    assert choice.selection["voters"] == [0, 1] and choice.failures == []
    for key, value in candidates.model(winner).items():
        np.testing.assert_array_equal(choice.model[key], value)


@pytest.mark.parametrize(
    "bad", [np.array([np.nan, 1.0]), np.array([1.0, 2.0, 3.0]), "scoring: RuntimeError: x"]
)
def test_a_client_with_nan_or_wrong_length_scores_is_left_out_of_the_vote(bad):
    auto = FedCCAuto(candidates=("fedcc_kmeans", "fedcc_maximin"))
    updates, previous = random_updates(), previous_model()
    candidates = auto.propose(updates, previous)
    # client 1 alone would pick candidate 1; its bad scores leave client 0's choice
    choice = auto.choose(candidates, updates, [np.array([1.0, 0.0]), bad])
    assert choice.selection["winner"] == "fedcc_kmeans" and choice.selection["voters"] == [0]
    assert [index for index, _ in choice.failures] == [1]
    with pytest.raises(FussbenchError, match=r"only 0 of 2 clients sent usable scores.*client 7"):
        auto.choose(candidates, updates, [bad, bad], numbers=[3, 7])


def test_unknown_or_unusable_candidates_name_the_param_and_list_the_valid_names():
    valid = candidate_names()
    assert "fedcc_auto" not in valid and "fedprox" not in valid
    assert set(DEFAULT_CANDIDATES) <= set(valid)
    with pytest.raises(FussbenchError) as error:
        build_method(
            "fedcc_auto", FederationParams(knobs={"candidates": ["fedavg", "nope"]}), seed=0
        )
    message = str(error.value)
    assert "\n" not in message and "'nope'" in message and "federation.candidates" in message
    assert all(name in message for name in valid)
    for bad, match in [
        (("fedcc_kmeans.uniform",), "federation.weighting"),
        (("fedcc_matched.pooled_counts",), "cluster counts"),
        (("fedavg", "fedavg"), "repeats"),
        ((), "empty"),
    ]:
        with pytest.raises(FussbenchError, match=match):
            FedCCAuto(candidates=bad)
    with pytest.raises(FussbenchError, match="needs the clients' scores"):
        FedCCAuto().aggregate(random_updates(), previous_model())


def test_the_method_parses_and_has_a_table_label():
    cell = parse_method("fedcc_auto.uniform")
    assert (cell.aggregator, cell.mode, cell.weighting) == ("fedcc_auto", None, "uniform")
    assert get_spec("fedcc_auto").table_label(None) == "FedCC-Auto"
    params = load_params(REPO / "params.yaml", ["compare=[fedcc_auto,fedcc_kmeans]"])
    assert "fedcc_auto" in params.compare


def test_candidates_params_reach_the_aggregator_and_change_only_auto_fingerprints():
    overrides = ["aggregator=fedcc_auto", "federation.candidates=[fedavg,fedcc_maximin.faithful]"]
    params = load_params(REPO / "params.yaml", [*overrides, "federation.score_images=5"])
    aggregator, objective = build_method(params.aggregator, params.federation, params.seed)
    assert aggregator.candidates == ("fedavg", "fedcc_maximin.faithful")
    assert aggregator.score_images == 5 and objective.cluster_counts is False
    base = load_params(REPO / "params.yaml", ["aggregator=fedcc_kmeans"])
    changed = load_params(
        REPO / "params.yaml", ["aggregator=fedcc_kmeans", "federation.candidates=[fedavg]"]
    )
    assert run_fingerprint(base) == run_fingerprint(changed)
    auto = load_params(REPO / "params.yaml", ["aggregator=fedcc_auto"])
    assert run_fingerprint(auto) != run_fingerprint(
        load_params(REPO / "params.yaml", ["aggregator=fedcc_auto", "federation.score_images=4"])
    )


def test_a_client_returns_one_float_per_candidate_and_nothing_else():
    """Privacy: the scores are the only new field leaving a client: one (J,) float64 array
    (no per-image or per-pixel values), and the update itself keeps its fields."""
    auto, objective = build_method("fedcc_auto", FederationParams(), seed=0)
    clients = make_clients(objective)
    start = initial_arrays(8, 6, 3, seed=0)
    updates = [client.fit(start, seed=1)[0] for client in clients]
    assert all(update.cluster_counts is None for update in updates)
    query = auto.propose(updates, start).query()
    assert ScoreCandidates.answer_keys == (SCORES,)
    answer = clients[0].answer(query)
    assert set(answer) == {SCORES}
    scores = answer[SCORES]
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float64
    assert scores.shape == (len(DEFAULT_CANDIDATES),)
    assert np.all((scores >= -1.0) & (scores <= 1.0))
    again = clients[0].answer(query)[SCORES]
    np.testing.assert_array_equal(scores, again)  # a fixed sample of images: deterministic
    fewer = clients[0].answer(ScoreCandidates(query.head, query.centroids, 1))[SCORES]
    assert not np.array_equal(scores, fewer)  # max_images picks the images scored


class NanScorer(FederatedClient):
    def answer(self, query):
        return {SCORES: np.full(len(query.centroids), np.nan)}


def test_rounds_record_the_winner_scores_bytes_and_a_client_with_bad_scores(tmp_path):
    auto, objective = build_method("fedcc_auto", FederationParams(), seed=0)
    good = make_clients(objective)
    clients = [NanScorer(good[0]._data, CONFIG, objective), good[1]]
    saved = []
    result = run(auto, clients, rounds=2, on_round=saved.append)
    for record in result.state.records:
        selection = record.selection
        assert selection["candidates"] == list(DEFAULT_CANDIDATES)
        assert selection["winner"] in DEFAULT_CANDIDATES and selection["voters"] == [1]
        assert len(selection["scores"]) == 4
        assert record.failures == [{"client": 0, "reason": "scores: non-finite value"}]
        assert record.client_loss[0] is not None  # it trained; only its vote is left out
        model = model_nbytes(result.state.models[0])
        head = model - result.state.models[0][CENTROIDS_KEY].nbytes
        candidates_down = head + 4 * result.state.models[0][CENTROIDS_KEY].nbytes + 8
        assert record.bytes_down == [model + candidates_down] * 2
        assert record.bytes_up == [model + 8 + 4 * 8] * 2  # update + n_samples + 4 scores
    save_checkpoint(tmp_path / "ck.npz", saved[0], "abc")
    resumed = run(auto, clients, rounds=2, resume=load_checkpoint(tmp_path / "ck.npz", "abc"))
    assert resumed.state.records[0].selection == result.state.records[0].selection
    assert resumed.state.records[1].selection == result.state.records[1].selection


def test_too_few_usable_scores_stop_the_run():
    auto, objective = build_method("fedcc_auto", FederationParams(), seed=0)
    good = make_clients(objective)
    clients = [NanScorer(client._data, CONFIG, objective) for client in good]
    with pytest.raises(FussbenchError, match="only 0 of 2 clients sent usable scores"):
        run(auto, clients, rounds=1)


def test_a_tiny_fedcc_auto_run_end_to_end(tmp_path, monkeypatch):
    """download -> partition -> features -> federate on a synthetic CamVid (2 clients)."""
    camvid_workspace(tmp_path, monkeypatch, [])
    quick = ["train.local_steps=2", "train.batch_size=2", "federation.rounds=2", "train.knn_k=1"]
    args = [arg for item in [*quick, "aggregator=fedcc_auto"] for arg in ("-S", item)]
    result = CliRunner().invoke(app, ["federate", *args, "--out", "runs/auto"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(Path("runs/auto/metrics.json").read_text())
    assert metrics["method"] == "fedcc_auto" and metrics["failed_client_rounds"] == 0
    assert [item["round"] for item in metrics["auto_selection"]] == [1, 2]
    assert all(item["winner"] in DEFAULT_CANDIDATES for item in metrics["auto_selection"])
    assert list(metrics["auto_selection"][0]["scores"]) == list(DEFAULT_CANDIDATES)
    with open("runs/auto/rounds.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["auto_winner"] for row in rows] == [
        item["winner"] for item in metrics["auto_selection"]
    ]
    assert {f"auto_score_{name}" for name in DEFAULT_CANDIDATES} <= set(rows[0])
    plain = ["-S", "aggregator=fedcc_kmeans"]
    result = CliRunner().invoke(app, ["federate", *args, *plain, "--out", "runs/kmeans"])
    assert result.exit_code == 0, result.output
    kmeans = json.loads(Path("runs/kmeans/metrics.json").read_text())
    assert "auto_selection" not in kmeans
    with open("runs/kmeans/rounds.csv", newline="") as handle:
        assert not any(key.startswith("auto_") for key in next(csv.reader(handle)))
    auto_up = metrics["communication"]["bytes_up_per_client_round"]
    assert auto_up == kmeans["communication"]["bytes_up_per_client_round"] + 4 * 8
    centroids = metrics["n_clusters"] * load_params("params.yaml").model.dim * 4  # float32
    candidates = metrics["model_bytes"] - centroids + 4 * centroids + 8  # head once, 4 sets
    auto_down = metrics["communication"]["bytes_down_per_client_round"]
    assert auto_down == kmeans["communication"]["bytes_down_per_client_round"] + candidates
