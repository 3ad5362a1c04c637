"""The arithmetic precision of the matrix products in local training.

``fp32`` everywhere is the reference. ``bf16`` runs the head under CPU autocast (its matrix
products, forward and backward, in bfloat16, accumulated in float32) and the correlations'
products of unit points in bfloat16 too (cosines to about 3 significant digits), and
casts the codes and the correlations back to float32 before any loss or normalisation:
the losses compare cosines of small differences, and computing them in bfloat16 collapsed
the clusters in a trial (see reports/benchmarks.md).
"""

from __future__ import annotations

import functools

import torch


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX); without it
    PyTorch emulates bfloat16 at a small fraction of the float32 speed."""
    cpu = torch.cpu
    return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())


@functools.cache
def use_bf16(precision: str) -> bool:
    """True when the head and the correlations should multiply in bf16 for ``precision``.

    ``bf16`` on a CPU without native bfloat16 falls back to fp32 with a one-line notice
    (printed once per process); see :data:`fussbench.model.config.PRECISIONS`.
    """
    if precision == "fp32":
        return False
    if native_bf16():
        return True
    print(
        "notice: train.precision bf16 needs a CPU with AVX-512 BF16 or AMX; this one has "
        "neither, so local training runs in fp32",
        flush=True,
    )
    return False
