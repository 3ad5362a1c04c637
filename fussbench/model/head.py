"""The STEGO segmentation head and the cluster centroids, and their array form.

The array form (a flat ``dict[str, np.ndarray]``) is what a client sends to the server and
receives back; nothing else about a client crosses that boundary.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CENTROIDS_KEY = "centroids"
"""Key of the (n_clusters, dim) centroid matrix in a model's array form."""

NONLINEAR_PREFIX = "head.nonlinear."
"""Key prefix of the nonlinear branch, the part FedProx and FedMOON regularise."""

ModelArrays = dict[str, np.ndarray]
"""A model as named float32 arrays: ``head.*`` weights plus ``centroids``."""


def head_arrays(arrays: ModelArrays) -> ModelArrays:
    """The ``head.*`` arrays of a model (every array but ``centroids``)."""
    return {key: value for key, value in arrays.items() if key != CENTROIDS_KEY}


def _pixels(features: torch.Tensor) -> torch.Tensor:
    """Features (B, C, h, w) as a pixel matrix (B·h·w, C)."""
    return features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])


def _maps(pixels: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A pixel matrix (B·h·w, D) back as maps (B, D, h, w) laid out like ``like`` (B, C, h, w),
    a view, no copy (channels-last memory for a contiguous pixel matrix)."""
    batch, _, height, width = like.shape
    return pixels.view(batch, height, width, -1).permute(0, 3, 1, 2)


def _flat(conv: nn.Conv2d) -> torch.Tensor:
    """A 1x1 convolution's weight (C_out, C_in, 1, 1) as a matrix (C_out, C_in)."""
    return conv.weight.flatten(1)


class SegmentationHead(nn.Module):
    """Linear 1x1 projection plus a nonlinear 1x1-ReLU-1x1 branch, summed.

    Maps features (B, C_in, h, w) to codes (B, dim, h, w):
    codes = W_l x + b_l + W_2 relu(W_1 x + b_1) + b_2 at every pixel x. The parameters are
    1x1 convolutions (STEGO's layout, and the keys of the array form), but the forward pass
    runs them as matrix products over the pixel matrix (B·h·w, C_in): on a CPU, PyTorch
    sends a 1x1 convolution of a small batch on one thread to its slowest kernel
    (im2col). Features in channels-last memory give that matrix without a copy; outputs
    are in channels-last memory. The hidden layer's bias and ReLU are applied in place to
    its product (``addmm`` would first copy the bias into a fresh (B·h·w, C_in) output).
    The codes are computed transposed, (dim, B·h·w) = W_l Xᵀ + W_2 Hᵀ + b: a product with
    only dim = 70 output columns runs at about half the speed of one with 70 rows. So the
    codes come back as (B, dim, h, w) views of that (dim, B·h·w) matrix (dim outermost).
    """

    def __init__(self, in_channels: int, dim: int = 70) -> None:
        super().__init__()
        self.linear = nn.Conv2d(in_channels, dim, kernel_size=1)
        self.nonlinear = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(in_channels, dim, kernel_size=1),
        )

    def _hidden(self, pixels: torch.Tensor) -> torch.Tensor:
        """The nonlinear branch's hidden layer relu(W_1 x + b_1), (P, C) from pixels (P, C)."""
        first = self.nonlinear[0]
        hidden = torch.mm(pixels, _flat(first).t())  # bfloat16 under autocast
        return hidden.add_(first.bias.to(hidden.dtype)).relu_()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Codes (B, dim, h, w) of features (B, C_in, h, w)."""
        pixels = _pixels(features)
        last = self.nonlinear[2]
        bias = (self.linear.bias + last.bias).unsqueeze(1)
        codes = torch.addmm(bias, _flat(self.linear), pixels.t())  # (dim, B·h·w)
        codes = torch.addmm(codes, _flat(last), self._hidden(pixels).t())
        return _maps(codes.t(), features)

    def nonlinear_branch(self, features: torch.Tensor) -> torch.Tensor:
        """The nonlinear branch's output (B, dim, h, w) alone, for FedMOON's term."""
        last = self.nonlinear[2]
        return _maps(F.linear(self._hidden(_pixels(features)), _flat(last), last.bias), features)


class SegmentationModel(nn.Module):
    """A head and its cluster centroids (n_clusters, dim): everything a client trains."""

    def __init__(self, in_channels: int, dim: int, n_clusters: int) -> None:
        super().__init__()
        self.head = SegmentationHead(in_channels, dim)
        self.centroids = nn.Parameter(torch.randn(n_clusters, dim))

    @property
    def n_clusters(self) -> int:
        return self.centroids.shape[0]

    @classmethod
    def from_arrays(cls, arrays: ModelArrays) -> SegmentationModel:
        """Rebuild a model from its array form (shapes give the sizes)."""
        dim, in_channels = arrays["head.linear.weight"].shape[:2]
        model = cls(in_channels, dim, arrays[CENTROIDS_KEY].shape[0])
        model.load_arrays(arrays)
        return model

    def to_arrays(self) -> ModelArrays:
        """Copy of every parameter as float32 numpy arrays, keyed by parameter name."""
        return {
            name: tensor.detach().cpu().numpy().astype(np.float32, copy=True)
            for name, tensor in self.state_dict().items()
        }

    def load_arrays(self, arrays: ModelArrays) -> None:
        """Overwrite every parameter from ``arrays`` (same keys and shapes as ``to_arrays``)."""
        state = {name: torch.from_numpy(np.asarray(value)) for name, value in arrays.items()}
        self.load_state_dict(state, strict=True)


def initial_arrays(in_channels: int, dim: int, n_clusters: int, seed: int) -> ModelArrays:
    """The seeded initial model shared by every client, centroids ~ randn(n_clusters, dim)."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = SegmentationModel(in_channels, dim, n_clusters)
    finally:
        torch.random.set_rng_state(generator_state)
    return model.to_arrays()
