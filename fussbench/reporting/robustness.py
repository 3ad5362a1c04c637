"""The robustness study's report: every method under every fault scenario, its drop against
its own honest run of the same seed, whether the server's suspicion score named the bad
client, and the pre-registered hypotheses' verdicts.

Reads only the study's records (``runs.csv``, :mod:`fussbench.studies.study`), whose
variant ``honest`` is the honest federation every scenario is paired with.

Hypotheses (``study.hypotheses``, fixed in the preset before any run), one mapping each:
    - ``{id, claim: keeps_more, variant, a, b}``: under ``variant``, method ``a`` loses less
      of its honest mIoU than ``b``: with drop_m = honest_m - variant_m per seed, the paired
      one-sided Wilcoxon test of drop_b - drop_a > 0;
    - ``{id, claim: non_inferior, variant, a, b, margin}``: under ``variant``, ``a`` is not
      worse than ``b`` by ``margin`` mIoU or more: the paired one-sided Wilcoxon test of
      (a + margin) - b > 0.
Holm over the whole family; a claim is supported when its adjusted p is below
``stats.alpha``, not supported when the opposite claim's is, inconclusive otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fussbench.atomic import write_text
from fussbench.errors import FussbenchError
from fussbench.params import Params, StatsParams
from fussbench.stats.formatting import format_difference, format_p
from fussbench.stats.primary import holm_whole_family, verdict
from fussbench.stats.tests import GREATER, LESS, bootstrap_mean_ci, paired_tests

HONEST = "honest"
"""The variant every scenario is paired with."""

CLAIMS = ("keeps_more", "non_inferior")
"""Valid ``claim`` values of a robustness hypothesis."""


@dataclass(frozen=True)
class RobustnessHypothesis:
    """One pre-registered claim (see the module docstring)."""

    id: str
    claim: str
    variant: str
    a: str
    b: str
    margin: float = 0.0

    @classmethod
    def parse(cls, entry: Mapping[str, object]) -> RobustnessHypothesis:
        """From one mapping of ``study.hypotheses``.

        Raises:
            FussbenchError: a missing key, an unknown claim, or a margin on keeps_more.
        """
        missing = [key for key in ("id", "claim", "variant", "a", "b") if key not in entry]
        if missing:
            raise FussbenchError(f"study.hypotheses: {dict(entry)} lacks {', '.join(missing)}")
        if entry["claim"] not in CLAIMS:
            raise FussbenchError(
                f"study.hypotheses {entry['id']}: claim must be one of {', '.join(CLAIMS)}, "
                f"got {entry['claim']!r}"
            )
        margin = float(entry.get("margin", 0.0))  # type: ignore[arg-type]
        return cls(
            str(entry["id"]),
            str(entry["claim"]),
            str(entry["variant"]),
            str(entry["a"]),
            str(entry["b"]),
            margin,
        )

    def text(self) -> str:
        """The claim in words."""
        if self.claim == "keeps_more":
            return f"under {self.variant}, {self.a} loses less of its honest mIoU than {self.b}"
        return (
            f"under {self.variant}, {self.a} is within {self.margin:g} mIoU of {self.b} or better"
        )


def _ci(differences: np.ndarray, stats: StatsParams) -> tuple[float, float]:
    """The bootstrap 95% CI of the mean of (n,) ``differences`` (NaN for fewer than 2)."""
    if len(differences) < 2:
        return np.nan, np.nan
    return bootstrap_mean_ci(differences, stats.n_resamples, stats.seed)


def _by_seed(records: pd.DataFrame, variant: str, method: str) -> pd.Series:
    """mIoU by seed of one method under one variant."""
    rows = records[(records["variant"] == variant) & (records["method"] == method)]
    return rows.set_index("seed")["miou"].astype(float)


def _drops(records: pd.DataFrame, variant: str, method: str) -> pd.Series:
    """Honest minus ``variant`` mIoU by seed, over the seeds both have."""
    honest, faulty = _by_seed(records, HONEST, method), _by_seed(records, variant, method)
    seeds = honest.index.intersection(faulty.index)
    return honest[seeds] - faulty[seeds]


def _pair(hypothesis: RobustnessHypothesis, records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(x, y), shape (n,) each, over the seeds both have: the claim is x > y."""
    if hypothesis.claim == "keeps_more":
        first = _drops(records, hypothesis.variant, hypothesis.b)
        second = _drops(records, hypothesis.variant, hypothesis.a)
    else:
        first = _by_seed(records, hypothesis.variant, hypothesis.a) + hypothesis.margin
        second = _by_seed(records, hypothesis.variant, hypothesis.b)
    seeds = first.index.intersection(second.index)
    return first[seeds].to_numpy(), second[seeds].to_numpy()


def hypothesis_rows(
    hypotheses: Sequence[RobustnessHypothesis], records: pd.DataFrame, stats: StatsParams
) -> pd.DataFrame:
    """One row per hypothesis: id, claim, pairs, mean of x - y with its CI, raw and Holm p
    of the claim and of its opposite, and the verdict."""
    rows = []
    for hypothesis in hypotheses:
        x, y = _pair(hypothesis, records)
        claim = paired_tests(x, y, GREATER)[0].p_value if len(x) else None
        opposite = paired_tests(x, y, LESS)[0].p_value if len(x) else None
        low, high = _ci(x - y, stats)
        rows.append(
            {
                "id": hypothesis.id,
                "claim": hypothesis.text(),
                "pairs": len(x),
                "difference": float(np.mean(x - y)) if len(x) else np.nan,
                "ci_low": low,
                "ci_high": high,
                "p": claim,
                "p_opposite": opposite,
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["p_holm"] = holm_whole_family(list(table["p"]))
    table["p_holm_opposite"] = holm_whole_family(list(table["p_opposite"]))
    table["verdict"] = [
        verdict(p, q, stats.alpha)
        for p, q in zip(table["p_holm"], table["p_holm_opposite"], strict=True)
    ]
    return table


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
            drop = _drops(records, variant, method) if variant != HONEST else pd.Series([])
            low, high = _ci(drop.to_numpy(), stats)
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


def _markdown(frame: pd.DataFrame) -> str:
    """A pipe table of ``frame``."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(str(value) for value in row) + " |" for row in frame.to_numpy()]
    return "\n".join([header, rule, *body]) + "\n"


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
    hypotheses = [RobustnessHypothesis.parse(entry) for entry in params.study.hypotheses]
    table = scenario_table(records, variants, params.stats) if len(records) else pd.DataFrame()
    tested = hypothesis_rows(hypotheses, records, params.stats)
    scenarios = {
        variant: " ".join(overrides) or "every client honest"
        for variant, overrides in params.study.variants.items()
    }
    study = params.study
    cells = len(variants) * len(study.methods) - len(study.skip)
    total = cells * len(study.setups) * len(study.seeds)
    seeds = ", ".join(map(str, study.seeds))
    lines = [
        "# One bad client: " + "; ".join(f"{name} ({text})" for name, text in scenarios.items()),
        "",
        f"Setups {', '.join(study.setups)}; seeds {seeds}; {len(records)} of {total} runs "
        "recorded. Drop: honest minus scenario mIoU of the same method and seed (mean, "
        "bootstrap 95% CI); detected: runs in which the server's suspicion score ranked "
        "the bad client first.",
        "",
    ]
    if not table.empty:
        lines.append(_markdown(table))
    if not tested.empty:
        shown = tested.assign(
            difference=[
                format_difference(m, lo, hi)
                for m, lo, hi in zip(
                    tested["difference"], tested["ci_low"], tested["ci_high"], strict=True
                )
            ],
            p_holm=[format_p(p) for p in tested["p_holm"]],
        )[["id", "claim", "pairs", "difference", "p_holm", "verdict"]]
        lines += ["## Pre-registered hypotheses (Holm over the family)", "", _markdown(shown)]
    write_text(folder / "robustness.md", "\n".join(lines))
    if not table.empty:
        write_text(folder / "robustness.csv", table.to_csv(index=False))
    if not tested.empty:
        write_text(folder / "hypotheses.csv", tested.to_csv(index=False))
    return folder
