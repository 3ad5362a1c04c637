"""``fussbench verify``: are the committed reports still what ``dvc.lock`` says they are?

A profile run as a DVC experiment (``reports/paper/``) keeps its experiment's lock beside its
reports (``lock.yaml``) and is checked against that instead (``check_profile``).

CI runs it on a clean clone, where ``data/`` and ``runs/`` do not exist. A reporting stage
is fresh when every committed output (every output git does not ignore) has the hash recorded
in ``dvc.lock``, every dependency that is on disk (code, partitions) has its recorded hash,
and its params have their recorded values. Dependencies absent from the clone (run folders,
features) cannot be checked and are skipped: they are the inputs the recorded outputs were
computed from. So are git-ignored outputs (``federate``'s ``runs/main``): no clone has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPORT_STAGES = ("federate", "collect", "stats", "report")
"""The stages with outputs committed under ``reports/`` (``federate``: ``reports/main/``, the
main run's scores that DVC experiments compare)."""


def _describe(stage_name: str, status: dict) -> list[str]:
    """One line per changed entry of a DVC out/dep status dict."""
    lines = []
    for path, change in status.items():
        if isinstance(change, dict):  # params: {file: {key: change}}
            lines += [f"{stage_name}: param {key} {value}" for key, value in change.items()]
        else:
            lines.append(f"{stage_name}: {path} {change}")
    return lines


def stale_reports(repo_root: Path, stage_names: tuple[str, ...] = REPORT_STAGES) -> list[str]:
    """Differences between the workspace and ``dvc.lock`` for the reporting stages.

    Args:
        repo_root: the repository (holds ``dvc.yaml`` and ``dvc.lock``).
        stage_names: the stages to check.

    Returns:
        One line per difference, e.g. ``"stats: reports/significance.csv modified"``;
        empty when the committed reports match the lock.
    """
    from dvc.repo import Repo

    problems: list[str] = []
    found: set[str] = set()
    with Repo(str(repo_root)) as repo:
        for stage in repo.index.stages:
            if stage.name not in stage_names:
                continue
            found.add(stage.name)
            for out in stage.outs:
                if not repo.scm.is_ignored(out.fs_path):
                    problems += _describe(stage.name, out.status())
            for dep in stage.deps:
                if Path(dep.fs_path).exists():
                    problems += _describe(stage.name, dep.status())
    problems += [f"{name}: no such stage in dvc.yaml" for name in stage_names if name not in found]
    return problems


def table_mismatches(
    reports_dir: Path,
    runs_dir: Path,
    methods: list[str],
    setups: list[str],
    seeds: list[int],
) -> list[str]:
    """Differences between the written tables and the same tables rebuilt from the runs.

    ``results.csv`` is recomputed from every run's ``metrics.json``, and the main table
    from that; both must equal what ``collect`` and ``report`` wrote in ``reports_dir``.

    Returns:
        One line per difference; empty when the tables agree with the runs.
    """
    import io

    import pandas as pd

    from fussbench.reporting.results import collect_runs
    from fussbench.reporting.tables import main_table

    problems: list[str] = []
    recomputed = collect_runs(runs_dir, setups, methods, seeds)
    written_results = reports_dir / "results.csv"
    if not written_results.is_file():
        return [f"{written_results} does not exist: run `fussbench collect`"]
    key = ["setup", "method", "seed"]
    written = pd.read_csv(written_results).set_index(key).sort_index()
    expected = recomputed.set_index(key).sort_index()
    for metric in ("miou", "accuracy", "status"):
        if not written[metric].equals(expected[metric].astype(written[metric].dtype)):
            problems.append(f"{written_results}: column {metric} differs from runs/*/metrics.json")
    table = main_table(recomputed, methods, setups, seeds)
    markdown = reports_dir / "tables" / "main.md"
    if not markdown.is_file() or table.markdown not in markdown.read_text(encoding="utf-8"):
        problems.append(f"{markdown} differs from the main table rebuilt from the runs")
    numbers = reports_dir / "tables" / "main.csv"
    if not numbers.is_file() or not pd.read_csv(numbers).equals(
        pd.read_csv(io.StringIO(table.csv))
    ):
        problems.append(f"{numbers} differs from the main table rebuilt from the runs")
    return problems


PROFILE_LOCK = "lock.yaml"
"""A profile's reports folder (``reports/paper/``) keeps the ``dvc.lock`` of the experiment
that made it under this name: the hash of every output, code dependency and param value."""

PROFILE_STAGES = ("collect", "stats", "report")
"""The stages whose outputs a profile folder holds (``federate``'s go to ``reports/main/``)."""


@dataclass(frozen=True)
class ProfileCheck:
    """What ``check_profile`` found for one profile folder.

    Attributes:
        folder: the profile's reports folder, relative to the repository.
        commit: the commit the profile was made at (from ``PROVENANCE.md``), or ``""``.
        problems: committed outputs that are not what the lock records (an edited or
            partly regenerated report): the check fails.
        drift: code dependencies and params that changed since the profile ran: the
            numbers are those of the recorded commit, and rerunning the profile would
            refresh them. Listed, not failed, since a rerun takes hours.
    """

    folder: Path
    commit: str
    problems: list[str]
    drift: list[str]


def profile_folders(repo_root: Path) -> list[Path]:
    """The folders under ``reports/`` that hold a profile lock, relative to the repository."""
    return sorted(
        lock.parent.relative_to(repo_root) for lock in repo_root.glob(f"reports/*/{PROFILE_LOCK}")
    )


def profile_values(params: Path, folder: Path) -> dict:
    """The raw params a profile folder was made with: ``params`` plus the overrides of the
    preset named like the folder (``reports/paper/`` → ``fussbench/presets/paper.yaml``),
    if there is one."""
    import yaml

    from fussbench.params import apply_overrides
    from fussbench.presets import load_preset, preset_names

    values = yaml.safe_load(params.read_text(encoding="utf-8")) or {}
    if folder.name in preset_names():
        values = apply_overrides(values, load_preset(folder.name).overrides())
    return values


def _dotted(values: dict, key: str) -> object:
    """``values["a"]["b"]`` for ``key == "a.b"``; a missing key gives ``KeyError``."""
    node: object = values
    for part in key.split("."):
        if not isinstance(node, dict):
            raise KeyError(key)
        node = node[part]
    return node


def _recorded_commit(folder: Path) -> str:
    """The first commit named in ``folder/PROVENANCE.md`` (``Commit `<hex>```, any case and
    markup between), or ``""`` when none."""
    import re

    provenance = folder / "PROVENANCE.md"
    if not provenance.is_file():
        return ""
    text = provenance.read_text(encoding="utf-8")
    found = re.search(r"commit\W*([0-9a-f]{7,40})\b", text, flags=re.IGNORECASE)
    return found.group(1) if found else ""


def check_profile(
    repo_root: Path,
    folder: Path,
    profile_params: dict,
    stage_names: tuple[str, ...] = PROFILE_STAGES,
) -> ProfileCheck:
    """Compare a profile folder with the experiment lock it keeps.

    Args:
        repo_root: the repository (holds ``dvc.yaml``).
        folder: the profile's reports folder relative to ``repo_root``, holding
            ``lock.yaml`` (a copy of the experiment's ``dvc.lock``).
        profile_params: the params the profile runs with (``params.yaml`` with its
            preset's overrides applied), as a plain mapping.
        stage_names: the stages whose outputs the folder holds.

    Returns:
        The check: outputs that differ (``problems``) and dependencies that changed since
        (``drift``), one line each.
    """
    import yaml
    from dvc.output import Output
    from dvc.repo import Repo

    lock = yaml.safe_load((repo_root / folder / PROFILE_LOCK).read_text(encoding="utf-8"))
    stages = lock.get("stages", {})
    problems: list[str] = []
    drift: list[str] = []
    with Repo(str(repo_root)) as repo:
        anchor = repo.index.stages[0]

        def current_hash(path: str) -> str | None:
            if not (repo_root / path).exists():
                return None
            return Output(anchor, path, cache=False).get_hash().value

        for name in stage_names:
            if name not in stages:
                problems.append(f"{folder}: {PROFILE_LOCK} has no stage {name}")
                continue
            entry = stages[name]
            for out in entry.get("outs", []):
                if not Path(out["path"]).is_relative_to(folder):
                    continue
                found = current_hash(out["path"])
                if found is None:
                    problems.append(f"{name}: {out['path']} deleted")
                elif found != out["md5"]:
                    problems.append(f"{name}: {out['path']} modified")
            for dep in entry.get("deps", []):
                if repo.scm.is_ignored(str(repo_root / dep["path"])):
                    continue  # run folders and caches: no clone has them
                found = current_hash(dep["path"])
                if found is not None and found != dep["md5"]:
                    drift.append(f"{name}: {dep['path']} modified")
            for key, recorded in entry.get("params", {}).get("params.yaml", {}).items():
                try:
                    value = _dotted(profile_params, key)
                except KeyError:
                    drift.append(f"{name}: param {key} deleted")
                    continue
                if value != recorded:
                    drift.append(f"{name}: param {key} modified")
    return ProfileCheck(folder, _recorded_commit(repo_root / folder), problems, drift)
