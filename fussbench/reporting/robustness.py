"""The robustness study's report: every method under every fault scenario, its drop against
its own honest run of the same seed, whether the server's suspicion score named the bad
client, and the pre-registered hypotheses' verdicts.

Reads only the study's records (``runs.csv``, :mod:`fussbench.studies.study`), whose
variant ``honest`` is the honest federation every scenario is paired with.

Hypotheses (``study.hypotheses``, fixed in the preset before any run): the claims of
:mod:`fussbench.reporting.study_hypotheses`, keeps_more measured against ``honest``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fussbench.atomic import write_text
from fussbench.errors import FussbenchError
from fussbench.params import Params, StatsParams
from fussbench.reporting.results import markdown_table
from fussbench.reporting.study_hypotheses import (
    drops,
    hypotheses_section,
    hypothesis_rows,
    mean_ci,
    parse_hypotheses,
    write_hypotheses,
)
from fussbench.stats.formatting import format_difference
from fussbench.studies.study import planned_keys

HONEST = "honest"
"""The variant every scenario is paired with."""


def _detected(rows: pd.DataFrame) -> str:
    """``"k / n"``: runs whose most suspect client is one of its bad clients."""
    if "suspect_client" not in rows or rows["fault_clients"].isna().all():
        return "—"
    hits = [
        int(suspect) in {int(float(client)) for client in str(bad).split()}
        for suspect, bad in zip(rows["suspect_client"], rows["fault_clients"], strict=True)
        if pd.notna(suspect)
    ]
    return f"{sum(hits)} / {len(hits)}" if hits else "—"


def scenario_table(
    records: pd.DataFrame, variants: Sequence[str], stats: StatsParams
) -> pd.DataFrame:
    """One row per (variant, method): mean ± std mIoU over seeds, the paired drop against
    the honest run with its bootstrap 95% CI, and the detection hits."""
    rows = []
    for variant in variants:
        for method in pd.unique(records.loc[records["variant"] == variant, "method"]):
            chosen = records[(records["variant"] == variant) & (records["method"] == method)]
            miou = chosen["miou"].astype(float)
            drop = drops(records, method, variant, HONEST) if variant != HONEST else pd.Series([])
            low, high = mean_ci(drop.to_numpy(), stats)
            rows.append(
                {
                    "scenario": variant,
                    "method": method,
                    "seeds": len(chosen),
                    "miou": f"{miou.mean():.2f} ± {miou.std(ddof=1):.2f}"
                    if len(miou) > 1
                    else f"{miou.mean():.2f}",
                    "drop": format_difference(float(drop.mean()) if len(drop) else None, low, high),
                    "detected": _detected(chosen) if variant != HONEST else "—",
                }
            )
    return pd.DataFrame(rows)


def robustness_report(params: Params, records: pd.DataFrame) -> Path:
    """Write ``robustness.md`` and ``robustness.csv`` (the scenario table) and
    ``hypotheses.csv`` into the study's folder; returns it.

    Raises:
        FussbenchError: the records lack the honest variant, or a hypothesis is malformed.
    """
    folder = Path(params.reports_dir)
    variants = list(params.study.variants)
    if HONEST not in variants:
        raise FussbenchError(
            f"study.variants must include '{HONEST}', the run every scenario is paired with"
        )
    hypotheses = parse_hypotheses(params.study.hypotheses)
    table = scenario_table(records, variants, params.stats) if len(records) else pd.DataFrame()
    planned = planned_keys(params.study)
    tested = hypothesis_rows(hypotheses, records, params.stats, planned, reference=HONEST)
    scenarios = {
        variant: " ".join(overrides) or "every client honest"
        for variant, overrides in params.study.variants.items()
    }
    study = params.study
    seeds = ", ".join(map(str, study.seeds))
    lines = [
        "# One bad client: " + "; ".join(f"{name} ({text})" for name, text in scenarios.items()),
        "",
        f"Setups {', '.join(study.setups)}; seeds {seeds}; {len(records)} of {len(planned)} runs "
        "recorded. Drop: honest minus scenario mIoU of the same method and seed (mean, "
        "bootstrap 95% CI); detected: runs in which the server's suspicion score ranked "
        "the bad client first.",
        "",
    ]
    if not table.empty:
        lines.append(markdown_table(table))
    lines += hypotheses_section(tested)
    write_text(folder / "robustness.md", "\n".join(lines))
    if not table.empty:
        write_text(folder / "robustness.csv", table.to_csv(index=False))
    write_hypotheses(folder, tested)
    return folder
