"""The CLI stages end to end on a tiny synthetic CamVid, with the real lite0 backbone."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from synthetic import CAMVID_COUNTS, make_camvid
from typer.testing import CliRunner

from fussbench.cli import app
from fussbench.data.camvid import CamVid

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
    rounds = (workspace / "runs/a/rounds.csv").read_text().splitlines()
    assert len(rounds) == 1 + 2
    images = (workspace / "runs/a/images.csv").read_text().splitlines()
    assert len(images) == 1 + CAMVID_COUNTS["test"]


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
    assert "unknown aggregator 'fedsomething'" in result.output
    assert "local, centralized" in result.output
    assert not (workspace / "runs/x").exists()


@pytest.mark.parametrize(
    ("stage", "override", "fragment"),
    [
        ("download", "dataset=cityscrapes", "unknown dataset 'cityscrapes'"),
        ("features", "backbone=resnet", "unknown backbone"),
        ("partition", "partition.method=random", "partition.method 'random' is unknown"),
        ("federate", "train.local_steps=0", "train.local_steps must be >= 1"),
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
    assert {"download", "partition", "features", "federate", "compare"} <= set(dvc_yaml["stages"])
    commands = " ".join(str(stage.get("do", stage)["cmd"]) for stage in dvc_yaml["stages"].values())
    cli_commands = {command.callback.__name__ for command in app.registered_commands}
    for stage in ("download", "partition", "features", "federate"):
        assert stage in cli_commands
        assert f"fussbench {stage}" in commands
