"""The method registry: names, modes, report rows, and parsing without torch."""

import subprocess
import sys

import pytest

from fussbench.errors import FussbenchError
from fussbench.federation.registry import AggregatorSpec, get_spec, names, register, unregister
from fussbench.reporting.tables import aggregation_rows, method_kind


def test_registry_lists_every_name_in_order() -> None:
    assert names() == [
        "local",
        "centralized",
        "fedavg",
        "fedprox",
        "fedmoon",
        "fedcc_kmeans",
        "fedcc_maximin",
        "fedcc_matched",
        "fedcc_auto",
        "kmeans",
        "kmeans_local",
        "majority",
    ]
    assert names("reference") == ["kmeans", "kmeans_local", "majority"]
    assert [spec.default_mode for spec in map(get_spec, ("fedavg", "fedcc_matched"))] == [
        None,
        "hungarian",
    ]


def test_aggregation_rows_and_default_modes_come_from_the_registry() -> None:
    assert aggregation_rows() == [
        ("fedavg", None, "FedAvg"),
        ("fedcc_kmeans", "cosine", "FedCC-kMeans (cosine)"),
        ("fedcc_kmeans", "faithful", "FedCC-kMeans (faithful)"),
        ("fedcc_maximin", "cosine", "FedCC-Maximin (cosine)"),
        ("fedcc_maximin", "faithful", "FedCC-Maximin (faithful)"),
        ("fedcc_matched", "hungarian", "FedCC-Matched (hungarian)"),
        ("fedcc_matched", "pooled_counts", "FedCC-Matched (pooled counts)"),
        ("fedcc_auto", None, "FedCC-Auto"),
    ]
    assert method_kind("fedcc_maximin.uniform") == ("fedcc_maximin", "cosine", "uniform")
    assert [n for n in names() if get_spec(n).centroid_heatmap] == [
        "fedavg",
        "fedcc_kmeans",
        "fedcc_maximin",
        "fedcc_matched",
        "fedcc_auto",
    ]


def test_unknown_name_lists_the_registered_ones() -> None:
    register(AggregatorSpec("toyagg", "a toy", factory="fussbench.federation.aggregators:FedAvg"))
    try:
        with pytest.raises(FussbenchError, match="valid names: local, centralized.*toyagg"):
            get_spec("fedsgd")
    finally:
        unregister("toyagg")
    with pytest.raises(FussbenchError, match="already registered"):
        register(AggregatorSpec("fedavg", "again"))


def test_method_names_parse_without_torch() -> None:
    code = (
        "import sys; import fussbench.reporting.tables as t; t.method_kind('fedavg.uniform');"
        "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert output.returncode == 0, output.stderr
    assert output.stdout.strip() == "[]"
