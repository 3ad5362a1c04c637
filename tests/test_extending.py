"""Extending fussbench as docs/extending.md says: a toy aggregator and a toy
dataset, each one class plus one registration made here at test time, run one round end to
end through the CLI (download from the mirror, partition, features, federate, report rows).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_workspace import REPO, TINY, cycle, invoke, png_bytes, rgb
from toy_methods import ToyMedian

from fussbench.data.registry import register_dataset, unregister_dataset
from fussbench.data.samples import DatasetSpec, Sample
from fussbench.errors import FussbenchError
from fussbench.federation.aggregators import make_aggregator
from fussbench.federation.messages import ClientUpdate
from fussbench.methods import Knob, MethodSpec, get_spec, register, unregister
from fussbench.methods.listing import methods_table
from fussbench.reporting.palettes import palette
from fussbench.reporting.tables import aggregation_rows
from fussbench.rules import Interval
from fussbench.stats.comparisons import comparisons


class ToySet(DatasetSpec):
    """Images at ``<root>/<split>/<name>.png``, labels (0, 1, 2) at
    ``<root>/<split>/<name>.label.png``."""

    name = "toyset"
    class_names = ("dark", "light", "edge")
    colours = ((0, 0, 0), (255, 255, 255), (255, 0, 0))
    image_size = (48, 64)
    split_counts = {"train": 4, "test": 2}

    def samples(self, root: Path, split: str) -> list[Sample]:
        """The pairs of ``split``, sorted by name."""
        folder = Path(root) / split
        if not folder.is_dir():
            raise FussbenchError(f"{folder}: folder missing")
        names = sorted(p.stem for p in folder.glob("*.png") if not p.stem.endswith(".label"))
        return [
            Sample(name, folder / f"{name}.png", folder / f"{name}.label.png", group="all")
            for name in names
        ]

    def decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """(H, W) raw values 0..2 are the classes."""
        if raw.max() > 2:
            raise FussbenchError(f"{path}: label values above 2")
        return raw.astype(np.uint8)


TOY = MethodSpec(
    "toy_median",
    "head and centroids by the element-wise median",
    family="fedcc",
    label="Toy median",
    factory=ToyMedian,
    knobs=(
        Knob(
            "toy_blend",
            1.0,
            Interval(float, 0.0, 1.0),
            "toy_median: the median's share of the new centroids",
            argument="blend",
        ),
    ),
    server_needs="individual",
    aggregation_table=True,
)
"""The toy aggregator's whole registration: its name, family, class and one knob."""


@pytest.fixture
def toys():
    """The toy aggregator and dataset, registered for one test."""
    register(TOY)
    register_dataset(ToySet)
    yield
    unregister("toy_median")
    unregister_dataset("toyset")


def make_toy_mirror(root: Path) -> Path:
    """``root/toyset`` in :class:`ToySet`'s layout, 8 x 6 pixels per image."""
    for split, count in ToySet.split_counts.items():
        folder = root / "toyset" / split
        folder.mkdir(parents=True)
        for index in range(count):
            (folder / f"{split}{index}.png").write_bytes(png_bytes(rgb(8, 6, index), "RGB"))
            label = png_bytes(cycle((0, 1, 2), 8, 6), "L")
            (folder / f"{split}{index}.label.png").write_bytes(label)
    return root


def test_a_toy_aggregator_and_dataset_run_one_round_end_to_end(toys, tmp_path, monkeypatch):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"]["mirror"] = str(make_toy_mirror(tmp_path / "mirror"))
    params["datasets"] = ["toyset"]
    params["setups"] = {"toy_iid": {"dataset": "toyset", "partition": {"method": "iid"}}}
    params["partition"]["n_clients"] = 2
    params["setup"], params["runs_on"] = "toy_iid", ["toy_iid"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    for stage in ("download", "partition", "features"):
        result = invoke(stage, "-S", "backbone=effnet_lite0")
        assert result.exit_code == 0, result.output
    tiny = [arg for item in (*TINY, "aggregator=toy_median") for arg in ("-S", item)]
    result = invoke("federate", *tiny, "-S", "federation.toy_blend=0.5", "--out", "runs/toy")
    assert result.exit_code == 0, result.output
    metrics = json.loads(Path("runs/toy/metrics.json").read_text())
    assert metrics["aggregator"] == "toy_median" and 0.0 <= metrics["miou"] <= 100.0
    refused = invoke("federate", *tiny, "-S", "federation.toy_blend=2", "--out", "runs/bad")
    assert refused.exit_code == 2 and "federation.toy_blend must be a number in [0, 1]" in (
        refused.output
    )
    assert ("toy_median", None, "Toy median") in aggregation_rows()
    assert ("fedcc_kmeans", "toy_median") in comparisons(["local", "fedcc_kmeans", "toy_median"])
    assert "federation.toy_blend = 1.0" in methods_table()
    assert palette("toyset", 3).tolist() == [[0, 0, 0], [255, 255, 255], [255, 0, 0]]
    assert get_spec("toy_median").reads_cluster_counts(None) is False


def test_the_toy_head_rule_and_knob_reach_the_global_model(toys):
    rng = np.random.default_rng(0)
    updates = [
        ClientUpdate({"head.w": rng.normal(size=(3, 2)), "centroids": rng.normal(size=(4, 5))}, n)
        for n in (1, 1, 100)
    ]
    previous = {"head.w": np.zeros((3, 2)), "centroids": np.ones((4, 5))}
    built = make_aggregator("toy_median", knobs={"toy_blend": 0.25})
    merged = built.aggregate(updates, previous)
    heads = np.stack([update.arrays["head.w"] for update in updates])
    np.testing.assert_allclose(merged["head.w"], np.median(heads, axis=0), rtol=1e-6)
    median = np.median(np.stack([update.centroids for update in updates]), axis=0)
    np.testing.assert_allclose(merged["centroids"], 0.25 * median + 0.75, rtol=1e-6)


@pytest.mark.slow
def test_the_toy_aggregator_runs_unchanged_on_flower(toys, tmp_path, monkeypatch):
    """The same toy (registered only in this process) on Flower's deployment runtime: its
    ServerApp unpickles the aggregator, so the toy's module must be importable there."""
    pytest.importorskip("flwr")
    from synthetic import CAMVID_COUNTS, make_camvid

    from fussbench.data.camvid import CamVid

    monkeypatch.setattr(CamVid, "split_counts", CAMVID_COUNTS)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    make_camvid(tmp_path / "mirror" / "camvid")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"]["mirror"] = str(tmp_path / "mirror")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    for stage in ("download", "partition", "features"):
        assert invoke(stage).exit_code == 0
    tiny = [arg for item in (*TINY, "aggregator=toy_median") for arg in ("-S", item)]
    knob = ["-S", "federation.toy_blend=0.5"]
    for engine in ("inprocess", "flower"):
        result = invoke("federate", *tiny, *knob, "--engine", engine, "--out", f"runs/{engine}")
        assert result.exit_code == 0, result.output
    with np.load("runs/inprocess/model.npz") as a, np.load("runs/flower/model.npz") as b:
        for key in a.files:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_fedcc_auto_refuses_a_candidate_with_a_head_rule_of_its_own():
    from fussbench.federation.auto import FedCCAuto

    register(dataclasses.replace(TOY, auto_candidate=True))
    try:
        rng = np.random.default_rng(1)
        updates = [
            ClientUpdate(
                {"head.w": rng.normal(size=(3, 2)), "centroids": rng.normal(size=(4, 5))}, n
            )
            for n in (1, 2, 9)
        ]
        previous = {"head.w": np.zeros((3, 2)), "centroids": np.ones((4, 5))}
        auto = FedCCAuto(candidates=("fedcc_kmeans", "toy_median"))
        with pytest.raises(FussbenchError, match="candidate 'toy_median' merges the head"):
            auto.propose(updates, previous)
    finally:
        unregister("toy_median")
