"""How a study gets its runs done: prepare their setups, then run them in parallel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fussbench.params import Params, load_params
from fussbench.studies.prepare import SetupSteps, prepare_setups
from fussbench.studies.progress import Progress
from fussbench.studies.scheduler import Federate, FederateJob, run_jobs


@dataclass(frozen=True)
class Trainer:
    """Trains a study's runs with the pipeline's own stages (the CLI builds it, since
    ``fussbench`` never imports ``stages``).

    Attributes:
        params: the params file every run loads.
        overrides: the command's ``-S`` overrides, applied before each run's own.
        workers: how many runs train at once, each in its own process.
        federate: one federate run (:data:`~fussbench.studies.scheduler.Federate`),
            a module-level function.
        done: receives each finished run's metrics (the CLI prints a summary).
        steps: the stages that prepare a setup (:class:`SetupSteps`).
        say: prints one line of progress.
    """

    params: Path
    overrides: list[str]
    workers: int
    federate: Federate
    done: Callable[[dict[str, object]], None]
    steps: SetupSteps
    say: Callable[[str], None]

    def job(self, out: Path, extra: Sequence[str]) -> FederateJob:
        """A local run into ``out`` with the overrides ``extra`` after the command's."""
        return (self.params, [*self.overrides, *extra], out, None)

    def setup_params(self, setup: str) -> Params:
        """The params with ``setup`` chosen."""
        return load_params(self.params, [*self.overrides, f"setup={setup}"])

    def train(self, jobs: Sequence[FederateJob], setups: Sequence[str], where: Path | str) -> None:
        """Prepare ``setups``, say how many runs are to go under ``where``, run ``jobs``;
        after each finished run, say how many are done and about how long the rest will
        take (:class:`~fussbench.studies.progress.Progress`)."""
        prepare_setups(setups, self.setup_params, self.steps, self.say)
        self.say(f"{len(jobs)} run(s) to go under {where}")
        progress = Progress(len(jobs), self.say)
        run_jobs(jobs, self.workers, self.federate, progress.after(self.done))
