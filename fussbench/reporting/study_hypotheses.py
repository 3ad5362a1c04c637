"""A study's pre-registered hypotheses (``study.hypotheses``) and their verdicts from the
study's records (``runs.csv``, :mod:`fussbench.studies.study`).

Every claim compares two methods paired by (setup, seed), from rows of one variant (and
one setup) when the hypothesis names them:
    - ``{id, claim: beats, a, b[, variant][, b_variant][, setup]}``: ``a`` has a higher
      mIoU than ``b``: the paired one-sided Wilcoxon test of a - b > 0;
    - ``{id, claim: non_inferior, a, b, margin[, variant][, b_variant][, setup]}``: ``a``
      is not worse than ``b`` by ``margin`` mIoU or more: the paired one-sided Wilcoxon
      test of (a + margin) - b > 0;
    - ``{id, claim: keeps_more, variant, a, b[, setup]}``: under ``variant``, ``a`` loses
      less of its mIoU in the study's reference variant (the honest federation) than ``b``:
      with drop_m = reference_m - variant_m per (setup, seed), the paired one-sided Wilcoxon
      test of drop_b - drop_a > 0.
``b_variant`` (beats and non_inferior, with ``variant``): ``b``'s rows come from that
variant instead, e.g. a private method against ``local``, which runs in its own variant.
``a`` or ``b`` (beats and non_inferior) may be a token of
:data:`fussbench.stats.primary.TOKENS`: ``better_fedcc`` is, per setup, whichever of its
methods has the higher mean mIoU over the seeds in the rows that side of the claim reads
(:func:`fussbench.stats.primary.resolve`, the rule of ``stats.primary``), chosen on the same
records the test runs on; the claim's text names the method it resolved to.
Holm over the whole family; a claim is supported when its adjusted p is below
``stats.alpha``, not supported when the opposite claim's is, inconclusive otherwise, not
run when it has no pairs (e.g. before any run is recorded).

The family is decided once, over the pairs the study plans: while any hypothesis has fewer
recorded pairs than its planned runs give it, every verdict reads ``pending (k of n planned
pairs)`` and no p-value is computed, since deciding as runs arrive is optional stopping.
The difference and its CI are shown meanwhile, as the method table shows them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fussbench.atomic import write_text
from fussbench.errors import FussbenchError
from fussbench.params import StatsParams, StudyParams
from fussbench.reporting.results import markdown_table
from fussbench.stats.formatting import format_difference, format_p
from fussbench.stats.primary import NOT_RUN, TOKENS, holm_whole_family, resolve, verdict
from fussbench.stats.tests import GREATER, LESS, bootstrap_mean_ci, paired_tests

CLAIMS = ("beats", "non_inferior", "keeps_more")
"""Valid ``claim`` values of a study hypothesis."""


@dataclass(frozen=True)
class Paired:
    """A hypothesis's paired values over the (setup, seed) pairs both sides have.

    Attributes:
        x, y: shape (n,) each; the claim is x > y.
        chosen_a, chosen_b: setup -> the method a token among ``a`` / ``b`` resolved to
            there; empty for a method name.
    """

    x: np.ndarray
    y: np.ndarray
    chosen_a: Mapping[str, str] = field(default_factory=dict)
    chosen_b: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyHypothesis:
    """One pre-registered claim (see the module docstring); ``variant`` and ``setup`` None:
    rows of every variant / setup; ``b_variant`` None: ``b``'s rows from ``variant``."""

    id: str
    claim: str
    a: str
    b: str
    variant: str | None = None
    setup: str | None = None
    margin: float = 0.0
    b_variant: str | None = None

    @classmethod
    def parse(cls, entry: Mapping[str, object]) -> StudyHypothesis:
        """From one mapping of ``study.hypotheses``.

        Raises:
            FussbenchError: a missing key, an unknown claim, keeps_more or b_variant without
                a variant, a margin on a claim other than non_inferior, or keeps_more with a
                b_variant or a token.
        """
        missing = [key for key in ("id", "claim", "a", "b") if key not in entry]
        needs_variant = entry.get("claim") == "keeps_more" or "b_variant" in entry
        if needs_variant and "variant" not in entry:
            missing.append("variant")
        if missing:
            raise FussbenchError(f"study.hypotheses: {dict(entry)} lacks {', '.join(missing)}")
        if entry["claim"] not in CLAIMS:
            raise FussbenchError(
                f"study.hypotheses {entry['id']}: claim must be one of {', '.join(CLAIMS)}, "
                f"got {entry['claim']!r}"
            )
        if "margin" in entry and entry["claim"] != "non_inferior":
            raise FussbenchError(
                f"study.hypotheses {entry['id']}: only a non_inferior claim takes a margin"
            )
        if "b_variant" in entry and entry["claim"] == "keeps_more":
            raise FussbenchError(
                f"study.hypotheses {entry['id']}: a keeps_more claim compares both methods' "
                "drops under one variant; drop b_variant"
            )
        tokens = [entry[key] for key in ("a", "b") if entry[key] in TOKENS]
        if tokens and entry["claim"] == "keeps_more":
            raise FussbenchError(
                f"study.hypotheses {entry['id']}: a keeps_more claim needs methods, not the "
                f"token {tokens[0]!r} (its choice could differ between the two variants)"
            )
        optional = {
            key: str(entry[key]) for key in ("variant", "setup", "b_variant") if key in entry
        }
        margin = float(entry.get("margin", 0.0))  # type: ignore[arg-type]
        names = (str(entry[key]) for key in ("id", "claim", "a", "b"))
        return cls(*names, margin=margin, **optional)

    def text(self, paired: Paired | None = None) -> str:
        """The claim in words, e.g. ``"under random_centroids, a loses less ..."``,
        ``"under eps8, a beats b (b under none)"`` or, with the ``paired`` values that
        resolved a token, ``"better_fedcc (fedcc_maximin) beats local"``."""
        chosen_a, chosen_b = (paired.chosen_a, paired.chosen_b) if paired else ({}, {})
        a, b = named(self.a, chosen_a), named(self.b, chosen_b)
        before = f"under {self.variant}, " if self.variant is not None else ""
        after = f" on {self.setup}" if self.setup is not None else ""
        b = f"{b} ({self.b} under {self.b_variant})" if self.b_variant else b
        if self.claim == "keeps_more":
            return f"{before}{a} loses less of its honest mIoU than {b}{after}"
        if self.claim == "non_inferior":
            return f"{before}{a} is within {self.margin:g} mIoU of {b} or better{after}"
        return f"{before}{a} beats {b}{after}"

    def pair(self, records: pd.DataFrame, reference: str | None) -> Paired:
        """The claim's paired values (x > y claimed), tokens resolved on the records.
        ``reference``: the variant keeps_more measures drops against."""
        if self.claim == "keeps_more":
            if reference is None:
                raise FussbenchError(
                    f"study.hypotheses {self.id}: keeps_more needs a reference variant "
                    "(the honest federation), which this study's report does not name"
                )
            first = drops(records, self.b, self.variant, reference, self.setup)
            second = drops(records, self.a, self.variant, reference, self.setup)
            chosen_a: dict[str, str] = {}
            chosen_b: dict[str, str] = {}
        else:
            first, chosen_a = resolved_by_seed(records, self.a, self.variant, self.setup)
            first = first + self.margin
            b_variant = self.b_variant if self.b_variant is not None else self.variant
            second, chosen_b = resolved_by_seed(records, self.b, b_variant, self.setup)
        keys = first.index.intersection(second.index)
        return Paired(first[keys].to_numpy(), second[keys].to_numpy(), chosen_a, chosen_b)


def named(name: str, chosen: Mapping[str, str]) -> str:
    """``name`` with the method(s) a token resolved to: ``"better_fedcc (fedcc_maximin)"``,
    or per setup where they differ; ``name`` alone without a choice."""
    methods = list(dict.fromkeys(chosen.values()))
    if len(methods) == 1:
        return f"{name} ({methods[0]})"
    if methods:
        return f"{name} ({', '.join(f'{m} on {s}' for s, m in chosen.items())})"
    return name


def resolved_by_seed(
    records: pd.DataFrame, name: str, variant: str | None = None, setup: str | None = None
) -> tuple[pd.Series, dict[str, str]]:
    """mIoU by (setup, seed) of the method ``name`` or, for a token of ``TOKENS``, per
    setup of the token's method with the highest mean mIoU over its seeds in these rows
    (:func:`fussbench.stats.primary.resolve`), with setup -> that method ({} for a method).
    Rows: those of ``variant`` and ``setup`` (None: every variant / setup)."""
    if name not in TOKENS:
        return miou_by_seed(records, name, variant, setup), {}
    candidates = {method: miou_by_seed(records, method, variant, setup) for method in TOKENS[name]}
    chosen: dict[str, str] = {}
    parts = []
    for where in pd.unique(records["setup"]):
        rows = {
            method: series[series.index.get_level_values("setup") == where]
            for method, series in candidates.items()
        }
        means = {method: float(row.mean()) for method, row in rows.items() if len(row)}
        best, _ = resolve(name, means)
        if best is not None:
            chosen[str(where)] = best
            parts.append(rows[best])
    return (pd.concat(parts) if parts else candidates[TOKENS[name][0]]), chosen


def miou_by_seed(
    records: pd.DataFrame, method: str, variant: str | None = None, setup: str | None = None
) -> pd.Series:
    """mIoU of ``method`` indexed by (setup, seed), from the rows of ``variant`` and of
    ``setup`` (None: every variant / setup); empty before any run is recorded."""
    if "miou" not in records:  # no run recorded: the records hold only their keys
        records = records.assign(miou=pd.Series(dtype=float))
    chosen = records["method"] == method
    if variant is not None:
        chosen &= records["variant"] == variant
    if setup is not None:
        chosen &= records["setup"] == setup
    return records[chosen].set_index(["setup", "seed"])["miou"].astype(float)


def drops(
    records: pd.DataFrame,
    method: str,
    variant: str | None,
    reference: str,
    setup: str | None = None,
) -> pd.Series:
    """``reference`` minus ``variant`` mIoU of ``method`` by (setup, seed), over the pairs
    both have."""
    honest = miou_by_seed(records, method, reference, setup)
    faulty = miou_by_seed(records, method, variant, setup)
    keys = honest.index.intersection(faulty.index)
    return honest[keys] - faulty[keys]


def parse_hypotheses(entries: Sequence[Mapping[str, object]]) -> list[StudyHypothesis]:
    """Every entry of ``study.hypotheses``, parsed (see :meth:`StudyHypothesis.parse`)."""
    return [StudyHypothesis.parse(entry) for entry in entries]


def check_hypotheses(study: StudyParams) -> list[StudyHypothesis]:
    """``study.hypotheses`` parsed and checked against the study before any run: each
    method among ``a`` / ``b`` is one of ``study.methods`` (a token: one of its methods
    is), each variant one of ``study.variants``, the setup one of ``study.setups``.

    Raises:
        FussbenchError: naming the hypothesis, the key, the value and the valid ones.
    """
    hypotheses = parse_hypotheses(study.hypotheses)
    for hypothesis in hypotheses:
        names = {
            "a": (hypothesis.a, set(TOKENS.get(hypothesis.a, (hypothesis.a,))), study.methods),
            "b": (hypothesis.b, set(TOKENS.get(hypothesis.b, (hypothesis.b,))), study.methods),
            "variant": (hypothesis.variant, {hypothesis.variant}, list(study.variants)),
            "b_variant": (hypothesis.b_variant, {hypothesis.b_variant}, list(study.variants)),
            "setup": (hypothesis.setup, {hypothesis.setup}, study.setups),
        }
        for key, (value, needs, valid) in names.items():
            if value is not None and not needs & set(valid):
                raise FussbenchError(
                    f"study.hypotheses {hypothesis.id}: {key} {value!r} is not in the study; "
                    f"valid: {', '.join(map(str, valid))}"
                )
    return hypotheses


def mean_ci(differences: np.ndarray, stats: StatsParams) -> tuple[float, float]:
    """The bootstrap 95% CI of the mean of (n,) ``differences`` (NaN for fewer than 2)."""
    if len(differences) < 2:
        return np.nan, np.nan
    return bootstrap_mean_ci(differences, stats.n_resamples, stats.seed)


def pending(recorded: int, planned: int) -> str:
    """The verdict of a family not yet complete: ``"pending (7 of 10 planned pairs)"``."""
    return f"pending ({recorded} of {planned} planned pairs)"


def hypothesis_rows(
    hypotheses: Sequence[StudyHypothesis],
    records: pd.DataFrame,
    stats: StatsParams,
    planned: pd.DataFrame,
    reference: str | None = None,
) -> pd.DataFrame:
    """One row per hypothesis: id, claim, pairs, the mean difference with its CI (a - b;
    for keeps_more drop_b - drop_a), raw and Holm p of the claim and of its opposite, and
    the verdict ("not run" without pairs). ``planned``: the keys (variant, setup, method,
    seed) of every run the study plans; until the records give each hypothesis every pair
    the plan gives it, the p columns are NaN and each verdict is :func:`pending`.
    ``reference``: the variant a keeps_more claim measures drops against."""
    everything = planned.assign(miou=0.0)
    expected = [len(hypothesis.pair(everything, reference).x) for hypothesis in hypotheses]
    pairings = [hypothesis.pair(records, reference) for hypothesis in hypotheses]
    complete = all(len(p.x) >= n for p, n in zip(pairings, expected, strict=True))
    rows = []
    for hypothesis, paired in zip(hypotheses, pairings, strict=True):
        x, y = paired.x, paired.y
        decided = complete and len(x) > 0
        claim = paired_tests(x, y, GREATER)[0].p_value if decided else None
        opposite = paired_tests(x, y, LESS)[0].p_value if decided else None
        difference = x - y - hypothesis.margin  # the margin is the test's, not the data's
        low, high = mean_ci(difference, stats)
        rows.append(
            {
                "id": hypothesis.id,
                "claim": hypothesis.text(paired),
                "pairs": len(x),
                "difference": float(np.mean(difference)) if len(x) else np.nan,
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
    if not complete:
        table["verdict"] = [
            pending(pairs, n) for pairs, n in zip(table["pairs"], expected, strict=True)
        ]
        return table
    table["verdict"] = [
        verdict(p, q, stats.alpha) if pairs else NOT_RUN
        for p, q, pairs in zip(
            table["p_holm"], table["p_holm_opposite"], table["pairs"], strict=True
        )
    ]
    return table


def shown_hypotheses(tested: pd.DataFrame) -> pd.DataFrame:
    """:func:`hypothesis_rows` as the reports print them: id, claim, pairs, the difference
    with its CI, the Holm p and the verdict."""
    return tested.assign(
        difference=[
            format_difference(m, lo, hi)
            for m, lo, hi in zip(
                tested["difference"], tested["ci_low"], tested["ci_high"], strict=True
            )
        ],
        p_holm=[format_p(p) for p in tested["p_holm"]],
    )[["id", "claim", "pairs", "difference", "p_holm", "verdict"]]


def hypotheses_section(tested: pd.DataFrame) -> list[str]:
    """A study report's lines for :func:`hypothesis_rows`' table, under its heading; [] for
    a study without hypotheses."""
    if tested.empty:
        return []
    return [
        "## Pre-registered hypotheses (Holm over the family)",
        "",
        markdown_table(shown_hypotheses(tested)),
    ]


def write_hypotheses(folder: Path, tested: pd.DataFrame) -> None:
    """``folder/hypotheses.csv``: :func:`hypothesis_rows`' table (nothing without any)."""
    if not tested.empty:
        write_text(folder / "hypotheses.csv", tested.to_csv(index=False))
