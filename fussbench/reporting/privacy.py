"""The report of the privacy-utility study (``fussbench study --preset privacy``): per
setup, each method's mIoU (mean ± std over seeds) at every privacy level (variant) it ran
under, with the mean ε it spent and its noise multiplier σ
(:mod:`fussbench.reporting.privacy_levels`); mIoU against ε as a figure; what the server
sees of each client; and the pre-registered hypotheses' verdicts
(:mod:`fussbench.reporting.study_hypotheses`).

Reads only the study's records (``runs.csv``, :mod:`fussbench.studies.study`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fussbench.atomic import write_text
from fussbench.methods import parse_method
from fussbench.methods.listing import server_sees_table
from fussbench.params import Params
from fussbench.reporting.figures import save_png
from fussbench.reporting.privacy_figure import privacy_figure
from fussbench.reporting.privacy_levels import levels_table, privacy_levels
from fussbench.reporting.results import markdown_table, seeds_phrase
from fussbench.reporting.study_hypotheses import (
    hypotheses_section,
    hypothesis_rows,
    parse_hypotheses,
    write_hypotheses,
)
from fussbench.studies.study import planned_keys


def privacy_report(params: Params, records: pd.DataFrame) -> Path:
    """Write ``privacy.md``, ``privacy.csv`` (:func:`privacy_levels`), ``privacy.png`` and
    ``hypotheses.csv`` into the study's folder (``reports_dir``); returns it. The figure
    and the CSVs are written only when there is something to put in them."""
    folder = Path(params.reports_dir)
    study = params.study
    variants = list(study.variants)
    levels = (
        privacy_levels(records, study.setups, study.methods, variants)
        if len(records)
        else pd.DataFrame()
    )
    hypotheses = parse_hypotheses(study.hypotheses)
    planned = planned_keys(params.study)
    tested = (
        hypothesis_rows(hypotheses, records, params.stats, planned)
        if len(records)
        else pd.DataFrame()
    )
    lines = [
        f"# {study.name}: mIoU against privacy, {', '.join(study.methods)}",
        "",
        f"Setups {', '.join(study.setups)}; {seeds_phrase(study.seeds)}; {len(records)} of "
        f"{len(planned)} runs recorded. Each cell: mIoU mean ± std over seeds (ε: "
        "the privacy spent over the run at the run's privacy.delta, mean over seeds; ∞: "
        "clipped and sampled without noise; σ: the noise multiplier). A method that releases "
        "nothing spends ε 0.",
        "",
    ]
    for setup in [
        name for name in study.setups if not levels.empty and name in set(levels["setup"])
    ]:
        lines += [f"## {setup}", "", markdown_table(levels_table(levels, setup, variants))]
    if not levels.empty:
        lines += ["![mIoU against ε spent](privacy.png)", ""]
    shown = {parse_method(method).aggregator for method in study.methods}
    lines += ["## What the server sees", "", server_sees_table(shown)]
    lines += hypotheses_section(tested)
    write_text(folder / "privacy.md", "\n".join(lines))
    if not levels.empty:
        write_text(folder / "privacy.csv", levels.to_csv(index=False))
        save_png(privacy_figure(levels, study.setups, study.methods), folder / "privacy.png")
    write_hypotheses(folder, tested)
    return folder
