"""``fussbench verify``: committed reports against dvc.lock."""

import subprocess
import sys
from pathlib import Path

import pytest

from stages.verify import stale_reports

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
