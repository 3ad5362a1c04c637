"""Paired significance tests, a bootstrap confidence interval and the Holm correction.

Pure functions on numpy arrays. Degenerate inputs (too few pairs, all differences zero)
give a ``None`` p-value or p = 1 with a note saying why, never NaN.

Every test takes an ``alternative``: :data:`TWO_SIDED` (the default: is there any
difference?), :data:`GREATER` (is ``a`` above ``b``?, a directional claim) or :data:`LESS`.

The Wilcoxon signed-rank test uses ``zero_method="wilcox"``: pairs whose difference is
exactly zero are dropped before ranking, so only the non-zero differences count towards
the smallest reachable p-value. With ``method="auto"`` scipy (>= 1.13) uses the exact null
distribution for up to 50 non-tied, non-zero differences, an exhaustive sign-flip
permutation test (also exact) for up to 13 differences with ties or zeros, and the normal
approximation with continuity correction otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
"""The significance level the "pairs needed" notes refer to."""

WILCOXON = "wilcoxon"
T_TEST = "t-test"

TWO_SIDED = "two-sided"
GREATER = "greater"
LESS = "less"
ALTERNATIVES = (TWO_SIDED, GREATER, LESS)

_BOOTSTRAP_CHUNK = 1 << 22
"""Most resampled indices drawn at once, bounding the bootstrap's memory."""


@dataclass(frozen=True)
class TestResult:
    """One test's outcome: ``p_value`` is ``None`` when it cannot be computed (see ``note``)."""

    __test__ = False  # not a pytest test class

    test: str
    p_value: float | None
    note: str


def _differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` as float64 for paired samples ``a``, ``b`` of shape (n,)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired samples need equal 1-D shapes, got {a.shape} and {b.shape}")
    return a - b


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")


def min_wilcoxon_p(n: int, alternative: str = TWO_SIDED) -> float:
    """Smallest exact Wilcoxon p-value reachable with ``n`` non-zero differences.

    All ``2**n`` sign patterns are equally likely under the null; only "all positive" (or
    "all negative") reaches the extreme, so the one-sided minimum is ``1 / 2**n`` and the
    two-sided one twice that.
    """
    _check_alternative(alternative)
    tails = 2.0 if alternative == TWO_SIDED else 1.0
    return min(1.0, tails / 2.0**n)


def wilcoxon_pairs_needed(alpha: float = ALPHA, alternative: str = TWO_SIDED) -> int:
    """Fewest non-zero differences for which the Wilcoxon test can reach p < ``alpha``."""
    n = 1
    while min_wilcoxon_p(n, alternative) >= alpha:
        n += 1
    return n


def _sided(alternative: str) -> str:
    """``""`` for two-sided tests, ``"one-sided "`` otherwise (a prefix for notes)."""
    return "" if alternative == TWO_SIDED else "one-sided "


def _too_few(test: str, n: int, needed: int) -> TestResult:
    return TestResult(test, None, f"too few pairs: {n} given, at least {needed} needed")


def _wilcoxon(diffs: np.ndarray, alternative: str) -> TestResult:
    """Wilcoxon signed-rank test on differences of shape (n,), n >= 2, not all 0."""
    nonzero = int(np.count_nonzero(diffs))
    needed = wilcoxon_pairs_needed(ALPHA, alternative)
    if nonzero < needed:
        dropped = diffs.size - nonzero
        zeros = f" after dropping {dropped} zero differences" if dropped else ""
        return TestResult(
            WILCOXON,
            None,
            f"{needed} pairs needed for {_sided(alternative)}p < {ALPHA}; {nonzero} pairs"
            f"{zeros} give at least p = {min_wilcoxon_p(nonzero, alternative):.4g}",
        )
    result = stats.wilcoxon(diffs, zero_method="wilcox", alternative=alternative, method="auto")
    return TestResult(WILCOXON, float(result.pvalue), "")


def _t_test(diffs: np.ndarray, alternative: str) -> TestResult:
    """Paired t-test on differences of shape (n,), n >= 2, not all 0."""
    if diffs.size < 3:
        return _too_few(T_TEST, diffs.size, 3)
    if np.all(diffs == diffs[0]):
        return TestResult(T_TEST, None, "all differences are equal: no variance to test against")
    result = stats.ttest_rel(diffs, np.zeros_like(diffs), alternative=alternative)
    return TestResult(T_TEST, float(result.pvalue), "")


def paired_tests(a: np.ndarray, b: np.ndarray, alternative: str = TWO_SIDED) -> list[TestResult]:
    """The Wilcoxon signed-rank and paired t-test of ``a`` against ``b``.

    ``a`` and ``b`` have shape (n,); pair ``i`` is ``(a[i], b[i])``. ``alternative``
    :data:`GREATER` asks whether ``a - b`` is above 0. Returns the Wilcoxon result first,
    then the t-test.
    """
    _check_alternative(alternative)
    diffs = _differences(a, b)
    if diffs.size < 2:
        return [
            _too_few(WILCOXON, diffs.size, wilcoxon_pairs_needed(ALPHA, alternative)),
            _too_few(T_TEST, diffs.size, 3),
        ]
    if not np.any(diffs):
        return [
            TestResult(WILCOXON, 1.0, "all differences are zero"),
            TestResult(T_TEST, 1.0, "all differences are zero"),
        ]
    return [_wilcoxon(diffs, alternative), _t_test(diffs, alternative)]


def bootstrap_mean_ci(
    diffs: np.ndarray, n_resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``diffs`` (shape (n,), n >= 1).

    Draws ``n_resamples`` resamples with replacement from ``numpy.random.default_rng(seed)``;
    the same inputs always give the same interval.
    """
    diffs = np.asarray(diffs, dtype=np.float64)
    if diffs.ndim != 1 or diffs.size == 0:
        raise ValueError(f"need a non-empty 1-D array of differences, got shape {diffs.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    rng = np.random.default_rng(seed)
    rows = max(1, _BOOTSTRAP_CHUNK // diffs.size)
    means = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        picks = rng.integers(0, diffs.size, size=(stop - start, diffs.size))
        means[start:stop] = diffs[picks].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def holm(p_values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, shape (m,), in the input order.

    ``None`` and NaN entries are left out of the family and come back as NaN. The adjusted
    values are monotone in the raw p-values and clipped to 1.
    """
    raw = np.array([math.nan if p is None else p for p in p_values], dtype=np.float64)
    adjusted = np.full(raw.shape, math.nan)
    valid = np.flatnonzero(~np.isnan(raw))
    order = valid[np.argsort(raw[valid], kind="stable")]
    m = order.size
    scaled = raw[order] * (m - np.arange(m))
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted
