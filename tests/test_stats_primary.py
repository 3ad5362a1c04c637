"""Pre-registered primary hypotheses: parsing, which setups they cover, tokens, verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fussbench.errors import FussbenchError
from fussbench.stats.primary import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    Hypothesis,
    best_holm_wilcoxon,
    holm_whole_family,
    parse_primary,
    targets,
    verdict,
)

ENTRIES = [
    {"id": "H1", "dataset": "camvid", "a": "fedcc_kmeans", "b": "fedavg"},
    {"dataset": "camvid", "a": "better_fedcc", "b": "local"},
    {"id": "T", "setups": ["tile_quantity", "tile_other"], "a": "fedcc_maximin.uniform",
     "b": "fedprox"},
]  # fmt: skip

DATASETS = {"camvid_domain": "camvid", "tile_quantity": "magnetic_tile", "camvid_iid": "camvid"}
MEANS = {
    "camvid_domain": {"local": 20.0, "fedavg": 21.0, "fedcc_kmeans": 24.0, "fedcc_maximin": 25.5},
    "camvid_iid": {"local": 20.0, "fedavg": 21.0, "fedcc_kmeans": 22.0},
    "tile_quantity": {"local": 30.0, "fedcc_maximin.uniform": 31.0},
}


def test_entries_parse_with_default_ids():
    hypotheses = parse_primary(ENTRIES)
    assert hypotheses == [
        Hypothesis("H1", "fedcc_kmeans", "fedavg", "camvid"),
        Hypothesis("H2", "better_fedcc", "local", "camvid"),
        Hypothesis("T", "fedcc_maximin.uniform", "fedprox", None, ("tile_quantity", "tile_other")),
    ]
    assert hypotheses[1].claim == "better_fedcc > local"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("H1", r"stats.primary\[0\] must be a mapping"),
        ({"dataset": "camvid", "a": "x", "b": "y", "side": "less"}, "unknown key 'side'"),
        ({"dataset": "camvid", "a": "x"}, r"stats.primary\[0\].b must name a method"),
        ({"dataset": "camvid", "a": "x", "b": "x"}, "a and b are both 'x'"),
        ({"a": "x", "b": "y"}, "exactly one of `dataset` and `setups`"),
        ({"dataset": "d", "setups": ["s"], "a": "x", "b": "y"}, "exactly one of"),
        ({"setups": [], "a": "x", "b": "y"}, "setups must be a non-empty list"),
        ({"setups": "s", "a": "x", "b": "y"}, "setups must be a non-empty list"),
        ({"dataset": ["camvid"], "a": "x", "b": "y"}, "dataset must be a dataset name"),
    ],
)
def test_bad_entries_are_named(entry, message):
    with pytest.raises(FussbenchError, match=message):
        parse_primary([entry])


def test_repeated_ids_are_rejected():
    entry = {"id": "H1", "dataset": "camvid", "a": "x", "b": "y"}
    with pytest.raises(FussbenchError, match="the id 'H1' is used more than once"):
        parse_primary([entry, {**entry, "a": "z"}])


def test_targets_cover_each_setup_of_a_dataset_and_resolve_the_better_fedcc():
    found = targets(parse_primary(ENTRIES), DATASETS, MEANS)
    summary = [(t.hypothesis.id, t.setup, t.method_a, t.method_b, t.missing) for t in found]
    assert summary == [
        ("H1", "camvid_domain", "fedcc_kmeans", "fedavg", ""),
        ("H1", "camvid_iid", "fedcc_kmeans", "fedavg", ""),
        ("H2", "camvid_domain", "fedcc_maximin", "local", ""),  # 25.5 beats 24.0
        ("H2", "camvid_iid", "fedcc_kmeans", "local", ""),  # the only FedCC run there
        ("T", "tile_quantity", "fedcc_maximin.uniform", "fedprox",
         "fedprox not in the results of tile_quantity"),
        ("T", "tile_other", "fedcc_maximin.uniform", "fedprox",
         "setup tile_other not in the results"),
    ]  # fmt: skip
    assert found[0].choice == ""
    assert found[2].choice == (
        "better_fedcc = fedcc_maximin (mean mIoU 25.50, against fedcc_kmeans 24.00)"
    )
    assert found[3].choice == "better_fedcc = fedcc_kmeans (mean mIoU 22.00, the only one run)"


def test_a_dataset_without_setups_and_a_token_without_methods_are_not_run():
    entries = [
        {"dataset": "cityscapes", "a": "fedcc_kmeans", "b": "fedavg"},
        {"setups": ["tile_quantity"], "a": "better_fedcc", "b": "local"},
    ]
    first, second = targets(parse_primary(entries), DATASETS, MEANS)
    assert (first.setup, first.missing) == ("", "no cityscapes setup in the results")
    assert second.missing == "better_fedcc not in the results of tile_quantity"
    assert second.method_a == "better_fedcc"


def test_holm_counts_untestable_hypotheses_in_the_family():
    # m = 4, not 2: 0.01 * 4 = 0.04, 0.02 * 3 = 0.06 (left out, they would be 0.02 and 0.02)
    adjusted = holm_whole_family([0.01, None, math.nan, 0.02])
    np.testing.assert_allclose(adjusted, [0.04, math.nan, math.nan, 0.06], equal_nan=True)


def test_best_holm_wilcoxon_says_when_seeds_cannot_decide():
    # 6 pairs: one-sided floor 1/64 = 0.0156; a family of 4 needs below 0.0125
    np.testing.assert_allclose(best_holm_wilcoxon([6, 6, 6, 6]), [4 / 64] * 4)
    assert (best_holm_wilcoxon([10, 10, 10, 10]) < 0.05).all()
    best = best_holm_wilcoxon([10, 3])
    assert best[0] < 0.05 <= best[1]  # 3 pairs can never get below 1/8


@pytest.mark.parametrize(
    ("p_holm", "p_opposite", "expected"),
    [
        (0.01, 0.99, SUPPORTED),
        (0.99, 0.01, NOT_SUPPORTED),
        (0.2, 0.6, INCONCLUSIVE),
        (0.05, 0.9, INCONCLUSIVE),  # alpha itself does not pass
        (math.nan, math.nan, INCONCLUSIVE),
    ],
)
def test_verdict(p_holm, p_opposite, expected):
    assert verdict(p_holm, p_opposite, 0.05) == expected
