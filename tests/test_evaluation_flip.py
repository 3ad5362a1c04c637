"""Horizontal-flip averaging at evaluation (``evaluation.flip``): the averaging on hand-made
cases, the flipped-feature cache and its errors, and the param."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fussbench.errors import FussbenchError
from fussbench.evaluation import crf
from fussbench.evaluation.flip import FlipPairs
from fussbench.evaluation.predict import evaluate_model, iter_cluster_maps, scored_rows
from fussbench.features.backbones import DenseBackbone
from fussbench.features.cache import FeatureSplit, build_split, open_split
from fussbench.features.flipped import FLIPPED, build_flipped, open_flipped
from fussbench.federation.identity import run_fingerprint
from fussbench.model.head import initial_arrays
from fussbench.params import load_params, parse_params
from fussbench.reporting.tables import final_prediction_notes


def _identity_model(centroids: list[list[float]]) -> dict[str, np.ndarray]:
    """A model whose code is its input (2 channels, D = 2) and whose centroids are given."""
    arrays = initial_arrays(2, 2, len(centroids), seed=0)
    arrays["head.linear.weight"] = np.eye(2, dtype=np.float32)[:, :, None, None]
    arrays["head.linear.bias"] = np.zeros(2, np.float32)
    for key in ("head.nonlinear.2.weight", "head.nonlinear.2.bias"):
        arrays[key] = np.zeros_like(arrays[key])
    arrays["centroids"] = np.asarray(centroids, np.float32)
    return arrays


def _maps(arrays, features, flipped=None) -> np.ndarray:
    rows, score, n_clusters = scored_rows(arrays, features, flipped)
    return np.stack(list(iter_cluster_maps(rows, score, n_clusters, features.shape[2:])))


def test_the_mirror_images_features_decide_the_mirrored_pixel():
    """A 1 x 3 grid whose codes all lean slightly to cluster 0 ([1, 0.9]); the mirror
    image's first column leans hard to cluster 1 ([0, 1]). Averaged with it flipped back,
    the LAST column of the image goes to cluster 1: ½ ([1, 0.9] + [0, 1]) = [0.5, 0.95]."""
    arrays = _identity_model([[1.0, 0.0], [0.0, 1.0]])
    features = np.tile(np.array([1.0, 0.9], np.float32)[None, :, None, None], (1, 1, 1, 3))
    flipped = features.copy()
    flipped[0, :, 0, 0] = [0.0, 1.0]
    assert _maps(arrays, features).tolist() == [[[0, 0, 0]]]
    assert _maps(arrays, features, flipped).tolist() == [[[0, 0, 1]]]


def test_a_mirror_symmetric_image_predicts_as_without_flipping():
    """Features symmetric left to right, and the mirror image's features equal to them:
    the averaged code is the code itself, so every pixel keeps its cluster."""
    rng = np.random.default_rng(0)
    half = rng.normal(size=(3, 8, 4, 3)).astype(np.float16)
    features = np.concatenate([half, half[..., ::-1]], axis=-1)
    labels = rng.integers(0, 3, size=(3, 8, 12)).astype(np.uint8)
    arrays = initial_arrays(8, 6, 4, seed=1)
    plain = evaluate_model(arrays, features, labels, 3)
    averaged = evaluate_model(arrays, features, labels, 3, flipped=features.copy())
    np.testing.assert_array_equal(plain.confusion, averaged.confusion)


def test_flip_pairs_read_both_rows_and_refuse_other_shapes():
    features = np.arange(2 * 3 * 2 * 2, dtype=np.float16).reshape(2, 3, 2, 2)
    pairs = FlipPairs(features, -features)
    assert pairs.shape == (2, 2, 3, 2, 2) and len(pairs) == 2
    np.testing.assert_array_equal(pairs[1:2][:, 1], -features[1:2])
    with pytest.raises(FussbenchError, match="fussbench features --flip"):
        FlipPairs(features, features[:1])


def test_crf_maps_take_the_flip_averaged_probabilities(monkeypatch):
    """With the CRF replaced by the argmax of its probabilities, CRF maps are the plain
    maps, flip-averaged or not (the flip reaches the CRF's unaries)."""
    monkeypatch.setattr(crf, "refine", lambda image, probabilities: probabilities.argmax(0))
    rng = np.random.default_rng(2)
    features = rng.normal(size=(3, 8, 3, 4)).astype(np.float16)
    flipped = rng.normal(size=(3, 8, 3, 4)).astype(np.float16)
    images = [np.zeros((3, 4, 3), np.uint8)] * 3
    arrays = initial_arrays(8, 6, 5, seed=0)
    for mirror in (None, flipped):
        maps = np.stack(list(crf.crf_cluster_maps(arrays, features, images, 2, mirror)))
        np.testing.assert_array_equal(maps, _maps(arrays, features, mirror))
    assert not np.array_equal(_maps(arrays, features), _maps(arrays, features, flipped))


class _BlockMeans(DenseBackbone):
    """A backbone whose features are the means of 8 x 8 pixel blocks (3 channels), which
    commute with mirroring: its flipped features are its features mirrored."""

    def __init__(self) -> None:
        super().__init__("blocks", 3, 8, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))

    def dense(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(pixels, 8)


@pytest.fixture
def camvid_images(tmp_path, monkeypatch):
    """The synthetic CamVid's raw images, in a workspace that is the working directory."""
    from synthetic import CAMVID_COUNTS, make_camvid

    from fussbench.data.camvid import CamVid

    monkeypatch.setattr(CamVid, "split_counts", CAMVID_COUNTS)
    make_camvid(tmp_path / "data/raw/camvid")
    monkeypatch.chdir(tmp_path)
    return load_params(_params_file(tmp_path))


def test_flipped_features_are_the_mirrored_images_features(camvid_images, tmp_path):
    spec, config = camvid_images.dataset_spec(), camvid_images.backbone_config()
    samples = spec.samples(tmp_path / "data/raw/camvid", "test")
    directory = tmp_path / "cache/test"
    build_split(spec, samples, "test", config, _BlockMeans(), directory)
    build_flipped(spec, samples[::-1], "test", config, _BlockMeans(), directory, batch_size=1)
    split = open_split(directory, json.loads((directory / "index.json").read_text())["fingerprint"])
    flipped = open_flipped(split)
    assert flipped.shape == split.features.shape
    np.testing.assert_allclose(flipped, split.features[..., ::-1], atol=1e-3)


def _params_file(root):
    path = root / "params.yaml"
    path.write_text("{}\n")
    return path


def _split(directory, names=("a", "b")) -> FeatureSplit:
    features = np.zeros((len(names), 2, 1, 3), np.float16)
    labels = np.zeros((len(names), 4, 6), np.uint8)
    pooled = np.zeros((len(names), 2), np.float32)
    fingerprint = {"dataset": "camvid", "split": "test", "layers": "16+32"}
    return FeatureSplit(directory, list(names), features, labels, pooled, fingerprint, 0)


def test_missing_or_stale_flipped_features_name_the_command(tmp_path):
    split = _split(tmp_path)
    command = r"fussbench features --flip --dataset camvid -S evaluation\.split=test"
    with pytest.raises(FussbenchError, match=rf"no flipped features.*{command}"):
        open_flipped(split)
    folder = tmp_path / FLIPPED
    folder.mkdir()
    np.save(folder / "features.npy", split.features)
    index = {"fingerprint": {**split.fingerprint, "layers": "16"}, "names": split.names}
    (folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(FussbenchError, match=rf"stale: layers='16'.*{command}"):
        open_flipped(split)
    (folder / "index.json").write_text(json.dumps({**index, "fingerprint": split.fingerprint}))
    assert open_flipped(split).shape == split.features.shape
    with pytest.raises(FussbenchError, match="stale: the samples differ"):
        open_flipped(_split(tmp_path, ("a", "c")))


def test_flip_is_off_by_default_a_bool_and_enters_the_fingerprint_only_when_on(tmp_path):
    path = _params_file(tmp_path)
    params = load_params(path)
    assert params.evaluation.flip is False
    assert run_fingerprint(load_params(path, ["evaluation.flip=false"])) == run_fingerprint(params)
    assert run_fingerprint(load_params(path, ["evaluation.flip=true"])) != run_fingerprint(params)
    with pytest.raises(FussbenchError, match=r"evaluation\.flip must be of type bool"):
        parse_params({"evaluation": {"flip": "yes"}}, "params.yaml")


def test_tables_say_which_methods_flip_averaged():
    import pandas as pd

    results = pd.DataFrame(
        {"method": ["fedavg", "local"], "crf": [False, None], "flip": [True, None]}
    )
    assert final_prediction_notes(results) == [
        "Flip averaging of the final predictions (evaluation.flip): fedavg."
    ]


def test_flip_with_the_online_store_names_both_params(tmp_path):
    from fussbench.run.federate import _open_flipped

    overrides = ["evaluation.flip=true", "features.store=online", "aggregator=fedavg"]
    params = load_params(_params_file(tmp_path), overrides)
    with pytest.raises(FussbenchError, match=r"features\.store: online.*evaluation\.flip: false"):
        _open_flipped(params, _split(tmp_path))
    reference = load_params(_params_file(tmp_path), [*overrides, "aggregator=majority"])
    assert _open_flipped(reference, _split(tmp_path)) is None
