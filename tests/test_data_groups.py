"""The ``groups`` partition (clients by explicit lists of groups, e.g. Cityscapes cities) and
the params of the added datasets."""

from __future__ import annotations

import numpy as np
import pytest

from fussbench.data.partition import partition_indices
from fussbench.errors import FussbenchError
from fussbench.params import parse_params

GROUPS = ["ulm", "aachen", "ulm", "jena", "bremen", "aachen"]


def by_groups(client_groups, n_clients=0) -> list[np.ndarray]:
    return partition_indices(
        "groups",
        groups=GROUPS,
        histograms=np.ones((len(GROUPS), 2)),
        n_clients=n_clients,
        alpha=1.0,
        shares=None,
        seed=0,
        client_groups=client_groups,
    )


def test_each_client_holds_the_samples_of_its_groups():
    clients = by_groups([["aachen", "ulm"], ["jena"], ["bremen"]], n_clients=3)
    assert [client.tolist() for client in clients] == [[0, 1, 2, 5], [3], [4]]


@pytest.mark.parametrize(
    ("client_groups", "fragment"),
    [
        ([["aachen", "ulm"], ["jena"]], "missing: bremen"),
        ([["aachen", "ulm"], ["jena", "ulm"], ["bremen"]], "listed more than once: ulm"),
        ([["aachen", "ulm", "tübingen"], ["jena", "bremen"]], "not in the split: tübingen"),
        ([], "non-empty list of groups"),
        ([["aachen", "ulm", "jena", "bremen"], []], "non-empty list of groups"),
    ],
)
def test_bad_group_lists_name_the_cities(client_groups, fragment):
    with pytest.raises(FussbenchError, match=fragment) as caught:
        by_groups(client_groups)
    assert "partition.groups" in str(caught.value)


def test_client_count_must_match_the_group_lists():
    with pytest.raises(FussbenchError, match="partition.n_clients=2 but partition.groups lists 1"):
        by_groups([["aachen", "ulm", "jena", "bremen"]], n_clients=2)


def test_dataset_sections_configure_the_specs_and_are_validated():
    params = parse_params(
        {"cityscapes": {"image_size": [64, 128]}, "folder": {"class_names": ["a", "b"]}}
    )
    assert params.dataset_spec("cityscapes").image_size == (64, 128)
    assert params.dataset_spec("folder").class_names == ("a", "b")
    with pytest.raises(FussbenchError, match=r"cityscapes\.image_size must be \[height, width\]"):
        parse_params({"cityscapes": {"image_size": [64]}})
    with pytest.raises(FussbenchError, match=r"folder\.test_fraction must be a number in \(0, 1\)"):
        parse_params({"folder": {"test_fraction": 1.0}})
    with pytest.raises(FussbenchError, match=r"partition\.groups\[0\]"):
        parse_params({"partition": {"groups": ["aachen"]}})
    setups = {"a": {"dataset": "cityscapes", "cityscapes": {"image_size": [8, 8]}}}
    with pytest.raises(FussbenchError, match="setups.a sets 'cityscapes', a dataset's section"):
        parse_params({"setup": "a", "setups": setups})
