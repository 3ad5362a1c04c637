"""``fussbench convergence`` (not a DVC stage): global mIoU against local steps.

Trains the study's pending runs (:mod:`fussbench.studies.convergence`), then writes
``convergence.md``, ``convergence.csv`` and ``convergence.png`` into ``reports_dir``.
"""

from __future__ import annotations

from pathlib import Path

from fussbench.atomic import write_text
from fussbench.params import Params
from fussbench.reporting.figures import save_png
from fussbench.studies.convergence import convergence_report, train
from fussbench.studies.trainer import Trainer


def run(params: Params, trainer: Trainer | None) -> dict[str, dict[str, str | None]]:
    """Train what the study lacks with ``trainer`` (None: only rebuild the report), write
    the report; return the chosen budgets per setup."""
    if trainer is not None:
        train(params, trainer)
    report = convergence_report(params)
    out = Path(params.reports_dir)
    write_text(out / "convergence.md", report.markdown)
    write_text(out / "convergence.csv", report.table.to_csv(index=False, float_format="%.4f"))
    save_png(report.figure, out / "convergence.png")
    return report.budgets
