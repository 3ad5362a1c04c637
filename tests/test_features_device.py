"""features.device / features.precision: resolution and the clear errors."""

import pytest
import torch

from fussbench.errors import FussbenchError
from fussbench.features.device import resolve_placement


def test_auto_is_cpu_fp32_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    placement = resolve_placement("auto", "auto")
    assert placement.device.type == "cpu" and placement.precision == "fp32"
    assert placement.autocast_dtype is None and not placement.pin_memory


def test_auto_prefers_bf16_on_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    placement = resolve_placement("auto", "auto")
    assert placement.device.type == "cuda" and placement.autocast_dtype == torch.bfloat16
    assert placement.pin_memory
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_placement("cuda", "auto").precision == "fp16"


def test_cuda_without_a_gpu_names_the_param_and_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(FussbenchError, match=r"features\.device is 'cuda'.*auto or cpu"):
        resolve_placement("cuda", "auto")


@pytest.mark.parametrize(
    ("device", "precision", "fragment"),
    [
        ("tpu", "auto", r"features\.device 'tpu'.*auto, cpu, cuda"),
        ("cpu", "int8", r"features\.precision 'int8'"),
        ("cpu", "fp16", r"fp16' needs a GPU"),
    ],
)
def test_bad_device_or_precision(device, precision, fragment):
    with pytest.raises(FussbenchError, match=fragment):
        resolve_placement(device, precision)


def test_bf16_on_the_cpu_is_allowed_and_autocasts():
    placement = resolve_placement("cpu", "bf16")
    assert placement.autocast_dtype == torch.bfloat16
