"""FedCC-OneShot (k-FED): the clients train alone for R × S steps and the server merges once;
the budget is converted where a run is assembled, and readers of per-round scores know it."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from cli_workspace import REPO
from test_federation_aggregators import previous_like, random_updates
from test_federation_rounds import CONFIG, FEATURES, SPLITS, evaluate, evaluate_local

from fussbench.errors import FussbenchError
from fussbench.federation.aggregators import FedCCKMeans, FedCCMaximin, make_aggregator
from fussbench.federation.client import FederatedClient, LocalObjective
from fussbench.federation.oneshot import FedCCOneShot
from fussbench.federation.rounds import run_rounds
from fussbench.federation.run import FederationRun, client_seed
from fussbench.model.head import initial_arrays
from fussbench.model.training import ClientData
from fussbench.params import load_params
from fussbench.reporting.runs import read_curves
from fussbench.run.federate import at_equal_compute
from fussbench.studies.convergence_runs import study_runs

PARAMS = REPO / "params.yaml"
MERGES = {"kmeans": FedCCKMeans(mode="cosine", seed=3), "maximin": FedCCMaximin(mode="cosine")}


@pytest.mark.parametrize("mode", ["kmeans", "maximin"])
def test_the_single_merge_is_the_cosine_fedcc_rule(mode):
    updates = random_updates(n_clients=3, n_clusters=4, dim=6, seed=7)
    merged = FedCCOneShot(mode=mode, seed=3).aggregate(updates, previous_like(updates))
    expected = MERGES[mode].aggregate(updates, previous_like(updates))
    assert merged.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(merged[key], value, err_msg=key)
    assert make_aggregator("fedcc_oneshot", seed=3) == FedCCOneShot(mode="kmeans", seed=3)
    with pytest.raises(FussbenchError, match=r"federation\.mode\); valid: kmeans, maximin"):
        FedCCOneShot(mode="cosine")


@pytest.mark.parametrize(
    ("aggregator", "rounds", "steps"),
    [
        ("fedcc_oneshot", 1, 150),  # one round of R × S
        ("fedcc_oneshot.maximin", 1, 150),
        ("fedcc_kmeans", 3, 50),  # unchanged
        ("centralized", 3, 200),  # n_clients × S per round on the pooled data
    ],
)
def test_the_run_is_assembled_at_the_iterative_methods_compute(aggregator, rounds, steps):
    name, *mode = aggregator.split(".")
    overrides = [f"aggregator={name}", "federation.rounds=3", "train.local_steps=50"]
    if mode:
        overrides.append(f"federation.mode={mode[0]}")
    params = load_params(PARAMS, overrides)
    assembled = at_equal_compute(params, n_clients=4)
    assert (assembled.federation.rounds, assembled.train.local_steps) == (rounds, steps)
    unchanged = dataclasses.replace(
        assembled,
        federation=dataclasses.replace(assembled.federation, rounds=3),
        train=dataclasses.replace(assembled.train, local_steps=50),
    )
    assert unchanged == params


def make_clients(config):
    return [
        FederatedClient(
            ClientData.from_cache(FEATURES[rows], FEATURES[rows].mean(axis=(2, 3)), 2),
            config,
            LocalObjective(),
        )
        for rows in SPLITS
    ]


@pytest.mark.parametrize("mode", ["kmeans", "maximin"])
def test_the_final_model_is_fedcc_of_the_clients_trained_for_the_whole_budget(mode):
    """R = 2 rounds of S = 2 steps run as one round of 4 steps: the final model equals the
    FedCC merge of the two clients' models, each trained 4 steps from the initial model."""
    overrides = ["aggregator=fedcc_oneshot", f"federation.mode={mode}", "seed=0"]
    params = load_params(PARAMS, [*overrides, "federation.rounds=2", "train.local_steps=2"])
    assembled = at_equal_compute(params, n_clients=len(SPLITS))
    config = dataclasses.replace(CONFIG, local_steps=assembled.train.local_steps)
    initial = initial_arrays(8, 6, 3, seed=0)
    aggregator = make_aggregator("fedcc_oneshot", mode=mode, seed=0)
    run = FederationRun(
        aggregator, LocalObjective(), initial, assembled.federation.rounds, 0, evaluate
    )
    result = run_rounds(run, make_clients(config), evaluate_local)
    assert [record.round for record in result.state.records] == [1]

    updates = [
        client.fit(initial, client_seed(0, 1, number))[0]
        for number, client in enumerate(make_clients(dataclasses.replace(CONFIG, local_steps=4)))
    ]
    merge = FedCCKMeans(seed=0) if mode == "kmeans" else FedCCMaximin()
    expected = merge.aggregate(updates, initial)
    for key, value in expected.items():
        np.testing.assert_array_equal(result.state.models[0][key], value, err_msg=key)


def test_the_convergence_study_refuses_a_one_shot_method_in_one_line():
    methods = "convergence.methods=[fedavg,fedcc_oneshot.maximin]"
    with pytest.raises(FussbenchError) as error:
        study_runs(load_params(PARAMS, [methods]))
    message = str(error.value)
    assert "\n" not in message
    assert "convergence.methods names 'fedcc_oneshot.maximin', a one-shot method" in message
    assert study_runs(load_params(PARAMS, ["convergence.methods=[fedcc_balanced]"]))


def test_the_rounds_figure_places_the_single_merge_at_the_budgets_last_round(tmp_path):
    for method, rounds in (("fedcc_oneshot", [1]), ("fedcc_kmeans", [1, 2, 3])):
        folder = tmp_path / "s" / method / "seed0"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"rounds": 3}), encoding="utf-8")
        frame = pd.DataFrame({"round": rounds, "miou": [20.0] * len(rounds)})
        frame.to_csv(folder / "rounds.csv", index=False)
    curves = read_curves(tmp_path, "s", ["fedcc_oneshot", "fedcc_kmeans"], [0])
    by_method = curves.groupby("method")["round"].apply(list).to_dict()
    assert by_method == {"fedcc_oneshot": [3], "fedcc_kmeans": [1, 2, 3]}
