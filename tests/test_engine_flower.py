"""The ``flower`` engine (a real SuperLink and SuperNodes on 127.0.0.1) against the in-process
engine, on a tiny synthetic CamVid with lite0 features: 2 clients, 2 rounds."""

import csv
import json
import math
import os
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from synthetic import CAMVID_COUNTS, make_camvid
from test_federation_rounds import make_clients
from typer.testing import CliRunner

import fussbench.engines.flower  # noqa: F401  (sets Flower's environment before flwr loads)
from fussbench.cli import app
from fussbench.data.camvid import CamVid
from fussbench.data.partition import read_partition
from fussbench.errors import FussbenchError
from fussbench.features.cache import open_split
from fussbench.federation.build import build_method
from fussbench.federation.checkpoint import load_checkpoint, save_checkpoint
from fussbench.federation.faults import Fault
from fussbench.federation.identity import run_fingerprint
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.scoring import SCORES, ScoreCandidates
from fussbench.methods import get_spec
from fussbench.model.head import initial_arrays
from fussbench.params import FederationParams, PrivacyParams, load_params
from fussbench.paths import partition_dir
from fussbench.privacy.mechanism import local_release
from fussbench.run.reuse import run_key

pytest.importorskip("flwr")

from flwr.app import ConfigRecord  # noqa: E402
from flwr.common import parameters_to_ndarrays  # noqa: E402
from flwr.compat.common import recorddict_compat as compat  # noqa: E402

from fussbench.engines.flower import codec, engine  # noqa: E402  (needs flwr)
from fussbench.engines.flower.export import export_sites  # noqa: E402
from fussbench.engines.flower.runconfig import (  # noqa: E402
    OBJECTIVE,
    objective_from_json,
    params_from_json,
    params_to_json,
    run_config,
)
from fussbench.engines.flower.secure_sum import CLIPPING_RANGE, sum_plan  # noqa: E402
from fussbench.engines.flower.site import open_site, write_site  # noqa: E402
from fussbench.engines.flower.strategy import client_outcome  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
QUICK = [
    "train.local_steps=2",
    "train.batch_size=2",
    "federation.rounds=2",
    "train.knn_k=1",
    "aggregator=fedmoon",  # keeps a model on each client between rounds
]
TRAIN_CACHE = Path("data/features/camvid/effnet_lite0/train")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Prepared once: a synthetic CamVid downloaded, partitioned (2 clients) and cached.
    Flower's temporary folders go to ``tmp`` inside it, to check they are removed."""
    root = tmp_path_factory.mktemp("flower")
    make_camvid(root / "mirror" / "camvid")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"]["mirror"] = str(root / "mirror")
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "tmp").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CamVid, "split_counts", CAMVID_COUNTS)
        patch.setattr(tempfile, "tempdir", str(root / "tmp"))
        patch.chdir(root)
        for stage in ("download", "partition", "features"):
            result = CliRunner().invoke(app, [stage], catch_exceptions=False)
            assert result.exit_code == 0, result.output
        yield root


def federate(out: str, *overrides: str, engine_name: str = "flower"):
    args = [arg for item in (*QUICK, *overrides) for arg in ("-S", item)]
    return CliRunner().invoke(
        app, ["federate", *args, "--engine", engine_name, "--out", out], catch_exceptions=False
    )


def flower_processes(root: Path) -> list[int]:
    """Processes whose FLWR_HOME lies under ``root``: every process the launcher started,
    and their children (SuperExecs, ServerApp, ClientApps)."""
    marker = f"FLWR_HOME={root}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue  # gone, or not ours
    return found


def assert_cleaned_up(root: Path) -> None:
    deadline = time.monotonic() + 10
    while flower_processes(root / "tmp") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert flower_processes(root / "tmp") == []
    assert list((root / "tmp").glob("fussbench-flower-*")) == []


def flat(value, path: tuple = ()) -> dict[str, object]:
    """Leaves of nested metrics as {dotted path: value}."""
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        return {k: v for key, item in items for k, v in flat(item, (*path, key)).items()}
    return {".".join(map(str, path)): value}


def assert_same_numbers(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, left in a.items():
        right = b[key]
        if isinstance(left, float) and isinstance(right, float):
            assert math.isclose(left, right, rel_tol=1e-5, abs_tol=1e-6) or (
                math.isnan(left) and math.isnan(right)
            ), key
        else:
            assert left == right, key


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def numbers(row: dict[str, str]) -> dict[str, object]:
    """A rounds.csv row without its timings, numbers as floats."""
    return {
        key: float(value) if value else None
        for key, value in row.items()
        if key != "seconds" and not key.endswith("_train_s")
    }


def fingerprint(*overrides: str) -> str:
    """The key a run of QUICK with ``overrides`` stamps on its checkpoints."""
    return run_key(load_params("params.yaml", [*QUICK, *overrides]))


def read_metrics(folder: Path) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics.pop("seconds")
    return flat(metrics)


ENGINES = ("inprocess", "flower")
"""The engines a run is compared on, in-process first."""


def on_both_engines(workspace: Path, name: str, *overrides: str) -> dict[str, Path]:
    """The run of ``overrides`` on each engine (``runs/<name>_<engine>``), checked to end
    with the same final model: engine name -> its run folder."""
    runs = {}
    for engine_name in ENGINES:
        result = federate(f"runs/{name}_{engine_name}", *overrides, engine_name=engine_name)
        assert result.exit_code == 0, result.output
        runs[engine_name] = workspace / f"runs/{name}_{engine_name}"
    with np.load(runs["inprocess"] / "model.npz") as a, np.load(runs["flower"] / "model.npz") as b:
        for key in a.files:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6, err_msg=key)
    return runs


@pytest.fixture(scope="module")
def inprocess_run(workspace):
    """The reference: the same run on the in-process engine, and its wall time."""
    started = time.perf_counter()
    result = federate("runs/inprocess", engine_name="inprocess")
    assert result.exit_code == 0, result.output
    return workspace / "runs/inprocess", time.perf_counter() - started


def test_flower_run_matches_the_in_process_run(workspace, inprocess_run):
    reference, inprocess_s = inprocess_run
    started = time.perf_counter()
    result = federate("runs/flower")
    flower_s = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    print(f"\nwall time of the run: inprocess {inprocess_s:.1f} s, flower {flower_s:.1f} s")
    out = workspace / "runs/flower"
    with np.load(reference / "model.npz") as a, np.load(out / "model.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        assert any(key.endswith("/centroids") for key in a.files)
        for key in a.files:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6, err_msg=key)
    metrics = read_metrics(reference)
    assert metrics["failed_client_rounds"] == 0
    assert_same_numbers(metrics, read_metrics(out))
    rounds = [read_rows(folder / "rounds.csv") for folder in (reference, out)]
    assert len(rounds[0]) == len(rounds[1]) == 2
    for left, right in zip(*rounds, strict=True):
        assert left.keys() == right.keys()
        assert_same_numbers(numbers(left), numbers(right))
    images = [read_rows(folder / "images.csv") for folder in (reference, out)]
    assert len(images[0]) == CAMVID_COUNTS["test"]
    assert_same_numbers(
        {row["image"]: float(row["miou"]) for row in images[0]},
        {row["image"]: float(row["miou"]) for row in images[1]},
    )
    assert not (out / "flower_logs").exists()
    assert_cleaned_up(workspace)


@pytest.mark.parametrize(
    "fault",
    [["faults.scenario=poisoned_head", "faults.strength=3"], ["faults.scenario=free_rider"]],
)
def test_flower_applies_a_fault_as_the_in_process_engine_does(workspace, fault):
    """A client that misbehaves from round 2 (its SuperNode corrupts what it sends): the
    same final model and numbers on both engines, and not those of the honest run."""
    overrides = [*fault, "faults.clients=[largest]", "faults.from_round=2"]
    runs = on_both_engines(workspace, f"fault_{fault[0].split('=')[1]}", *overrides)
    metrics = read_metrics(runs["inprocess"])
    assert metrics["fault"].endswith(
        "from round 2" + (", strength 3" if "strength" in fault[-1] else "")
    )
    assert_same_numbers(metrics, read_metrics(runs["flower"]))


@pytest.mark.parametrize(
    ("name", "mechanism", "privacy"),
    [
        ("local", "local", []),
        ("central", "central", ["federation.weighting=uniform"]),
        ("sums", "central", ["aggregator=fedcc_sums", "federation.weighting=uniform"]),
    ],
)
def test_flower_applies_privacy_as_the_in_process_engine_does(workspace, name, mechanism, privacy):
    """Seed 2 at q = 0.5: both clients train in round 1, only client 1 in round 2; the
    clients' (local) or the server's (central, FedCC-Sums' Lloyd step on noised code
    shares included) noise is drawn from the same seeds on both engines, so the final
    model and every number match."""
    overrides = [f"privacy.mechanism={mechanism}", *privacy, "privacy.sample_rate=0.5", "seed=2"]
    runs = on_both_engines(workspace, f"privacy_{name}", *overrides)
    metrics = read_metrics(runs["inprocess"])
    assert metrics["privacy"] == mechanism and metrics["epsilon"] > 0
    assert_same_numbers(metrics, read_metrics(runs["flower"]))
    rounds = [read_rows(folder / "rounds.csv") for folder in runs.values()]
    assert [row["sampled_clients"] for row in rounds[0]] == ["2", "1"]
    for left, right in zip(*rounds, strict=True):
        assert_same_numbers(numbers(left), numbers(right))


def test_flower_fedcc_auto_matches_the_in_process_run(workspace):
    """FedCC-Auto's scoring exchange (its query as a query.aggregator message): the same
    winner every round, the same weighted scores, bytes and final model as in-process."""
    runs = {}
    for engine_name in ("inprocess", "flower"):
        out = f"runs/auto_{engine_name}"
        result = federate(out, "aggregator=fedcc_auto", engine_name=engine_name)
        assert result.exit_code == 0, result.output
        runs[engine_name] = workspace / out
    reference, out = runs["inprocess"], runs["flower"]
    with np.load(reference / "model.npz") as a, np.load(out / "model.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6, err_msg=key)
    metrics = read_metrics(reference)
    assert metrics["failed_client_rounds"] == 0
    assert {key for key in metrics if key.endswith(".winner")} == {
        "auto_selection.0.winner",
        "auto_selection.1.winner",
    }
    assert_same_numbers(metrics, read_metrics(out))
    rounds = [read_rows(folder / "rounds.csv") for folder in (reference, out)]
    for left, right in zip(*rounds, strict=True):
        assert left.pop("auto_winner") == right.pop("auto_winner")
        assert_same_numbers(numbers(left), numbers(right))
    assert_cleaned_up(workspace)


def assert_engines_agree(workspace: Path, name: str, *overrides: str) -> dict:
    """Run ``overrides`` on both engines (into ``runs/<name>_<engine>``): the same final
    model, metrics and rounds.csv numbers, no failed client, Flower cleaned up. Returns
    the in-process run's metrics."""
    runs = on_both_engines(workspace, name, *overrides)
    reference, out = runs["inprocess"], runs["flower"]
    with np.load(reference / "model.npz") as a, np.load(out / "model.npz") as b:
        assert sorted(a.files) == sorted(b.files)
    metrics = read_metrics(reference)
    assert metrics["failed_client_rounds"] == 0
    assert_same_numbers(metrics, read_metrics(out))
    rounds = [read_rows(folder / "rounds.csv") for folder in (reference, out)]
    for left, right in zip(*rounds, strict=True):
        assert_same_numbers(numbers(left), numbers(right))
    assert_cleaned_up(workspace)
    return metrics


def test_flower_secure_aggregation_matches_the_plain_run_within_its_quantisation(workspace):
    """FedAvg, one round, on Flower with and without SecAgg+: every array of the final
    model within SecAgg+'s quantisation error |A| (2c + D) / (Q rho) (secure_sum's
    docstring; D at most c / min r_k, beyond which SecAgg+ would clip) plus float32
    rounding, and no failure; the round record counts the protocol's bytes. Prints the
    cost: wall time per round and bytes per client, with and without."""
    one = ["aggregator=fedavg", "federation.rounds=1"]
    runs = {}
    for name, extra in (("plain", []), ("secure", ["privacy.secure_aggregation=true"])):
        result = federate(f"runs/secagg_{name}", *one, *extra)
        assert result.exit_code == 0, result.output
        runs[name] = workspace / f"runs/secagg_{name}"
    setup = load_params("params.yaml").setup
    sizes = [len(names) for names in read_partition(workspace / partition_dir(setup))]
    plan = sum_plan(get_spec("fedavg"), None, "samples", ["centroids"], sizes, 1)
    ratios = [size / plan.total_weight for size in sizes]
    worst = CLIPPING_RANGE / min(ratios)
    bound = len(sizes) * (2 * CLIPPING_RANGE + worst) / plan.quantization_range
    largest = 0.0
    with np.load(runs["plain"] / "model.npz") as a, np.load(runs["secure"] / "model.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_allclose(b[key], a[key], rtol=2**-23, atol=bound, err_msg=key)
            largest = max(largest, float(np.abs(b[key] - a[key]).max()))
    metrics = {name: read_metrics(folder) for name, folder in runs.items()}
    assert metrics["secure"]["failed_client_rounds"] == 0
    rows = {name: read_rows(folder / "rounds.csv")[0] for name, folder in runs.items()}
    assert rows["plain"].keys() == rows["secure"].keys()
    miou = {name: metrics[name]["miou"] for name in runs}
    print(
        f"\nSecAgg+ against plain, FedAvg, 1 round, {len(sizes)} clients: largest array "
        f"difference {largest:.3g} (bound {bound:.3g}), final mIoU {miou['secure']} against "
        f"{miou['plain']}"
    )
    for name, row in rows.items():
        clients = range(len(sizes))
        up = [int(row[f"client{k}_bytes_up"]) for k in clients]
        down = [int(row[f"client{k}_bytes_down"]) for k in clients]
        print(f"{name}: round {float(row['seconds']):.1f} s, bytes up {up}, down {down}")
    secure_up = [int(rows["secure"][f"client{k}_bytes_up"]) for k in range(len(sizes))]
    plain_up = [int(rows["plain"][f"client{k}_bytes_up"]) for k in range(len(sizes))]
    assert all(s > 2 * p for s, p in zip(secure_up, plain_up, strict=True))  # int64 masks
    assert abs(miou["secure"] - miou["plain"]) < 0.5
    assert_cleaned_up(workspace)


def test_flower_run_with_auto_k_matches_the_in_process_run(workspace):
    """model.n_clusters: auto on Flower: the initial model without centroids reaches the
    SuperNodes, each client estimates its own K, the server chooses the global K; the
    counts, the scores and the final model are those of the in-process run."""
    metrics = assert_engines_agree(
        workspace, "k", "aggregator=fedcc_kmeans", "model.n_clusters=auto"
    )
    assert metrics["n_clusters"] == "auto"
    clients = [metrics["n_clusters_clients.0"], metrics["n_clusters_clients.1"]]
    assert all(2 <= k <= 30 for k in clients)
    assert metrics["n_clusters_global.0"] == metrics["n_clusters_global.1"]
    assert metrics["n_clusters_final.0"] == metrics["n_clusters_global.1"]


def test_flower_fedcc_sums_matches_the_in_process_run(workspace):
    """FedCC-Sums on Flower: the SuperNodes learn from the run config to send code sums
    and counts; the final model, the metrics and every round's numbers (the clients' own
    scores of their trained models included) are those of the in-process run."""
    metrics = assert_engines_agree(workspace, "sums", "aggregator=fedcc_sums")
    assert metrics["method"] == "fedcc_sums"


def test_flower_one_shot_matches_the_in_process_run(workspace):
    """fedcc_oneshot (R = 2 rounds of S = 2 steps): the ServerApp runs one round and every
    ClientApp trains 4 steps, as in-process; the same single round and final model."""
    one_shot = ["aggregator=fedcc_oneshot", "federation.mode=maximin"]
    metrics = assert_engines_agree(workspace, "oneshot", *one_shot)
    assert metrics["steps_per_round"] == 4
    rounds = [read_rows(workspace / f"runs/oneshot_{engine}/rounds.csv") for engine in ENGINES]
    assert len(rounds[0]) == len(rounds[1]) == 1


def test_a_query_arrives_whole_and_fedcc_autos_answer_is_the_scores_only():
    """Privacy: FedCC-Auto's query is rebuilt on the client from its type, arrays and
    config; the reply carries one record holding one array, the J float64 scores, and a
    reply with anything more is malformed. Only fussbench's query classes are rebuilt."""
    auto, objective = build_method("fedcc_auto", FederationParams(), seed=0)
    clients = make_clients(objective)
    start = initial_arrays(8, 6, 3, seed=0)
    query = auto.propose([client.fit(start, seed=1)[0] for client in clients], start).query()
    message = codec.encode_query(query)
    assert set(message) == {codec.QUERY_TYPE, codec.QUERY_ARRAYS, codec.QUERY_CONFIG}
    rebuilt = codec.decode_query(message)
    assert isinstance(rebuilt, ScoreCandidates) and rebuilt.max_images == query.max_images
    assert rebuilt.head.keys() == query.head.keys()
    np.testing.assert_array_equal(rebuilt.centroids, query.centroids)
    content = codec.encode_answer(clients[0].answer(rebuilt))
    assert set(content) == {codec.ANSWER}
    answer = codec.decode_answer(content)
    assert set(answer) == {SCORES}
    assert answer[SCORES].dtype == np.float64 and answer[SCORES].shape == (len(auto.candidates),)
    np.testing.assert_array_equal(answer[SCORES], clients[0].answer(query)[SCORES])
    content[codec.REPORT] = content[codec.ANSWER]
    with pytest.raises(FussbenchError, match="unexpected records"):
        codec.decode_answer(content)
    message[codec.QUERY_TYPE] = ConfigRecord({"type": "os:system"})
    with pytest.raises(FussbenchError, match="refused"):
        codec.decode_query(message)


def test_a_resumed_flower_run_ends_with_the_uninterrupted_numbers(workspace, inprocess_run):
    """A run stopped after round 1 of 2 (its checkpoint re-labelled for the 2-round Flower
    params, which is what a kill leaves) resumes on Flower: FedMOON's kept client models
    travel back to the clients, and the run ends as the uninterrupted run."""
    reference, _ = inprocess_run
    cut = federate("runs/cut", "federation.rounds=1", engine_name="inprocess")
    assert cut.exit_code == 0, cut.output
    checkpoint = workspace / "runs/cut/checkpoint.npz"
    state = load_checkpoint(checkpoint, fingerprint("federation.rounds=1"))
    assert state is not None and state.round == 1
    save_checkpoint(checkpoint, state, fingerprint("engine=flower"))
    resumed = federate("runs/cut")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming runs/cut after round 1" in resumed.output
    assert_same_numbers(read_metrics(reference), read_metrics(workspace / "runs/cut"))
    assert_cleaned_up(workspace)


@contextmanager
def node_killed_in_round(original, client: int, round_index: int):
    """``engine.local_federation`` whose SuperNode ``client`` is killed (SIGTERM) once it
    has received its training message of round ``round_index``."""

    @contextmanager
    def federation(root, sites):
        with original(root, sites) as running:
            node = running.supernodes[client]

            def kill_when_training() -> None:
                while node.alive():
                    if f"ROUND {round_index}]" in node.log_path.read_text(errors="replace"):
                        time.sleep(0.5)  # the ClientApp is starting: mid-round
                        os.kill(node.popen.pid, signal.SIGTERM)
                        return
                    time.sleep(0.1)

            killer = threading.Thread(target=kill_when_training, daemon=True)
            killer.start()
            yield running
            killer.join(timeout=5)

    yield federation


def test_a_lost_supernode_is_left_out_while_min_clients_finish(workspace, monkeypatch):
    with node_killed_in_round(engine.local_federation, client=1, round_index=2) as patched:
        monkeypatch.setattr(engine, "local_federation", patched)
        result = federate("runs/lost1", "federation.min_clients=1")
    assert result.exit_code == 0, result.output
    rounds = read_rows(workspace / "runs/lost1/rounds.csv")
    assert [row["failed_clients"] for row in rounds] == ["0", "1"]
    assert rounds[1]["client1_loss"] == "" and rounds[1]["client1_bytes_up"] == "0"
    assert rounds[1]["client0_loss"] != ""
    metrics = json.loads((workspace / "runs/lost1/metrics.json").read_text())
    assert metrics["failed_client_rounds"] == 1
    state = load_checkpoint(
        workspace / "runs/lost1/checkpoint.npz",
        fingerprint("engine=flower", "federation.min_clients=1"),
    )
    (failure,) = state.records[1].failures
    assert failure["client"] == 1 and failure["reason"]
    assert_cleaned_up(workspace)


def test_a_lost_supernode_below_min_clients_stops_the_run_keeping_its_rounds(
    workspace, monkeypatch
):
    with node_killed_in_round(engine.local_federation, client=1, round_index=2) as patched:
        monkeypatch.setattr(engine, "local_federation", patched)
        result = federate("runs/lost2", "federation.min_clients=2")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("fussbench: error: round 2: only 1 of 2 clients finished")
    assert "(federation.min_clients = 2): client 1:" in lines[-1]
    out = workspace / "runs/lost2"
    assert len(read_rows(out / "rounds.csv")) == 1
    kept = load_checkpoint(
        out / "checkpoint.npz", fingerprint("engine=flower", "federation.min_clients=2")
    )
    assert kept.round == 1
    assert not (out / "metrics.json").exists()
    assert (out / "flower_logs" / "superlink.log").is_file()
    assert_cleaned_up(workspace)


def test_a_site_folder_holds_only_its_client_and_is_checked(workspace, tmp_path):
    index = json.loads((workspace / TRAIN_CACHE / "index.json").read_text())
    train = open_split(workspace / TRAIN_CACHE, index["fingerprint"])
    rows = train.rows([train.names[2]])
    site = write_site(tmp_path / "site1", 1, train, rows)
    opened = open_site(site, 1, train.fingerprint)
    assert opened.cache.names == [train.names[2]]
    np.testing.assert_array_equal(opened.cache.features, train.features[rows])
    with pytest.raises(FussbenchError, match="no manifest of client 0"):
        open_site(site, 0, train.fingerprint)
    with pytest.raises(FussbenchError, match="does not match params"):
        open_site(site, 1, {**train.fingerprint, "layers": "16"})


def test_export_writes_one_folder_per_client_for_remote_supernodes(workspace, tmp_path):
    folders = export_sites(Path("params.yaml"), [], tmp_path)
    assert [folder.name for folder in folders] == ["client_00", "client_01"]
    index = json.loads((workspace / TRAIN_CACHE / "index.json").read_text())
    names = [open_site(f, c, index["fingerprint"]).cache.names for c, f in enumerate(folders)]
    assert sorted(names[0] + names[1]) == sorted(index["names"])
    assert not set(names[0]) & set(names[1])


def test_a_train_reply_carries_the_client_update_fields_and_the_report_only():
    arrays = {
        "head.linear.weight": np.ones((2, 3, 1, 1), np.float32),
        "centroids": np.eye(2, dtype=np.float32),
    }
    update = ClientUpdate(arrays, n_samples=7, cluster_counts=np.array([5, 9]))
    content = codec.encode_reply(update, codec.ClientReport(0.5, 1.5, 40.0, 60.0))
    assert set(content) == set(codec.REPLY_RECORDS)
    assert set(content[codec.UPDATE_ARRAYS]) == set(arrays)
    decoded, report = codec.decode_reply(content)
    assert decoded.n_samples == 7 and decoded.nbytes() == update.nbytes()
    np.testing.assert_array_equal(decoded.cluster_counts, [5, 9])
    assert report == codec.ClientReport(0.5, 1.5, 40.0, 60.0)
    uncounted = ClientUpdate(arrays, n_samples=7)
    content = codec.encode_reply(uncounted, codec.ClientReport(0.5, 1.5, 40.0, 60.0))
    assert set(content) == set(codec.REPLY_RECORDS) - {codec.UPDATE_COUNTS}
    decoded, _ = codec.decode_reply(content)
    assert decoded.cluster_counts is None and decoded.nbytes() == uncounted.nbytes()


def test_a_fedcc_sums_reply_carries_the_head_sums_and_counts_never_the_centroids():
    """Privacy on the wire (fedcc_sums): the reply's arrays are the head and the code sums
    under ``centroids``, with the counts and n_samples; no value of the client's trained
    centroids is in it. The objective that asks for it reaches the SuperNodes unchanged."""
    _, objective = build_method("fedcc_sums", FederationParams(), seed=0)
    config = run_config(load_params(REPO / "params.yaml"), objective, {}, Path("job"), Fault())
    assert objective_from_json(config[OBJECTIVE]) == objective
    client = make_clients(objective)[0]
    update, _ = client.fit(initial_arrays(8, 6, 3, seed=0), seed=1)
    content = codec.encode_reply(update, codec.ClientReport(0.5, 1.5, 40.0, 60.0))
    assert set(content) == set(codec.REPLY_RECORDS)
    decoded, _ = codec.decode_reply(content)
    assert set(decoded.arrays) == set(client.trained()) and decoded.n_samples == 5
    for key, value in update.arrays.items():
        np.testing.assert_array_equal(decoded.arrays[key], value)
    np.testing.assert_array_equal(decoded.cluster_counts, update.cluster_counts)
    wire = np.concatenate([np.ravel(array) for array in decoded.arrays.values()])
    assert not np.isin(client.trained()["centroids"], wire).any()


def test_a_secure_rounds_instruction_and_reply_carry_the_model_summands_and_report_only():
    """Privacy under secure aggregation, the records fussbench hands Flower's SecAgg+: the
    instruction (a legacy FitIns) carries the global model, round, seed and public plan;
    the client's reply to the mod (a legacy FitRes) its summands, weight and report, and
    nothing else. The mod masks the summands and empties the arrays before the reply
    leaves the node: tests/test_engine_flower_secure.py checks every message on the
    wire."""
    model = initial_arrays(8, 6, 3, seed=0)
    plan = sum_plan(get_spec("fedavg"), None, "samples", model, [5, 7], 12)
    fitins = codec.encode_secure_train(codec.TrainInstruction(model, 2, 7), plan)
    content = compat.fitins_to_recorddict(fitins, keep_input=True)  # as the workflow sends it
    assert set(content) == {"fitins.parameters", "fitins.config"}
    instruction, received_plan = codec.decode_secure_train(content)
    assert (instruction.round, instruction.seed, instruction.previous) == (2, 7, None)
    assert received_plan == plan and instruction.model.keys() == model.keys()
    for key, value in model.items():
        np.testing.assert_array_equal(instruction.model[key], value)
    with pytest.raises(FussbenchError, match="no previous model"):
        codec.encode_secure_train(codec.TrainInstruction(model, 2, 7, previous=model), plan)
    summands = [np.full((2, 3), 0.25), np.arange(4.0)]
    report = codec.ClientReport(0.5, 1.5, 40.0, 60.0)
    reply = codec.encode_secure_reply(5, summands, report)
    assert set(reply) == {
        "fitres.parameters",
        "fitres.num_examples",
        "fitres.metrics",
        "fitres.status",
    }
    fitres = compat.recorddict_to_fitres(reply, keep_input=True)
    assert fitres.num_examples == 5 and codec.decode_secure_report(fitres) == report
    assert set(fitres.metrics) == {"loss", "train_seconds", "local_miou", "local_accuracy"}
    for sent, value in zip(parameters_to_ndarrays(fitres.parameters), summands, strict=True):
        np.testing.assert_array_equal(sent, value)


def test_a_locally_private_reply_carries_the_same_records_noised():
    """Under privacy.mechanism local the reply holds the honest reply's records and keys."""
    received = {"head.linear.weight": np.zeros((2, 3, 1, 1), np.float32)}
    received["centroids"] = np.eye(2, dtype=np.float32)
    update = ClientUpdate({k: v + 0.5 for k, v in received.items()}, n_samples=7)
    private = PrivacyParams(mechanism="local")
    sent = local_release(update, received, private, seed=3)
    report = codec.ClientReport(0.5, 1.5, 40.0, 60.0)
    honest, noised = codec.encode_reply(update, report), codec.encode_reply(sent, report)
    assert set(noised) == set(honest) == set(codec.REPLY_RECORDS) - {codec.UPDATE_COUNTS}
    assert set(noised[codec.UPDATE_ARRAYS]) == set(honest[codec.UPDATE_ARRAYS])
    decoded, _ = codec.decode_reply(noised)
    assert decoded.n_samples == 7 and decoded.nbytes() == update.nbytes()
    assert not np.array_equal(decoded.centroids, update.centroids)


def test_a_client_without_reply_is_left_out_naming_the_round_timeout():
    assert client_outcome(None, 30.0).failure == "no reply within 30 s"


def test_unknown_engine_lists_the_valid_names(workspace):
    result = federate("runs/x", engine_name="sparkle")
    assert result.exit_code == 2
    assert "unknown engine 'sparkle'" in result.output and "inprocess, flower" in result.output


def test_flower_engine_refuses_methods_without_server_aggregation(workspace):
    result = federate("runs/local", "aggregator=local")
    assert result.exit_code == 2
    assert "engine 'flower' runs federated aggregators; 'local'" in result.output


def test_params_reach_the_flower_apps_unchanged():
    params = load_params(REPO / "params.yaml", ["setup=tile_quantity", "model.n_clusters=4"])
    rebuilt = params_from_json(params_to_json(params))
    assert rebuilt.model.n_clusters == 4 and rebuilt.dataset == params.dataset
    assert run_fingerprint(rebuilt) == run_fingerprint(params)
