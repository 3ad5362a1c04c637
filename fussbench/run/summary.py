"""The main run's compact, git-tracked record: what ``dvc exp show``, ``dvc exp diff`` and
``dvc metrics diff`` compare between experiments.

A run folder (``runs/main``) is git-ignored, so no experiment keeps it; this small copy of
its scores lives under ``reports/main/`` and is committed with every experiment. It holds
no wall times, so the same params and seed give the same files.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from fussbench.atomic import write_json, write_text
from fussbench.methods import get_spec

SCORES = ("method", "miou", "accuracy", "collapsed", "failed_client_rounds")
"""Keys of a run's ``metrics.json`` copied into the summary (those the run has)."""

TIMING = ("seconds", "train_s")
"""Endings of the ``rounds.csv`` columns left out: wall times differ between reruns."""


def summary_metrics(metrics: dict[str, object]) -> dict[str, object]:
    """The flat scores of a run: :data:`SCORES`, then ``bytes_up`` and ``bytes_down``, the
    mean payload per client per round (trained methods only)."""
    summary = {key: metrics[key] for key in SCORES if key in metrics}
    communication = metrics.get("communication")
    if isinstance(communication, dict):
        summary["bytes_up"] = communication["bytes_up_per_client_round"]
        summary["bytes_down"] = communication["bytes_down_per_client_round"]
    return summary


def summary_rounds(metrics: dict[str, object], run_dir: Path) -> str:
    """``run_dir/rounds.csv`` without its :data:`TIMING` columns; a reference method
    (scored without training, no rounds) gives one row, round 0, of its final scores."""
    if get_spec(str(metrics["aggregator"])).kind == "reference":
        return f"round,miou,accuracy\n0,{metrics['miou']},{metrics['accuracy']}\n"
    rows = list(csv.reader(io.StringIO((run_dir / "rounds.csv").read_text(encoding="utf-8"))))
    keep = [n for n, name in enumerate(rows[0]) if not name.endswith(TIMING)]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([row[n] for n in keep] for row in rows)
    return buffer.getvalue()


def write_summary(summary_dir: Path, metrics: dict[str, object], run_dir: Path) -> None:
    """Write ``metrics.json`` (:func:`summary_metrics`) and ``rounds.csv``
    (:func:`summary_rounds`) of the run in ``run_dir`` into ``summary_dir``."""
    write_json(summary_dir / "metrics.json", summary_metrics(metrics))
    write_text(summary_dir / "rounds.csv", summary_rounds(metrics, run_dir))
