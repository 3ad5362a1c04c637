"""The report's tables, as pure functions of DataFrames, each rendered as Markdown, LaTeX
(booktabs) and CSV.

A table is first laid out as a :class:`Grid` of text cells (a caption line, row blocks,
optional spanning column groups, footnotes); :func:`render_markdown` and
:func:`render_latex` draw the same grid, and the CSV holds the unformatted numbers behind
it. The caption, the first line of every table, states the training budget and the seeds
(:func:`fussbench.reporting.results.budget_line`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fussbench.methods import WEIGHTINGS, names, parse_method, specs
from fussbench.reporting.flags import (
    COLLAPSED_MARK,
    collapsed_runs,
    flag_notes,
    unlabelled_setups,
)
from fussbench.reporting.results import budget_line, seed_summary
from fussbench.stats.formatting import MISSING, format_difference, format_p


def reference_methods() -> list[str]:
    """Rows shown below the trained methods and never set in bold (the registry's
    references)."""
    return names("reference")


def aggregation_rows() -> list[tuple[str, str | None, str]]:
    """(aggregator, mode, label) of the aggregation-type table's rows, in registry order:
    one row per mode of every aggregator declared with ``aggregation_table``."""
    return [
        (spec.name, mode, spec.table_label(mode))
        for spec in specs("aggregator")
        if spec.aggregation_table
        for mode in (spec.modes or (None,))
    ]


PAIRINGS = {"seeds": "paired over seeds", "images": "paired over evaluation images"}
"""Caption of each pairing of ``significance.csv``."""

METRICS = {"miou": "mIoU (%)", "accuracy": "Pixel accuracy (%)"}
"""Columns of ``results.csv`` in the main table, with their header."""

NUMBER_COLUMNS = [
    "miou_mean",
    "miou_std",
    "accuracy_mean",
    "accuracy_std",
    "n_seeds",
    "expected_seeds",
]
"""The numbers of a :func:`seed_summary` row that the CSV renderings keep."""


@dataclass(frozen=True)
class Cell:
    """One table cell: plain text (``±``, ``—`` and ``<`` are translated for LaTeX)."""

    text: str
    bold: bool = False


@dataclass(frozen=True)
class Block:
    """Consecutive rows, each a list of cells (the first is the row label); a titled block
    starts with a caption row."""

    rows: list[list[Cell]]
    title: str | None = None


@dataclass(frozen=True)
class Grid:
    """A table before rendering.

    Attributes:
        columns: header of every column, the row-label column first.
        blocks: row blocks, separated by a rule.
        groups: (label, span) headers spanning the columns after the first, in order;
            empty for a one-line header.
        notes: footnotes, one line each.
        caption: the line above the table (the budget and seeds); empty for none.
    """

    columns: list[str]
    blocks: list[Block]
    groups: list[tuple[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    caption: str = ""


@dataclass(frozen=True)
class Table:
    """One table in its three renderings."""

    markdown: str
    latex: str
    csv: str


def _table(grid: Grid, numbers: pd.DataFrame) -> Table:
    return Table(render_markdown(grid), render_latex(grid), numbers.to_csv(index=False))


# --- rendering ------------------------------------------------------------------------------


def _column_labels(grid: Grid) -> list[str]:
    """Markdown has one header line: a group's label prefixes each of its columns."""
    labels = [grid.columns[0]]
    position = 1
    for label, span in grid.groups:
        labels += [f"{label} {column}" for column in grid.columns[position : position + span]]
        position += span
    return labels + grid.columns[position:]


def render_markdown(grid: Grid) -> str:
    """A GitHub-flavoured Markdown table of ``grid``, its caption above, its notes below."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    width = len(grid.columns)
    caption = [grid.caption, ""] if grid.caption else []
    lines = [*caption, line(_column_labels(grid)), line(["---"] * width)]
    for block in grid.blocks:
        if block.title is not None:
            lines.append(line([f"*{block.title}*", *[""] * (width - 1)]))
        for row in block.rows:
            lines.append(line([f"**{c.text}**" if c.bold else c.text for c in row]))
    notes = [f"\n{note}" for note in grid.notes]
    return "\n".join(lines) + "\n" + "".join(f"{note}\n" for note in notes)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "—": "---",
    "<": r"$<$",
    "×": r"$\times$",
}


def latex_escape(text: str) -> str:
    """``text`` safe inside a LaTeX tabular cell."""
    return "".join(_LATEX_SPECIAL.get(character, character) for character in text)


def _latex_cell(cell: Cell) -> str:
    text = latex_escape(cell.text)
    return rf"\textbf{{{text}}}" if cell.bold else text


def render_latex(grid: Grid) -> str:
    """A booktabs ``tabular`` of ``grid``, its caption as a line of small type above it;
    its notes follow in small type."""
    width = len(grid.columns)
    caption = []
    if grid.caption:
        caption = [rf"{{\small {latex_escape(grid.caption)}\par}}", r"\smallskip"]
    lines = [*caption, rf"\begin{{tabular}}{{l{'r' * (width - 1)}}}", r"\toprule"]
    if grid.groups:
        spans, rules, start = [""], [], 2
        for label, span in grid.groups:
            spans.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(label)}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + span - 1}}}")
            start += span
        spans += [""] * (width - start + 1)
        lines += [" & ".join(spans) + r" \\", " ".join(rules)]
    lines.append(" & ".join(latex_escape(column) for column in grid.columns) + r" \\")
    lines.append(r"\midrule")
    for index, block in enumerate(grid.blocks):
        if index:
            lines.append(r"\midrule")
        if block.title is not None:
            lines.append(
                rf"\multicolumn{{{width}}}{{l}}{{\emph{{{latex_escape(block.title)}}}}} \\"
            )
        lines += [" & ".join(_latex_cell(cell) for cell in row) + r" \\" for row in block.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if grid.notes:
        notes = r"\par ".join(latex_escape(note) for note in grid.notes)
        lines += [r"\par\smallskip", rf"{{\footnotesize {notes}\par}}"]
    return "\n".join(lines) + "\n"


# --- numbers --------------------------------------------------------------------------------


def format_cell(mean: float, std: float, n: int, expected: int, digits: int = 1) -> str:
    """``"17.4 ± 1.0"``; ``"17.4 ± 1.0 (4/6)"`` with fewer seeds than expected; the std is
    left out for one seed; :data:`MISSING` without any."""
    if n == 0 or math.isnan(mean):  # NaN: runs without labels to score with
        return MISSING
    text = f"{mean:.{digits}f}" if n == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"
    return text if n >= expected else f"{text} ({n}/{expected})"


def _which_seeds(missing: list[int], n_seeds: int, expected: int) -> str:
    """``"all 6 seeds"``, ``"seed 4"`` or ``"seeds 4, 5"``."""
    if n_seeds == 0:
        return f"all {expected} seeds"
    return ("seeds " if len(missing) > 1 else "seed ") + ", ".join(map(str, missing))


def missing_note(summary: pd.DataFrame) -> list[str]:
    """The footnote naming the runs a :func:`seed_summary` lacks, grouped by setup and
    seeds (``"camvid_domain, seed 5: fedavg, fedprox"``); no note when nothing is missing."""
    groups: dict[tuple[str, str], list[str]] = {}
    for row in summary.itertuples():
        if row.missing_seeds:
            which = _which_seeds(row.missing_seeds, row.n_seeds, row.expected_seeds)
            groups.setdefault((row.setup, which), []).append(row.method)
    parts = [
        f"{setup}, {which}: {', '.join(methods)}" for (setup, which), methods in groups.items()
    ]
    return [f"{MISSING} / (n/N): runs missing: " + "; ".join(parts) + "."] if parts else []


# --- main table -----------------------------------------------------------------------------


def _best(
    summary: pd.DataFrame,
    metric: str,
    trained: Sequence[str],
    collapsed: Collection[tuple[str, str]] = (),
) -> set[tuple[str, str]]:
    """(setup, method) pairs holding the highest mean of ``metric`` among ``trained``; a
    pair in ``collapsed`` (a collapsed run among its seeds) is never the best."""
    best = set()
    keys = pd.Series(list(zip(summary["setup"], summary["method"], strict=True)), summary.index)
    eligible = summary[summary["method"].isin(list(trained)) & ~keys.isin(list(collapsed))]
    for setup, group in eligible.groupby("setup", sort=False):
        means = group[f"{metric}_mean"]
        if means.notna().any():
            top = means.max()
            best |= {(setup, m) for m in group.loc[np.isclose(means, top), "method"]}
    return best


def main_table(
    results: pd.DataFrame,
    methods: Sequence[str],
    setups: Sequence[str],
    seeds: Sequence[int],
) -> Table:
    """Methods × setups, mIoU then pixel accuracy as ``mean ± std`` over seeds.

    Trained methods keep the order of ``methods``; the references among them follow in a
    block of their own. The best trained method of each column is bold. Cells with fewer
    finished seeds than ``seeds`` show ``(n/N)``, empty cells :data:`MISSING`, and a note
    lists what is missing. The caption gives the budget and seeds.
    """
    references = reference_methods()
    trained = [method for method in methods if method not in references]
    shown_references = [method for method in methods if method in references]
    summary = seed_summary(results, setups, [*trained, *shown_references], seeds)
    collapsed = collapsed_runs(results, setups, seeds)
    best = {metric: _best(summary, metric, trained, collapsed) for metric in METRICS}
    indexed = summary.set_index(["setup", "method"])

    def row(method: str) -> list[Cell]:
        cells = [Cell(method)]
        for metric in METRICS:
            for setup in setups:
                item = indexed.loc[(setup, method)]
                text = format_cell(
                    item[f"{metric}_mean"], item[f"{metric}_std"], item["n_seeds"], len(seeds)
                )
                text += f" {COLLAPSED_MARK}" if (setup, method) in collapsed else ""
                cells.append(Cell(text, (setup, method) in best[metric]))
        return cells

    blocks = [Block([row(method) for method in trained])]
    if shown_references:
        blocks.append(Block([row(m) for m in shown_references], "reference (no training)"))
    notes = [
        f"Mean ± std over {len(seeds)} seeds; bold: best trained method per column "
        "(reference rows excluded).",
        *missing_note(summary),
        *flag_notes(collapsed, unlabelled_setups(results, setups)),
        *final_prediction_notes(results),
    ]
    grid = Grid(
        ["method", *setups, *setups],
        blocks,
        groups=[(METRICS[metric], len(setups)) for metric in METRICS],
        notes=notes,
        caption=budget_line(results, setups, seeds, references),
    )
    keys = list(zip(summary["setup"], summary["method"], strict=True))
    numbers = summary.assign(
        reference=summary["method"].isin(references),
        best_miou=[key in best["miou"] for key in keys],
        best_accuracy=[key in best["accuracy"] for key in keys],
        missing_seeds=[" ".join(map(str, absent)) for absent in summary["missing_seeds"]],
    )
    return _table(grid, numbers)


# --- aggregation-type table -----------------------------------------------------------------


def method_kind(method: str) -> tuple[str, str | None, str]:
    """(aggregator, mode with its default filled in, weighting) of a method name."""
    parsed = parse_method(method)
    return parsed.aggregator, parsed.resolved_mode, parsed.weighting


def aggregation_table(results: pd.DataFrame, setups: Sequence[str], seeds: Sequence[int]) -> Table:
    """mIoU of each aggregator and mode (rows) by setup and weighting (columns): samples-
    weighted vs unweighted (uniform) aggregation. Only rows and weightings that occur in
    ``results`` are shown; a combination never run or without finished seeds is
    :data:`MISSING`. The caption gives the budget and seeds."""
    table_rows = aggregation_rows()
    by_kind = {
        method_kind(method): method
        for method in results["method"].unique()
        if method_kind(method)[0] in {aggregator for aggregator, _, _ in table_rows}
    }
    rows = [item for item in table_rows if any(k[:2] == item[:2] for k in by_kind)]
    weightings = [w for w in WEIGHTINGS if any(k[2] == w for k in by_kind)]
    summary = seed_summary(results, setups, list(by_kind.values()), seeds)
    indexed = summary.set_index(["setup", "method"])
    body, numbers = [], []
    for aggregator, mode, label in rows:
        cells = [Cell(label)]
        for setup in setups:
            for weighting in weightings:
                method = by_kind.get((aggregator, mode, weighting))
                if method is None:
                    cells.append(Cell(MISSING))
                    continue
                item = indexed.loc[(setup, method)]
                cells.append(
                    Cell(format_cell(item.miou_mean, item.miou_std, item.n_seeds, len(seeds)))
                )
                numbers.append(
                    {
                        "setup": setup,
                        "aggregator": aggregator,
                        "mode": mode,
                        "weighting": weighting,
                        "method": method,
                        **item[NUMBER_COLUMNS].to_dict(),
                    }
                )
        body.append(cells)
    notes = [
        f"mIoU (%), mean ± std over {len(seeds)} seeds. samples: clients weighted by image "
        f"count; uniform: unweighted. {MISSING}: not run.",
        *missing_note(summary),
    ]
    grid = Grid(
        ["aggregator (mode)", *[w for _ in setups for w in weightings]],
        [Block(body)],
        groups=[(setup, len(weightings)) for setup in setups],
        notes=notes,
        caption=budget_line(results, setups, seeds, reference_methods()),
    )
    return _table(grid, pd.DataFrame(numbers))


# --- significance table ---------------------------------------------------------------------


PRIMARY_TITLE = "primary hypotheses: a > b, one-sided, paired over seeds, one Holm family"
"""Caption of the block of pre-registered hypotheses."""


def _text(row: pd.Series, column: str) -> str:
    """A text column of ``significance.csv``, "" where empty or absent (older files)."""
    value = row.get(column)
    return "" if value is None or pd.isna(value) else str(value)


def _significance_row(row: pd.Series, label: str) -> list[Cell]:
    return [
        Cell(label),
        Cell(MISSING if pd.isna(row["n_pairs"]) else str(int(row["n_pairs"]))),
        Cell(format_difference(row["mean_diff"], row["ci_low"], row["ci_high"])),
        Cell(_text(row, "test") or MISSING),
        Cell(format_p(row["p_value"])),
        Cell(format_p(row["p_holm"])),
        Cell(_text(row, "verdict")),
        Cell(_text(row, "note")),
    ]


def _primary_label(row: pd.Series) -> str:
    """``"H1: fedcc_kmeans > fedavg, camvid_domain"`` (the dataset without a setup)."""
    where = _text(row, "setup") or _text(row, "dataset")
    claim = f"{_text(row, 'hypothesis')}: {row['method_a']} > {row['method_b']}"
    return f"{claim}, {where}" if where else claim


SIGNIFICANCE_NOTES = {
    "primary": "Primary: pre-registered in stats.primary before any result; Holm over every "
    "primary row of the same test, across setups. The verdict sits on the row of the "
    "pre-registered test: supported when its Holm p is below stats.alpha, not supported "
    "when the opposite one-sided claim (b > a) has a Holm p below it, inconclusive "
    "otherwise, not run when a setup or method is missing. better_fedcc (the FedCC variant "
    "with the higher mean mIoU) is chosen on the same results it is tested on.",
    "exploratory": "Exploratory: two-sided; Holm p adjusts within each block.",
}
"""The footnote of each family present in the table."""


def significance_table(significance: pd.DataFrame, budget: str = "") -> Table:
    """Paired comparisons from ``significance.csv``, the primary family first.

    The first block holds the pre-registered primary hypotheses (``family`` primary), one
    row per hypothesis, setup and test, with the verdict; then one block per (setup,
    pairing) of exploratory comparisons. Every row has the mean difference (a − b, mIoU
    points) and its 95% CI, the test, its p-value and Holm-adjusted p-value, the number of
    pairs and any note. A file without a ``family`` column (written before primary
    hypotheses existed) is all exploratory. ``budget`` is the caption line.
    """
    family = significance.get("family", pd.Series("exploratory", index=significance.index))
    primary = significance[family == "primary"]
    exploratory = significance[family != "primary"]
    blocks = []
    if len(primary):
        rows = [_significance_row(row, _primary_label(row)) for _, row in primary.iterrows()]
        blocks.append(Block(rows, PRIMARY_TITLE))
    for (setup, pairing), group in exploratory.groupby(["setup", "pairing"], sort=False):
        rows = [
            _significance_row(row, f"{row['method_a']} vs {row['method_b']}")
            for _, row in group.iterrows()
        ]
        title = f"{setup}, {PAIRINGS.get(pairing, pairing)}, exploratory (two-sided)"
        blocks.append(Block(rows, title))
    notes = ["Mean difference a − b in mIoU points."]
    notes += [text for name, text in SIGNIFICANCE_NOTES.items() if (family == name).any()]
    grid = Grid(
        ["comparison", "n pairs", "mean diff [95% CI]", "test", "p", "Holm p", "verdict", "note"],
        blocks,
        notes=notes,
        caption=budget,
    )
    primary_first = np.argsort((family != "primary").to_numpy(), kind="stable")
    return _table(grid, significance.iloc[primary_first])


# --- communication table --------------------------------------------------------------------


def communication_table(
    communication: pd.DataFrame, methods: Sequence[str], setups: Sequence[str], budget: str = ""
) -> Table:
    """Bytes per client per round (up, down), the backbone's size, and how many rounds of
    traffic shipping the backbone once would cost: backbone / (up + down).

    Args:
        communication: one row per run, columns setup, method, seed, bytes_up, bytes_down,
            backbone_bytes (from each run's ``metrics.json``); means are taken over seeds.
        budget: the caption line (:func:`fussbench.reporting.results.budget_line`).
    """
    means = communication.groupby(["setup", "method"], sort=False)[
        ["bytes_up", "bytes_down", "backbone_bytes"]
    ].mean()
    blocks, numbers = [], []
    for setup in setups:
        rows = []
        for method in methods:
            if (setup, method) not in means.index:
                continue
            up, down, backbone = means.loc[(setup, method)]
            ratio = backbone / (up + down) if up + down > 0 else math.nan
            rows.append(
                [
                    Cell(method),
                    Cell(f"{up:,.0f}"),
                    Cell(f"{down:,.0f}"),
                    Cell(f"{backbone:,.0f}"),
                    Cell(MISSING if math.isnan(ratio) else f"{ratio:.2f}"),
                ]
            )
            numbers.append(
                {
                    "setup": setup,
                    "method": method,
                    "bytes_up": up,
                    "bytes_down": down,
                    "backbone_bytes": backbone,
                    "backbone_to_round_ratio": ratio,
                }
            )
        if rows:
            blocks.append(Block(rows, setup))
    grid = Grid(
        ["method", "bytes up", "bytes down", "backbone bytes", "backbone / (up + down)"],
        blocks,
        notes=[
            f"Per client per round, mean over seeds; {MISSING}: no client-server traffic "
            "(local, centralized)."
        ],
        caption=budget,
    )
    return _table(grid, pd.DataFrame(numbers))


FINAL_PREDICTION_OPTIONS = {
    "crf": "Dense CRF on the final predictions (evaluation.crf)",
    "flip": "Flip averaging of the final predictions (evaluation.flip)",
}
"""Columns of ``results.csv`` that flag a change to the final predictions, and their note."""


def final_prediction_notes(results: pd.DataFrame) -> list[str]:
    """One note per change to the final predictions (:data:`FINAL_PREDICTION_OPTIONS`)
    naming the methods whose runs used it; none for a change no run used."""
    notes = []
    for column, note in FINAL_PREDICTION_OPTIONS.items():
        if column not in results.columns:
            continue
        used = results[results[column].fillna(False).astype(bool)]
        if not used.empty:
            notes.append(f"{note}: {', '.join(dict.fromkeys(used['method']))}.")
    return notes


# --- number of clusters ---------------------------------------------------------------------

CLUSTER_COLUMNS = ("n_clusters_final", "miou_hungarian", "miou_majority")
"""Columns of ``results.csv`` the cluster-count table summarises over seeds."""


def cluster_count_table(
    results: pd.DataFrame, methods: Sequence[str], setups: Sequence[str], budget: str = ""
) -> Table:
    """Per setup and method: the ``model.n_clusters`` param, the number of clusters of the
    evaluated model (mean ± std over seeds; estimated under ``auto``), and mIoU under
    Hungarian matching (clusters left unmatched count as errors) and majority matching.

    Args:
        results: rows of ``results.csv`` (:data:`~fussbench.reporting.results.
            RESULT_COLUMNS`); runs without the cluster columns are left out.
        budget: the caption line (:func:`fussbench.reporting.results.budget_line`).
    """
    if "n_clusters_final" not in results.columns:  # a results.csv that predates them
        results = results.assign(**{column: np.nan for column in CLUSTER_COLUMNS})
    present = results.dropna(subset=["n_clusters_final"])
    grouped = present.groupby(["setup", "method"], sort=False)
    blocks, numbers = [], []
    for setup in setups:
        rows = []
        for method in methods:
            if (setup, method) not in grouped.groups:
                continue
            runs = grouped.get_group((setup, method))
            summary = {"setup": setup, "method": method, "n_clusters": runs["n_clusters"].iloc[0]}
            cells = [Cell(method), Cell(str(summary["n_clusters"]))]
            for column in CLUSTER_COLUMNS:
                values = pd.to_numeric(runs[column], errors="coerce").dropna()
                mean, std = float(values.mean()), float(values.std(ddof=1))
                summary |= {f"{column}_mean": mean, f"{column}_std": std, "n_seeds": len(runs)}
                cells.append(Cell(format_cell(mean, std, len(values), len(runs))))
            rows.append(cells)
            numbers.append(summary)
        if rows:
            blocks.append(Block(rows, setup))
    grid = Grid(
        ["method", "n_clusters", "K evaluated", "mIoU Hungarian", "mIoU majority"],
        blocks,
        notes=[
            "K evaluated: clusters of the evaluated model (auto: chosen by the federation; "
            "local: mean over clients), mean ± std over seeds. Hungarian: one cluster per "
            "class, clusters left unmatched count as errors; majority: each cluster takes its "
            "most frequent class."
        ],
        caption=budget,
    )
    return _table(grid, pd.DataFrame(numbers))
