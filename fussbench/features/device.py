"""Where and at which precision the backbone runs while features are cached."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fussbench.errors import FussbenchError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Placement:
    """A resolved ``features.device`` / ``features.precision`` pair.

    Attributes:
        device: where the backbone runs.
        precision: "fp32", "bf16" or "fp16" (autocast dtype of the forward pass).
    """

    device: torch.device
    precision: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for a plain float32 forward pass."""
        return _AUTOCAST_DTYPES.get(self.precision)

    @property
    def pin_memory(self) -> bool:
        """Page-locked host batches, for asynchronous copies to a GPU."""
        return self.device.type == "cuda"


def resolve_placement(device: str, precision: str) -> Placement:
    """Resolve ``auto`` and check the request against this machine.

    ``device: auto`` is the first CUDA GPU when torch sees one, else the CPU.
    ``precision: auto`` is bf16 on a GPU that supports it, fp16 on an older GPU, and
    fp32 on the CPU (where low-precision convolutions are slower, not faster).

    Raises:
        FussbenchError: an unknown name, or ``cuda`` (or a half precision on it) that this
            machine cannot provide; the message names the param and the fix.
    """
    if device not in DEVICES:
        raise FussbenchError(f"unknown features.device '{device}'; valid: {', '.join(DEVICES)}")
    if precision not in PRECISIONS:
        raise FussbenchError(
            f"unknown features.precision '{precision}'; valid: {', '.join(PRECISIONS)}"
        )
    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise FussbenchError(
            "features.device is 'cuda' but torch sees no CUDA GPU on this machine "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); "
            "set features.device to auto or cpu"
        )
    resolved = torch.device(
        "cuda" if device == "cuda" or (device == "auto" and has_cuda) else "cpu"
    )
    if precision == "auto":
        if resolved.type == "cpu":
            precision = "fp32"
        else:
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and resolved.type == "cpu":
        raise FussbenchError(
            "features.precision 'fp16' needs a GPU (CPU autocast supports bf16); "
            "set features.precision to auto, fp32 or bf16"
        )
    return Placement(resolved, precision)
