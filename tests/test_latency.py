"""Latency in PyTorch and ONNX Runtime, and why a student may not be as fast as its mults."""

import io
import warnings

import pytest
import torch
from torch import nn

from recast.latency import explain_speedup, measure_latency_ms, measure_onnx_latency_ms


def _narrow_net() -> nn.Sequential:
    """Many layers with few channels: what a 0.25-width VGG student looks like."""
    layers: list[nn.Module] = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()]
    for _ in range(7):
        layers += [nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def _depthwise_net() -> nn.Sequential:
    """MobileNet-style: depthwise 3x3 (groups == channels) then pointwise 1x1, wide."""
    layers: list[nn.Module] = [nn.Conv2d(3, 128, 3, padding=1)]
    for _ in range(3):
        layers += [nn.Conv2d(128, 128, 3, padding=1, groups=128), nn.Conv2d(128, 128, 1)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def test_torch_latency_restores_threads_and_layout() -> None:
    net = _narrow_net()
    before = torch.get_num_threads()
    assert measure_latency_ms(net, (1, 3, 16, 16), batch=2, repeats=3, threads=1) > 0
    assert measure_latency_ms(net, (1, 3, 16, 16), repeats=3, channels_last=True) > 0
    assert torch.get_num_threads() == before
    assert net[0].weight.is_contiguous()  # the channels_last copy left the module alone


def test_onnx_runtime_latency_at_two_batches() -> None:
    pytest.importorskip("onnxruntime")
    net = _narrow_net().eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, 16, 16),), buffer, dynamo=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    for batch in (1, 4):
        ms = measure_onnx_latency_ms(buffer.getvalue(), (1, 3, 16, 16), batch=batch,
                                     repeats=3, threads=1)
        assert 0 < ms < 10_000


def test_no_explanation_when_the_speedup_is_at_least_half_the_mults_ratio() -> None:
    assert explain_speedup(6.0, 3.0, _narrow_net()) is None
    assert explain_speedup(6.0, 7.5, _depthwise_net()) is None


def test_narrow_layers_are_named() -> None:
    line = explain_speedup(6.2, 1.4, _narrow_net())
    assert line is not None and "\n" not in line
    assert "overhead-bound narrow layers" in line and "8 of 8 convs" in line
    assert "1.40x" in line and "6.20x" in line


def test_depthwise_convs_are_named() -> None:
    line = explain_speedup(8.0, 2.0, _depthwise_net())
    assert line is not None and "\n" not in line
    assert "memory-bound depthwise convs" in line and "3 of 7 convs" in line


def test_other_causes_still_get_one_line() -> None:
    wide = nn.Sequential(nn.Conv2d(3, 256, 3), nn.Conv2d(256, 256, 3))
    line = explain_speedup(4.0, 1.0, wide)
    assert line is not None and "\n" not in line and "mults do not count" in line
