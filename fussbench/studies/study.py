"""A resumable study: ``study:`` in params, every variant × setup × method × seed one run.

Each run is an ordinary federate run into ``<study.out>/<name>/<variant>/<setup>/<method>/
seed<k>`` with the variant's overrides and the method's (``study.method_overrides``). As a
run finishes, its row (the identifying columns and every scalar of its ``metrics.json``)
goes into ``<reports_dir>/runs.csv`` (a study's preset names its own ``reports_dir``, as a
profile's does), which is committed: a study stopped by the end of a session resumes from
it on any machine, and its report reads the records only, never the (git-ignored) run
folders.

Runs go seed-major: every run of seed 0 (variant, then setup, then method), then every run
of seed 1, and so on, so a study interrupted part-way leaves whole seeds, each pairing
across all methods, rather than every seed of the first methods and none of the last.
Each run is fixed by its own overrides, so the order changes when a result arrives, never
what it is.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fussbench.atomic import write_text
from fussbench.errors import FussbenchError
from fussbench.params import Params, StudyParams, apply_overrides
from fussbench.reporting.study_hypotheses import check_hypotheses
from fussbench.studies.overrides import method_overrides
from fussbench.studies.prepare import check_setups
from fussbench.studies.trainer import Trainer

KEYS = ("variant", "setup", "method", "seed")
"""The columns that identify a run of a study."""

RECORDS = "runs.csv"
"""The records' file name in the study's report folder."""

ROUNDS = "rounds.csv"
"""The per-round records' file name in the study's report folder: each recorded run's
scores after every round (:data:`ROUND_COLUMNS`), from the run folder's file of the same
name."""

ROUND_COLUMNS = ("round", "miou", "accuracy")
"""The columns of a run's ``rounds.csv`` that the per-round records keep."""


@dataclass(frozen=True)
class StudyRun:
    """One run of a study.

    Attributes:
        variant, setup, method, seed: its place in the study (:data:`KEYS`).
        overrides: its ``key=value`` params overrides: the variant's, the method's
            (``study.method_overrides``), the setup's and seed's, the method cell's.
        out: its run folder.
    """

    variant: str
    setup: str
    method: str
    seed: int
    overrides: tuple[str, ...]
    out: Path

    @property
    def key(self) -> tuple[str, str, str, int]:
        """(variant, setup, method, seed)."""
        return self.variant, self.setup, self.method, self.seed


def report_dir(params: Params) -> Path:
    """``reports_dir``: the study's records and report.

    Raises:
        FussbenchError: no study is named.
    """
    if params.study.name is None:
        raise FussbenchError(
            "study.name is null: name a study (e.g. fussbench study --preset robustness)"
        )
    return Path(params.reports_dir)


def study_runs(params: Params) -> list[StudyRun]:
    """Every run of the study, seed-major: seed by seed, within a seed variant, then setup,
    then method (the module docstring says why).

    Raises:
        FussbenchError: a setup that ``setups`` does not define, a variant override
            that is not ``key=value``, or a hypothesis naming what the study does not run
            (:func:`~fussbench.reporting.study_hypotheses.check_hypotheses`).
    """
    study = params.study
    check_hypotheses(study)
    check_setups(study.setups, params, "study.setups")
    for variant, overrides in study.variants.items():
        apply_overrides({}, list(overrides))  # each must be key=value
        if "/" in variant or not variant:
            raise FussbenchError(f"study.variants: '{variant}' must be a plain name")
    cells = {f"{variant}/{method}" for variant in study.variants for method in study.methods}
    unknown = sorted(set(study.skip) - cells)
    if unknown:
        raise FussbenchError(
            f"study.skip names {unknown[0]!r}, not a <variant>/<method> of the study"
        )
    base = Path(study.out) / str(study.name)
    return [
        StudyRun(
            variant,
            setup,
            method,
            seed,
            (
                *study.variants[variant],
                *study.method_overrides.get(method, []),
                f"setup={setup}",
                f"seed={seed}",
                *method_overrides(method),
            ),
            base / variant / setup / method / f"seed{seed}",
        )
        for variant, setup, method, seed in planned_cells(study)
    ]


def planned_cells(study: StudyParams) -> list[tuple[str, str, str, int]]:
    """(variant, setup, method, seed) of every run the study plans, seed-major (the
    module docstring says why), leaving out ``study.skip``."""
    return [
        (variant, setup, method, seed)
        for seed in study.seeds
        for variant in study.variants
        for setup in study.setups
        for method in study.methods
        if f"{variant}/{method}" not in study.skip
    ]


def planned_keys(study: StudyParams) -> pd.DataFrame:
    """:func:`planned_cells` as a frame with the columns :data:`KEYS`."""
    return pd.DataFrame(planned_cells(study), columns=list(KEYS))


def _read_keyed(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """The records in ``path`` (their key columns read as text); no rows, only
    ``columns``, when the file is not there."""
    if not path.is_file():
        return pd.DataFrame({column: pd.Series(dtype=object) for column in columns})
    return pd.read_csv(path, dtype={"variant": str, "setup": str, "method": str})


def _recorded_keys(records: pd.DataFrame) -> set[tuple[str, str, str, int]]:
    """The (variant, setup, method, seed) of every row of ``records``."""
    return set(records[list(KEYS)].itertuples(index=False, name=None))


def read_records(params: Params) -> pd.DataFrame:
    """The recorded runs (no rows, only :data:`KEYS`, before the first)."""
    return _read_keyed(report_dir(params) / RECORDS, KEYS)


def _row(run: StudyRun, metrics: dict[str, object]) -> dict[str, object]:
    """The record of a finished run: its keys, then every scalar of its metrics."""
    scalars = {
        key: value
        for key, value in metrics.items()
        if isinstance(value, str | int | float | bool) or value is None
    }
    return {**dict(zip(KEYS, run.key, strict=True)), **scalars}


def read_round_records(folder: Path) -> pd.DataFrame:
    """The per-round records in ``folder`` (:data:`ROUNDS`); no rows, only the columns, for
    a study that keeps none (one recorded before they existed, whose run folders are gone)."""
    return _read_keyed(folder / ROUNDS, (*KEYS, *ROUND_COLUMNS))


def record_finished(params: Params, runs: list[StudyRun]) -> int:
    """Add every finished run of ``runs`` (its ``metrics.json`` written) that the records
    lack, and its per-round scores (:func:`record_rounds`); write both back atomically.
    Returns how many runs were added."""
    records = read_records(params)
    known = _recorded_keys(records)
    fresh = [
        _row(run, json.loads((run.out / "metrics.json").read_text()))
        for run in runs
        if run.key not in known and (run.out / "metrics.json").is_file()
    ]
    if fresh:
        merged = pd.concat([records, pd.DataFrame(fresh)], ignore_index=True)
        merged = merged.sort_values(list(KEYS), kind="stable")
        write_text(report_dir(params) / RECORDS, merged.to_csv(index=False))
    record_rounds(params, runs)
    return len(fresh)


def record_rounds(params: Params, runs: list[StudyRun]) -> int:
    """Add to the per-round records (:data:`ROUNDS`) the rounds of every finished run of
    ``runs`` whose run folder holds its ``rounds.csv`` and which they lack, also a run
    recorded before (its folder still on this machine); a run without that file (a
    reference row, or one recorded on another machine) is left out. Returns how many
    runs were added."""
    folder = report_dir(params)
    kept = read_round_records(folder)
    known = _recorded_keys(kept)
    fresh = [
        pd.read_csv(run.out / ROUNDS)[list(ROUND_COLUMNS)].assign(
            **dict(zip(KEYS, run.key, strict=True))
        )
        for run in runs
        if run.key not in known
        and (run.out / "metrics.json").is_file()
        and (run.out / ROUNDS).is_file()
    ]
    if fresh:
        merged = pd.concat([kept, *fresh] if len(kept) else fresh, ignore_index=True)
        merged = merged[[*KEYS, *ROUND_COLUMNS]].sort_values([*KEYS, "round"], kind="stable")
        write_text(folder / ROUNDS, merged.to_csv(index=False))
    return len(fresh)


def pending(params: Params) -> list[StudyRun]:
    """The runs the records lack, in study order (seed-major, :func:`study_runs`)."""
    records = read_records(params)
    known = _recorded_keys(records)
    return [run for run in study_runs(params) if run.key not in known]


def run_study(
    params: Params, trainer: Trainer | None, report: Callable[[Params, pd.DataFrame], Path]
) -> dict[str, object]:
    """Record what earlier runs left, train the missing runs (recording each as it
    finishes), then write the study's report from the records.

    Args:
        params: the params with ``study:`` set.
        trainer: trains runs; None: report over what is recorded only.
        report: the study's report, from the params and the records; returns its folder.

    Returns:
        ``{"recorded": runs recorded, "pending": runs still missing, "report": folder}``.
    """
    runs = study_runs(params)
    record_finished(params, runs)
    todo = pending(params)
    if trainer is not None and todo:
        jobs = [trainer.job(run.out, list(run.overrides)) for run in todo]
        recording = dataclasses.replace(
            trainer, done=lambda metrics: (trainer.done(metrics), record_finished(params, todo))
        )
        recording.train(jobs, sorted({run.setup for run in todo}), report_dir(params))
        todo = pending(params)
    records = read_records(params)
    folder = report(params, records)
    return {"recorded": len(records), "pending": len(todo), "report": str(folder)}
