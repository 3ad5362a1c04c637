"""Stage ``report``: tables, figures and an index of both, from the comparison's results.

Reads ``<reports_dir>/results.csv`` and ``significance.csv``, the runs under ``runs/`` and
the partitions under ``data/partitions/``; writes ``<reports_dir>/tables/``,
``<reports_dir>/figures/`` and ``<reports_dir>/README.md``
(:func:`fussbench.reporting.report.write_report`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from fussbench.params import Params
from fussbench.paths import DATA, RUNS
from fussbench.reporting.qualitative import qualitative_loader
from fussbench.reporting.report import write_report


def params_hash(params: Params) -> str:
    """The first 12 hex digits of the SHA-256 of the params (every value, as sorted JSON):
    the index names the params the report was made with."""
    identity = json.dumps(dataclasses.asdict(params), sort_keys=True).encode()
    return hashlib.sha256(identity).hexdigest()[:12]


def run(params: Params, params_for: Callable[[str], Params] | None) -> list[str]:
    """Write the report of the comparison ``params`` describe into ``params.reports_dir``;
    return what is missing, one phrase each.

    Args:
        params_for: the params with a setup chosen, to draw each setup's qualitative grid
            from its feature cache and raw images; None leaves the grids out.
    """
    reports = Path(params.reports_dir)
    loader = None
    if params_for is not None:
        loader = qualitative_loader(
            params_for,
            RUNS,
            params.compare,
            params.report.qualitative_images,
            params.seeds[0],
        )
    return write_report(
        reports / "results.csv",
        RUNS,
        DATA / "partitions",
        reports,
        params.compare,
        params.runs_on,
        params.seeds,
        params_hash(params),
        reports / "significance.csv",
        loader,
    )
