"""Parameters (trainable/frozen), MACs and activation memory."""

from __future__ import annotations

import pytest
from conftest import needs_torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cnndsl
from cnndsl.analysis import activation_bytes, frozen_params, macs, peak_activation, trainable_params
from cnndsl.analysis.figures import Figures


def test_conv_and_fc_macs_follow_the_torchvision_convention():
    net = cnndsl.parse(
        "input 3x32x32\nconv3x3(16, stride=2) -> bn -> relu -> dwconv3x3 -> conv1x1(8, groups=4) -> gap -> fc(10)"
    )
    m = macs(net)
    assert m["conv1"] == 16 * 16 * 16 * 3 * 3 * 3  # Cout*Hout*Wout*(Cin/groups)*kh*kw, bias not counted
    assert m["dwconv1"] == 16 * 16 * 16 * 1 * 3 * 3  # depthwise: groups = channels
    assert m["conv2"] == 8 * 16 * 16 * (16 // 4)
    assert m["fc1"] == 8 * 10
    assert m["bn1"] == m["relu1"] == m["gap1"] == 0


def test_connection_table_counts_connections():
    net = cnndsl.parse("input 3x8x8\nconv(2, kernel=3, table=[[0], [1, 2]])")
    assert macs(net)["conv1"] == 3 * 3 * 3 * 8 * 8


def test_frozen_parameters_split():
    net = cnndsl.parse("input 3x8x8\nblock b(c) { conv3x3(c) -> bn }\nb(4) -> b(4) -> gap -> fc(2)\nfreeze b1")
    t, f = trainable_params(net), frozen_params(net)
    assert f["b1.conv1"] == 3 * 4 * 9 + 4 and f["b1.bn1"] == 8 and t["b1.conv1"] == 0
    assert t["b2.conv1"] == 4 * 4 * 9 + 4 and f["b2.conv1"] == 0
    fig = Figures(net)
    assert fig.total_trainable + sum(f.values()) == fig.total_params


def test_activation_bytes_are_fp32_outputs():
    net = cnndsl.parse("input 3x8x8\nconv3x3(4) -> gap -> fc(2)")
    a = activation_bytes(net)
    assert a["input"] == 4 * 3 * 64 and a["conv1"] == 4 * 4 * 64 and a["fc1"] == 8
    assert Figures(net).total_activation == a["conv1"] + a["gap1"] + a["flatten1"] + a["fc1"]


def test_peak_frees_after_last_use():
    # input 3x8x8 (768 B) -> conv 4x8x8 (1024 B) -> relu (1024 B) -> conv 1x8x8 (256 B)
    net = cnndsl.parse("input 3x8x8\nconv3x3(4) -> relu -> conv3x3(1)")
    peak, during = peak_activation(net)
    assert during["conv1"] == 768 + 1024
    assert during["relu1"] == 1024 + 1024  # the input was freed after conv1
    assert during["conv2"] == 1024 + 256
    assert peak == 2048


def test_peak_keeps_a_residual_input_alive():
    net = cnndsl.parse("input 4x8x8\nresidual(conv3x3(4) -> relu -> conv3x3(4), shortcut=identity)")
    _, during = peak_activation(net)
    b = 4 * 4 * 64
    assert during["relu1"] == 3 * b  # input (held for the add), conv1, relu1
    assert during["add1"] == 3 * b  # input, conv2, add1


# MACs against torch's own count ----------------------------------------------------------------------

CONV = st.builds(
    lambda out, k, s, d, g: f"conv({out * g}, kernel={k}, stride={s}, dilation={d}, groups={g})",
    st.integers(1, 6),
    st.integers(1, 5),
    st.integers(1, 2),
    st.integers(1, 2),
    st.sampled_from([1, 2]),
)
OTHER = st.sampled_from(
    [
        "relu",
        "bn",
        "maxpool2",
        "avgpool3(stride=1, pad=1)",
        "dwconv3x3",
        "dwconv3x3(2)",
        "residual(conv3x3(4) -> relu, shortcut=conv1x1(4))",
        "concat(conv1x1(2), conv3x3(2))",
    ]
)
HEAD = st.sampled_from(["", " -> gap -> fc(7)", " -> fc(5) -> relu -> fc(3)", " -> flatten -> fc(4, bias=false)"])


@needs_torch
@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(st.lists(st.one_of(CONV, OTHER), min_size=1, max_size=5), HEAD, st.integers(8, 24))
def test_macs_equal_torch_flop_counter_halved(layers, head, size):
    import torch
    from ir_functional import run
    from torch.utils.flop_counter import FlopCounterMode

    try:
        net = cnndsl.parse(f"input 2x{size}x{size}\nconv1x1(2) -> " + " -> ".join(layers) + head)
    except cnndsl.CnnError:
        assume(False)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        run(net, torch.ones((1, 2, size, size)))
    assert Figures(net).total_macs * 2 == counter.get_total_flops()
