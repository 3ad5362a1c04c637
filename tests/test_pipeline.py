"""The CLI stages end to end on a tiny synthetic CamVid, with the real lite0 backbone."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from synthetic import CAMVID_COUNTS, make_camvid
from typer.testing import CliRunner

from fussbench.cli import app
from fussbench.data.camvid import CamVid
from fussbench.errors import FussbenchError

REPO = Path(__file__).resolve().parents[1]
QUICK = ["train.local_steps=2", "train.batch_size=2", "federation.rounds=2", "train.knn_k=1"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A folder with the repo's params.yaml, pointing at a synthetic CamVid mirror."""
    monkeypatch.setattr(CamVid, "split_counts", CAMVID_COUNTS)
    make_camvid(tmp_path / "mirror" / "camvid")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"]["mirror"] = str(tmp_path / "mirror")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def prepare(*extra: str) -> None:
    overrides = [arg for item in extra for arg in ("-S", item)]
    for stage in ("download", "partition", "features"):
        result = invoke(stage, *overrides)
        assert result.exit_code == 0, result.output


def read_metrics(folder: Path) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics.pop("seconds")
    return metrics


def federate(out: str, *overrides: str):
    args = [arg for item in (*QUICK, *overrides) for arg in ("-S", item)]
    return invoke("federate", *args, "--out", out)


@pytest.mark.parametrize("aggregator", ["local", "centralized"])
def test_stages_run_end_to_end_and_are_deterministic(workspace, aggregator):
    prepare()
    assert (workspace / "data/raw/camvid/SOURCE.json").is_file()
    manifests = sorted((workspace / "data/partitions/camvid_domain").glob("client_*.json"))
    assert len(manifests) == 2  # two video sequences in the synthetic train split
    for split in ("train", "val", "test"):
        assert (workspace / f"data/features/camvid/effnet_lite0/{split}/index.json").is_file()

    first = federate("runs/a", f"aggregator={aggregator}")
    assert first.exit_code == 0, first.output
    second = federate("runs/b", f"aggregator={aggregator}")
    assert second.exit_code == 0, second.output
    metrics = read_metrics(workspace / "runs/a")
    assert metrics == read_metrics(workspace / "runs/b")
    assert 0.0 <= metrics["miou"] <= 100.0 and 0.0 <= metrics["accuracy"] <= 100.0
    assert len(metrics["models"]) == (2 if aggregator == "local" else 1)
    # equal compute: centralized's one model takes the steps of both clients per round
    assert metrics["local_steps"] == 2
    assert metrics["steps_per_round"] == (4 if aggregator == "centralized" else 2)
    rounds = (workspace / "runs/a/rounds.csv").read_text().splitlines()
    assert len(rounds) == 1 + 2
    images = (workspace / "runs/a/images.csv").read_text().splitlines()
    assert len(images) == 1 + CAMVID_COUNTS["test"]


def test_a_one_shot_run_is_one_round_of_the_whole_budget(workspace):
    """fedcc_oneshot at R = 2 rounds of S = 2 steps runs one round of 4 steps: the same model
    as fedcc_kmeans at 1 round of 4 steps; metrics.json keeps the budget R and S."""
    prepare()
    one_shot = federate("runs/oneshot", "aggregator=fedcc_oneshot")
    assert one_shot.exit_code == 0, one_shot.output
    once = federate(
        "runs/once", "aggregator=fedcc_kmeans", "federation.rounds=1", "train.local_steps=4"
    )
    assert once.exit_code == 0, once.output
    with (
        np.load(workspace / "runs/oneshot/model.npz") as a,
        np.load(workspace / "runs/once/model.npz") as b,
    ):
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    metrics = read_metrics(workspace / "runs/oneshot")
    assert (metrics["rounds"], metrics["local_steps"], metrics["steps_per_round"]) == (2, 2, 4)
    assert metrics["miou"] == read_metrics(workspace / "runs/once")["miou"]
    rounds = pd.read_csv(workspace / "runs/oneshot/rounds.csv")
    assert rounds["round"].tolist() == [1]


def test_feature_cache_built_with_other_params_is_refused(workspace):
    prepare()
    result = federate("runs/x", "features.layers=16")
    assert result.exit_code == 2
    assert "does not match params" in result.output and "layers='16+32'" in result.output
    assert not (workspace / "runs/x/metrics.json").exists()


def test_unknown_aggregator_lists_the_valid_names(workspace):
    prepare()
    result = federate("runs/x", "aggregator=fedsomething")
    assert result.exit_code == 2
    assert "aggregator must be one of local, centralized" in result.output
    assert "got 'fedsomething'" in result.output
    assert not (workspace / "runs/x").exists()


@pytest.mark.parametrize(
    ("stage", "override", "fragment"),
    [
        ("download", "dataset=cityscrapes", "unknown dataset 'cityscrapes'"),
        ("features", "backbone=resnet", "unknown backbone"),
        ("partition", "partition.method=random", "partition.method 'random' is unknown"),
        ("federate", "train.local_steps=0", "train.local_steps must be an integer >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(workspace, stage, override, fragment):
    result = invoke(stage, "-S", override)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fussbench: error:")
    assert fragment in lines[0]


def test_download_without_mirror_or_network_says_how_to_name_a_mirror(workspace, monkeypatch):
    import fussbench.data.download as download

    def offline(url: str, target: Path) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(download, "fetch_url", offline)
    shutil.rmtree(workspace / "mirror")
    result = invoke("download")
    assert result.exit_code == 2
    assert "download.mirror" in result.output
    assert not (workspace / "data/raw/camvid").exists()


def test_dvc_pipeline_declares_every_stage():
    dvc_yaml = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stages = {"download", "partition", "features", "federate", "compare", "collect", "stats"}
    stages.add("report")
    assert stages <= set(dvc_yaml["stages"])
    commands = " ".join(str(stage.get("do", stage)["cmd"]) for stage in dvc_yaml["stages"].values())
    cli_commands = {command.callback.__name__ for command in app.registered_commands}
    for stage in ("download", "partition", "features", "federate", "collect", "stats", "report"):
        assert stage in cli_commands
        assert f"fussbench {stage}" in commands


def test_comparison_cells_run_every_seed_and_collect_into_results_csv(workspace):
    prepare()
    cells = ["local", "fedcc_maximin.faithful", "majority", "kmeans"]
    for method in cells:
        result = invoke(
            "federate",
            *[a for item in QUICK for a in ("-S", item)],
            "-S",
            "seeds=[0, 1]",
            "--method",
            method,
            "--all-seeds",
            "--out",
            f"runs/camvid_domain/{method}",
        )
        assert result.exit_code == 0, result.output
    result = invoke(
        "collect",
        "-S",
        "seeds=[0, 1, 2]",
        "-S",
        f"compare={cells}",
        "-S",
        "runs_on=[camvid_domain]",
    )
    assert result.exit_code == 0, result.output
    assert "4 run(s) missing" in result.output
    import pandas as pd

    results = pd.read_csv(workspace / "reports/results.csv")
    done = results[results["status"] == "ok"]
    assert len(done) == 8 and set(done["seed"]) == {0, 1}
    maximin = done[done["method"] == "fedcc_maximin.faithful"]
    assert set(maximin["aggregator"]) == {"fedcc_maximin"} and set(maximin["mode"]) == {"faithful"}
    assert (maximin["bytes_up_per_client_round"] > 0).all()
    assert maximin["miou"].nunique() == 2  # two seeds, two different runs
    majority = done[done["method"] == "majority"]
    assert majority["miou"].nunique() == 1  # no randomness in the majority answer
    summary = (workspace / "reports/results_summary.md").read_text()
    assert "| camvid_domain | kmeans |" in summary

    result = invoke("stats")
    assert result.exit_code == 0, result.output
    assert "no seed-paired test could be computed" in result.output  # 2 seeds only
    table = pd.read_csv(workspace / "reports/significance.csv", keep_default_na=False)
    primary = table[table["family"] == "primary"]
    assert set(primary["verdict"]) == {"not run"}  # no fedavg, fedcc_kmeans or tile runs here
    tests = table[table["family"] == "exploratory"]
    assert set(tests["method_a"] + "/" + tests["method_b"]) == {"fedcc_maximin.faithful/local"}
    by_images = tests[tests["pairing"] == "images"]
    assert set(by_images["n_pairs"]) == {CAMVID_COUNTS["test"]}
    assert (by_images["note"] != "").all()  # 2 test images: too few pairs for a p too
    by_seeds = tests[tests["pairing"] == "seeds"]
    assert (by_seeds["p_value"] == "").all() and (by_seeds["note"] != "").all()
    assert "nan" not in (workspace / "reports/significance.csv").read_text().lower()

    profile = ["-S", "seeds=[0, 1, 2]", "-S", f"compare={cells}", "-S", "runs_on=[camvid_domain]"]
    result = invoke("report", *profile)
    assert result.exit_code == 0, result.output
    assert "rendered without" in result.output  # seed 2 was never run
    index = (workspace / "reports/README.md").read_text()
    assert "camvid_domain/local/seed2" in index
    for name in ("main", "aggregation", "significance", "communication"):
        for suffix in ("md", "tex", "csv"):
            assert (workspace / f"reports/tables/{name}.{suffix}").is_file()
    assert (workspace / "reports/figures/qualitative_camvid_domain.png").stat().st_size > 0
    result = invoke("verify", "--tables", *profile)
    assert result.exit_code == 0, result.output
    main = pd.read_csv(workspace / "reports/tables/main.csv")
    main.loc[0, "miou_mean"] += 0.01
    main.to_csv(workspace / "reports/tables/main.csv", index=False)
    result = invoke("verify", "--tables", *profile)
    assert result.exit_code == 1 and "main.csv differs" in result.output


def test_a_killed_run_resumes_with_identical_numbers(workspace):
    """A run stopped after round 2 of 3 (its checkpoint re-labelled for the 3-round params,
    which is what a kill leaves) resumes and ends with the uninterrupted run's numbers."""
    from fussbench.federation.checkpoint import load_checkpoint, save_checkpoint
    from fussbench.params import load_params
    from fussbench.run.reuse import run_key

    prepare()

    def fingerprint(rounds: int) -> str:
        overrides = [*QUICK, "aggregator=fedavg", f"federation.rounds={rounds}"]
        return run_key(load_params("params.yaml", overrides))

    assert federate("runs/full", "aggregator=fedavg", "federation.rounds=3").exit_code == 0
    assert federate("runs/cut", "aggregator=fedavg", "federation.rounds=2").exit_code == 0
    state = load_checkpoint(workspace / "runs/cut/checkpoint.npz", fingerprint(2))
    assert state is not None and state.round == 2
    save_checkpoint(workspace / "runs/cut/checkpoint.npz", state, fingerprint(3))
    resumed = federate("runs/cut", "aggregator=fedavg", "federation.rounds=3")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming runs/cut after round 2" in resumed.output
    assert read_metrics(workspace / "runs/cut") == read_metrics(workspace / "runs/full")
    rounds = pd.read_csv(workspace / "runs/cut/rounds.csv")
    assert rounds["round"].tolist() == [1, 2, 3]
    # the run's wall time counts the two inherited rounds as well as the resumed one
    seconds = json.loads((workspace / "runs/cut/metrics.json").read_text())["seconds"]
    assert seconds >= rounds["seconds"].sum() - 0.01


def test_run_fingerprint_ignores_what_does_not_change_a_run():
    from fussbench.federation.identity import run_fingerprint
    from fussbench.params import load_params

    base = run_fingerprint(load_params("params.yaml"))
    for override in ("compare=[fedavg]", "seeds=[7]", "reports_dir=elsewhere", "stats.seed=3"):
        assert run_fingerprint(load_params("params.yaml", [override])) == base, override
    assert run_fingerprint(load_params("params.yaml", ["train.lr_head=0.001"])) != base
    # a partition knob only another partition method reads is inert
    assert run_fingerprint(load_params("params.yaml", ["partition.embedding_clusters=4"])) == base
    embedding = ["partition.method=embedding_dirichlet", "partition.n_clients=3"]
    clustered = run_fingerprint(load_params("params.yaml", embedding))
    more = run_fingerprint(
        load_params("params.yaml", [*embedding, "partition.embedding_clusters=4"])
    )
    assert clustered != more


def test_changed_params_never_resume_a_stale_checkpoint(workspace):
    prepare()
    assert federate("runs/x", "aggregator=fedavg").exit_code == 0
    again = federate("runs/x", "aggregator=fedavg", "train.lr_head=0.001")
    assert again.exit_code == 0 and "resuming" not in again.output


def test_seeds_in_parallel_workers_give_the_same_numbers(workspace):
    prepare()
    for workers in (1, 2):
        args = [
            a
            for item in (*QUICK, "seeds=[0, 1]", f"runtime.workers={workers}")
            for a in ("-S", item)
        ]
        result = invoke(
            "federate", *args, "--method", "fedavg", "--all-seeds", "--out", f"runs/w{workers}"
        )
        assert result.exit_code == 0, result.output
    for seed in (0, 1):
        assert read_metrics(workspace / f"runs/w1/seed{seed}") == read_metrics(
            workspace / f"runs/w2/seed{seed}"
        )


def test_bench_times_caching_and_a_round_cached_against_recomputed(workspace):
    invoke("download")
    result = invoke("bench", "--images", "2", "-S", "train.local_steps=2", "-S", "train.knn_k=1")
    assert result.exit_code == 0, result.output
    timings = json.loads(result.output[result.output.index("{") :])
    for key in ("forward_images_per_s", "caching_images_per_s", "round_s_cached"):
        assert timings[key] > 0, key
    assert timings["round_s_recompute"] > timings["round_s_cached"]
    assert timings["round_images"] == 2 and timings["round_local_steps"] == 2
    assert timings["train_threads"] == 1
    assert timings["train_steps_per_s_fp32"] > 0
    assert 0 < timings["train_peak_fraction_fp32"] < 2
    assert timings["train_product_share_fp32"] > 0 and timings["train_product_bound_fp32"] > 0
    assert 0 < len(timings["train_slowest_ops_fp32"]) <= 8
    assert ("train_steps_per_s_bf16" in timings) == timings["bf16_native"]


def test_convergence_runs_every_cell_once_and_reports_budgets(workspace):
    prepare()
    study = [
        "convergence.setups=[camvid_domain]",
        "convergence.methods=[centralized,fedcc_kmeans]",
        "convergence.seeds=[0]",
        "convergence.local_steps=[1,2]",
        "convergence.rounds=2",
        "train.batch_size=2",
        "train.knn_k=1",
        "runtime.workers=1",
    ]
    args = [arg for item in study for arg in ("-S", item)]
    result = invoke("convergence", *args)
    assert result.exit_code == 0, result.output
    assert "5 run(s) to go" in result.output  # kmeans + 2 methods x 2 step counts
    table = pd.read_csv(workspace / "reports/convergence.csv")
    assert set(zip(table["rounds"], table["local_steps"], strict=True)) == {
        (1, 1),
        (2, 1),
        (1, 2),
        (2, 2),
    }
    assert (workspace / "reports/convergence.png").stat().st_size > 0
    assert "Paper budget" in (workspace / "reports/convergence.md").read_text()
    again = invoke("convergence", *args)
    assert again.exit_code == 0 and "0 run(s) to go" in again.output
    run = workspace / "studies/convergence/camvid_domain/centralized/steps2/seed0"
    assert read_metrics(run)["steps_per_round"] == 4


def test_convergence_prepares_its_setup_and_resumes_from_its_records(workspace):
    study = [
        "convergence.setups=[camvid_domain]",
        "convergence.methods=[fedavg]",
        "convergence.seeds=[0]",
        "convergence.local_steps=[1]",
        "convergence.rounds=2",
        "train.batch_size=2",
        "train.knn_k=1",
        "runtime.workers=1",
    ]
    args = [arg for item in study for arg in ("-S", item)]
    first = invoke("convergence", *args)  # nothing downloaded, cached or partitioned yet
    assert first.exit_code == 0, first.output
    assert "partition written to data/partitions/camvid_domain" in first.output
    records_file = workspace / "reports/convergence_runs.csv"
    records = pd.read_csv(records_file)
    original = records.copy()
    trained = records[records["method"] == "fedavg"]
    assert list(trained["round"]) == [1, 2] and trained["finished"].all()
    assert list(records.loc[records["method"] == "kmeans", "round"]) == [0]
    report = (workspace / "reports/convergence.md").read_text()
    shutil.rmtree(workspace / "studies/convergence")  # a new machine: only the records travel
    again = invoke("convergence", *args)
    assert again.exit_code == 0 and "0 run(s) to go" in again.output, again.output
    assert (workspace / "reports/convergence.md").read_text() == report
    # a run recorded as stopped after round 1 is redone, and only that one
    records.loc[records["method"] == "fedavg", "finished"] = False
    records[records["round"] < 2].to_csv(records_file, index=False)
    partial = invoke("convergence", *args)
    assert partial.exit_code == 0 and "1 run(s) to go" in partial.output, partial.output
    assert pd.read_csv(records_file).equals(original)  # same seed, same numbers


def test_k_sweep_trains_each_k_once_and_marks_the_auto_runs(workspace):
    prepare()
    tiny = ["federation.rounds=1", "train.local_steps=1", "train.batch_size=2"]
    args = [arg for item in [*tiny, "train.knn_k=1", "runtime.workers=1"] for arg in ("-S", item)]
    auto = workspace / "auto_results.csv"
    pd.DataFrame(
        [{"setup": "camvid_domain", "method": "fedcc_kmeans", "seed": 0, "status": "ok",
          "n_clusters": "auto", "n_clusters_final": 4.0, "miou": 9.5, "miou_majority": 12.5}]
    ).to_csv(auto, index=False)  # fmt: skip
    sweep = ["k-sweep", "--values", "2,3", "--seeds", "0", "--auto", str(auto), *args]
    result = invoke(*sweep)
    assert result.exit_code == 0, result.output
    assert "2 run(s) to go" in result.output
    for k in (2, 3):
        assert read_metrics(workspace / f"studies/k_sweep/k{k}/seed0")["n_clusters"] == k
    table = pd.read_csv(workspace / "reports/k_sweep.csv")
    assert table["k"].tolist() == [2, 3] and table["miou"].notna().all()
    assert (
        "| auto (4), seed 0 | 1 | 9.50 | 12.50 |" in (workspace / "reports/k_sweep.md").read_text()
    )
    assert (workspace / "reports/k_sweep.png").read_bytes()[:4] == b"\x89PNG"
    again = invoke(*sweep)
    assert again.exit_code == 0 and "0 run(s) to go" in again.output
    bad = invoke("k-sweep", "--values", "1,x", *args)
    assert bad.exit_code == 2 and "--values '1,x'" in bad.output


@pytest.mark.skipif(
    importlib.util.find_spec("pydensecrf") is None, reason="pydensecrf2 is not installed"
)
def test_crf_effect_rescores_saved_models_and_checks_the_record(workspace):
    prepare()
    run, reference = workspace / "runs/x", workspace / "runs/ref"
    assert federate(str(run), "aggregator=fedavg").exit_code == 0
    assert federate(str(reference), "aggregator=majority").exit_code == 0
    out = workspace / "reports/crf_effect"
    result = invoke("crf-effect", str(run), str(reference), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "runs/ref: no model.npz" in result.output
    row = pd.read_csv(out.with_suffix(".csv")).iloc[0]
    assert row["miou"] == pytest.approx(row["miou_recorded"], abs=0.01)
    assert 0.0 <= row["miou_crf"] <= 100.0
    assert "| camvid_domain | fedavg | 1 |" in out.with_suffix(".md").read_text()
    edited = workspace / "runs/edited"
    shutil.copytree(run, edited)
    metrics = json.loads((edited / "metrics.json").read_text())
    (edited / "metrics.json").write_text(json.dumps({**metrics, "miou": metrics["miou"] + 5}))
    out.with_suffix(".csv").unlink()
    wrong = invoke("crf-effect", str(run), str(edited), "--out", str(out))
    assert wrong.exit_code == 2 and "differs from the recorded" in wrong.output
    kept = pd.read_csv(out.with_suffix(".csv"))
    assert kept["run"].tolist() == [str(run)]  # the rows finished before the error stay


def test_flip_averaging_needs_its_features_and_flip_effect_rescores(workspace, monkeypatch):
    """evaluation.flip stops a trained run before training until `features --flip` has
    cached the test split's mirrored features; then the final score is flip-averaged (the
    rounds' are not), and flip-effect (and crf-effect, with the CRF replaced by the argmax
    of its probabilities) rescores both runs against their records."""
    from fussbench.evaluation import crf

    prepare()
    missing = federate("runs/flip", "aggregator=fedavg", "evaluation.flip=true")
    command = "fussbench features --flip --dataset camvid -S evaluation.split=test"
    assert missing.exit_code == 2 and command in missing.output
    reference = federate("runs/ref", "aggregator=majority", "evaluation.flip=true")
    assert reference.exit_code == 0 and read_metrics(workspace / "runs/ref")["flip"] is False
    added = invoke("features", "--flip")
    assert added.exit_code == 0, added.output
    cache = workspace / "data/features/camvid/effnet_lite0"
    assert (cache / "test/flipped/features.npy").is_file()
    assert not (cache / "val/flipped").exists() and not (cache / "train/flipped").exists()
    for name, flip in (("plain", "false"), ("flip", "true")):
        result = federate(f"runs/{name}", "aggregator=fedavg", f"evaluation.flip={flip}")
        assert result.exit_code == 0, result.output
    plain, averaged = read_metrics(workspace / "runs/plain"), read_metrics(workspace / "runs/flip")
    assert plain["flip"] is False and averaged["flip"] is True
    # the same trained model: the last round's (not averaged) score is the plain run's
    rounds = pd.read_csv(workspace / "runs/flip/rounds.csv")
    assert rounds["miou"].iloc[-1] == pytest.approx(plain["miou"], abs=1e-4)
    out = workspace / "reports/flip_effect"
    result = invoke("flip-effect", "runs/plain", "runs/flip", "runs/ref", "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out.with_suffix(".csv"))
    assert rows["miou"].tolist() == pytest.approx([plain["miou"]] * 2, abs=0.01)
    assert rows["miou_flip"].tolist() == pytest.approx([averaged["miou"]] * 2, abs=0.01)
    assert "| camvid_domain | fedavg | 2 |" in out.with_suffix(".md").read_text()
    monkeypatch.setattr(crf, "refine", lambda image, probabilities: probabilities.argmax(0))
    refined = invoke("crf-effect", "runs/plain", "--out", str(workspace / "reports/crf"))
    assert refined.exit_code == 0, refined.output
    row = pd.read_csv(workspace / "reports/crf.csv").iloc[0]
    assert row["miou_crf"] == pytest.approx(row["miou"]) == pytest.approx(plain["miou"], abs=0.01)


def test_the_features_stage_adds_every_evaluation_splits_flipped_features_only_if_asked(
    workspace,
):
    cache = workspace / "data/features/camvid/effnet_lite0"
    prepare()
    assert not list(cache.glob("*/flipped"))
    prepare("evaluation.flip=true")
    assert sorted(path.parent.name for path in cache.glob("*/flipped")) == ["test", "val"]


def test_recomputed_features_are_the_cached_ones(workspace):
    """The recompute side of the round benchmark trains on the very features the cache
    holds (up to float16 rounding), so the two rounds do the same work."""
    import numpy as np
    import torch

    from fussbench.benchmarks.rounds import BackboneOnEveryBatch
    from fussbench.features.backbones import BackboneConfig, build_backbone
    from fussbench.features.benchmark import decoded_images
    from fussbench.features.device import resolve_placement
    from fussbench.features.views import Preprocessing

    prepare()
    spec = CamVid()
    samples = spec.samples(Path("data/raw/camvid"), "train")[:3]
    backbone = build_backbone(BackboneConfig(name="effnet_lite0"))
    placement = resolve_placement("cpu", "fp32")
    recomputed = BackboneOnEveryBatch(
        backbone, decoded_images(spec, samples, Preprocessing()), placement
    )
    cached = np.load("data/features/camvid/effnet_lite0/train/features.npy")[:3]
    assert recomputed.shape == cached.shape
    rows = torch.tensor([2, 0])
    np.testing.assert_allclose(recomputed[rows].numpy(), cached[[2, 0]], atol=2e-3, rtol=2e-3)


def test_loader_workers_bf16_and_stego_views(workspace):
    """Decoding in worker processes caches the very same features; bf16 caches close ones;
    STEGO preprocessing caches five 224x224 crops per training image and one 320x320
    centre crop per evaluation image, and a client's rows are its images' crops."""
    import numpy as np

    from fussbench.features.backbones import BackboneConfig, build_backbone
    from fussbench.features.cache import build_split, cache_fingerprint, open_split
    from fussbench.features.device import resolve_placement
    from fussbench.features.views import Preprocessing

    invoke("download")
    spec = CamVid()
    samples = spec.samples(Path("data/raw/camvid"), "test")
    config = BackboneConfig(name="effnet_lite0")
    backbone = build_backbone(config)

    def cache(name: str, precision: str, workers: int) -> np.ndarray:
        placement = resolve_placement("cpu", precision)
        out = workspace / name
        build_split(spec, samples, "test", config, backbone, out, 16, placement, workers)
        index = json.loads((out / "index.json").read_text())
        assert index["computed_on"] == {"device": "cpu", "precision": precision}
        return np.load(out / "features.npy").astype(np.float32)

    in_process = cache("a", "fp32", 0)
    assert np.array_equal(cache("b", "fp32", 2), in_process)
    difference = np.abs(cache("c", "bf16", 0) - in_process)
    assert 0 < difference.mean() < 0.01 and difference.max() < 0.25

    stego = BackboneConfig(name="effnet_lite0", preprocessing=Preprocessing("stego", 64, 80))
    train = spec.samples(Path("data/raw/camvid"), "train")
    build_split(spec, train, "train", stego, backbone, workspace / "stego_train", 4)
    build_split(spec, samples, "test", stego, backbone, workspace / "stego_test", 4)
    crops = open_split(workspace / "stego_train", cache_fingerprint(spec, "train", stego))
    assert crops.features.shape == (5 * len(train), 432, 4, 4)
    assert crops.labels.shape == (5 * len(train), 64, 64)
    assert crops.rows([train[1].name]).tolist() == [5, 6, 7, 8, 9]
    evaluation = open_split(workspace / "stego_test", cache_fingerprint(spec, "test", stego))
    assert evaluation.labels.shape == (len(samples), 80, 80)
    with pytest.raises(FussbenchError, match="features.train_size"):
        odd = BackboneConfig(name="effnet_lite0", preprocessing=Preprocessing("stego", 60))
        build_split(spec, train, "train", odd, backbone, workspace / "odd", 4)
