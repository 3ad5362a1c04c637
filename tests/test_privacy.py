"""Client-level differential privacy (``privacy:``): clipping, noise, sampling and the
accountant against known answers; refusals at load time; a default run unchanged; a
private run's records end to end."""

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from cli_workspace import QUICK_IID3, camvid_workspace
from dp_accounting import dp_event, rdp
from flwr.supercore.privacy_accounting import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant
from test_federation_rounds import make_clients, run
from typer.testing import CliRunner

from fussbench.cli import app
from fussbench.errors import FussbenchError
from fussbench.federation import identity
from fussbench.federation.aggregators import FedAvg
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.outcome import ClientOutcome, check_min_clients
from fussbench.methods.check import check_methods
from fussbench.model.head import initial_arrays
from fussbench.params import PrivacyParams, load_params
from fussbench.privacy.accounting import calibrated, epsilon, noise_for_epsilon
from fussbench.privacy.clipping import clip, clipped_delta
from fussbench.privacy.mechanism import NoisySum, code_shares, local_release
from fussbench.privacy.sampling import participants
from fussbench.reporting.results import _row

REPO = Path(__file__).resolve().parents[1]
CENTRAL = PrivacyParams(mechanism="central", clip_head=1.0, clip_centroids=2.0)
LOCAL = dataclasses.replace(CENTRAL, mechanism="local")


def model(shift: float = 0.0) -> dict[str, np.ndarray]:
    """Two head arrays and centroids (4, 5), every entry ``shift``."""
    shapes = {"head.a": (3, 2), "head.b": (4,), "centroids": (4, 5)}
    return {key: np.full(shape, shift, np.float32) for key, shape in shapes.items()}


# --- clipping -----------------------------------------------------------------------------


def test_a_vector_beyond_the_bound_is_scaled_to_it_and_one_within_is_unchanged():
    vector = np.array([6.0, 8.0])  # norm 10
    np.testing.assert_allclose(np.linalg.norm(clip(vector, 1.0)), 1.0)
    np.testing.assert_allclose(clip(vector, 1.0), [0.6, 0.8])
    assert clip(vector, 10.0) is vector and clip(vector, 25.0) is vector


def test_each_block_is_clipped_as_one_vector_with_its_own_bound():
    received = model()
    arrays = model(1.0)  # head block: 10 entries of 1 (norm sqrt 10); centroids: norm sqrt 20
    deltas = clipped_delta(arrays, received, {"head": 1.0, "centroids": 100.0})
    head = np.concatenate([deltas["head.a"].ravel(), deltas["head.b"]])
    np.testing.assert_allclose(np.linalg.norm(head), 1.0)
    np.testing.assert_allclose(deltas["head.a"], 1 / math.sqrt(10))  # direction kept
    np.testing.assert_array_equal(deltas["centroids"], 1.0)  # within its bound
    with pytest.raises(FussbenchError, match="differ from the global model's"):
        clipped_delta({"head.a": arrays["head.a"]}, received, {"head": 1.0})


# --- noise --------------------------------------------------------------------------------


def test_central_noise_of_zero_gives_the_clipped_mean_and_fedavg_when_nothing_clips():
    previous = model()
    updates = [ClientUpdate(model(shift), n_samples=n) for shift, n in ((0.1, 3), (0.3, 9))]
    quiet = dataclasses.replace(CENTRAL, noise_multiplier=0.0)
    mean = NoisySum(privacy=quiet, expected=2.0).aggregate(updates, previous)
    uniform = FedAvg(weighting="uniform").aggregate(updates, previous)
    for key in previous:
        np.testing.assert_allclose(mean[key], uniform[key], rtol=1e-6)
        assert mean[key].dtype == np.float32
    far = [ClientUpdate(model(shift), n_samples=1) for shift in (10.0, 20.0)]
    clipped = NoisySum(privacy=quiet, expected=2.0).aggregate(far, previous)
    head = np.concatenate([clipped["head.a"].ravel(), clipped["head.b"]])
    np.testing.assert_allclose(np.linalg.norm(head), 1.0, rtol=1e-6)  # mean of two C_h
    np.testing.assert_allclose(np.linalg.norm(clipped["centroids"]), 2.0, rtol=1e-6)


def test_central_noise_is_seeded_per_round_and_a_round_without_clients_is_noise_only():
    previous = model()
    first = NoisySum(privacy=CENTRAL, expected=4.0, seed=0, round_index=1)
    again = first.aggregate([], previous)
    np.testing.assert_array_equal(again["head.a"], first.aggregate([], previous)["head.a"])
    other = dataclasses.replace(first, round_index=2).aggregate([], previous)
    assert not np.array_equal(again["head.a"], other["head.a"])
    big = {"head.w": np.zeros((300, 300), np.float32), "centroids": np.zeros((100, 50))}
    noised = NoisySum(privacy=CENTRAL, expected=4.0).aggregate([], big)
    np.testing.assert_allclose(noised["head.w"].std(), 1.0 * 1.0 / 4.0, rtol=0.02)
    np.testing.assert_allclose(noised["centroids"].std(), 1.0 * 2.0 / 4.0, rtol=0.02)


def sums_update(sums: np.ndarray, counts: list[int]) -> ClientUpdate:
    """A FedCC-Sums client's update: a head (every entry 0.5), code sums (4, 5), counts."""
    arrays = {**model(0.5), "centroids": sums.astype(np.float32)}
    return ClientUpdate(arrays, n_samples=1, cluster_counts=np.array(counts))


def test_central_code_sums_take_a_lloyd_step_on_each_clients_code_shares():
    """Without noise, FedCC-Sums under central normalises the sum of each client's code
    sums over its own pixel count: a client with many pixels weighs as one with few."""
    previous = model()
    units = np.eye(4, 5)
    big = sums_update(units * np.array([[90.0], [10.0], [0.0], [0.0]]), [90, 10, 0, 0])
    small = sums_update(units[[1, 0, 2, 3]] * np.array([[1.0], [0.0], [0.0], [0.0]]), [1, 0, 0, 0])
    np.testing.assert_allclose(code_shares(big)[:2, :2], [[0.9, 0], [0, 0.1]])
    quiet = dataclasses.replace(CENTRAL, noise_multiplier=0.0)
    step = NoisySum(privacy=quiet, expected=2.0, code_sums=True).aggregate([big, small], previous)
    # row 0: shares 0.9 e0 (big) + 1.0 e1 (small): the small client pulls as hard as the big
    expected = np.array([0.9, 1.0, 0, 0, 0]) / np.hypot(0.9, 1.0)
    np.testing.assert_allclose(step["centroids"][0], expected, rtol=1e-6)
    np.testing.assert_allclose(step["centroids"][1], units[1], rtol=1e-6)
    np.testing.assert_array_equal(step["centroids"][2:], previous["centroids"][2:])  # no pixel
    head = NoisySum(privacy=quiet, expected=2.0).aggregate([big, small], previous)
    np.testing.assert_array_equal(step["head.a"], head["head.a"])  # the head is DP-FedAvg's
    noised = NoisySum(privacy=CENTRAL, expected=2.0, code_sums=True).aggregate([], previous)
    np.testing.assert_allclose(np.linalg.norm(noised["centroids"], axis=1), 1.0, rtol=1e-6)


def test_code_shares_stay_within_their_bound_whatever_the_counts():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(500, 5))
    codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    winners = rng.integers(0, 4, 500)
    sums = np.stack([codes[winners == c].sum(axis=0) for c in range(4)])
    counts = np.bincount(winners, minlength=4)
    shares = code_shares(sums_update(sums, list(counts)))
    assert np.linalg.norm(shares) <= 1.0
    aligned = sums_update(np.eye(4, 5) * 250.0, [250, 250, 0, 0])  # every code on its centroid
    np.testing.assert_allclose(np.linalg.norm(code_shares(aligned)), 1.0)


def test_local_noise_has_the_std_of_each_block_and_keeps_the_message_layout():
    received = {"head.w": np.zeros((300, 300), np.float32), "centroids": np.zeros((100, 50))}
    received["centroids"] = received["centroids"].astype(np.float32)
    update = ClientUpdate({key: value.copy() for key, value in received.items()}, n_samples=5)
    private = dataclasses.replace(LOCAL, noise_multiplier=1.5)
    sent = local_release(update, received, private, seed=7)
    assert sent.arrays.keys() == update.arrays.keys() and sent.n_samples == 5
    assert sent.cluster_counts is None
    for key, value in sent.arrays.items():
        assert value.shape == update.arrays[key].shape and value.dtype == np.float32
    np.testing.assert_allclose(sent.arrays["head.w"].std(), 1.5 * 1.0, rtol=0.01)
    np.testing.assert_allclose(sent.arrays["centroids"].std(), 1.5 * 2.0, rtol=0.02)
    assert abs(float(sent.arrays["head.w"].mean())) < 4 * 1.5 / 300  # 4 standard errors
    repeat = local_release(update, received, private, seed=7)
    np.testing.assert_array_equal(sent.arrays["head.w"], repeat.arrays["head.w"])
    other = local_release(update, received, private, seed=8)
    assert not np.array_equal(sent.arrays["head.w"], other.arrays["head.w"])


# --- accounting ---------------------------------------------------------------------------


def test_epsilon_falls_with_the_noise_and_grows_with_the_rounds():
    sampled = dataclasses.replace(CENTRAL, sample_rate=0.25)
    by_sigma = [epsilon(dataclasses.replace(sampled, noise_multiplier=s), 10) for s in (1, 2, 4)]
    assert by_sigma[0] > by_sigma[1] > by_sigma[2] > 0
    by_rounds = [epsilon(sampled, rounds) for rounds in (1, 5, 20)]
    assert by_rounds[0] < by_rounds[1] < by_rounds[2]
    assert epsilon(sampled, 0) == 0.0
    assert epsilon(dataclasses.replace(CENTRAL, sample_rate=0.25), 10) < epsilon(CENTRAL, 10)


def test_epsilon_is_dp_accountings_and_flowers_for_the_joint_gaussian():
    """Two blocks of multiplier sigma under one sampling are one Gaussian of sigma / sqrt 2;
    local counts twice the sensitivity and no sampling."""
    sigma, q, rounds, delta = 2.0, 0.25, 12, 1e-5
    private = dataclasses.replace(CENTRAL, noise_multiplier=sigma, sample_rate=q, delta=delta)
    direct = rdp.RdpAccountant()
    direct.compose(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma / 2**0.5)), 12)
    assert epsilon(private, rounds) == pytest.approx(direct.get_epsilon(delta), rel=1e-9)
    config = PrivacyConfig(delta, 4, NeighboringRelation.ADD_OR_REMOVE_ONE, SamplingMethod.POISSON)
    flower = RdpAccountant(config)
    flower.compose(GaussianPrivacyEvent(sigma / 2**0.5, 1, 4), rounds)
    assert epsilon(private, rounds) == pytest.approx(flower.get_epsilon(delta), rel=1e-9)
    local = dataclasses.replace(private, mechanism="local")
    every_round = dataclasses.replace(private, noise_multiplier=sigma / 2, sample_rate=1.0)
    assert epsilon(local, rounds) == pytest.approx(epsilon(every_round, rounds), rel=1e-9)


def test_no_noise_spends_an_infinite_epsilon():
    assert epsilon(dataclasses.replace(CENTRAL, noise_multiplier=0.0), 3) == math.inf
    assert epsilon(dataclasses.replace(LOCAL, noise_multiplier=0.0), 0) == 0.0


def test_a_target_epsilon_calibrates_sigma_to_stay_within_it():
    target = dataclasses.replace(CENTRAL, sample_rate=0.5, target_epsilon=3.0)
    chosen = calibrated(target, rounds=3)
    assert chosen.noise_multiplier != target.noise_multiplier
    assert epsilon(chosen, 3) <= 3.0
    less = dataclasses.replace(chosen, noise_multiplier=chosen.noise_multiplier - 2e-3)
    assert epsilon(less, 3) > 3.0
    assert calibrated(CENTRAL, rounds=3) is CENTRAL  # no target: sigma is noise_multiplier


@pytest.mark.parametrize("target", [1.0, 3.0, 8.0])
def test_the_noise_for_a_target_epsilon_is_the_smallest_within_it(target):
    sampled = dataclasses.replace(CENTRAL, sample_rate=0.25)
    sigma = noise_for_epsilon(sampled, 20, target)
    assert epsilon(dataclasses.replace(sampled, noise_multiplier=sigma), 20) <= target
    assert epsilon(dataclasses.replace(sampled, noise_multiplier=sigma - 1e-3), 20) > target


def test_privacy_budget_prints_the_noise_for_each_target():
    result = CliRunner().invoke(
        app,
        ["privacy-budget", "-p", str(REPO / "params.yaml"), "-S", "federation.rounds=3"]
        + ["-S", "privacy.mechanism=central", "--epsilon", "3"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    rows = [line.split("|") for line in result.output.splitlines()[2:]]
    assert [row[1].strip() for row in rows] == ["central", "central"]
    assert float(rows[0][5]) == pytest.approx(1.0) and float(rows[1][6]) <= 3.0
    targeted = CliRunner().invoke(
        app,
        ["privacy-budget", "-p", str(REPO / "params.yaml"), "-S", "federation.rounds=3"]
        + ["-S", "privacy.mechanism=central", "-S", "privacy.target_epsilon=3"],
        catch_exceptions=False,
    )
    first = targeted.output.splitlines()[2].split("|")
    assert float(first[5]) == pytest.approx(float(rows[1][5]), abs=1e-3)  # the target's sigma


# --- sampling -----------------------------------------------------------------------------


def test_sampling_is_seeded_and_takes_about_q_of_the_clients():
    assert participants(0, 1, 5, 1.0) == [True] * 5
    assert participants(3, 2, 5, 0.3) == participants(3, 2, 5, 0.3)
    draws = np.array([participants(0, r, 10, 0.3) for r in range(1, 501)])
    assert draws.mean() == pytest.approx(0.3, abs=0.02)
    assert (draws.sum(axis=1) == 0).any()  # a round may have nobody


def test_an_unsampled_client_is_no_failure_and_min_clients_counts_the_sampled():
    left_out = ClientOutcome(sampled=False)
    assert not left_out.finished
    check_min_clients(1, [left_out, left_out], min_clients=2)  # nobody sampled: no stop
    with pytest.raises(FussbenchError, match="only 0 of 1 clients finished"):
        check_min_clients(1, [left_out, ClientOutcome(failure="boom")], min_clients=2)


@pytest.mark.parametrize("mechanism", ["central", "local"])
def test_a_private_in_process_run_records_the_sampled_clients_and_epsilon(mechanism):
    """Seed 0, two clients at q = 0.5: both take part in round 1, nobody in round 2, where
    the central model moves by its noise alone and the local one stays."""
    private = dataclasses.replace(CENTRAL, mechanism=mechanism, sample_rate=0.5)
    result = run(FedAvg(weighting="uniform"), rounds=2, privacy=private)
    first, second = result.state.records
    assert (first.sampled, second.sampled) == ([0, 1], [])
    assert second.failures == [] and second.bytes_up == [0, 0]
    assert second.client_loss == [None, None]
    assert (first.epsilon, second.epsilon) == (epsilon(private, 1), epsilon(private, 2))
    kept = run(FedAvg(weighting="uniform"), rounds=1, privacy=private).state.models[0]
    moved = any(not np.array_equal(kept[key], result.state.models[0][key]) for key in kept)
    assert moved is (mechanism == "central")


def test_the_default_privacy_and_its_inert_knobs_change_no_number():
    """privacy.mechanism none: every other privacy knob is inert."""
    plain = run(rounds=2)
    inert = PrivacyParams(noise_multiplier=9.0, clip_head=1e-3, clip_centroids=1e-3)
    quiet = run(rounds=2, privacy=inert)
    for key, value in plain.state.models[0].items():
        np.testing.assert_array_equal(value, quiet.state.models[0][key])
    assert [r.miou for r in plain.state.records] == [r.miou for r in quiet.state.records]
    assert all(r.epsilon is None and r.sampled is None for r in quiet.state.records)


def test_a_locally_private_client_sends_the_same_fields_noised():
    """What leaves a client under local DP: the honest message's fields, keys, shapes and
    dtypes; only the arrays' values differ."""
    start = initial_arrays(8, 6, 3, seed=0)
    update, _ = make_clients()[0].fit(start, seed=1)
    sent = local_release(update, start, LOCAL, seed=1)
    assert {f.name for f in dataclasses.fields(sent)} == {"arrays", "n_samples", "cluster_counts"}
    assert sent.arrays.keys() == update.arrays.keys() and sent.n_samples == update.n_samples
    assert sent.cluster_counts is None and sent.nbytes() == update.nbytes()
    for key, value in update.arrays.items():
        assert sent.arrays[key].shape == value.shape and sent.arrays[key].dtype == value.dtype
        assert not np.array_equal(sent.arrays[key], value)


# --- params -------------------------------------------------------------------------------


def checked(*overrides: str):
    params = load_params(REPO / "params.yaml", list(overrides))
    check_methods(params)
    return params


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (
            ["aggregator=fedcc_kmeans", "privacy.mechanism=central"],
            "needs each client's update (registry: server_needs individual); use "
            "privacy.mechanism local",
        ),
        (
            ["aggregator=fedavg", "privacy.mechanism=central"],
            "set federation.weighting=uniform",
        ),
        (["aggregator=local", "privacy.mechanism=local"], "set privacy.mechanism none"),
        (["aggregator=fedcc_auto", "privacy.mechanism=local"], "asks the clients for"),
        (["aggregator=fedcc_sums", "privacy.mechanism=local"], "code sums"),
        (
            [
                "aggregator=fedcc_matched",
                "federation.mode=pooled_counts",
                "privacy.mechanism=local",
            ],
            "pixel counts",
        ),
        (["aggregator=fedavg", "privacy.sample_rate=0.5"], "set privacy.mechanism central or"),
        (["aggregator=fedavg", "privacy.target_epsilon=3"], "privacy.target_epsilon null"),
        (["aggregator=fedcc_kmeans", "privacy.mechanism=local", "model.n_clusters=auto"], "auto"),
    ],
)
def test_a_method_the_mechanism_cannot_serve_is_refused_at_load(overrides, fragment):
    with pytest.raises(FussbenchError, match="privacy") as caught:
        checked(*overrides)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_the_privacy_params_keep_their_rules():
    with pytest.raises(FussbenchError, match="privacy.mechanism must be one of none, central"):
        load_params(REPO / "params.yaml", ["privacy.mechanism=secure"])
    with pytest.raises(FussbenchError, match="privacy.noise_multiplier must be a number >= 0"):
        load_params(REPO / "params.yaml", ["privacy.noise_multiplier=-1"])
    with pytest.raises(FussbenchError, match="privacy.target_epsilon must be"):
        load_params(REPO / "params.yaml", ["privacy.target_epsilon=0"])
    assert checked("aggregator=fedcc_kmeans", "privacy.mechanism=local").privacy.on
    assert checked("aggregator=fedavg", "privacy.mechanism=central", "federation.weighting=uniform")
    sums = ["aggregator=fedcc_sums", "federation.weighting=uniform"]
    assert checked(*sums, "privacy.mechanism=central").privacy.on  # its counts stay inside


def test_the_fingerprint_leaves_privacy_out_until_a_mechanism_is_on(monkeypatch):
    """A run without a mechanism hashes exactly the params it hashed before the privacy
    section existed, so its checkpoints stay valid."""
    hashed = []
    dumps = json.dumps

    def spy(value, **options):
        hashed.append(value)
        return dumps(value, **options)

    monkeypatch.setattr(identity.json, "dumps", spy)
    default = identity.run_fingerprint(load_params(REPO / "params.yaml"))
    inert = load_params(REPO / "params.yaml", ["privacy.noise_multiplier=7", "privacy.delta=0.1"])
    assert identity.run_fingerprint(inert) == default
    on = load_params(REPO / "params.yaml", ["privacy.mechanism=local"])
    assert identity.run_fingerprint(on) != default
    assert "privacy" not in hashed[0] and "privacy" not in hashed[1]
    assert hashed[2]["privacy"]["mechanism"] == "local"
    assert "target_epsilon" not in hashed[2]["privacy"]  # the fingerprint of earlier runs


def test_the_fingerprint_takes_the_source_of_sigma_in_use():
    target = ["privacy.mechanism=local", "privacy.target_epsilon=3"]
    by_target = identity.run_fingerprint(load_params(REPO / "params.yaml", target))
    other_sigma = load_params(REPO / "params.yaml", [*target, "privacy.noise_multiplier=5"])
    assert identity.run_fingerprint(other_sigma) == by_target  # sigma comes from the target
    other_target = load_params(REPO / "params.yaml", [*target, "privacy.target_epsilon=8"])
    assert identity.run_fingerprint(other_target) != by_target


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (
            ["aggregator=fedcc_kmeans"],
            "fedcc_kmeans's server needs each client's update (registry: server_needs individual)",
        ),
        (["aggregator=local"], "local has no server aggregation"),
        (
            ["aggregator=fedavg", "privacy.mechanism=central", "federation.weighting=uniform"],
            "clips each update on the server",
        ),
        (["aggregator=fedavg", "privacy.mechanism=local"], "leave SecAgg+'s clipping range"),
    ],
)
def test_secure_aggregation_is_refused_where_the_server_needs_more_than_the_sum(
    overrides, fragment
):
    with pytest.raises(FussbenchError, match="privacy.secure_aggregation cannot run") as caught:
        checked("privacy.secure_aggregation=true", *overrides)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    if "individual" in fragment:
        assert "fedavg, fedprox, fedmoon, fedcc_sums" in str(caught.value)


def test_secure_aggregation_serves_every_method_whose_server_needs_a_weighted_sum():
    for method in ("fedavg", "fedprox", "fedmoon", "fedcc_sums", "fedavg.uniform"):
        name, *rest = method.split(".")
        weighting = [f"federation.weighting={rest[0]}"] if rest else []
        checked("privacy.secure_aggregation=true", f"aggregator={name}", *weighting)
    with pytest.raises(FussbenchError, match="privacy.secure_aggregation must be of type bool"):
        load_params(REPO / "params.yaml", ["privacy.secure_aggregation=1"])


def test_the_fingerprint_takes_secure_aggregation_only_where_it_acts():
    """Off, or in-process (where it changes nothing), a run keeps its fingerprint and its
    checkpoints; on engine flower it is another run."""
    fingerprint = identity.run_fingerprint
    for engine in ("inprocess", "flower"):
        plain = load_params(REPO / "params.yaml", [f"engine={engine}"])
        secure = load_params(
            REPO / "params.yaml", [f"engine={engine}", "privacy.secure_aggregation=true"]
        )
        assert (fingerprint(secure) == fingerprint(plain)) is (engine == "inprocess")
    local = ["privacy.mechanism=local", "engine=flower"]
    assert fingerprint(load_params(REPO / "params.yaml", local)) == fingerprint(
        load_params(REPO / "params.yaml", [*local, "privacy.secure_aggregation=false"])
    )


# --- end to end ---------------------------------------------------------------------------

QUICK = [*QUICK_IID3, "aggregator=fedavg", "federation.weighting=uniform"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The synthetic CamVid of :data:`QUICK`, downloaded, partitioned and cached."""
    with pytest.MonkeyPatch.context() as patch:
        yield camvid_workspace(tmp_path_factory.mktemp("privacy"), patch, QUICK)


def invoke(command: str, *overrides: str, out: str | None = None):
    args = [arg for item in (*QUICK, *overrides) for arg in ("-S", item)]
    extra = ["--out", out] if out else []
    return CliRunner().invoke(app, [command, *args, *extra], catch_exceptions=False)


def federate(out: str, *overrides: str) -> tuple[dict, list[dict[str, str]]]:
    result = invoke("federate", *overrides, out=out)
    assert result.exit_code == 0, result.output
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    with open(Path(out) / "rounds.csv", newline="") as handle:
        return metrics, list(csv.DictReader(handle))


def test_a_central_run_reports_epsilon_in_its_metrics_records_and_results(workspace):
    plain, plain_rounds = federate("runs/plain")
    private, rounds = federate(
        "runs/central", "privacy.mechanism=central", "privacy.noise_multiplier=2"
    )
    settings = PrivacyParams(mechanism="central", noise_multiplier=2.0)
    assert "privacy" not in plain and "epsilon" not in plain_rounds[0]
    assert private["privacy"] == "central" and private["delta"] == 1e-5
    assert private["epsilon"] == round(epsilon(settings, 2), 4)
    assert [float(row["epsilon"]) for row in rounds] == pytest.approx(
        [epsilon(settings, 1), epsilon(settings, 2)], abs=1e-4
    )
    assert [row["sampled_clients"] for row in rounds] == ["3", "3"]
    assert private["miou"] != plain["miou"]
    row = _row(private)
    assert row["privacy"] == "central" and row["epsilon"] == private["epsilon"]
    assert _row(plain)["epsilon"] is None


def test_secure_aggregation_changes_nothing_in_process_and_says_so(workspace):
    """In-process no update crosses a network: the flag is inert (the same model, numbers
    and fingerprint) and the run says so in one line when it starts."""
    result = invoke("federate", out="runs/inert_plain")
    assert result.exit_code == 0, result.output
    result = invoke("federate", "privacy.secure_aggregation=true", out="runs/inert_secure")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "secure_aggregation" in line]
    assert lines == [
        "privacy.secure_aggregation: in-process no update crosses a network, so it changes "
        "nothing here (engine flower runs SecAgg+)"
    ]
    with np.load("runs/inert_plain/model.npz") as a, np.load("runs/inert_secure/model.npz") as b:
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    metrics = [
        json.loads(Path(f"runs/{n}/metrics.json").read_text())
        for n in ("inert_plain", "inert_secure")
    ]
    for item in metrics:
        item.pop("seconds")
    assert metrics[0] == metrics[1]
