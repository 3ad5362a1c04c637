"""What ``fussbench bench`` reads a training step against: its FLOP count and the clock
of its operations."""

import numpy as np
import pytest
import torch
from synthetic import ROUND_CONFIG

from fussbench.benchmarks.throughput import PRODUCTS, OpClock, Throughput, step_flops
from fussbench.model.config import CorrespondenceWeights, TrainConfig
from fussbench.model.head import SegmentationModel, initial_arrays
from fussbench.model.training import ClientData, train_locally


def test_the_clock_counts_every_operation_backward_included():
    aten = torch.ops.aten
    weight = torch.randn(64, 64, requires_grad=True)
    inputs = torch.randn(32, 64)
    with OpClock() as clock:
        (inputs @ weight).relu().sum().backward()  # mm forward, mm for the weight's gradient
    assert clock.calls[aten.mm] == 2
    assert clock.calls[aten.relu] == 1 and clock.calls[aten.threshold_backward] == 1
    assert clock.product_seconds == clock.seconds[aten.mm] > 0
    assert set(clock.slowest(2)) <= {str(op) for op in clock.seconds}
    assert len(clock.slowest(2)) == 2
    with OpClock() as elementwise:
        (inputs.relu() * 2).sum()
    assert elementwise.product_seconds == 0 and aten.mm not in elementwise.calls
    assert sum(elementwise.calls.values()) == 3


def _client() -> ClientData:
    generator = np.random.default_rng(0)
    features = generator.standard_normal((6, 8, 5, 5)).astype(np.float32)
    return ClientData.from_cache(features, features.mean(axis=(2, 3)), knn_k=2)


def test_training_under_the_clock_trains_the_same_model():
    config = ROUND_CONFIG
    data = _client()
    initial = initial_arrays(data.channels, 4, 3, seed=0)
    plain = SegmentationModel.from_arrays(initial)
    train_locally(plain, data, config, seed=1)
    clocked = SegmentationModel.from_arrays(initial)
    with OpClock() as clock:
        train_locally(clocked, data, config, seed=1)
    for key, value in plain.to_arrays().items():
        np.testing.assert_array_equal(clocked.to_arrays()[key], value, err_msg=key)
    products = sum(clock.calls[product] for product in PRODUCTS)
    assert products > 0 and products % config.local_steps == 0


def test_share_and_bound_follow_from_the_timings():
    speed = Throughput(
        steps_per_s=10.0,
        gflops=50.0,
        matmul_gflops=100.0,
        product_s_per_step=0.06,
        slowest_ops={"aten.mm": 0.05, "aten.copy_": 0.01},
    )
    assert speed.peak_fraction == pytest.approx(0.5)
    assert speed.product_share == pytest.approx(0.6)
    assert speed.product_bound == pytest.approx(0.5 / 0.6)
    assert speed.slowest_op_shares == pytest.approx({"aten.mm": 0.5, "aten.copy_": 0.1})


def test_step_flops_counts_the_head_and_the_correlations():
    weights = CorrespondenceWeights(1, 1, 1, 0, 0, 0)
    config = TrainConfig(50, 8, 1e-3, 1e-3, 11, 5, 5, 0.1, weights)
    flops = step_flops(config, channels=432, dim=70, map_pixels=300)
    head = 2 * 4800 * (2 * 432**2 + 5 * 432 * 70)
    assert flops == pytest.approx(head + 7 * 8 * 11**4 * (2 * 432 + 6 * 70))
    assert 5.5e9 < flops < 6.5e9  # the "about 6 GFLOP" of a lite0 16+32 step
