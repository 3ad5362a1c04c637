"""Stage ``convergence``: global mIoU against local steps, and the budgets it chooses.

The runs themselves are ordinary federate runs (the CLI runs them); this module lists
them, reads their per-round mIoU and writes ``convergence.md``, ``convergence.csv`` and
``convergence.png`` into ``reports_dir``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fussbench.atomic import write_text
from fussbench.errors import FussbenchError
from fussbench.params import Params
from fussbench.reporting.convergence import (
    CURVE_COLUMNS,
    Budget,
    budget_table,
    convergence_figure,
    convergence_markdown,
    default_budget,
    longest_budget,
    paper_budget,
)
from fussbench.reporting.figures import save_png

REFERENCE = "kmeans"


def run_dir(params: Params, setup: str, method: str, seed: int, steps: int | None) -> Path:
    """Where one run of the study lives (``steps`` None: the kmeans reference)."""
    base = Path(params.convergence.out) / setup / method
    return (base if steps is None else base / f"steps{steps}") / f"seed{seed}"


def jobs(params: Params) -> list[tuple[str, str, int, int | None]]:
    """(setup, method, seed, local steps) of every run of the study, the kmeans reference
    (steps None) of each setup and seed first."""
    study = params.convergence
    for setup in study.setups:
        if setup not in params.setups:
            raise FussbenchError(
                f"convergence.setups names '{setup}', which is not a key of setups; "
                f"valid: {', '.join(params.setups)}"
            )
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


def _run_records(params: Params, job: tuple[str, str, int, int | None]) -> pd.DataFrame | None:
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


def _key(frame: pd.DataFrame) -> pd.Series:
    """(setup, method, local_steps, seed) of each row, as one comparable value."""
    keys = frame[list(RECORD_COLUMNS[:4])].itertuples(index=False, name=None)
    return pd.Series(list(keys), index=frame.index, dtype=object)


def _finished_keys(records: pd.DataFrame) -> set[tuple[str, str, int, int]]:
    """The :func:`_key` of every run that ``records`` hold finished."""
    return set(_key(records[records["finished"]]))


def _job_key(job: tuple[str, str, int, int | None]) -> tuple[str, str, int, int]:
    """The :func:`_key` of a job of :func:`jobs`."""
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
    for job in jobs(params):
        run = _run_records(params, job)
        if run is not None and (run["finished"].all() or _job_key(job) not in done):
            fresh.append(run)
    if fresh:
        replaced = set().union(*(set(_key(run)) for run in fresh))
        kept = recorded[~_key(recorded).isin(replaced)]
        recorded = pd.concat([kept, *fresh], ignore_index=True).astype(RECORD_DTYPES)
        recorded = recorded.sort_values(list(RECORD_COLUMNS[:5]), ignore_index=True)
        write_text(path, recorded.to_csv(index=False, float_format="%.4f"))
    return recorded


def pending(params: Params, records: pd.DataFrame) -> list[tuple[str, str, int, int | None]]:
    """The study's runs (as :func:`jobs`) that ``records`` (from :func:`collect_records`)
    do not hold finished."""
    done = _finished_keys(records)
    return [job for job in jobs(params) if _job_key(job) not in done]


def _curves(params: Params, records: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-round mIoU of the study's trained runs in ``records`` (columns
    ``CURVE_COLUMNS``) and the mean kmeans mIoU of each setup."""
    records = records[_key(records).isin({_job_key(job) for job in jobs(params)})]
    trained = records[records["method"] != REFERENCE]
    if trained.empty:
        raise FussbenchError(
            f"no run of the study recorded in {records_path(params)} or under "
            f"{params.convergence.out}: run `fussbench convergence` first"
        )
    reference = records[records["method"] == REFERENCE]
    means = reference.groupby("setup")["miou"].mean()
    return trained[list(CURVE_COLUMNS)], {setup: float(m) for setup, m in means.items()}


def report(params: Params) -> dict[str, dict[str, str | None]]:
    """Write the convergence report; return the chosen budgets per setup."""
    study = params.convergence
    records = collect_records(params)
    curves, references = _curves(params, records)
    table = budget_table(curves)
    setups = [setup for setup in study.setups if setup in set(curves["setup"])]
    chosen: dict[str, dict[str, Budget | None]] = {}
    longest = Budget(study.rounds, max(study.local_steps))
    for setup in setups:
        methods = [
            m for m in study.methods if m in set(table.loc[table["setup"] == setup, "method"])
        ]
        default = (
            default_budget(table, setup, references[setup], study.margin)
            if setup in references
            else None
        )
        # the paper budget is measured against the longest budget of the study, not the
        # longest that happens to have run
        reached = longest_budget(table, setup) == longest
        chosen[setup] = {
            "paper budget": paper_budget(table, setup, methods, study.tolerance)
            if reached
            else None,
            "default budget": default,
        }
    expected = [job for job in jobs(params) if job[3] is not None]
    unfinished = [job for job in pending(params, records) if job[3] is not None]
    status = (
        f"**Incomplete: {len(unfinished)} of {len(expected)} runs have not finished** (their "
        "finished rounds are shown); the budgets below are provisional until they do."
        if unfinished
        else f"All {len(expected)} runs finished."
    )
    header = [
        "# Convergence: global mIoU against local steps",
        "",
        status,
        "",
        f"Seeds {', '.join(map(str, study.seeds))}; runs of {study.rounds} rounds × "
        f"{', '.join(map(str, study.local_steps))} local steps per client per round, evaluated "
        "after every round (the state after round r is the run of r rounds). `centralized` "
        "trains the federation's total steps per round on the pooled data (equal compute).",
        "",
        f"- **Paper budget**: the cheapest budget at which every method's mean mIoU is at most "
        f"{study.tolerance} below its mean at the longest budget.",
        f"- **Default budget**: the cheapest budget at which centralized and the better FedCC "
        f"both beat the kmeans reference by at least {study.margin} mIoU.",
        "- Cost = rounds × steps per round (local steps per client); ties go to fewer rounds. "
        "Cells: mean ± std over seeds (number of seeds).",
        f"- Every run's mIoU after every round: [{records_path(params).name}]"
        f"({records_path(params).name}); `fussbench convergence` resumes from it.",
        "",
        "![convergence](convergence.png)",
    ]
    out = Path(params.reports_dir)
    write_text(
        out / "convergence.md", convergence_markdown(table, setups, references, chosen, header)
    )
    write_text(out / "convergence.csv", table.to_csv(index=False, float_format="%.4f"))
    save_png(
        convergence_figure(curves, setups, study.methods, references, chosen),
        out / "convergence.png",
    )
    return {
        setup: {label: str(budget) if budget else None for label, budget in budgets.items()}
        for setup, budgets in chosen.items()
    }
