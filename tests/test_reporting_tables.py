"""The report's tables: numbers recomputed from a synthetic results table, bold, gaps, LaTeX."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest

from fussbench.reporting.results import budget_line, seeds_phrase
from fussbench.reporting.tables import (
    MISSING,
    aggregation_table,
    communication_table,
    latex_escape,
    main_table,
    reference_methods,
    significance_table,
)

SETUPS = ["s1", "s2"]
SEEDS = [0, 1, 2, 3]
METHODS = [
    "local",
    "fedavg",
    "fedavg.uniform",
    "fedcc_kmeans",
    "fedcc_kmeans.faithful",
    "kmeans",
    "majority",
]
OFFSET = {
    "local": 10.0,
    "fedavg": 12.0,
    "fedavg.uniform": 11.0,
    "fedcc_kmeans": 15.0,
    "fedcc_kmeans.faithful": 14.0,
    "kmeans": 40.0,  # the best of all, but a reference row: never bold
    "majority": 2.0,
}


@pytest.fixture
def results() -> pd.DataFrame:
    """Every (setup, method, seed) of the grid, except: fedcc_kmeans.faithful on s1 has no
    run at all, fedavg on s2 lacks seed 3 (marked missing), and s2's fedcc_kmeans seed 1 is
    missing from the file."""
    rng = np.random.default_rng(0)
    rows = []
    for setup in SETUPS:
        for method in METHODS:
            for seed in SEEDS:
                if (setup, method) == ("s1", "fedcc_kmeans.faithful"):
                    continue
                if (setup, method, seed) == ("s2", "fedcc_kmeans", 1):
                    continue
                status = "missing" if (setup, method, seed) == ("s2", "fedavg", 3) else "ok"
                rows.append(
                    {
                        "setup": setup,
                        "method": method,
                        "seed": seed,
                        "miou": OFFSET[method] + rng.normal(0, 1),
                        "accuracy": 50 + OFFSET[method] + rng.normal(0, 2),
                        "rounds": 3,
                        "local_steps": 50,
                        "status": status,
                    }
                )
    frame = pd.DataFrame(rows)
    frame.loc[frame["status"] == "missing", ["miou", "accuracy"]] = np.nan
    return frame


def markdown_rows(markdown: str) -> tuple[list[str], dict[str, list[str]]]:
    """Header cells and {row label: cells} of the first Markdown table in ``markdown``."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    header, body = split[0], split[2:]
    return header, {row[0]: row[1:] for row in body}


def unbold(cell: str) -> str:
    return cell.removeprefix("**").removesuffix("**")


def latex_well_formed(latex: str) -> None:
    """Balanced braces (escaped ones aside), one tabular, every body row as wide as the
    column spec."""
    bare = latex.replace(r"\{", "").replace(r"\}", "")
    depth = 0
    for character in bare:
        depth += {"{": 1, "}": -1}.get(character, 0)
        assert depth >= 0
    assert depth == 0
    assert latex.count(r"\begin{tabular}") == latex.count(r"\end{tabular}") == 1
    assert latex.index(r"\toprule") < latex.index(r"\midrule") < latex.index(r"\bottomrule")
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", latex).group(1)
    body = latex[latex.index(r"\midrule") : latex.index(r"\bottomrule")]
    for line in body.splitlines():
        if line.endswith(r"\\") and not line.startswith(r"\multicolumn"):
            assert line.replace(r"\&", "").count("&") == len(spec) - 1, line


def test_main_table_numbers_are_the_means_over_seeds(results: pd.DataFrame) -> None:
    table = main_table(results, METHODS, SETUPS, SEEDS)
    header, rows = markdown_rows(table.markdown)
    done = results[results["status"] == "ok"]
    for metric, offset in (("miou", 0), ("accuracy", len(SETUPS))):
        for column, setup in enumerate(SETUPS):
            assert setup in header[1 + offset + column]
            for method in METHODS:
                values = done[(done.setup == setup) & (done.method == method)][metric]
                cell = unbold(rows[method][offset + column])
                if len(values):
                    assert cell.startswith(f"{values.mean():.1f} ± {values.std():.1f}")
    numbers = pd.read_csv(io.StringIO(table.csv))
    expected = done.groupby(["setup", "method"])["miou"].mean()
    for row in numbers.dropna(subset=["miou_mean"]).itertuples():
        assert row.miou_mean == pytest.approx(expected[(row.setup, row.method)])


def test_bold_goes_to_the_best_trained_method_never_a_reference(results: pd.DataFrame) -> None:
    table = main_table(results, METHODS, SETUPS, SEEDS)
    header, rows = markdown_rows(table.markdown)
    done = results[(results["status"] == "ok") & ~results["method"].isin(["kmeans", "majority"])]
    for column, setup in enumerate(SETUPS):
        bold = [m for m, cells in rows.items() if cells[column].startswith("**")]
        means = done[done.setup == setup].groupby("method")["miou"].mean()
        assert bold == [means.idxmax()]
    assert all("**" not in cell for cell in rows["kmeans"] + rows["majority"])
    # reference rows come last, below a caption row
    labels = list(rows)
    assert labels.index("*reference (no training)*") == labels.index("kmeans") - 1
    assert labels[-2:] == ["kmeans", "majority"]
    assert r"\textbf" in table.latex
    assert "kmeans" not in [
        line.split(" & ")[0] for line in table.latex.splitlines() if "textbf" in line
    ]


def test_missing_and_partial_cells_are_marked_and_listed(results: pd.DataFrame) -> None:
    table = main_table(results, METHODS, SETUPS, SEEDS)
    _, rows = markdown_rows(table.markdown)
    assert rows["fedcc_kmeans.faithful"][0] == MISSING  # s1: no run at all
    assert unbold(rows["fedavg"][1]).endswith("(3/4)")  # s2: seed 3 marked missing
    assert unbold(rows["fedcc_kmeans"][1]).endswith("(3/4)")  # s2: seed 1 not in the file
    assert "(" not in rows["fedavg"][0]
    assert "s1, all 4 seeds: fedcc_kmeans.faithful" in table.markdown
    assert "s2, seed 3: fedavg" in table.markdown
    assert "s2, seed 1: fedcc_kmeans" in table.markdown
    numbers = pd.read_csv(io.StringIO(table.csv))
    fedavg_s2 = numbers[(numbers.setup == "s2") & (numbers.method == "fedavg")].iloc[0]
    assert (fedavg_s2.n_seeds, fedavg_s2.expected_seeds, str(fedavg_s2.missing_seeds)) == (
        3,
        4,
        "3",
    )


def test_main_table_latex_is_well_formed(results: pd.DataFrame) -> None:
    latex = main_table(results, METHODS, SETUPS, SEEDS).latex
    latex_well_formed(latex)
    assert r"\cmidrule(lr){2-3}" in latex and r"$\pm$" in latex and "fedcc\\_kmeans" in latex


def test_aggregation_table_by_mode_and_weighting(results: pd.DataFrame) -> None:
    table = aggregation_table(results, SETUPS, SEEDS)
    header, rows = markdown_rows(table.markdown)
    assert header[1:] == ["s1 samples", "s1 uniform", "s2 samples", "s2 uniform"]
    assert list(rows) == ["FedAvg", "FedCC-kMeans (cosine)", "FedCC-kMeans (faithful)"]
    done = results[results["status"] == "ok"]
    uniform = done[(done.setup == "s1") & (done.method == "fedavg.uniform")]["miou"]
    assert rows["FedAvg"][1] == f"{uniform.mean():.1f} ± {uniform.std():.1f}"
    assert rows["FedCC-kMeans (cosine)"][1] == MISSING  # fedcc_kmeans.uniform never run
    assert rows["FedCC-kMeans (faithful)"][0] == MISSING  # no s1 run
    assert rows["FedCC-kMeans (faithful)"][2].startswith(
        f"{done[(done.setup == 's2') & (done.method == 'fedcc_kmeans.faithful')].miou.mean():.1f}"
    )
    latex_well_formed(table.latex)


SIGNIFICANCE_COLUMNS = ["family", "hypothesis", "setup", "pairing", "method_a", "method_b",
                        "n_pairs", "mean_diff", "ci_low", "ci_high", "test", "p_value", "p_holm",
                        "verdict", "note"]  # fmt: skip


def test_significance_table_blocks_and_p_values() -> None:
    significance = pd.DataFrame(
        [
            ["s1", "seeds", "cc", "avg", 6, 2.5, 1.0, 4.0, "wilcoxon", 0.03125, 0.0625, ""],
            ["s1", "images", "cc", "avg", 233, 1.2, 0.8, 1.6, "ttest", 1e-6, 2e-6, ""],
            ["s2", "seeds", "cc", "avg", 1, -0.5, None, None, None, None, None, "too few pairs"],
        ],
        columns=["setup", "pairing", "method_a", "method_b", "n_pairs", "mean_diff",
                 "ci_low", "ci_high", "test", "p_value", "p_holm", "note"],
    )  # fmt: skip
    table = significance_table(significance)  # a file from before primary hypotheses
    assert "*s1, paired over seeds, exploratory (two-sided)*" in table.markdown
    assert "*s1, paired over evaluation images, exploratory (two-sided)*" in table.markdown
    row = "| cc vs avg | 6 | +2.50 [+1.00, +4.00] | wilcoxon | 0.0312 | 0.0625 |  |  |"
    assert row in table.markdown
    assert "| 233 | +1.20 [+0.80, +1.60] | ttest | < 0.001 | < 0.001 |" in table.markdown
    assert f"| 1 | -0.50 | {MISSING} | {MISSING} | {MISSING} |  | too few pairs |" in table.markdown
    assert "primary" not in table.markdown.lower()
    assert "Exploratory: two-sided" in table.markdown
    assert r"$<$ 0.001" in table.latex
    latex_well_formed(table.latex)
    assert len(pd.read_csv(io.StringIO(table.csv))) == 3


def test_significance_table_starts_with_the_primary_family() -> None:
    significance = pd.DataFrame(
        [
            ["exploratory", "", "s1", "seeds", "cc", "avg", 6, 2.5, 1.0, 4.0, "wilcoxon",
             0.03125, 0.0625, "", ""],
            ["primary", "H1", "s1", "seeds", "cc", "avg", 10, 2.0, 1.5, 2.5, "wilcoxon",
             0.001, 0.003, "supported", ""],
            ["primary", "H1", "s1", "seeds", "cc", "avg", 10, 2.0, 1.5, 2.5, "t-test",
             0.0002, 0.0006, "", ""],
            ["primary", "H4", None, "seeds", "mx", "prox", 0, None, None, None, "wilcoxon",
             None, None, "not run", "no tile setup in the results"],
        ],
        columns=SIGNIFICANCE_COLUMNS,
    )  # fmt: skip
    budget = "Budget: 3 rounds × 50 local steps per client; 10 seeds (0-9)."
    table = significance_table(significance, budget)
    assert table.markdown.splitlines()[0] == budget
    header, _ = markdown_rows(table.markdown)
    assert header == [
        "comparison", "n pairs", "mean diff [95% CI]", "test", "p", "Holm p", "verdict", "note"
    ]  # fmt: skip
    body = [line for line in table.markdown.splitlines() if line.startswith("|")][2:]
    assert body[0].startswith("| *primary hypotheses: a > b, one-sided")
    assert body[1] == (
        "| H1: cc > avg, s1 | 10 | +2.00 [+1.50, +2.50] | wilcoxon | 0.001 | 0.003 | supported |  |"
    )
    assert body[2].endswith("| t-test | < 0.001 | < 0.001 |  |  |")  # no verdict: secondary
    assert body[3] == (
        f"| H4: mx > prox | 0 | {MISSING} | wilcoxon | {MISSING} | {MISSING} | not run | "
        "no tile setup in the results |"
    )
    assert body[4].startswith("| *s1, paired over seeds, exploratory (two-sided)*")
    assert "Primary: pre-registered" in table.markdown and "Exploratory:" in table.markdown
    numbers = pd.read_csv(io.StringIO(table.csv))
    assert list(numbers["family"]) == ["primary"] * 3 + ["exploratory"]
    assert table.latex.splitlines()[0].startswith(r"{\small Budget: 3 rounds $\times$ 50")
    latex_well_formed(table.latex)


def test_budget_line_from_the_trained_runs(results: pd.DataFrame) -> None:
    reference = results["method"] == "kmeans"
    results.loc[reference, "rounds"] = 99  # reference rows train nothing: not the budget
    assert budget_line(results, SETUPS, SEEDS, reference_methods()) == (
        "Budget: 3 rounds × 50 local steps per client; 4 seeds (0-3)."
    )
    results.loc[results["setup"] == "s2", "local_steps"] = 200
    assert budget_line(results, SETUPS, [0, 2], reference_methods()) == (
        "Budget: s1: 3 rounds × 50 local steps per client; s2: 3 rounds × 200 local steps per "
        "client; 2 seeds (0, 2)."
    )
    assert budget_line(results, ["s1"], SEEDS, reference_methods()).startswith(
        "Budget: 3 rounds × 50 local"
    )
    assert budget_line(results, ["nowhere"], [0], reference_methods()) == (
        "Budget: unknown (no finished training run); 1 seed (0)."
    )
    assert budget_line(
        results.drop(columns="rounds"), SETUPS, SEEDS, reference_methods()
    ).startswith("Budget: not recorded")


def test_budget_line_says_what_centralized_trains_when_runs_report_it(
    results: pd.DataFrame,
) -> None:
    results["steps_per_round"] = np.nan
    extra = results[results["method"] == "local"].assign(method="centralized", steps_per_round=150)
    both = pd.concat([results, extra], ignore_index=True)
    assert budget_line(both, SETUPS, SEEDS, reference_methods()) == (
        "Budget: 3 rounds × 50 local steps per client (centralized: 150 steps per round on the "
        "pooled data); 4 seeds (0-3)."
    )
    not_reported = budget_line(results, SETUPS, SEEDS, reference_methods())
    assert "centralized" not in not_reported  # a centralized budget not reported is not said


def test_seeds_phrase() -> None:
    assert seeds_phrase(range(6)) == "6 seeds (0-5)"
    assert seeds_phrase([3, 1, 2]) == "3 seeds (1-3)"
    assert seeds_phrase([0, 1]) == "2 seeds (0, 1)"
    assert seeds_phrase([7]) == "1 seed (7)"
    assert seeds_phrase([0, 2, 7]) == "3 seeds (0, 2, 7)"


def test_every_table_starts_with_the_budget(results: pd.DataFrame) -> None:
    budget = budget_line(results, SETUPS, SEEDS, reference_methods())
    communication = pd.DataFrame(
        [["s1", "fedavg", 0, 1.0, 3.0, 40, "net"]],
        columns=["setup", "method", "seed", "bytes_up", "bytes_down", "backbone_bytes", "backbone"],
    )
    for table in (
        main_table(results, METHODS, SETUPS, SEEDS),
        aggregation_table(results, SETUPS, SEEDS),
        communication_table(communication, METHODS, SETUPS, budget),
    ):
        assert table.markdown.splitlines()[0] == budget
        assert table.markdown.splitlines()[2].startswith("| ")
        assert table.latex.splitlines()[0] == rf"{{\small {latex_escape(budget)}\par}}"
        latex_well_formed(table.latex)


def test_communication_table_ratio() -> None:
    communication = pd.DataFrame(
        [
            ["s1", "fedavg", 0, 1000.0, 3000.0, 40000, "net"],
            ["s1", "fedavg", 1, 1000.0, 3000.0, 40000, "net"],
            ["s1", "local", 0, 0.0, 0.0, 40000, "net"],
        ],
        columns=["setup", "method", "seed", "bytes_up", "bytes_down", "backbone_bytes", "backbone"],
    )
    table = communication_table(communication, ["local", "fedavg", "kmeans"], ["s1", "s2"])
    _, rows = markdown_rows(table.markdown)
    assert rows["fedavg"] == ["1,000", "3,000", "40,000", "10.00"]
    assert rows["local"][-1] == MISSING
    assert "kmeans" not in rows and "*s2*" not in rows
    latex_well_formed(table.latex)


def test_latex_escape() -> None:
    assert latex_escape("a_b & 50% ± 1 — <") == r"a\_b \& 50\% $\pm$ 1 --- $<$"
