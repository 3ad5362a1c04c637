"""Dense CRF refinement at evaluation (``evaluation.crf``); skipped without pydensecrf2,
except the message that says how to get it."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from synthetic import CAMVID_COUNTS, make_camvid
from typer.testing import CliRunner

from fussbench.cli import app
from fussbench.data.camvid import CamVid
from fussbench.errors import FussbenchError
from fussbench.evaluation import crf
from fussbench.federation.identity import run_fingerprint
from fussbench.model.head import CENTROIDS_KEY, initial_arrays
from fussbench.params import load_params


def _has_densecrf() -> bool:
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        return False
    return True


needs_crf = pytest.mark.skipif(not _has_densecrf(), reason="pydensecrf2 is not installed")


def test_without_pydensecrf2_the_message_names_the_extra_and_the_param(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    with pytest.raises(FussbenchError, match=r"evaluation\.crf.*fussbench\[crf\]"):
        crf.refine(np.zeros((4, 4, 3), np.uint8), np.full((2, 4, 4), 0.5))


def test_crf_is_off_by_default_and_leaves_the_run_fingerprint_alone(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("{}\n")
    params = load_params(path)
    assert params.evaluation.crf is False
    with_crf = load_params(path, ["evaluation.crf=true"])
    assert with_crf.evaluation.crf is True
    assert run_fingerprint(params) != run_fingerprint(with_crf)
    relabelled = load_params(path, ["evaluation.matching=majority"])
    assert run_fingerprint(relabelled) != run_fingerprint(params)


@needs_crf
def test_the_crf_follows_the_colour_edge_through_noisy_probabilities():
    """Left half dark, right half bright; 30% of the pixels' probabilities point the wrong
    way. The argmax keeps the noise, the CRF recovers the halves."""
    rng = np.random.default_rng(0)
    image = np.zeros((24, 24, 3), np.uint8)
    image[:, 12:] = 255
    image.setflags(write=False)  # as np.asarray(PIL image) gives it
    truth = np.zeros((24, 24), np.int64)
    truth[:, 12:] = 1
    flipped = np.where(rng.random((24, 24)) < 0.3, 1 - truth, truth)
    probabilities = np.stack([np.where(flipped == 0, 0.6, 0.4), np.where(flipped == 1, 0.6, 0.4)])
    assert (probabilities.argmax(axis=0) == truth).mean() < 0.8
    refined = crf.refine(image, probabilities)
    assert refined.shape == (24, 24)
    assert (refined == truth).mean() > 0.98


@needs_crf
def test_crf_maps_have_the_images_size_and_the_models_clusters():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(3, 8, 3, 4)).astype(np.float16)
    images = [rng.integers(0, 256, (6, 8, 3), np.uint8) for _ in range(3)]
    labels = rng.integers(0, 3, size=(3, 6, 8)).astype(np.uint8)
    arrays = initial_arrays(8, 6, 4, seed=0)
    maps = list(crf.crf_cluster_maps(arrays, features, images, batch_size=2))
    assert [m.shape for m in maps] == [(6, 8)] * 3
    assert all(m.max() < len(arrays[CENTROIDS_KEY]) for m in maps)
    evaluation = crf.evaluate_with_crf(arrays, features, labels, images, 3)
    assert evaluation.confusion.shape == (4, 3) and np.isfinite(evaluation.scores.miou)


@pytest.fixture
def camvid_workspace(tmp_path, monkeypatch):
    """A tiny synthetic CamVid (2 clients), downloaded, partitioned and cached."""
    monkeypatch.setattr(CamVid, "split_counts", CAMVID_COUNTS)
    make_camvid(tmp_path / "mirror" / "camvid")
    repo = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["download"]["mirror"] = str(tmp_path / "mirror")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    for stage in ("download", "partition", "features"):
        result = CliRunner().invoke(app, [stage], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return tmp_path


@needs_crf
def test_federate_with_crf_refines_only_the_final_scores_and_says_so(camvid_workspace):
    quick = ["train.local_steps=2", "train.batch_size=2", "federation.rounds=1", "train.knn_k=1"]
    runs = {}
    for name, crf_on in (("plain", "false"), ("crf", "true")):
        overrides = [*quick, "aggregator=fedavg", f"evaluation.crf={crf_on}"]
        args = [arg for item in overrides for arg in ("-S", item)]
        result = CliRunner().invoke(app, ["federate", *args, "--out", f"runs/{name}"])
        assert result.exit_code == 0, result.output
        runs[name] = json.loads((camvid_workspace / f"runs/{name}/metrics.json").read_text())
    plain, refined = runs["plain"], runs["crf"]
    assert plain["crf"] is False and refined["crf"] is True
    assert 0.0 <= refined["miou"] <= 100.0
    # the same trained model: the round's (unrefined) score is the plain run's final score
    rounds = (camvid_workspace / "runs/crf/rounds.csv").read_text().splitlines()
    assert float(rounds[1].split(",")[1]) == pytest.approx(plain["miou"], abs=1e-4)
