"""``features.store: online``: the backbone computes, while training and evaluating, the
features the cache would hold (up to its float16 rounding), and a federate round runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_workspace import invoke
from synthetic import CAMVID_COUNTS, make_camvid

from fussbench.data.camvid import CamVid
from fussbench.errors import FussbenchError
from fussbench.features import online as online_module
from fussbench.features.cache import cache_fingerprint, open_split
from fussbench.features.online import open_online
from fussbench.model.neighbours import nearest_neighbours
from fussbench.model.training import ClientData
from fussbench.params import load_params
from fussbench.paths import features_dir, raw_dir

REPO = Path(__file__).resolve().parents[1]
QUICK = ["train.local_steps=2", "train.batch_size=2", "federation.rounds=1", "train.knn_k=1"]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """The repo's params.yaml on a synthetic CamVid, downloaded, partitioned and cached."""
    monkeypatch.setattr(CamVid, "split_counts", CAMVID_COUNTS)
    make_camvid(tmp_path / "mirror" / "camvid")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"]["mirror"] = str(tmp_path / "mirror")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    for stage in ("download", "partition", "features"):
        result = invoke(stage)
        assert result.exit_code == 0, result.output
    return tmp_path


def _within_float16(online: np.ndarray, cached: np.ndarray) -> bool:
    """Whether float32 ``online`` rounds to float16 ``cached``, give or take one float16
    step (the batches of the two passes differ, so float32 values may differ by ~1e-7)."""
    step = np.spacing(np.abs(cached)).astype(np.float32)
    return bool((np.abs(online - cached.astype(np.float32)) <= step).all())


def test_online_split_matches_the_cache(workspace: Path) -> None:
    params = load_params(workspace / "params.yaml", [])
    spec = params.dataset_spec()
    config = params.backbone_config()
    for split in (spec.train_split, spec.eval_split):
        cached = open_split(
            features_dir(spec.name, params.backbone) / split,
            cache_fingerprint(spec, split, config),
        )
        source = raw_dir(spec.name)
        online = open_online(
            spec,
            source,
            spec.samples(source, split),
            split,
            config,
            "cpu",
            "fp32",
            3,
            with_pooled=split == spec.train_split,
        )
        assert online.names == cached.names and online.views == cached.views
        assert online.features.shape == cached.features.shape
        last = len(cached.names) - 1
        rows = np.array([last, 0, min(2, last), 0])
        assert online.features[rows].dtype == np.float32
        assert _within_float16(online.features[rows], cached.features[rows])
        assert _within_float16(online.features[1:], cached.features[1:])
        assert np.array_equal(online.labels[rows], cached.labels[rows])
        assert np.array_equal(np.stack(list(online.labels)), cached.labels)
        image, y, x = np.array([0, 0, last]), np.array([1, 0, 3]), np.array([2, 5, 1])
        assert _within_float16(online.features[image, :, y, x], cached.features[image, :, y, x])
        if split == spec.train_split:
            assert np.allclose(online.pooled, cached.pooled, rtol=1e-5, atol=1e-6)
            neighbours = nearest_neighbours(cached.pooled, 2)
            batch, held = np.array([1, 0, 1]), np.arange(2)
            from_cache = ClientData(cached.features, held, neighbours[:2]).batch(batch)
            computed = ClientData(online.features, held, neighbours[:2]).batch(batch)
            assert _within_float16(computed.numpy(), from_cache.numpy().astype(np.float16))
        else:
            assert online.pooled.shape == (0, cached.pooled.shape[1])


def test_online_federate_round_runs(workspace: Path) -> None:
    args = [arg for item in (*QUICK, "features.store=online") for arg in ("-S", item)]
    result = invoke("federate", *args, "--out", "runs/online")
    assert result.exit_code == 0, result.output
    metrics = json.loads((workspace / "runs/online/metrics.json").read_text())
    assert 0.0 <= metrics["miou"] <= 100.0
    assert len((workspace / "runs/online/rounds.csv").read_text().splitlines()) == 2
    flower = invoke("federate", *args, "-S", "engine=flower", "--out", "runs/flower")
    assert flower.exit_code == 2
    assert (
        "features.store: online" in flower.output and "use features.store: cache" in flower.output
    )
    bogus = invoke("federate", "-S", "features.store=disk", "--out", "runs/bogus")
    assert bogus.exit_code == 2 and "features.store must be one of cache, online" in bogus.output


def test_a_backbone_that_cannot_be_built_is_one_line(workspace: Path, monkeypatch) -> None:
    def broken(config):
        raise RuntimeError("no weights in this offline container")

    monkeypatch.setattr("fussbench.features.backbones.build_backbone", broken)
    online_module._backbone.cache_clear()
    params = load_params(workspace / "params.yaml", [])
    spec = params.dataset_spec()
    with pytest.raises(FussbenchError, match=r"features.store: online needs backbone .* cannot"):
        open_online(
            spec,
            raw_dir(spec.name),
            spec.samples(raw_dir(spec.name), "train"),
            "train",
            params.backbone_config(),
            "cpu",
            "fp32",
            4,
            with_pooled=True,
        )
    online_module._backbone.cache_clear()


def test_online_runs_have_their_own_fingerprint() -> None:
    from fussbench.federation.identity import run_fingerprint

    cache = load_params(REPO / "params.yaml", [])
    online = load_params(REPO / "params.yaml", ["features.store=online"])
    assert cache.features.store == "cache"
    assert run_fingerprint(online) != run_fingerprint(cache)
