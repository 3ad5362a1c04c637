"""The reporting stages against ``dvc.lock``.

CI runs it on a clean clone, where ``data/`` and ``runs/`` do not exist. A reporting stage
is fresh when every committed output (every output git does not ignore) has the hash recorded
in ``dvc.lock``, every dependency that is on disk (code, partitions) has its recorded hash,
and its params have their recorded values. Dependencies absent from the clone (run folders,
features) cannot be checked and are skipped: they are the inputs the recorded outputs were
computed from. So are git-ignored outputs (``federate``'s ``runs/main``): no clone has them.
"""

from __future__ import annotations

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
