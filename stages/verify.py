"""``fussbench verify`` (not a DVC stage): are the committed reports still what the locks
say they are, or (``--tables``) what the runs say (:mod:`fussbench.verification`)?"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fussbench.params import Params
from fussbench.paths import RUNS
from fussbench.studies.study import RECORDS
from fussbench.verification.lock import stale_reports
from fussbench.verification.profiles import (
    PROFILE_LOCK,
    check_profile,
    drift_note,
    profile_folders,
    profile_values,
)
from fussbench.verification.studies import check_study, study_folders
from fussbench.verification.tables import table_mismatches


@dataclass(frozen=True)
class Verification:
    """What ``verify`` checked and found.

    Attributes:
        checked: what was compared with what, for the line that reports success.
        problems: one line per difference: the check fails.
        warnings: one line per profile whose dependencies changed since it ran.
    """

    checked: str
    problems: list[str]
    warnings: list[str] = field(default_factory=list)


def run(params_file: Path, params: Params, tables: bool) -> Verification:
    """Check the reports in the working directory (a repository) against ``dvc.lock`` and
    every profile folder against its own lock; with ``tables``, check instead the tables
    in ``params.reports_dir`` against the runs under ``runs/``.

    Args:
        params_file: the params file, to which each profile's preset is applied.
    """
    if tables:
        reports = Path(params.reports_dir)
        problems = table_mismatches(reports, RUNS, params.compare, params.runs_on, params.seeds)
        return Verification(f"the tables in {reports}/ against {RUNS}/", problems)
    root = Path.cwd()
    checked, problems, warnings = "the reports against dvc.lock", stale_reports(root), []
    for folder in profile_folders(root):
        profile = check_profile(root, folder, profile_values(params_file, folder))
        problems += profile.problems
        checked += f"; {folder}/ against its {PROFILE_LOCK}"
        if profile.drift:
            warnings.append(drift_note(profile))
    for folder in study_folders(root):
        problems += check_study(params_file, folder)
        checked += f"; {folder}/ against its {RECORDS}"
    return Verification(checked, problems, warnings)
