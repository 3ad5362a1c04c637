"""The report of a plain comparison study (``fussbench study``; the presets baselines and
paper_converged): each setup's methods with mean ± std mIoU over seeds, each method's
paired difference from ``study.reference`` with its bootstrap 95% CI and an exploratory
two-sided Wilcoxon p, the setup's label and feature skew, and the pre-registered
hypotheses' verdicts (:mod:`fussbench.reporting.study_hypotheses`).

Reads only the study's records (``runs.csv`` and, where kept, the per-round ``rounds.csv``,
:mod:`fussbench.studies.study`), from which it adds each method's mIoU after every round.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fussbench.atomic import write_text
from fussbench.params import Params, StatsParams
from fussbench.reporting.figures import rounds_figure, save_png
from fussbench.reporting.results import markdown_table, seeds_phrase
from fussbench.reporting.study_hypotheses import (
    hypotheses_section,
    hypothesis_rows,
    mean_ci,
    miou_by_seed,
    parse_hypotheses,
    write_hypotheses,
)
from fussbench.stats.formatting import MISSING, format_difference, format_p
from fussbench.stats.tests import TWO_SIDED, paired_tests
from fussbench.studies.study import planned_keys, read_round_records


def _versus(rows: pd.DataFrame, method: str, reference: str | None, stats: StatsParams) -> dict:
    """``method`` minus ``reference`` by seed within one setup's rows: the formatted mean
    with its CI and the two-sided Wilcoxon p (dashes without a reference or pairs)."""
    if reference is None or method == reference:
        return {"difference": MISSING, "p": MISSING}
    mine, theirs = miou_by_seed(rows, method), miou_by_seed(rows, reference)
    seeds = mine.index.intersection(theirs.index)
    if not len(seeds):
        return {"difference": MISSING, "p": MISSING}
    x, y = mine[seeds].to_numpy(), theirs[seeds].to_numpy()
    low, high = mean_ci(x - y, stats)
    p = paired_tests(x, y, TWO_SIDED)[0].p_value if len(seeds) > 1 else None
    return {"difference": format_difference(float(np.mean(x - y)), low, high), "p": format_p(p)}


def method_table(
    records: pd.DataFrame, methods: list[str], reference: str | None, stats: StatsParams
) -> pd.DataFrame:
    """One row per (setup, method) in the records, methods in ``methods`` order: seeds,
    mean ± std mIoU and the paired difference from ``reference``."""
    rows = []
    for setup in pd.unique(records["setup"]):
        chosen = records[records["setup"] == setup]
        for method in [name for name in methods if name in set(chosen["method"])]:
            miou = chosen.loc[chosen["method"] == method, "miou"].astype(float)
            spread = f" ± {miou.std(ddof=1):.2f}" if len(miou) > 1 else ""
            rows.append(
                {
                    "setup": setup,
                    "method": method,
                    "seeds": len(miou),
                    "miou": f"{miou.mean():.2f}{spread}",
                    **_versus(chosen, method, reference, stats),
                }
            )
    return pd.DataFrame(rows)


def _skew(rows: pd.DataFrame) -> str:
    """A setup's label and feature skew as its records carry them (label skew: — without
    labels)."""
    first = rows.iloc[0]
    label = first.get("label_skew_js")
    label_text = f"{float(label):.3f}" if label is not None and pd.notna(label) else MISSING
    return f"label skew (JS) {label_text}, feature skew {float(first['feature_skew_cosine']):.3f}"


def by_round_table(rounds: pd.DataFrame, methods: list[str], stats: StatsParams) -> pd.DataFrame:
    """One row per method of one setup's per-round records, in ``methods`` order: runs,
    the mean mIoU after each round r (columns ``round r``; — where its runs have fewer
    rounds) and the last round's gain, mean over runs of miou_R - miou_(R-1) with its
    bootstrap CI (R: the method's last round; — for a run of one round)."""
    last = int(rounds["round"].max())
    present = set(rounds["method"])
    rows = []
    for method in [name for name in methods if name in present]:
        mine = rounds[rounds["method"] == method]
        by_seed = mine.pivot_table(index="seed", columns="round", values="miou")
        means = by_seed.mean()
        gain = MISSING
        if by_seed.shape[1] > 1:
            steps = (by_seed.iloc[:, -1] - by_seed.iloc[:, -2]).to_numpy()
            gain = format_difference(float(steps.mean()), *mean_ci(steps, stats))
        rows.append(
            {
                "method": method,
                "runs": len(by_seed),
                **{
                    f"round {r}": f"{means[r]:.2f}" if r in means.index else MISSING
                    for r in range(1, last + 1)
                },
                "last round gain": gain,
            }
        )
    return pd.DataFrame(rows)


def by_round_setups(rounds: pd.DataFrame, params: Params) -> list[str]:
    """The study's setups with per-round records, in study order ([] without any)."""
    present = set(rounds["setup"])
    return [name for name in params.study.setups if name in present]


def by_round_section(rounds: pd.DataFrame, setups: list[str], params: Params) -> list[str]:
    """The report's lines on how each method's mIoU moved round by round, for each of
    ``setups`` (:func:`by_round_setups`) a table and its figure (:func:`by_round_figure`);
    [] without any."""
    if not setups:
        return []
    lines = [
        "## mIoU after each round",
        "",
        "Mean over the runs with per-round records; last round gain: the last round's mIoU "
        "minus the round before's, by run (mean, bootstrap 95% CI). A one-shot merge runs "
        "its whole budget as one round (in the tables, not in the figures).",
        "",
    ]
    for setup in setups:
        table = by_round_table(
            rounds[rounds["setup"] == setup], list(params.study.methods), params.stats
        )
        lines += [f"### {setup}", "", markdown_table(table)]
        lines += [f"![mIoU after each round on {setup}](rounds_{setup}.png)", ""]
    return lines


def by_round_figure(rounds: pd.DataFrame, setup: str, params: Params) -> Figure:
    """:func:`~fussbench.reporting.figures.rounds_figure` of ``setup``'s methods that ran
    more than one round."""
    mine = rounds[rounds["setup"] == setup]
    iterated = mine.groupby("method")["round"].transform("max") > 1
    budget = f"{params.train.local_steps} local steps a round"
    return rounds_figure(
        mine[iterated], list(params.study.methods), f"{setup}: mIoU after each round ({budget})"
    )


def comparison_report(params: Params, records: pd.DataFrame) -> Path:
    """Write ``<study.name>.md`` and ``.csv`` (the method table) and ``hypotheses.csv``
    into the study's folder (``reports_dir``); returns it. With no records: the header and
    the hypotheses, each "pending (0 of n planned pairs)"."""
    folder = Path(params.reports_dir)
    study = params.study
    hypotheses = parse_hypotheses(study.hypotheses)
    table = (
        method_table(records, list(study.methods), study.reference, params.stats)
        if len(records)
        else pd.DataFrame()
    )
    planned = planned_keys(params.study)
    tested = hypothesis_rows(hypotheses, records, params.stats, planned)
    total = len(planned)
    versus = f" − {study.reference}" if study.reference else ""
    lines = [
        f"# {study.name}: {', '.join(study.methods)}",
        "",
        f"Setups {', '.join(study.setups)}; {seeds_phrase(study.seeds)}; {len(records)} of "
        f"{total} runs recorded. difference: the method{versus} mIoU of the same seed (mean, "
        "bootstrap 95% CI); p: paired two-sided Wilcoxon, exploratory and unadjusted (only "
        "the pre-registered hypotheses below decide).",
        "",
    ]
    for setup in [name for name in study.setups if not table.empty and name in set(table["setup"])]:
        lines += [
            f"## {setup}: {_skew(records[records['setup'] == setup])}",
            "",
            markdown_table(table[table["setup"] == setup].drop(columns="setup")),
        ]
    rounds = read_round_records(folder)
    setups = by_round_setups(rounds, params)
    lines += by_round_section(rounds, setups, params)
    lines += hypotheses_section(tested)
    write_text(folder / f"{study.name}.md", "\n".join(lines))
    for setup in setups:
        save_png(by_round_figure(rounds, setup, params), folder / f"rounds_{setup}.png")
    if not table.empty:
        write_text(folder / f"{study.name}.csv", table.to_csv(index=False))
    write_hypotheses(folder, tested)
    return folder
