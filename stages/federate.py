"""Stage ``federate``: one federation run (one method, one seed) on cached features."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fussbench.params import Params
from fussbench.run.federate import run_federation

if TYPE_CHECKING:
    from fussbench.engines.flower.launcher import Connection


def run(
    params: Params,
    out_dir: Path,
    superlink: Connection | None = None,
    reuse_from: Path | None = None,
) -> dict[str, object]:
    """Train (or score a reference row) as ``params`` say and write the run's files into
    ``out_dir``, or copy an identical finished run from under ``reuse_from``
    (:func:`fussbench.run.federate.run_federation`); returns its metrics."""
    return run_federation(params, out_dir, superlink, reuse_from)
