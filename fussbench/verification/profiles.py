"""A profile folder against the experiment lock it keeps.

A profile run as a DVC experiment (``reports/paper/``) keeps its experiment's ``dvc.lock``
beside its reports (``lock.yaml``): an output that differs from it fails the check; code or
params changed since the profile ran are listed as drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def drift_note(check: ProfileCheck) -> str:
    """The warning for a profile whose dependencies drifted: since which commit, the first
    changes, and the command that reruns the profile."""
    return (
        f"{check.folder}/ was made at commit {check.commit or '(unknown)'}; since then "
        f"{len(check.drift)} of its dependencies changed ("
        + "; ".join(check.drift[:4])
        + f"): its numbers are that commit's. Rerun the profile to refresh them: "
        f"fussbench preset {check.folder.name} --run"
    )
