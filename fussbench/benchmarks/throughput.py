"""How fast local training runs, against what the CPU can do for the head's shapes.

A training step's floating-point work is dominated by the head's matrix products over the
pixels of the batch and its kNN partners, plus the correlations of sampled points. This
module counts that work from the shapes, times real steps, and times one matrix product of
the head's largest shape in the same process, threads and precision, so that a step's
speed can be read as a fraction of the machine's reachable rate (noise on a shared machine
moves both alike). It also clocks every operation inside real steps, to show how much of a
step the matrix products are, what fraction the step would reach if nothing else took
time, and which operations take the rest.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch._ops import OpOverload, OpOverloadPacket
from torch.utils._python_dispatch import TorchDispatchMode

from fussbench.model.config import TrainConfig
from fussbench.model.head import SegmentationModel, initial_arrays
from fussbench.model.training import ClientData, train_locally

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def step_flops(config: TrainConfig, channels: int, dim: int, map_pixels: int) -> float:
    """Floating-point operations of one training step (forward and backward).

    Args:
        config: batch size B, sampled grid side S and negatives of local training.
        channels: C, the feature channels (the head's input and hidden width).
        dim: D, the code dimension.
        map_pixels: h·w, pixels of one cached feature map.

    The head runs on P = 2·B·h·w pixels (batch and partners): forward 2P(C² + 2CD), backward
    2P(C² + 3CD) (no gradient reaches the frozen features). Each of the 2 + negatives
    pairings correlates B·S²·S² point pairs: features 2C FLOPs each, codes 2D forward and
    4D backward.
    """
    pixels = 2 * config.batch_size * map_pixels
    head = 2 * pixels * (2 * channels**2 + 5 * channels * dim)
    point_pairs = config.batch_size * config.feature_samples**4
    correlations = (2 + config.n_negatives) * point_pairs * (2 * channels + 6 * dim)
    return float(head + correlations)


def matmul_rate(pixels: int, channels: int, precision: str, seconds: float = 1.0) -> float:
    """GFLOP/s of the head's largest product, (pixels, C) by (C, C), in ``precision``,
    repeated for about ``seconds``."""
    generator = torch.Generator().manual_seed(0)
    dtype = DTYPES[precision]
    left = torch.randn(pixels, channels, generator=generator).to(dtype)
    right = torch.randn(channels, channels, generator=generator).to(dtype)
    left @ right  # warm-up
    repeats, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or repeats < 3:
        left @ right
        repeats += 1
    elapsed = time.perf_counter() - started
    return 2.0 * pixels * channels**2 * repeats / elapsed / 1e9


PRODUCTS = frozenset(
    {
        torch.ops.aten.mm,
        torch.ops.aten.addmm,
        torch.ops.aten.bmm,
        torch.ops.aten.baddbmm,
        torch.ops.aten.addbmm,
    }
)
"""The ATen matrix products, forward and backward (:attr:`OpClock.product_seconds`)."""


class OpClock(TorchDispatchMode):
    """While active, counts every ATen operation's calls and adds up its wall time, keyed
    by the operation (``torch.ops.aten.mm``, ...), backward ones included (the CPU autograd
    engine runs them on the calling thread).

    Each call is timed around its kernel alone (an operation a kernel calls inside it is
    part of that kernel's time), so the clock's own per-call cost (every operation passes
    through Python while it is active) is in no entry; it slows the steps it watches,
    which is why :func:`training_throughput` times them separately.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[OpOverloadPacket] = Counter()
        self.seconds: Counter[OpOverloadPacket] = Counter()

    def __torch_dispatch__(
        self,
        func: OpOverload,
        types: tuple[type, ...],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        started = time.perf_counter()
        result = func(*args, **(kwargs or {}))
        self.seconds[func.overloadpacket] += time.perf_counter() - started
        self.calls[func.overloadpacket] += 1
        return result

    @property
    def product_seconds(self) -> float:
        """Seconds in the matrix products (:data:`PRODUCTS`)."""
        return sum(self.seconds[product] for product in PRODUCTS)

    def slowest(self, count: int) -> dict[str, float]:
        """The ``count`` operations that took longest, name (``aten.mm``) → seconds."""
        return {str(op): seconds for op, seconds in self.seconds.most_common(count)}


@dataclass(frozen=True)
class Throughput:
    """Measured speed of local training in one precision.

    Attributes:
        steps_per_s: training steps per second.
        gflops: the steps' rate in GFLOP/s (:func:`step_flops` per step).
        matmul_gflops: the head's largest matrix product alone, same threads and precision.
        product_s_per_step: seconds per step inside matrix products (:class:`OpClock`, the
            same number of steps, same seed).
        slowest_ops: the operations that took longest in those steps, name → seconds per
            step, longest first.
    """

    steps_per_s: float
    gflops: float
    matmul_gflops: float
    product_s_per_step: float
    slowest_ops: dict[str, float]

    @property
    def peak_fraction(self) -> float:
        """The steps' FLOP rate as a fraction of the matrix product's."""
        return self.gflops / self.matmul_gflops

    @property
    def product_share(self) -> float:
        """The fraction of a step's time spent in its matrix products."""
        return self.product_s_per_step * self.steps_per_s

    @property
    def product_bound(self) -> float:
        """The :attr:`peak_fraction` a step would reach if everything but its matrix
        products took no time: peak_fraction / product_share."""
        return self.peak_fraction / self.product_share

    @property
    def slowest_op_shares(self) -> dict[str, float]:
        """:attr:`slowest_ops` as fractions of a step's time."""
        return {name: seconds * self.steps_per_s for name, seconds in self.slowest_ops.items()}


SLOWEST_OPS = 8
"""How many operations :func:`training_throughput` lists in :attr:`Throughput.slowest_ops`."""


def training_throughput(
    data: ClientData, config: TrainConfig, dim: int, n_clusters: int, precision: str, seed: int = 0
) -> Throughput:
    """Time ``config.local_steps`` training steps on ``data`` in ``precision`` (after a
    warm-up of a few steps), the matrix product they are compared with, and the time the
    same steps spend in each operation (timed again under an :class:`OpClock`)."""
    config = replace(config, precision=precision)
    initial = initial_arrays(data.channels, dim, n_clusters, seed)
    train_locally(
        SegmentationModel.from_arrays(initial), data, replace(config, local_steps=3), seed
    )
    stats = train_locally(SegmentationModel.from_arrays(initial), data, config, seed)
    with OpClock() as clock:
        train_locally(SegmentationModel.from_arrays(initial), data, config, seed)
    map_pixels = int(np.prod(data.batch(np.arange(1)).shape[2:]))
    steps_per_s = config.local_steps / stats.seconds
    flops = step_flops(config, data.channels, dim, map_pixels)
    pixels = 2 * config.batch_size * map_pixels
    return Throughput(
        steps_per_s=steps_per_s,
        gflops=steps_per_s * flops / 1e9,
        matmul_gflops=matmul_rate(pixels, data.channels, precision),
        product_s_per_step=clock.product_seconds / config.local_steps,
        slowest_ops={
            name: seconds / config.local_steps
            for name, seconds in clock.slowest(SLOWEST_OPS).items()
        },
    )
