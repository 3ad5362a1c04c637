"""The report: tables, figures and an index of both, from the comparison's results.

Writes ``<out>/tables/{main,aggregation,significance,communication,clusters,classes}.{md,
tex,csv}`` (and ``heterogeneity`` where a dataset has several setups), ``<out>/figures/
*.png`` and ``<out>/README.md``. Whatever is missing (runs, the significance table, a
partition summary, the qualitative grid's inputs) is named in the README and returned;
everything that exists is still rendered.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fussbench.atomic import write_text
from fussbench.errors import FussbenchError
from fussbench.reporting import heterogeneity, tables
from fussbench.reporting.class_table import class_table
from fussbench.reporting.qualitative import QualitativeLoader
from fussbench.reporting.report_figures import save_figure, write_figures
from fussbench.reporting.report_index import TABLE_TITLES, readme, what_was_run
from fussbench.reporting.results import budget_line
from fussbench.reporting.runs import read_communication


def write_report(
    results_csv: Path,
    runs_dir: Path,
    partitions_dir: Path,
    out_dir: Path,
    methods: Sequence[str],
    setups: Sequence[str],
    seeds: Sequence[int],
    params_hash: str,
    significance_csv: Path | None = None,
    qualitative: QualitativeLoader | None = None,
) -> list[str]:
    """Write the report into ``out_dir``; return what is missing, one phrase each (runs as
    ``setup/method/seed<k>``).

    Args:
        results_csv: ``results.csv`` of ``fussbench collect``.
        runs_dir: the comparison's runs, ``<setup>/<method>/seed<k>/``.
        partitions_dir: ``<setup>/summary.csv`` and ``partition.json`` per setup.
        methods, setups, seeds: the comparison grid the report expects.
        params_hash: identifies the params the runs were made with (shown in the index).
        significance_csv: ``significance.csv`` of ``fussbench stats``; its table is skipped
            when the file is absent.
        qualitative: loads a setup's qualitative grid
            (:func:`~fussbench.reporting.qualitative.qualitative_loader`); None skips those
            figures.
    """
    if not results_csv.is_file():
        raise FussbenchError(f"{results_csv}: no results table; run `fussbench collect` first")
    results = pd.read_csv(results_csv)
    missing = missing_runs(results, setups, methods, seeds)
    communication = read_communication(runs_dir, setups, methods, seeds)
    written = _write_tables(
        out_dir, results, communication, methods, setups, seeds, significance_csv, missing
    )
    classes = class_table(results, runs_dir, methods, setups, seeds)
    if classes is not None:
        written.append(_write_table(out_dir, "classes", classes))
    written += write_figures(
        out_dir, runs_dir, partitions_dir, methods, setups, seeds, qualitative, missing
    )
    written += _write_heterogeneity(out_dir, results, setups, seeds, significance_csv)
    summary = what_was_run(results, communication, setups, seeds, params_hash)
    write_text(out_dir / "README.md", readme(out_dir, summary, written, missing))
    return missing


def missing_runs(
    results: pd.DataFrame, setups: Sequence[str], methods: Sequence[str], seeds: Sequence[int]
) -> list[str]:
    """``setup/method/seed<k>`` of every expected run without a finished row in ``results``."""
    done = results[results["status"] == "ok"]
    finished = set(zip(done["setup"], done["method"], done["seed"].astype(int), strict=True))
    return [
        f"{setup}/{method}/seed{seed}"
        for setup in setups
        for method in methods
        for seed in seeds
        if (setup, method, seed) not in finished
    ]


def _write_table(out_dir: Path, name: str, table: tables.Table) -> Path:
    """Write ``tables/<name>.{md,tex,csv}``; return the Markdown file's path."""
    folder = out_dir / "tables"
    write_text(folder / f"{name}.md", f"# {TABLE_TITLES[name]}\n\n{table.markdown}")
    write_text(folder / f"{name}.tex", table.latex)
    write_text(folder / f"{name}.csv", table.csv)
    return folder / f"{name}.md"


def _write_tables(
    out_dir: Path,
    results: pd.DataFrame,
    communication: pd.DataFrame,
    methods: Sequence[str],
    setups: Sequence[str],
    seeds: Sequence[int],
    significance_csv: Path | None,
    missing: list[str],
) -> list[Path]:
    """Every table that has inputs, each starting with the budget and seeds; a missing
    significance file is added to ``missing``."""
    budget = budget_line(results, setups, seeds, tables.reference_methods())
    traffic = tables.communication_table(communication, methods, setups, budget)
    written = [
        _write_table(out_dir, "main", tables.main_table(results, methods, setups, seeds)),
        _write_table(out_dir, "aggregation", tables.aggregation_table(results, setups, seeds)),
        _write_table(out_dir, "communication", traffic),
        _write_table(
            out_dir, "clusters", tables.cluster_count_table(results, methods, setups, budget)
        ),
    ]
    if significance_csv is not None and significance_csv.is_file():
        significance = pd.read_csv(significance_csv)
        shown = significance["setup"].isin(list(setups)) | significance["setup"].isna()
        significance = significance[shown]  # no setup: a primary hypothesis not run
        table = tables.significance_table(significance, budget)
        written.insert(2, _write_table(out_dir, "significance", table))
    else:
        missing.append(
            f"significance table: {significance_csv or 'significance.csv'} not found "
            "(run `fussbench stats`)"
        )
    return written


def _write_heterogeneity(
    out_dir: Path,
    results: pd.DataFrame,
    setups: Sequence[str],
    seeds: Sequence[int],
    significance_csv: Path | None,
) -> list[Path]:
    """The gain-against-skew table and one figure per dataset, when some dataset has two or
    more setups with FedCC and FedAvg in the significance table (the Dirichlet sweep)."""
    if significance_csv is None or not significance_csv.is_file():
        return []
    significance = pd.read_csv(significance_csv)
    shown = results[results["setup"].isin(list(setups))]
    gains = heterogeneity.plottable(heterogeneity.skew_gains(shown, significance))
    if gains.empty:
        return []
    budget = budget_line(results, setups, seeds, tables.reference_methods())
    written = [
        _write_table(out_dir, "heterogeneity", heterogeneity.heterogeneity_table(gains, budget))
    ]
    for dataset, rows in gains.groupby("dataset", sort=True):
        title = f"{dataset}: FedCC's gain over FedAvg against heterogeneity"
        figure = heterogeneity.heterogeneity_figure(rows, title)
        written.append(save_figure(figure, out_dir / "figures", "heterogeneity", str(dataset)))
    return written
