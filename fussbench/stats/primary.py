"""Pre-registered primary hypotheses: which method should beat which, and the verdicts.

``stats.primary`` in ``params.yaml`` lists the hypotheses, fixed before any result exists.
Each entry claims that method ``a`` has a higher final mIoU than method ``b``:

- ``{id: H1, dataset: camvid, a: fedcc_kmeans, b: fedavg}``: on every setup of the results
  whose dataset is ``camvid``;
- ``{id: H4, setups: [tile_quantity], a: fedcc_maximin.uniform, b: fedprox}``: on the named
  setups only.

``id`` is optional (default ``H<position>``). ``a`` or ``b`` may be a token from
:data:`TOKENS` instead of a method name: ``better_fedcc`` is whichever of ``fedcc_kmeans``
and ``fedcc_maximin`` has the higher mean mIoU over the seeds of that setup. The choice is
made on the same results the test then runs on, which favours the claim; the report says so.

Every hypothesis is tested one-sided (``a > b``), paired over seeds, and all of them
together form one Holm family. The verdict (:func:`verdict`) is "supported" when the
Holm-adjusted p of the pre-registered test is below alpha; "not supported" when the same
test of the opposite claim (``b > a``), Holm-adjusted over the same family, is below alpha;
"inconclusive" otherwise; "not run" when the results lack a method or setup it needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fussbench.errors import FussbenchError
from fussbench.stats.tests import GREATER, holm, min_wilcoxon_p

TOKENS: dict[str, tuple[str, ...]] = {"better_fedcc": ("fedcc_kmeans", "fedcc_maximin")}
"""Tokens that stand for the best of several methods (highest mean mIoU over seeds)."""

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
NOT_RUN = "not run"

KEYS = ("id", "a", "b", "dataset", "setups")
"""Keys an entry of ``stats.primary`` may have."""


@dataclass(frozen=True)
class Hypothesis:
    """One pre-registered claim: ``a`` beats ``b`` in final mIoU on some setups.

    Attributes:
        id: short name shown in the tables (``H1``).
        a, b: method names or :data:`TOKENS`.
        dataset: the claim holds on every setup of this dataset (``None`` with ``setups``).
        setups: the claim holds on these setups (empty with ``dataset``).
    """

    id: str
    a: str
    b: str
    dataset: str | None = None
    setups: tuple[str, ...] = ()

    @property
    def claim(self) -> str:
        """``"a > b"`` as written in the params."""
        return f"{self.a} > {self.b}"


@dataclass(frozen=True)
class Target:
    """One hypothesis on one setup, its tokens resolved.

    Attributes:
        hypothesis: the claim.
        setup: the setup it is tested on ("" when no setup of its dataset was run).
        method_a, method_b: the methods compared (a token where it could not be resolved).
        missing: why it cannot be tested; "" when both methods have results.
        choice: how a token was resolved, for the note; "" without a token.
    """

    hypothesis: Hypothesis
    setup: str
    method_a: str
    method_b: str
    missing: str = ""
    choice: str = ""


def _entry(entry: Any, position: int, source: str) -> Hypothesis:
    """One entry of ``stats.primary`` (``source`` names it in errors)."""
    where = f"{source}[{position}]"
    if not isinstance(entry, Mapping):
        raise FussbenchError(f"{where} must be a mapping such as {{a: x, b: y, dataset: d}}")
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        raise FussbenchError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(KEYS)}")
    for key in ("a", "b"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise FussbenchError(f"{where}.{key} must name a method (or one of {list(TOKENS)})")
    if entry["a"] == entry["b"]:
        raise FussbenchError(f"{where}: a and b are both {entry['a']!r}")
    dataset, setups = entry.get("dataset"), entry.get("setups")
    if (dataset is None) == (setups is None):
        raise FussbenchError(f"{where} needs exactly one of `dataset` and `setups`")
    if dataset is not None and not isinstance(dataset, str):
        raise FussbenchError(f"{where}.dataset must be a dataset name, got {dataset!r}")
    if setups is not None and (
        not isinstance(setups, list) or not setups or not all(isinstance(s, str) for s in setups)
    ):
        raise FussbenchError(f"{where}.setups must be a non-empty list of setup names")
    name = str(entry.get("id", f"H{position + 1}"))
    return Hypothesis(name, entry["a"], entry["b"], dataset, tuple(setups or ()))


def parse_primary(entries: Sequence[Any], source: str = "stats.primary") -> list[Hypothesis]:
    """The hypotheses of ``stats.primary`` (a list of mappings, as read from YAML).

    Raises:
        FussbenchError: naming the entry, for an unknown key, a missing or repeated method,
            not exactly one of ``dataset`` / ``setups``, or a repeated ``id``.
    """
    hypotheses = [_entry(entry, i, source) for i, entry in enumerate(entries)]
    ids = [hypothesis.id for hypothesis in hypotheses]
    repeated = sorted({name for name in ids if ids.count(name) > 1})
    if repeated:
        raise FussbenchError(f"{source}: the id {repeated[0]!r} is used more than once")
    return hypotheses


def resolve(name: str, means: Mapping[str, float]) -> tuple[str | None, str]:
    """(method, how it was chosen) for a method name or token; method None when absent.

    ``means`` maps each method run in the setup to its mean mIoU over seeds; a token is
    the method of ``TOKENS[name]`` with the highest mean, the first listed on a tie. The
    study hypotheses (:mod:`fussbench.reporting.study_hypotheses`) resolve by it too.
    """
    if name not in TOKENS:
        return (name if name in means else None), ""
    present = [method for method in TOKENS[name] if method in means]
    if not present:
        return None, ""
    best = max(present, key=lambda method: means[method])  # first one on a tie
    others = ", ".join(f"{m} {means[m]:.2f}" for m in present if m != best)
    against = f"against {others}" if others else "the only one run"
    return best, f"{name} = {best} (mean mIoU {means[best]:.2f}, {against})"


def _target(hypothesis: Hypothesis, setup: str, means: Mapping[str, float]) -> Target:
    """``hypothesis`` on ``setup``, whose methods' mean mIoU over seeds are ``means``."""
    (a, choice_a), (b, choice_b) = resolve(hypothesis.a, means), resolve(hypothesis.b, means)
    absent = [name for name, method in ((hypothesis.a, a), (hypothesis.b, b)) if method is None]
    missing = f"{' and '.join(absent)} not in the results of {setup}" if absent else ""
    choice = "; ".join(text for text in (choice_a, choice_b) if text)
    return Target(hypothesis, setup, a or hypothesis.a, b or hypothesis.b, missing, choice)


def targets(
    hypotheses: Sequence[Hypothesis],
    datasets: Mapping[str, str],
    means: Mapping[str, Mapping[str, float]],
) -> list[Target]:
    """Every (hypothesis, setup) to test, in the order of ``hypotheses`` then ``datasets``.

    Args:
        hypotheses: the pre-registered claims.
        datasets: the dataset of each setup in the results, in order.
        means: per setup, each method's mean mIoU over its finished seeds.

    A hypothesis whose setups (or dataset) are not in the results still gets one target per
    named setup (or one with setup "" for the dataset), marked missing.
    """
    found = []
    for hypothesis in hypotheses:
        if hypothesis.dataset is not None:
            setups = [s for s, name in datasets.items() if name == hypothesis.dataset]
            if not setups:
                reason = f"no {hypothesis.dataset} setup in the results"
                found.append(Target(hypothesis, "", hypothesis.a, hypothesis.b, reason))
            found += [_target(hypothesis, s, means[s]) for s in setups]
            continue
        for setup in hypothesis.setups:
            if setup in datasets:
                found.append(_target(hypothesis, setup, means[setup]))
            else:
                reason = f"setup {setup} not in the results"
                found.append(Target(hypothesis, setup, hypothesis.a, hypothesis.b, reason))
    return found


def holm_whole_family(p_values: Sequence[float | None]) -> np.ndarray:
    """Holm-adjusted p-values, shape (m,), where every entry counts towards the family.

    A ``None`` or NaN p (a hypothesis that was run but had too few pairs to test) counts as
    p = 1, so it still widens the family as pre-registered, and comes back as NaN.
    """
    raw = np.array([np.nan if p is None else p for p in p_values], dtype=np.float64)
    adjusted = holm(np.where(np.isnan(raw), 1.0, raw))
    adjusted[np.isnan(raw)] = np.nan
    return adjusted


def best_holm_wilcoxon(nonzero: Sequence[int]) -> np.ndarray:
    """The smallest Holm-adjusted one-sided Wilcoxon p each hypothesis could reach, shape (m,).

    ``nonzero`` is each hypothesis's number of non-zero paired differences. Holm's adjusted
    p-values never fall when a raw p rises, so the best case is every test at its minimum
    ``1 / 2**n`` (:func:`min_wilcoxon_p`).
    """
    return holm([min_wilcoxon_p(n, GREATER) for n in nonzero])


def verdict(p_holm: float, p_holm_opposite: float, alpha: float) -> str:
    """:data:`SUPPORTED` when the claim's Holm p is below ``alpha``, :data:`NOT_SUPPORTED`
    when the opposite claim's is, :data:`INCONCLUSIVE` otherwise (NaN counts as neither)."""
    if p_holm < alpha:
        return SUPPORTED
    if p_holm_opposite < alpha:
        return NOT_SUPPORTED
    return INCONCLUSIVE
