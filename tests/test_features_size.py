"""The size a feature cache will take: computed before writing, equal to what is written,
and a refusal when the disk cannot take it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_workspace import REPO, invoke
from synthetic import CAMVID_COUNTS, make_camvid

from fussbench.data.camvid import CamVid
from fussbench.errors import FussbenchError
from fussbench.features import size as size_module
from fussbench.features.backbones import BackboneConfig, build_backbone, get_entry
from fussbench.features.cache import build_split
from fussbench.features.size import check_free_space, dataset_sizes, npy_nbytes, split_size
from fussbench.features.views import Preprocessing


@pytest.fixture
def camvid(tmp_path, monkeypatch) -> Path:
    """A synthetic CamVid mirror and a workspace whose params.yaml points at it."""
    monkeypatch.setattr(CamVid, "split_counts", CAMVID_COUNTS)
    make_camvid(tmp_path / "mirror" / "camvid")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"]["mirror"] = str(tmp_path / "mirror")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_npy_nbytes_is_the_saved_file_size(tmp_path):
    for shape, dtype in [((3, 5, 2, 7), np.float16), ((0, 4), np.float32), ((11,), np.uint8)]:
        np.save(tmp_path / "a.npy", np.zeros(shape, dtype))
        assert npy_nbytes(shape, np.dtype(dtype)) == (tmp_path / "a.npy").stat().st_size


@pytest.mark.parametrize(
    "preprocessing", [Preprocessing("stego", 32, 48), Preprocessing("resize")], ids=str
)
def test_computed_size_equals_the_bytes_written(camvid, preprocessing):
    """Both splits of a tiny CamVid cache: every .npy file has the computed size."""
    assert invoke("download").exit_code == 0
    spec = CamVid()
    config = BackboneConfig(name="effnet_lite0", pretrained=False, preprocessing=preprocessing)
    backbone = build_backbone(config)
    assert get_entry("effnet_lite0").geometry(config) == (backbone.channels, backbone.stride)
    for split in ("train", "test"):
        samples = spec.samples(Path("data/raw/camvid"), split)
        out = camvid / "cache" / split
        build_split(spec, samples, split, config, backbone, out, 4)
        computed = split_size(
            split,
            len(samples),
            split == "train",
            spec.image_size,
            preprocessing,
            backbone.channels,
            backbone.stride,
        )
        written = {name: (out / name).stat().st_size for name in computed.files()}
        assert written == computed.files()
        assert computed.total_bytes == sum(written.values())
        features = np.load(out / "features.npy", mmap_mode="r")
        assert computed.bytes_per_image * len(samples) == (
            features.nbytes
            + np.load(out / "labels.npy", mmap_mode="r").nbytes
            + np.load(out / "pooled.npy").nbytes
        )


def test_the_issues_vitb8_figure():
    """Five 224-pixel crops at ViT-B/8: 28 x 28 x 768 float16 per crop, about 6 MB per image."""
    channels, stride = get_entry("dino_vitb8").geometry(BackboneConfig(name="dino_vitb8"))
    size = split_size("train", 1, True, (224, 224), Preprocessing("stego"), channels, stride)
    assert (channels, stride, size.views, size.grid) == (768, 8, 5, (28, 28))
    assert 6.0e6 < size.bytes_per_image < 6.4e6


def test_refusal_names_size_free_space_and_the_alternative(tmp_path, monkeypatch):
    sizes = dataset_sizes(CamVid(), {"train": 100, "test": 10}, Preprocessing(), 432, 16)
    free = sum(size.total_bytes for size in sizes) - 1
    usage = shutil.disk_usage(tmp_path)._replace(free=free)
    monkeypatch.setattr(size_module.shutil, "disk_usage", lambda path: usage)
    with pytest.raises(FussbenchError) as error:
        check_free_space(sizes, tmp_path / "not" / "yet")
    message = str(error.value)
    assert "\n" not in message
    assert size_module.human(free + 1) in message and size_module.human(free) in message
    assert "features.store: online" in message and "smaller backbone" in message
    usage = usage._replace(free=free + 1)
    check_free_space(sizes, tmp_path / "not" / "yet")


def test_features_command_prints_sizes_and_refuses_before_writing(camvid, monkeypatch):
    assert invoke("download").exit_code == 0
    usage = shutil.disk_usage(camvid)._replace(free=1000)
    monkeypatch.setattr(size_module.shutil, "disk_usage", lambda path: usage)
    result = invoke("features")
    assert result.exit_code == 2
    assert "per image" in result.output and "train: 3 images x 1 view(s)" in result.output
    assert "features.store: online" in result.output
    assert not Path("data/features").exists()


def test_cache_size_table_covers_every_paper_dataset_backbone_and_preprocessing(tmp_path):
    from fussbench.features.backbones import BACKBONES
    from fussbench.features.size_table import paper_variants, write_report
    from fussbench.params import load_params

    params = load_params(REPO / "params.yaml")
    raw = tmp_path / "cocostuff27"
    lines = write_report(params, tmp_path / "cache_sizes.md", raw)
    assert (tmp_path / "cache_sizes.md").read_text().splitlines() == lines
    variants = paper_variants(params)
    assert [variant.spec.split_counts["train"] for variant in variants[-2:]] == [49629, 12408]
    for variant in variants:
        for backbone in BACKBONES:
            for mode in ("resize", "stego"):
                assert (
                    sum(
                        line.startswith(f"| {variant.label} | {backbone} | {mode} |")
                        for line in lines
                    )
                    == 1
                )
    channels, stride = get_entry("dino_vitb8").geometry(BackboneConfig(name="dino_vitb8"))
    stego = Preprocessing("stego", params.features.train_size, params.features.eval_size)
    expected = split_size("train", 12408, True, (224, 224), stego, channels, stride)
    row = next(
        line
        for line in lines
        if line.startswith("| cocostuff27 (FUSS authors' list) | dino_vitb8 | stego |")
    )
    assert f"| {size_module.human(expected.total_bytes)} |" in row
    assert "clients 0 and 17 as issue 15 gives them" in "\n".join(lines)

    # with the 18 lists present, every client's size is counted from them
    for client in range(18):
        path = raw / "fuss" / "partitioned_splits" / f"train_MA18__client{client}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("000000000025\n" * (client + 1))
    lines = write_report(params, tmp_path / "cache_sizes.md", raw)
    assert (
        "| client 17 (18 images) |"
        in lines[
            lines.index(
                "| backbone | preprocess | "
                + " | ".join(f"client {k} ({k + 1} images)" for k in range(18))
                + " |"
            )
        ]
    )
