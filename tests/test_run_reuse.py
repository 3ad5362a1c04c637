"""A finished run is copied instead of retrained only when its params, code, inputs and
platform are this run's (``fussbench federate --reuse-from``), and the copy is what
training again gives."""

import json
import os
import shutil
from pathlib import Path

import pytest
from cli_workspace import camvid_workspace, invoke
from synthetic import CAMVID_COUNTS

import fussbench
from fussbench.data.camvid import CamVid
from fussbench.params import load_params
from fussbench.run import federate as run_module
from fussbench.run import reuse

QUICK = [
    "train.local_steps=2",
    "train.batch_size=2",
    "federation.rounds=2",
    "train.knn_k=1",
    "aggregator=fedavg",
]


def federate(out: str, *extra: str, reuse_from: str | None = "runs"):
    args = [arg for item in (*QUICK, *extra) for arg in ("-S", item)]
    options = ["--reuse-from", reuse_from] if reuse_from is not None else []
    return invoke("federate", *args, "--out", out, *options)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A workspace with a synthetic CamVid downloaded, partitioned and feature-cached."""
    with pytest.MonkeyPatch.context() as patch:
        return camvid_workspace(tmp_path_factory.mktemp("reuse"), patch, [])


@pytest.fixture
def workspace(prepared, monkeypatch):
    """The prepared workspace, without a runs/ folder."""
    monkeypatch.setattr(CamVid, "split_counts", CAMVID_COUNTS)
    monkeypatch.chdir(prepared)
    shutil.rmtree("runs", ignore_errors=True)
    return prepared


def no_training(monkeypatch) -> None:
    """Make any attempt to train (or score) fail the test."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("trained, though an identical finished run was there")

    monkeypatch.setattr(run_module, "_train_or_score", refuse)


def files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.slow
def test_a_finished_run_is_copied_and_the_copy_is_what_training_gives(workspace, monkeypatch):
    assert federate("runs/cell/seed0", reuse_from=None).exit_code == 0
    key = (workspace / "runs/cell/seed0" / reuse.REUSE_KEY).read_text().strip()
    assert key == reuse.run_key(load_params("params.yaml", QUICK))

    fresh = federate("runs/fresh", reuse_from=None)  # trains: no --reuse-from
    assert fresh.exit_code == 0 and "round 2" in fresh.output

    with monkeypatch.context() as patch:
        no_training(patch)
        copied = federate("runs/main")
    assert copied.exit_code == 0, copied.output
    assert "copied from runs/cell/seed0" in copied.output
    assert files(workspace / "runs/main") == files(workspace / "runs/cell/seed0")
    # the copy holds what training again gave, wall times aside
    trained = json.loads((workspace / "runs/fresh/metrics.json").read_text())
    kept = json.loads((workspace / "runs/main/metrics.json").read_text())
    trained.pop("seconds"), kept.pop("seconds")
    assert kept == trained


@pytest.mark.slow
@pytest.mark.parametrize(
    "change",
    ["other seed", "no key", "inputs rewritten", "other code", "other CPU kind"],
)
def test_a_run_that_differs_in_anything_is_trained(workspace, monkeypatch, change):
    assert federate("runs/cell/seed0", reuse_from=None).exit_code == 0
    extra = []
    if change == "other seed":
        extra = ["seed=1"]
    elif change == "no key":  # a folder a run was still writing, or a run from before keys
        (workspace / "runs/cell/seed0" / reuse.REUSE_KEY).unlink()
    elif change == "inputs rewritten":  # as the partition stage rewrites a manifest
        manifest = workspace / "data/partitions/camvid_domain/client_00.json"
        status = manifest.stat()
        os.utime(manifest, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000))
    elif change == "other code":
        monkeypatch.setattr(reuse, "code_digest", lambda: "0" * 64)
    else:
        identity = reuse.platform_identity()
        monkeypatch.setattr(
            reuse, "platform_identity", lambda: {**identity, "cpu_capability": "OTHER"}
        )
    no_training(monkeypatch)
    with pytest.raises(AssertionError, match="trained, though"):
        federate("runs/main", *extra)


@pytest.mark.slow
def test_a_final_checkpoint_resumes_only_under_the_same_code(workspace, monkeypatch):
    """A run's checkpoints carry its key: rerun with the same code, a finished run resumes
    after its last round (nothing to train); after a change of the code it trains again."""
    assert federate("runs/x", reuse_from=None).exit_code == 0
    again = federate("runs/x", reuse_from=None)
    assert again.exit_code == 0 and "resuming runs/x after round 2" in again.output
    assert "round 1:" not in again.output
    monkeypatch.setattr(reuse, "code_digest", lambda: "0" * 64)
    changed = federate("runs/x", reuse_from=None)
    assert changed.exit_code == 0 and "resuming" not in changed.output
    assert "round 1:" in changed.output and "round 2:" in changed.output


@pytest.mark.slow
def test_a_run_being_rewritten_is_not_finished_until_it_ends(workspace, monkeypatch):
    """The key goes first when a run starts writing its folder and comes back last."""
    assert federate("runs/main", reuse_from=None).exit_code == 0
    seen = []

    def watch(params, out_dir, superlink, key):
        seen.append((out_dir / reuse.REUSE_KEY).exists())
        return {}

    monkeypatch.setattr(run_module, "_train_or_score", watch)
    run_module.run_federation(load_params("params.yaml", [*QUICK, "seed=1"]), Path("runs/main"))
    assert seen == [False]
    assert (workspace / "runs/main" / reuse.REUSE_KEY).read_text().strip() == reuse.run_key(
        load_params("params.yaml", [*QUICK, "seed=1"])
    )


@pytest.mark.slow
def test_comparison_workers_copy_the_seeds_they_find(workspace):
    """--all-seeds in two worker processes: seed 0 is copied from the main run, seed 1
    trained."""
    assert federate("runs/main", reuse_from=None).exit_code == 0
    args = [a for item in (*QUICK, "seeds=[0, 1]", "runtime.workers=2") for a in ("-S", item)]
    result = invoke(
        "federate",
        *args,
        "--method",
        "fedavg",
        "--all-seeds",
        "--out",
        "runs/cell",
        "--reuse-from",
        "runs",
    )
    assert result.exit_code == 0, result.output
    # every file equal, the wall times in metrics.json and rounds.csv included: a copy
    assert files(workspace / "runs/cell/seed0") == files(workspace / "runs/main")
    assert (workspace / "runs/cell/seed1" / reuse.REUSE_KEY).is_file()
    assert files(workspace / "runs/cell/seed1") != files(workspace / "runs/main")


def test_the_code_digest_covers_every_file_of_the_package_but_compiled_caches(
    tmp_path, monkeypatch
):
    package = tmp_path / "fussbench"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model" / "losses.py").write_text("SHIFT = 0.46\n")
    monkeypatch.setattr(fussbench, "__file__", str(package / "__init__.py"))
    before = reuse.code_digest()
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "losses.cpython-311.pyc").write_bytes(b"\0")
    assert reuse.code_digest() == before
    (package / "model" / "losses.py").write_text("SHIFT = 0.47\n")
    assert reuse.code_digest() != before


@pytest.mark.slow
def test_a_run_on_a_superlinks_data_is_never_reused(workspace):
    result = invoke(
        "federate",
        "--engine",
        "flower",
        "--superlink",
        "127.0.0.1:9093",
        "--insecure",
        "--reuse-from",
        "runs",
        "--out",
        "runs/remote",
    )
    assert result.exit_code == 2
    assert "leave out --reuse-from" in result.output
