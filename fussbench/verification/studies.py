"""A study folder against its records: the committed report must be what the records give.

A study (``fussbench study``) keeps its runs in ``<reports_dir>/runs.csv`` (and their
per-round scores in ``rounds.csv``); its report is a pure function of those records and of
the study's preset. Rewriting the report from the committed records into a scratch folder
and comparing it byte for byte (a figure: its presence) catches a report edited by hand,
or records changed without rewriting the report.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fussbench.methods.check import load_checked_params
from fussbench.presets import load_preset, preset_names
from fussbench.studies.reports import study_report
from fussbench.studies.study import RECORDS, ROUNDS, read_records

FIGURE = ".png"
"""A figure is drawn from the same records as the tables; its bytes depend on the
installed matplotlib and FreeType, so only its presence is checked."""


def study_folders(repo_root: Path) -> list[Path]:
    """``reports/<name>/`` folders holding study records whose preset is ``<name>``."""
    return sorted(
        records.parent.relative_to(repo_root)
        for records in repo_root.glob(f"reports/*/{RECORDS}")
        if records.parent.name in preset_names()
    )


def check_study(params_file: Path, folder: Path) -> list[str]:
    """One line per report file of ``folder`` that differs from the report its records
    give (missing files included); [] when they agree."""
    overrides = load_preset(folder.name).overrides()
    with tempfile.TemporaryDirectory(prefix="fussbench-study-") as tmp:
        scratch = Path(tmp)
        kept = [name for name in (RECORDS, ROUNDS) if (folder / name).is_file()]
        for name in kept:
            shutil.copy(folder / name, scratch / name)
        sources = " and ".join(f"{folder}/{name}" for name in kept)
        sources += " gives" if len(kept) == 1 else " give"
        params = load_checked_params(params_file, [*overrides, f"reports_dir={scratch}"])
        study_report(params)(params, read_records(params))
        problems = []
        for made in sorted(scratch.iterdir()):
            committed = folder / made.name
            if not committed.is_file():
                problems.append(
                    f"{folder}/{made.name}: missing; run fussbench study --preset "
                    f"{folder.name} --report-only"
                )
            elif made.suffix != FIGURE and committed.read_bytes() != made.read_bytes():
                problems.append(f"{committed}: differs from what {sources}")
        return problems
