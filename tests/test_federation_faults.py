"""Fault scenarios: each corruption's math on hand-made updates, and end to end: the bad
client is the one the server's suspicion score names, and a local run is untouched."""

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_workspace import QUICK_IID3, camvid_workspace
from typer.testing import CliRunner

from fussbench.cli import app
from fussbench.errors import FussbenchError
from fussbench.federation.faults import Fault, corrupt, resolve_clients
from fussbench.federation.messages import ClientUpdate


def honest_update() -> tuple[ClientUpdate, dict[str, np.ndarray]]:
    """An update whose head moved by +1 from the received model, and the received model."""
    rng = np.random.default_rng(0)
    received = {
        "head.w": rng.normal(size=(3, 2)).astype(np.float32),
        "centroids": rng.normal(size=(4, 5)).astype(np.float32),
    }
    arrays = {"head.w": received["head.w"] + 1.0, "centroids": received["centroids"] * 2.0}
    return ClientUpdate(arrays, n_samples=7), received


def test_random_centroids_keep_the_norms_and_draw_from_the_seed():
    update, received = honest_update()
    fault = Fault("random_centroids", (0,))
    sent = corrupt(update, received, fault, seed=3)
    norms = np.linalg.norm(update.centroids, axis=1)
    np.testing.assert_allclose(np.linalg.norm(sent.centroids, axis=1), norms, rtol=1e-5)
    cosines = np.sum(sent.centroids * update.centroids, axis=1) / norms**2
    assert np.all(np.abs(cosines) < 0.99)
    np.testing.assert_array_equal(sent.centroids, corrupt(update, received, fault, 3).centroids)
    assert not np.array_equal(sent.centroids, corrupt(update, received, fault, 4).centroids)
    np.testing.assert_array_equal(sent.arrays["head.w"], update.arrays["head.w"])


def test_collapsed_poisoned_and_free_riding_updates():
    update, received = honest_update()
    collapsed = corrupt(update, received, Fault("collapsed", (0,)), 0).centroids
    np.testing.assert_array_equal(collapsed, np.repeat(update.centroids[:1], 4, axis=0))
    poisoned = corrupt(update, received, Fault("poisoned_head", (0,), strength=5.0), 0)
    np.testing.assert_allclose(poisoned.arrays["head.w"], received["head.w"] - 5.0, rtol=1e-6)
    np.testing.assert_array_equal(poisoned.centroids, update.centroids)
    rider = corrupt(update, received, Fault("free_rider", (0,)), 0)
    for key, value in received.items():
        np.testing.assert_array_equal(rider.arrays[key], value)
    assert rider.n_samples == 7
    assert corrupt(update, received, Fault("noise_images", (0,)), 0) is update


def test_faults_act_on_code_sums_and_keep_the_counts():
    """fedcc_sums: the centroid scenarios corrupt the sums sent in the centroids' place
    (a zero sum, an empty cluster, stays zero under random_centroids), the counts stay."""
    sums = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    counts = np.array([6, 0, 2])
    update = ClientUpdate({"head.w": np.ones((2, 2), "f4"), "centroids": sums}, 4, counts)
    received = {"head.w": np.zeros((2, 2), "f4"), "centroids": np.eye(3, 2, dtype="f4")}
    randomised = corrupt(update, received, Fault("random_centroids", (0,)), seed=3)
    np.testing.assert_allclose(np.linalg.norm(randomised.centroids, axis=1), [5, 0, 2], rtol=1e-6)
    assert not np.allclose(randomised.centroids, sums)
    collapsed = corrupt(update, received, Fault("collapsed", (0,)), 0)
    np.testing.assert_array_equal(collapsed.centroids, np.repeat(sums[:1], 3, axis=0))
    rider = corrupt(update, received, Fault("free_rider", (0,)), 0)
    np.testing.assert_array_equal(rider.centroids, received["centroids"])
    for sent in (randomised, collapsed, rider):
        np.testing.assert_array_equal(sent.cluster_counts, counts)


def test_clients_resolve_by_number_or_size_and_bad_names_are_refused():
    assert resolve_clients(["largest", 0, "smallest"], [5, 9, 2]) == (1, 0, 2)
    with pytest.raises(FussbenchError, match="faults.clients: 3 is not a client"):
        resolve_clients([3], [5, 9, 2])
    assert Fault("collapsed", (2,), from_round=2).hits(2, 2)
    assert not Fault("collapsed", (2,), from_round=2).hits(2, 1)
    assert Fault().describe() == "honest" and not Fault("collapsed").active


# --- end to end ---------------------------------------------------------------------------

QUICK = QUICK_IID3


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny synthetic CamVid split iid over 3 clients, downloaded, partitioned, cached."""
    with pytest.MonkeyPatch.context() as patch:
        yield camvid_workspace(tmp_path_factory.mktemp("faults"), patch, QUICK)


def federate_cli(command: str, *overrides: str):
    args = [arg for item in (*QUICK, *overrides) for arg in ("-S", item)]
    return CliRunner().invoke(app, [command, *args], catch_exceptions=False)


def run(out: str, *overrides: str) -> dict:
    result = CliRunner().invoke(
        app,
        ["federate", *(a for o in (*QUICK, *overrides) for a in ("-S", o)), "--out", out],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return json.loads((Path(out) / "metrics.json").read_text())


def test_the_server_names_the_client_that_sends_random_centroids(workspace):
    honest = run("runs/honest", "aggregator=fedcc_kmeans")
    hostile = run(
        "runs/hostile",
        "aggregator=fedcc_kmeans",
        "faults.scenario=random_centroids",
        "faults.clients=[1]",
    )
    assert "fault" not in honest and honest["suspect_ratio"] < hostile["suspect_ratio"]
    assert hostile["fault"] == "random_centroids: client 1 from round 1"
    assert hostile["fault_clients"] == "1" and hostile["suspect_client"] == 1
    with open("runs/hostile/rounds.csv") as file:
        rows = list(csv.DictReader(file))
    assert {f"client{c}_suspicion" for c in range(3)} <= set(rows[0])
    ratios = [float(rows[0][f"client{c}_suspicion"]) for c in range(3)]
    assert int(np.argmax(ratios)) == 1


def test_a_local_run_is_untouched_by_a_fault_on_what_clients_send(workspace):
    honest = run("runs/local_honest", "aggregator=local")
    faulty = run(
        "runs/local_faulty", "aggregator=local", "faults.scenario=collapsed", "faults.clients=[0]"
    )
    assert faulty["miou"] == honest["miou"] and "suspect_client" not in faulty


def test_noise_images_train_the_bad_client_on_noise(workspace):
    honest = run("runs/noise_honest", "aggregator=fedavg")
    noisy = run(
        "runs/noise", "aggregator=fedavg", "faults.scenario=noise_images", "faults.clients=[0]"
    )
    assert noisy["fault"].startswith("noise_images: client 0")
    assert noisy["miou"] != honest["miou"]


def test_a_study_records_each_run_and_resumes_from_its_records(workspace):
    study = [
        "study.name=robustness",
        "study.methods=[fedavg]",
        "study.seeds=[0]",
        "study.variants={honest: [], random: [faults.scenario=random_centroids, "
        "'faults.clients=[1]']}",
        "reports_dir=reports/rb",
        "runtime.workers=1",
    ]
    first = federate_cli("study", *study)
    assert first.exit_code == 0, first.output
    records = Path("reports/rb/runs.csv").read_text().splitlines()
    assert len(records) == 3 and records[0].startswith("variant,setup,method,seed")
    assert '"pending": 0' in first.output
    assert Path("reports/rb/robustness.md").read_text().startswith("# One bad client: honest")
    by_round = pd.read_csv("reports/rb/rounds.csv")
    kept = pd.read_csv("reports/rb/runs.csv")
    assert len(by_round) == kept["rounds"].sum()  # every round of both runs
    last = by_round.sort_values("round").groupby("variant").last()["miou"]
    assert last.to_dict() == pytest.approx(kept.set_index("variant")["miou"].to_dict(), abs=1e-3)
    again = federate_cli("study", *study)
    assert '"recorded": 2' in again.output and "run(s) to go" not in again.output
