"""DVC experiments compare aggregators: ``dvc exp run -S aggregator=...`` records the main
run's compact scores (``reports/main/``, git-tracked), so ``dvc exp show`` lists every
experiment's mIoU, and a fresh clone shows the committed main run's without running
anything. Runs the real pipeline (download, partition, lite0 features, federate) in a
scratch git + DVC copy of this repository, on a tiny synthetic ``folder`` dataset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from fussbench.verification.lock import stale_reports

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
METRICS = "reports/main/metrics.json"
AGGREGATORS = ("local", "fedcc_kmeans")
"""The two experiments; the committed baseline runs ``fedavg``."""

pytestmark = pytest.mark.slow


def _copy_project(dest: Path) -> None:
    """The repository's files as git sees them (tracked or not ignored, this working tree's
    versions), less the committed reports, tests and ``dvc.lock``: a project before its
    first ``dvc repro``."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    for name in listed:
        source = REPO / name
        if name.startswith(("reports/", "tests/")) or name == "dvc.lock" or not source.is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / name)


def _make_folder(root: Path, n_images: int = 10) -> None:
    """``images/<n>.jpg`` (random, 12 x 10) with binary ``masks/<n>.png``, one stripe per
    image at its own height."""
    for index in range(n_images):
        pixels = np.random.default_rng(index).integers(0, 256, (10, 12, 3), np.uint8)
        mask = np.zeros((10, 12), np.uint8)
        mask[index % 8 : index % 8 + 3] = 1
        for folder, image, name in (("images", pixels, "jpg"), ("masks", mask, "png")):
            path = root / folder / f"{index:03d}.{name}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)


def _tiny_params(project: Path, data: Path) -> None:
    """The repository's params.yaml on the folder dataset: one setup, 2 rounds x 2 steps."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(
        setup="folder_quantity",
        aggregator="fedavg",
        datasets=["folder"],
        runs_on=["folder_quantity"],
        compare=["local"],
        seeds=[0],
    )
    params["download"]["mirror"] = str(data / "no-mirror")
    params["folder"].update(
        root=str(data / "mine"), class_names=["background", "defect"], image_size=[32, 32]
    )
    params["federation"]["rounds"] = 2
    params["train"].update(local_steps=2, batch_size=2, knn_k=1)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _runner(cwd: Path):
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(cwd),
        "DVC_NO_ANALYTICS": "1",
    }

    def run(*command: str) -> str:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    return run


def _scores(rows: list[dict]) -> dict[str, tuple[dict, dict]]:
    """``dvc exp show --json`` rows (workspace, the baseline branch, its experiments below
    ``experiments``) -> name -> (params.yaml values, ``reports/main/metrics.json`` data)."""
    found = {}
    for row in rows:
        experiments = [exp for group in row.get("experiments") or [] for exp in group["revs"]]
        for item in [row, *experiments]:
            data = item.get("data") or {}
            params = data.get("params", {}).get("params.yaml", {}).get("data", {})
            metrics = data.get("metrics", {}).get(METRICS, {}).get("data", {})
            found[item.get("name") or item["rev"]] = (params, metrics)
    return found


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A git + DVC project whose baseline (``fedavg``) main run is committed on ``main``,
    with one experiment per aggregator of :data:`AGGREGATORS` run on top of it."""
    root = tmp_path_factory.mktemp("exp")
    project = root / "project"
    _copy_project(project)
    _make_folder(root / "mine")
    _tiny_params(project, root)
    run = _runner(project)
    run("git", "init", "-q", "-b", "main")
    run("git", "config", "user.name", "fussbench test")
    run("git", "config", "user.email", "test@fussbench.invalid")
    run("dvc", "repro", "-q", "federate")
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "baseline: fedavg")
    for aggregator in AGGREGATORS:
        experiment = ["-n", f"exp-{aggregator}", "-S", f"aggregator={aggregator}"]
        run("dvc", "exp", "run", "-q", *experiment, "federate")  # the other stages: not run
    return project


def test_exp_show_lists_each_experiments_miou(project):
    found = _scores(json.loads(_runner(project)("dvc", "exp", "show", "--json")))
    for name, aggregator in [("main", "fedavg")] + [(f"exp-{a}", a) for a in AGGREGATORS]:
        params, metrics = found[name]
        assert params["aggregator"] == aggregator
        assert metrics["method"] == aggregator  # each experiment kept its own run's scores
        for key in ("miou", "accuracy"):
            assert isinstance(metrics[key], float) and 0.0 <= metrics[key] <= 100.0
    print({name: found[name][1]["miou"] for name in found})


def test_exp_diff_compares_two_aggregators(project):
    run = _runner(project)
    diff = json.loads(run("dvc", "exp", "diff", "exp-local", "exp-fedcc_kmeans", "--json"))
    miou = diff["metrics"][METRICS]["miou"]
    found = _scores(json.loads(run("dvc", "exp", "show", "--json")))
    assert miou["old"] == found["exp-local"][1]["miou"]
    assert miou["new"] == found["exp-fedcc_kmeans"][1]["miou"]
    header = (project / "reports/main/rounds.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["round", "miou", "accuracy"]
    assert not [name for name in header if name.endswith(("seconds", "train_s"))]


def test_a_fresh_clone_shows_and_verifies_the_committed_main_run(project, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True)
    assert not (clone / "runs").exists() and not (clone / "data").exists()
    committed = json.loads((clone / METRICS).read_text())
    params, metrics = _scores(json.loads(_runner(clone)("dvc", "exp", "show", "--json")))["main"]
    assert params["aggregator"] == "fedavg" and metrics == committed
    assert committed["method"] == "fedavg" and isinstance(committed["miou"], float)

    assert stale_reports(clone, ("federate",)) == []  # runs/main is ignored, not missing
    (clone / METRICS).write_text(json.dumps({**committed, "miou": 99.0}))
    assert stale_reports(clone, ("federate",)) == [f"federate: {METRICS} modified"]


def _changed_stages(run) -> set[str]:
    """Names of the stages ``dvc status`` reports as changed."""
    return set(json.loads(run("dvc", "status", "--json")))


def test_a_knob_or_a_new_aggregator_leaves_downloads_and_feature_caches_up_to_date(project):
    run = _runner(project)
    catalog = project / "fussbench/methods/catalog.py"
    params_file = project / "params.yaml"
    kept = catalog.read_text(), params_file.read_text()
    try:
        params = yaml.safe_load(kept[1])
        params["federation"]["mu"] = 0.01
        params["federation"]["toy_trim"] = 1
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        catalog.write_text(
            kept[0] + "\nregister(MethodSpec('toy_trim', 'a toy', family='fedcc', "
            "factory=f'{_AGGREGATORS}:FedCCKMeans', server_needs='individual', "
            "knobs=(Knob('toy_trim', 1, Interval(int, 0), 'a toy knob'),)))\n"
        )
        changed = _changed_stages(run)
        assert "check" in changed and "federate" in changed
        assert not [name for name in changed if name.startswith(("download", "features"))]
    finally:
        catalog.write_text(kept[0])
        params_file.write_text(kept[1])


def test_a_bad_method_in_exp_run_fails_at_the_first_stage(project):
    env_run = subprocess.run(
        ["dvc", "exp", "run", "-S", "compare=[fedavgg]"],
        cwd=project,
        env={
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(project),
        },
        capture_output=True,
        text=True,
    )
    output = env_run.stdout + env_run.stderr
    assert env_run.returncode != 0
    assert "compare[0] = 'fedavgg' is not a method" in output
    assert "Running stage 'download" not in output and "Running stage 'check'" in output
