"""The convergence study (``fussbench convergence``): train its pending runs, then build
its report, the curves of global mIoU against local steps and the budgets they choose
(:mod:`fussbench.reporting.convergence`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

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
from fussbench.studies.convergence_runs import (
    REFERENCE,
    collect_records,
    pending,
    record_keys,
    records_path,
    run_dir,
    run_key,
    study_runs,
)
from fussbench.studies.overrides import method_overrides
from fussbench.studies.trainer import Trainer


def train(params: Params, trainer: Trainer) -> None:
    """Run every run of the study that ``<reports_dir>/convergence_runs.csv`` and the run
    folders do not hold finished, preparing the setups they need first."""
    study = params.convergence
    todo = pending(params, collect_records(params))
    jobs = []
    for setup, method, seed, steps in todo:
        extra = [f"setup={setup}", f"seed={seed}", *method_overrides(method)]
        extra.append(f"federation.rounds={study.rounds}")
        if steps is not None:
            extra.append(f"train.local_steps={steps}")
        jobs.append(trainer.job(run_dir(params, setup, method, seed, steps), extra))
    trainer.train(jobs, sorted({run[0] for run in todo}), study.out)


@dataclass(frozen=True)
class ConvergenceReport:
    """The study's report.

    Attributes:
        markdown: ``convergence.md``: the rules, the budget table and the chosen budgets.
        table: ``convergence.csv``: mean, std and seeds of every (setup, method, budget)
            (:func:`~fussbench.reporting.convergence.budget_table`).
        figure: ``convergence.png``: the curves, the chosen budgets marked.
        budgets: per setup, the paper and default budgets (``"3 rounds × 50 steps"``), None
            where no budget meets the rule or the study has not reached its longest budget.
    """

    markdown: str
    table: pd.DataFrame
    figure: Figure
    budgets: dict[str, dict[str, str | None]]


def _curves(params: Params, records: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-round mIoU of the study's trained runs in ``records`` (columns
    ``CURVE_COLUMNS``) and the mean kmeans mIoU of each setup."""
    records = records[record_keys(records).isin({run_key(run) for run in study_runs(params)})]
    trained = records[records["method"] != REFERENCE]
    if trained.empty:
        raise FussbenchError(
            f"no run of the study recorded in {records_path(params)} or under "
            f"{params.convergence.out}: run `fussbench convergence` first"
        )
    reference = records[records["method"] == REFERENCE]
    means = reference.groupby("setup")["miou"].mean()
    return trained[list(CURVE_COLUMNS)], {setup: float(m) for setup, m in means.items()}


def _chosen(
    params: Params, table: pd.DataFrame, setups: list[str], references: dict[str, float]
) -> dict[str, dict[str, Budget | None]]:
    """The paper and default budgets of each of ``setups`` (:data:`None`: not chosen)."""
    study = params.convergence
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
    return chosen


def _header(params: Params, records: pd.DataFrame) -> list[str]:
    """The Markdown lines above the budget table: whether every run finished, the study's
    settings and the rules of both budgets."""
    study = params.convergence
    expected = [run for run in study_runs(params) if run[3] is not None]
    unfinished = [run for run in pending(params, records) if run[3] is not None]
    status = (
        f"**Incomplete: {len(unfinished)} of {len(expected)} runs have not finished** (their "
        "finished rounds are shown); the budgets below are provisional until they do."
        if unfinished
        else f"All {len(expected)} runs finished."
    )
    return [
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


def convergence_report(params: Params) -> ConvergenceReport:
    """The report of every run recorded so far (the records are updated from the run
    folders first, :func:`~fussbench.studies.convergence_runs.collect_records`).

    Raises:
        FussbenchError: when no trained run of the study is recorded.
    """
    records = collect_records(params)
    curves, references = _curves(params, records)
    table = budget_table(curves)
    setups = [setup for setup in params.convergence.setups if setup in set(curves["setup"])]
    chosen = _chosen(params, table, setups, references)
    header = _header(params, records)
    return ConvergenceReport(
        convergence_markdown(table, setups, references, chosen, header),
        table,
        convergence_figure(curves, setups, params.convergence.methods, references, chosen),
        {
            setup: {label: str(budget) if budget else None for label, budget in budgets.items()}
            for setup, budgets in chosen.items()
        },
    )
