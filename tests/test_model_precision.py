"""train.precision: bf16 autocast only where the CPU has it, a notice where it does not."""

import dataclasses

import numpy as np
import pytest
from test_model import client, config, train_arrays

from fussbench.model import precision
from fussbench.model.head import initial_arrays


@pytest.fixture(autouse=True)
def fresh_decision():
    precision.use_bf16.cache_clear()
    yield
    precision.use_bf16.cache_clear()


def test_fp32_never_asks_for_autocast(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    assert precision.use_bf16("fp32") is False


def test_bf16_without_native_support_falls_back_with_one_notice(monkeypatch, capsys):
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    assert precision.use_bf16("bf16") is False
    assert precision.use_bf16("bf16") is False
    notices = [line for line in capsys.readouterr().out.splitlines() if "notice:" in line]
    assert len(notices) == 1 and "fp32" in notices[0]


def test_bf16_trains_the_head_under_autocast_where_supported(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    data = client()
    initial = initial_arrays(8, 16, 4, seed=0)
    fp32, fp32_stats = train_arrays(initial, data, config(), seed=1)
    bf16_config = dataclasses.replace(config(), precision="bf16")
    bf16, bf16_stats = train_arrays(initial, data, bf16_config, seed=1)
    assert np.isfinite(bf16_stats.loss)
    assert bf16["centroids"].dtype == np.float32  # the model stays float32
    # same batches and seeds; only the head's arithmetic differs
    assert not np.array_equal(fp32["head.linear.weight"], bf16["head.linear.weight"])
    assert abs(fp32_stats.loss - bf16_stats.loss) < 0.05
