"""What ``fussbench bench`` reads a training step against: its FLOP count and the clock
of its matrix products."""

import numpy as np
import pytest
import torch
from synthetic import ROUND_CONFIG

from fussbench.benchmarks.throughput import ProductClock, Throughput, step_flops
from fussbench.model.config import CorrespondenceWeights, TrainConfig
from fussbench.model.head import SegmentationModel, initial_arrays
from fussbench.model.training import ClientData, train_locally


def test_the_clock_counts_forward_and_backward_products_only():
    weight = torch.randn(64, 64, requires_grad=True)
    inputs = torch.randn(32, 64)
    with ProductClock() as clock:
        (inputs @ weight).relu().sum().backward()  # mm forward, mm for the weight's gradient
    assert clock.calls == 2
    assert clock.seconds > 0
    with ProductClock() as elementwise:
        (inputs.relu() * 2).sum()
    assert elementwise.calls == 0 and elementwise.seconds == 0


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
    with ProductClock() as clock:
        train_locally(clocked, data, config, seed=1)
    for key, value in plain.to_arrays().items():
        np.testing.assert_array_equal(clocked.to_arrays()[key], value, err_msg=key)
    assert clock.calls > 0 and clock.calls % config.local_steps == 0


def test_share_and_bound_follow_from_the_timings():
    speed = Throughput(steps_per_s=10.0, gflops=50.0, matmul_gflops=100.0, product_s_per_step=0.06)
    assert speed.peak_fraction == pytest.approx(0.5)
    assert speed.product_share == pytest.approx(0.6)
    assert speed.product_bound == pytest.approx(0.5 / 0.6)


def test_step_flops_counts_the_head_and_the_correlations():
    weights = CorrespondenceWeights(1, 1, 1, 0, 0, 0)
    config = TrainConfig(50, 8, 1e-3, 1e-3, 11, 5, 5, 0.1, weights)
    flops = step_flops(config, channels=432, dim=70, map_pixels=300)
    head = 2 * 4800 * (2 * 432**2 + 5 * 432 * 70)
    assert flops == pytest.approx(head + 7 * 8 * 11**4 * (2 * 432 + 6 * 70))
    assert 5.5e9 < flops < 6.5e9  # the "about 6 GFLOP" of a lite0 16+32 step
