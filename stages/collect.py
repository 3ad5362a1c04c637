"""Stage ``collect``: every comparison run's final numbers in ``<reports_dir>/results.csv``."""

from __future__ import annotations

from pathlib import Path

from fussbench.atomic import write_text
from fussbench.methods import names
from fussbench.params import Params
from fussbench.paths import RUNS
from fussbench.reporting.results import budget_line, collect_runs, markdown_table, seed_summary


def run(params: Params) -> list[str]:
    """Write ``results.csv`` and ``results_summary.md`` into ``params.reports_dir``; return
    the missing runs."""
    reports = Path(params.reports_dir)
    results = collect_runs(RUNS, params.runs_on, params.compare, params.seeds)
    write_text(reports / "results.csv", results.to_csv(index=False))
    summary = seed_summary(results, params.runs_on, params.compare, params.seeds)
    finished = summary[summary["n_seeds"] > 0].rename(columns={"n_seeds": "seeds"})
    columns = ["setup", "method", "miou_mean", "miou_std", "accuracy_mean", "accuracy_std"]
    table = markdown_table(finished[[*columns, "seeds"]])
    budget = budget_line(results, params.runs_on, params.seeds, names("reference"))
    write_text(
        reports / "results_summary.md",
        f"# Results: mean and std over seeds\n\n{budget}\n\n" + table,
    )
    missing = results[results["status"] == "missing"]
    return [f"{row.setup}/{row.method}/seed{row.seed}" for row in missing.itertuples()]
