"""Federate runs ``workers`` at a time, each in its own process.

The run itself is a callable passed in (the CLI passes the federate stage), since
``fussbench`` never imports ``stages``; it must be picklable (a module-level function),
since a worker process receives it by name.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fussbench.engines.flower.launcher import Connection

FederateJob = tuple[Path, list[str], Path, "Connection | None"]
"""Arguments of one federate run: params file, overrides, out folder, SuperLink (None:
local)."""

Federate = Callable[[Path, list[str], Path, "Connection | None"], dict[str, object]]
"""One federate run: called with a :data:`FederateJob`'s items, returns its metrics."""


def run_jobs(
    jobs: Sequence[FederateJob],
    workers: int,
    federate: Federate,
    done: Callable[[dict[str, object]], None],
) -> None:
    """Run ``federate(*job)`` for every job, ``workers`` at a time in separate processes
    (one at a time in this process when ``workers`` <= 1), and hand each run's metrics to
    ``done`` in the order of ``jobs``."""
    workers = min(workers, len(jobs))
    if workers <= 1:
        for job in jobs:
            done(federate(*job))
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for metrics in pool.map(federate, *zip(*jobs, strict=True)):
            done(metrics)
