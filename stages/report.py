"""Stage ``report``: tables, figures and an index of both, from the comparison's results.

Writes ``<out>/tables/{main,aggregation,significance,communication,classes}.{md,tex,csv}``,
``<out>/figures/*.png`` and ``<out>/README.md``. Whatever is missing (runs, the
significance table, a partition summary, the qualitative grid's inputs) is named in the
README and returned; everything that exists is still rendered.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from fussbench.atomic import write_text
from fussbench.errors import FussbenchError
from fussbench.methods import parse_method
from fussbench.reporting import figures, heterogeneity, tables
from fussbench.reporting.class_table import class_table
from fussbench.reporting.palettes import palette
from fussbench.reporting.qualitative import QualitativeLoader
from fussbench.reporting.results import budget_line
from fussbench.reporting.runs import (
    read_centroid_distances,
    read_communication,
    read_curves,
    read_partition,
)

TABLE_TITLES = {
    "main": "Main results: mIoU and pixel accuracy per setup",
    "aggregation": "Aggregation type: mode and weighting",
    "significance": "Paired significance tests",
    "communication": "Communication per client and round",
    "clusters": "Number of clusters and mIoU under Hungarian and majority matching",
    "heterogeneity": "FedCC's gain over FedAvg against label and feature skew",
    "classes": "IoU per class (setups of at most 12 classes)",
}
"""Each table's file stem and its title in the index."""

FIGURE_TITLES = {
    "rounds": "Global mIoU vs round",
    "centroids": "Pairwise cosine distance of the final centroids",
    "partition": "Class distribution per client",
    "qualitative": "Qualitative predictions",
    "heterogeneity": "FedCC's gain over FedAvg against label and feature skew",
}
"""Each figure kind (the file name's first part) and its title in the index."""

ROUNDS_CAPTION = (
    "local: mean over the clients' own models; centralized: one model trained on the pooled data."
)
"""Caption of the rounds figure: what its two bounds plot."""


def run(
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
        qualitative: loads a setup's qualitative grid (:func:`qualitative_loader`); None
            skips those figures.
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
    written += _write_figures(
        out_dir, runs_dir, partitions_dir, methods, setups, seeds, qualitative, missing
    )
    written += _write_heterogeneity(out_dir, results, setups, seeds, significance_csv)
    summary = _what_was_run(results, communication, setups, seeds, params_hash)
    write_text(out_dir / "README.md", _readme(out_dir, summary, written, missing))
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


# --- tables ---------------------------------------------------------------------------------


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


# --- figures --------------------------------------------------------------------------------


def _write_figures(
    out_dir: Path,
    runs_dir: Path,
    partitions_dir: Path,
    methods: Sequence[str],
    setups: Sequence[str],
    seeds: Sequence[int],
    qualitative: QualitativeLoader | None,
    missing: list[str],
) -> list[Path]:
    """Every figure that has inputs, per setup; what cannot be drawn goes to ``missing``."""
    folder = out_dir / "figures"
    written = []
    heatmap_methods = [m for m in methods if parse_method(m).spec.centroid_heatmap]
    for setup in setups:
        curves = read_curves(runs_dir, setup, methods, seeds)
        if len(curves):
            title = f"{setup}: global mIoU after each round"
            figure = figures.rounds_figure(curves, methods, title, ROUNDS_CAPTION)
            written.append(_save(figure, folder, "rounds", setup))
        distances = read_centroid_distances(runs_dir, setup, heatmap_methods, seeds[0])
        if distances:
            title = f"{setup}: pairwise cosine distance of the final centroids (seed {seeds[0]})"
            figure = figures.centroid_heatmaps(distances, title)
            written.append(_save(figure, folder, "centroids", setup))
        written += _partition_figure(partitions_dir, setup, folder, missing)
        if qualitative is not None:
            written += _qualitative_figure(qualitative, setup, seeds[0], folder, missing)
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
        written.append(_save(figure, out_dir / "figures", "heterogeneity", str(dataset)))
    return written


def _save(figure: Figure, folder: Path, kind: str, setup: str) -> Path:
    """Write ``figures/<kind>_<setup>.png``; return its path."""
    path = folder / f"{kind}_{setup}.png"
    figures.save_png(figure, path)
    return path


def _partition_figure(
    partitions_dir: Path, setup: str, folder: Path, missing: list[str]
) -> list[Path]:
    partition = read_partition(partitions_dir, setup)
    if partition is None:
        missing.append(f"partition figure of {setup}: no summary in {partitions_dir / setup}")
        return []
    if partition.js_mean is None:
        missing.append(f"partition figure of {setup}: no labels (no masks), no class counts")
        return []
    colours = palette(partition.dataset, len(partition.class_names))
    title = f"{setup}: class distribution per client"
    figure = figures.partition_figure(
        partition.counts, partition.class_names, colours, partition.js_mean, title
    )
    return [_save(figure, folder, "partition", setup)]


def _qualitative_figure(
    loader: QualitativeLoader, setup: str, seed: int, folder: Path, missing: list[str]
) -> list[Path]:
    try:
        grid = loader(setup)
    except FussbenchError as error:
        missing.append(f"qualitative figure of {setup}: {error}")
        return []
    if not grid.rows or not grid.rows[0].predictions:
        missing.append(f"qualitative figure of {setup}: no trained model of seed {seed}")
        return []
    title = f"{setup}: predictions of seed {seed}, clusters matched to classes over the split"
    return [_save(figures.qualitative_figure(grid, title), folder, "qualitative", setup)]


# --- index ----------------------------------------------------------------------------------


def _values(frame: pd.DataFrame, column: str) -> str:
    """The distinct values of a column, ``"a / b"``."""
    return " / ".join(str(value) for value in pd.unique(frame[column].dropna()))


def _what_was_run(
    results: pd.DataFrame,
    communication: pd.DataFrame,
    setups: Sequence[str],
    seeds: Sequence[int],
    params_hash: str,
) -> str:
    """One paragraph: setups (dataset, partition, clients), backbone, seeds, rounds × local
    steps and the params hash, all read from the results."""
    done = results[(results["status"] == "ok") & results["setup"].isin(list(setups))]
    described = []
    for setup in setups:
        rows = done[done["setup"] == setup]
        if len(rows):
            clients = int(rows["n_clients"].max())  # centralized pools them into one
            described.append(
                f"`{setup}` ({_values(rows, 'dataset')}, {_values(rows, 'partition')} "
                f"partition, {clients} clients)"
            )
        else:
            described.append(f"`{setup}` (no finished run)")
    backbone = _values(communication, "backbone") or "unknown (no run reports it)"
    rounds = _values(done.assign(r=done["rounds"].astype("Int64")), "r")
    steps = _values(done.assign(s=done["local_steps"].astype("Int64")), "s")
    seed_list = ", ".join(str(seed) for seed in seeds)
    return (
        f"Setups {', '.join(described)}; backbone {backbone} (frozen); seeds {seed_list}; "
        f"{rounds} rounds × {steps} local steps per client; "
        f"{len(pd.unique(done['method']))} methods. Params hash `{params_hash}`."
    )


def _link(out_dir: Path, path: Path) -> str:
    return path.relative_to(out_dir).as_posix()


def _readme(out_dir: Path, summary: str, written: list[Path], missing: list[str]) -> str:
    """The index: what was run, a link per table (with its LaTeX and CSV) and figure, the
    other Markdown reports in ``out_dir``, and what is missing."""
    lines = ["# Report", "", summary, "", "## Tables", ""]
    for path in written:
        if path.suffix == ".md":
            base = _link(out_dir, path)[: -len(".md")]
            lines.append(
                f"- [{TABLE_TITLES[path.stem]}]({base}.md) ([LaTeX]({base}.tex), [CSV]({base}.csv))"
            )
    lines += ["", "## Figures", ""]
    for path in written:
        if path.suffix == ".png":
            kind, _, setup = path.stem.partition("_")
            lines.append(f"- [{FIGURE_TITLES[kind]}, {setup}]({_link(out_dir, path)})")
    others = sorted(p for p in out_dir.glob("*.md") if p.name != "README.md")
    if others:
        lines += ["", "## Other reports", ""]
        lines += [f"- [{p.stem}]({_link(out_dir, p)})" for p in others]
    if missing:
        lines += ["", "## Missing", "", "Rendered without:", ""]
        lines += [f"- {item}" for item in missing]
    return "\n".join(lines) + "\n"
