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


def _curves(params: Params) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-round mIoU of every finished trained run (columns ``CURVE_COLUMNS``) and the
    mean kmeans mIoU of each setup."""
    frames, references = [], {}
    for setup, method, seed, steps in jobs(params):
        folder = run_dir(params, setup, method, seed, steps)
        if steps is None:
            metrics = folder / "metrics.json"
            if metrics.is_file():
                references.setdefault(setup, []).append(json.loads(metrics.read_text())["miou"])
            continue
        rounds = folder / "rounds.csv"
        if not rounds.is_file():
            continue
        frame = pd.read_csv(rounds)[["round", "miou"]]
        frames.append(frame.assign(setup=setup, method=method, local_steps=steps, seed=seed))
    if not frames:
        raise FussbenchError(
            f"no finished run under {params.convergence.out}: run `fussbench convergence` first"
        )
    curves = pd.concat(frames, ignore_index=True)[list(CURVE_COLUMNS)]
    means = {setup: float(pd.Series(values).mean()) for setup, values in references.items()}
    return curves, means


def report(params: Params) -> dict[str, dict[str, str | None]]:
    """Write the convergence report; return the chosen budgets per setup."""
    study = params.convergence
    curves, references = _curves(params)
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
    unfinished = [job for job in expected if not (run_dir(params, *job) / "metrics.json").is_file()]
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
