"""``fussbench verify``: committed reports against dvc.lock."""

import subprocess
import sys
from pathlib import Path

import pytest

from fussbench import presets
from fussbench.verification.lock import stale_reports
from fussbench.verification.profiles import check_profile, profile_folders, profile_values

DVC = str(Path(sys.executable).parent / "dvc")

WRITER = (
    "import pathlib\npathlib.Path('reports').mkdir(exist_ok=True)\n"
    "pathlib.Path('reports/results.csv').write_text('miou\\n17.5\\n')\n"
)

PIPELINE = """stages:
  collect:
    cmd: python write.py
    deps:
      - write.py
    params:
      - reports_dir
    outs:
      - reports/results.csv:
          cache: false
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A DVC project (no git) whose ``collect`` stage has run, so dvc.lock is fresh."""
    (tmp_path / "write.py").write_text(WRITER)
    (tmp_path / "params.yaml").write_text("reports_dir: reports\n")
    (tmp_path / "dvc.yaml").write_text(PIPELINE)
    for command in (["init", "--no-scm", "-q"], ["repro", "-q"]):
        subprocess.run([DVC, *command], cwd=tmp_path, check=True, capture_output=True)
    return tmp_path


def test_fresh_reports_pass(repo):
    assert stale_reports(repo, ("collect",)) == []


def test_an_edited_report_is_named(repo):
    (repo / "reports/results.csv").write_text("miou\n99.0\n")
    assert stale_reports(repo, ("collect",)) == ["collect: reports/results.csv modified"]


def test_changed_code_and_params_are_named(repo):
    (repo / "write.py").write_text(WRITER + "# changed\n")
    (repo / "params.yaml").write_text("reports_dir: elsewhere\n")
    problems = stale_reports(repo, ("collect",))
    assert "collect: write.py modified" in problems
    assert any(line.startswith("collect: param reports_dir") for line in problems)


def test_a_missing_stage_is_named(repo):
    assert stale_reports(repo, ("collect", "report")) == ["report: no such stage in dvc.yaml"]


PROFILE_WRITER = (
    "import pathlib, sys\nfolder = pathlib.Path(sys.argv[1])\n"
    "folder.mkdir(parents=True, exist_ok=True)\n"
    "(folder / 'results.csv').write_text('miou\\n17.5\\n')\n"
)

PROFILE_PIPELINE = """stages:
  collect:
    cmd: python write.py ${reports_dir}
    deps:
      - write.py
    params:
      - reports_dir
      - seeds
    outs:
      - ${reports_dir}/results.csv:
          cache: false
"""

PROFILE_PARAMS = {"reports_dir": "reports/paper", "seeds": [0, 1]}


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    """A DVC project whose ``collect`` ran with the profile's params, then was set back to
    the default's: ``reports/paper/`` keeps that run's lock as ``lock.yaml``."""
    (tmp_path / "write.py").write_text(PROFILE_WRITER)
    (tmp_path / "params.yaml").write_text("reports_dir: reports/paper\nseeds: [0, 1]\n")
    (tmp_path / "dvc.yaml").write_text(PROFILE_PIPELINE)
    for command in (["init", "--no-scm", "-q"], ["repro", "-q"]):
        subprocess.run([DVC, *command], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "dvc.lock").rename(tmp_path / "reports/paper/lock.yaml")
    (tmp_path / "reports/paper/PROVENANCE.md").write_text("- **Commit** `abc1234def` (clone).\n")
    (tmp_path / "params.yaml").write_text("reports_dir: reports\nseeds: [0]\n")
    return tmp_path


def test_a_fresh_profile_passes(profile):
    assert profile_folders(profile) == [Path("reports/paper")]
    check = check_profile(profile, Path("reports/paper"), PROFILE_PARAMS, ("collect",))
    assert (check.problems, check.drift, check.commit) == ([], [], "abc1234def")


def test_an_edited_or_deleted_profile_report_fails(profile):
    results = profile / "reports/paper/results.csv"
    results.write_text("miou\n99.0\n")
    check = check_profile(profile, Path("reports/paper"), PROFILE_PARAMS, ("collect",))
    assert check.problems == ["collect: reports/paper/results.csv modified"]
    results.unlink()
    check = check_profile(profile, Path("reports/paper"), PROFILE_PARAMS, ("collect",))
    assert check.problems == ["collect: reports/paper/results.csv deleted"]
    missing = check_profile(profile, Path("reports/paper"), PROFILE_PARAMS, ("collect", "stats"))
    assert "reports/paper: lock.yaml has no stage stats" in missing.problems


def test_code_and_params_changed_since_the_profile_are_drift_not_failure(profile):
    (profile / "write.py").write_text(PROFILE_WRITER + "# changed\n")
    changed = {**PROFILE_PARAMS, "seeds": [0, 1, 2]}
    check = check_profile(profile, Path("reports/paper"), changed, ("collect",))
    assert check.problems == []
    assert check.drift == ["collect: write.py modified", "collect: param seeds modified"]


def test_a_profile_is_checked_with_its_presets_overrides(tmp_path, monkeypatch):
    monkeypatch.setattr(presets, "PRESETS_DIR", tmp_path)
    (tmp_path / "paper.yaml").write_text(
        "description: x\nset: {seeds: [0, 1], runtime.workers: 2}\n"
    )
    params = tmp_path / "params.yaml"
    params.write_text("seeds: [0]\nruntime: {threads: 1, workers: 3}\n")
    assert profile_values(params, Path("reports/paper")) == {
        "seeds": [0, 1],
        "runtime": {"threads": 1, "workers": 2},
    }
    assert profile_values(params, Path("reports/other")) == {
        "seeds": [0],
        "runtime": {"threads": 1, "workers": 3},
    }
