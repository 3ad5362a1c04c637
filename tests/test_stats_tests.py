"""The paired tests, bootstrap interval, Holm correction and comparison family."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import fussbench.stats.tests as stats_tests
from fussbench.stats.comparisons import aggregator, comparisons
from fussbench.stats.formatting import MISSING, format_p
from fussbench.stats.tests import (
    GREATER,
    LESS,
    bootstrap_mean_ci,
    holm,
    min_wilcoxon_p,
    paired_tests,
    wilcoxon_pairs_needed,
)

A = np.array([31.2, 28.4, 35.1, 30.0, 29.7, 33.3, 27.9, 32.6])
B = np.array([29.0, 28.9, 32.2, 27.1, 29.5, 30.1, 28.3, 30.0])


def by_test(a, b) -> dict[str, stats_tests.TestResult]:
    return {result.test: result for result in paired_tests(np.asarray(a), np.asarray(b))}


def test_p_values_match_scipy_and_the_t_formula():
    results = by_test(A, B)
    assert [r.test for r in paired_tests(A, B)] == ["wilcoxon", "t-test"]
    assert results["wilcoxon"].p_value == pytest.approx(stats.wilcoxon(A, B).pvalue)
    assert results["t-test"].p_value == pytest.approx(stats.ttest_rel(A, B).pvalue)
    diffs = A - B
    t = diffs.mean() / (diffs.std(ddof=1) / math.sqrt(diffs.size))
    assert results["t-test"].p_value == pytest.approx(2 * stats.t.sf(abs(t), diffs.size - 1))
    assert results["wilcoxon"].note == results["t-test"].note == ""


def test_wilcoxon_exact_p_for_six_positive_differences():
    # every one of the 2**6 sign patterns is equally likely: P(all +) + P(all -) = 2 / 64
    result = by_test(np.arange(1.0, 7.0), np.zeros(6))["wilcoxon"]
    assert result.p_value == pytest.approx(2 / 64)
    assert result.p_value < 0.05


def test_five_pairs_cannot_reach_significance():
    result = by_test(np.arange(1.0, 6.0), np.zeros(5))["wilcoxon"]
    assert result.p_value is None
    assert "6 pairs needed for p < 0.05" in result.note
    assert "5 pairs give at least p = 0.0625" in result.note


def test_zero_differences_are_dropped_before_the_min_p_rule():
    result = by_test(np.arange(0.0, 6.0), np.zeros(6))["wilcoxon"]
    assert result.p_value is None
    assert "5 pairs after dropping 1 zero differences" in result.note


def test_all_zero_differences_give_p_one():
    for result in paired_tests(A, A.copy()):
        assert result.p_value == 1.0
        assert result.note == "all differences are zero"


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_pairs(n):
    wilcoxon, t_test = paired_tests(A[:n], B[:n])
    assert wilcoxon.p_value is None and t_test.p_value is None
    assert wilcoxon.note == f"too few pairs: {n} given, at least 6 needed"
    assert t_test.note == f"too few pairs: {n} given, at least 3 needed"


def test_two_pairs_are_too_few_for_the_t_test():
    results = by_test(A[:2], B[:2])
    assert results["t-test"].p_value is None
    assert "too few pairs: 2 given, at least 3 needed" in results["t-test"].note
    assert results["wilcoxon"].p_value is None


def test_constant_differences_have_no_t_test():
    results = by_test(np.arange(8.0) + 1.5, np.arange(8.0))
    assert results["t-test"].p_value is None
    assert "all differences are equal" in results["t-test"].note
    assert results["wilcoxon"].p_value == pytest.approx(2 / 2**8)


def test_one_sided_p_values_match_scipy():
    greater = {r.test: r for r in paired_tests(A, B, GREATER)}
    less = {r.test: r for r in paired_tests(A, B, LESS)}
    assert greater["wilcoxon"].p_value == pytest.approx(
        stats.wilcoxon(A, B, alternative="greater").pvalue
    )
    assert less["wilcoxon"].p_value == pytest.approx(
        stats.wilcoxon(A, B, alternative="less").pvalue
    )
    two_sided = by_test(A, B)["t-test"].p_value
    assert (A - B).mean() > 0  # so the one-sided p of "greater" is half the two-sided one
    assert greater["t-test"].p_value == pytest.approx(two_sided / 2)
    assert less["t-test"].p_value == pytest.approx(1 - two_sided / 2)


def test_one_sided_wilcoxon_exact_p_and_its_floor():
    # only "all positive" of the 2**6 equally likely sign patterns is as extreme
    greater = paired_tests(np.arange(1.0, 7.0), np.zeros(6), GREATER)[0]
    assert greater.p_value == pytest.approx(1 / 64)
    assert min_wilcoxon_p(6, GREATER) == pytest.approx(1 / 64)
    assert min_wilcoxon_p(6) == pytest.approx(2 / 64)
    assert wilcoxon_pairs_needed(0.05, GREATER) == 5
    assert wilcoxon_pairs_needed(0.05) == 6
    four = paired_tests(np.arange(1.0, 5.0), np.zeros(4), GREATER)[0]
    assert four.p_value is None
    assert "5 pairs needed for one-sided p < 0.05; 4 pairs give at least p = 0.0625" in four.note


def test_an_unknown_alternative_is_rejected():
    with pytest.raises(ValueError, match="alternative must be one of"):
        paired_tests(A, B, "bigger")
    with pytest.raises(ValueError, match="alternative must be one of"):
        min_wilcoxon_p(6, "two_sided")


def test_format_p():
    assert format_p(0.03125) == "0.0312"
    assert format_p(1.0) == "1"
    assert format_p(0.0009) == "< 0.001"
    assert format_p(None) == format_p(math.nan) == MISSING == "—"


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="equal 1-D shapes"):
        paired_tests(A, B[:3])


def test_bootstrap_is_deterministic_and_seeded():
    diffs = A - B
    first = bootstrap_mean_ci(diffs, 2000, seed=3)
    assert bootstrap_mean_ci(diffs, 2000, seed=3) == first
    assert bootstrap_mean_ci(diffs, 2000, seed=4) != first
    low, high = first
    assert low < diffs.mean() < high
    assert bootstrap_mean_ci(np.full(5, 2.5), 100, seed=0) == (2.5, 2.5)


def test_bootstrap_chunks_give_the_same_kind_of_interval(monkeypatch):
    diffs = A - B
    whole = bootstrap_mean_ci(diffs, 3000, seed=0)
    monkeypatch.setattr(stats_tests, "_BOOTSTRAP_CHUNK", 7)
    chunked = bootstrap_mean_ci(diffs, 3000, seed=0)
    assert bootstrap_mean_ci(diffs, 3000, seed=0) == chunked
    assert chunked == pytest.approx(whole, abs=0.15)


def test_bootstrap_interval_covers_the_true_mean_about_as_often_as_claimed():
    rng = np.random.default_rng(12)
    samples = rng.normal(loc=1.0, scale=2.0, size=(200, 40))
    intervals = np.array([bootstrap_mean_ci(row, 400, seed=i) for i, row in enumerate(samples)])
    covered = np.mean((intervals[:, 0] <= 1.0) & (intervals[:, 1] >= 1.0))
    assert 0.88 <= covered <= 0.99
    width = np.mean(intervals[:, 1] - intervals[:, 0])
    assert width == pytest.approx(2 * 1.96 * 2.0 / math.sqrt(40), rel=0.15)


def test_holm_on_a_hand_computed_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone 0.06
    adjusted = holm([0.01, None, 0.04, math.nan, 0.03, 0.005])
    expected = [0.03, math.nan, 0.06, math.nan, 0.06, 0.02]
    np.testing.assert_allclose(adjusted, expected, equal_nan=True)


def test_holm_clips_to_one_and_handles_empty_families():
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])
    np.testing.assert_allclose(holm(np.array([0.3, 0.5])), [0.6, 0.6])
    assert np.isnan(holm([None, None])).all()
    assert holm([]).shape == (0,)


def test_aggregator_is_the_name_before_the_first_dot():
    assert aggregator("fedcc_matched.pooled_counts") == "fedcc_matched"
    assert aggregator("fedavg.uniform") == "fedavg"
    assert aggregator("local") == "local"


def test_comparison_family():
    methods = [
        "local",
        "fedavg",
        "fedavg.uniform",
        "fedcc_kmeans",
        "fedcc_kmeans.faithful",
        "fedcc_matched.pooled_counts",
        "kmeans",
        "fedavg",
    ]
    assert comparisons(methods) == [
        ("fedavg", "local"),
        ("fedavg.uniform", "local"),
        ("fedcc_kmeans", "local"),
        ("fedcc_kmeans.faithful", "local"),
        ("fedcc_matched.pooled_counts", "local"),
        ("fedavg.uniform", "fedavg"),
        ("fedcc_kmeans", "fedavg"),
        ("fedcc_kmeans.faithful", "fedavg"),
        ("fedcc_matched.pooled_counts", "fedavg"),
        ("fedcc_kmeans", "fedcc_kmeans.faithful"),
        ("fedcc_kmeans", "fedcc_matched.pooled_counts"),
        ("fedcc_kmeans.faithful", "fedcc_matched.pooled_counts"),
    ]


def test_comparison_family_skips_absent_baselines():
    assert comparisons(["fedcc_maximin", "kmeans", "fedcc_kmeans"]) == [
        ("fedcc_maximin", "fedcc_kmeans")
    ]
    assert comparisons(["majority", "centralized", "local"]) == []  # bounds are not tested
    assert comparisons(["fedprox", "local"]) == [("fedprox", "local")]
