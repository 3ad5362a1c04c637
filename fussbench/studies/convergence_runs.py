"""The runs of the convergence study and their per-round records.

Every setup × method × seed × local steps of ``convergence:`` is one federate run of
``convergence.rounds`` rounds into ``convergence.out``, plus the kmeans reference of each
setup and seed. Each run's per-round mIoU is recorded in
``<reports_dir>/convergence_runs.csv`` (committed with the report), so that the study
resumes from it on any machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fussbench.atomic import write_text
from fussbench.errors import FussbenchError
from fussbench.methods import parse_method
from fussbench.params import Params
from fussbench.studies.prepare import check_setups

REFERENCE = "kmeans"
"""The untrained reference run once per setup and seed (its mIoU is the bar to beat)."""

StudyRun = tuple[str, str, int, int | None]
"""(setup, method, seed, local steps) of one run; local steps None for the reference."""


def run_dir(params: Params, setup: str, method: str, seed: int, steps: int | None) -> Path:
    """Where one run of the study lives (``steps`` None: the kmeans reference)."""
    base = Path(params.convergence.out) / setup / method
    return (base if steps is None else base / f"steps{steps}") / f"seed{seed}"


def study_runs(params: Params) -> list[StudyRun]:
    """(setup, method, seed, local steps) of every run of the study, the kmeans reference
    (steps None) of each setup and seed first.

    Raises:
        FussbenchError: a setup that is not a key of ``setups``, or a one-shot method (its
            registry entry's ``one_shot``): its run is one round after the whole budget, so
            its rounds are not budgets.
    """
    study = params.convergence
    for method in study.methods:
        if parse_method(method).spec.one_shot:
            raise FussbenchError(
                f"convergence.methods names '{method}', a one-shot method: it merges once "
                "after rounds × local steps, so its rounds are not budgets; leave it out of "
                "the convergence study and compare it at one budget (compare, study)"
            )
    check_setups(study.setups, params, "convergence.setups")
    references = [(s, REFERENCE, seed, None) for s in study.setups for seed in study.seeds]
    trained = [
        (setup, method, seed, steps)
        for setup in study.setups
        for steps in sorted(study.local_steps)
        for method in study.methods
        for seed in study.seeds
    ]
    return [*references, *trained]


RECORD_DTYPES = {
    "setup": str,
    "method": str,
    "local_steps": int,
    "seed": int,
    "round": int,
    "miou": float,
    "finished": bool,
}
RECORD_COLUMNS = tuple(RECORD_DTYPES)
"""One row per evaluated round of one run; a kmeans reference is one row with local_steps
and round 0; ``finished``: the run wrote its final metrics (an interrupted run is redone)."""


def records_path(params: Params) -> Path:
    """The study's per-round records, ``<reports_dir>/convergence_runs.csv``: committed with
    the report, so that a study resumes on another machine from what it has recorded."""
    return Path(params.reports_dir) / "convergence_runs.csv"


def _run_records(params: Params, job: StudyRun) -> pd.DataFrame | None:
    """The records of one run read from its folder (None: it has not evaluated a round)."""
    setup, method, seed, steps = job
    folder = run_dir(params, *job)
    finished = (folder / "metrics.json").is_file()
    if steps is None:
        if not finished:
            return None
        miou = json.loads((folder / "metrics.json").read_text())["miou"]
        rounds = pd.DataFrame({"round": [0], "miou": [miou]})
    elif (folder / "rounds.csv").is_file():
        rounds = pd.read_csv(folder / "rounds.csv")[["round", "miou"]]
    else:
        return None
    frame = rounds.assign(
        setup=setup, method=method, local_steps=steps or 0, seed=seed, finished=finished
    )
    return frame[list(RECORD_COLUMNS)]


def record_keys(frame: pd.DataFrame) -> pd.Series:
    """(setup, method, local_steps, seed) of each row, as one comparable value."""
    keys = frame[list(RECORD_COLUMNS[:4])].itertuples(index=False, name=None)
    return pd.Series(list(keys), index=frame.index, dtype=object)


def _finished_keys(records: pd.DataFrame) -> set[tuple[str, str, int, int]]:
    """The :func:`record_keys` of every run that ``records`` hold finished."""
    return set(record_keys(records[records["finished"]]))


def run_key(job: StudyRun) -> tuple[str, str, int, int]:
    """The key of one run of :func:`study_runs`, as :func:`record_keys` gives a row's."""
    setup, method, seed, steps = job
    return setup, method, steps or 0, seed


def collect_records(params: Params) -> pd.DataFrame:
    """Merge the runs under ``convergence.out`` into the recorded runs and write them back.

    A run's folder replaces its recorded rows unless the record is finished and the folder
    is not (a rerun interrupted after the record was made).

    Returns:
        columns :data:`RECORD_COLUMNS`, one row per evaluated round of every known run.
    """
    path = records_path(params)
    recorded = (
        pd.read_csv(path, dtype=RECORD_DTYPES)
        if path.is_file()
        else pd.DataFrame({name: pd.Series(dtype=kind) for name, kind in RECORD_DTYPES.items()})
    )
    done = _finished_keys(recorded)
    fresh = []
    for job in study_runs(params):
        run = _run_records(params, job)
        if run is not None and (run["finished"].all() or run_key(job) not in done):
            fresh.append(run)
    if fresh:
        replaced = set().union(*(set(record_keys(run)) for run in fresh))
        kept = recorded[~record_keys(recorded).isin(replaced)]
        recorded = pd.concat([kept, *fresh], ignore_index=True).astype(RECORD_DTYPES)
        recorded = recorded.sort_values(list(RECORD_COLUMNS[:5]), ignore_index=True)
        write_text(path, recorded.to_csv(index=False, float_format="%.4f"))
    return recorded


def pending(params: Params, records: pd.DataFrame) -> list[StudyRun]:
    """The study's runs (as :func:`study_runs`) that ``records`` (from :func:`collect_records`)
    do not hold finished."""
    done = _finished_keys(records)
    return [job for job in study_runs(params) if run_key(job) not in done]
