"""Every op of the language on the numba backend, against the reference evaluator."""

from __future__ import annotations

import pytest
from numba_helpers import agrees

# Few networks, each covering several ops: every network compiles its own `_forward`.
NETWORKS = {
    "convs": """
input 4x11x9
conv3x3(8, stride=2, bias=false) -> bn -> relu
-> conv(6, kernel=(3, 2), pad=(2, 0), dilation=(2, 1)) -> relu6
-> conv(6, kernel=3, groups=3, stride=(1, 2), pad=1) -> leaky_relu(0.2)
-> dwconv3x3(2, pad=2, dilation=2) -> bn -> tanh
-> conv1x1(5) -> sigmoid
""",
    "table_and_pools": """
input 3x13x13
conv3x3(4, pad=0, table=[[0], [1, 2], [0, 2], [0, 1, 2]]) -> silu
-> maxpool3(stride=2, ceil=true) -> avgpool2(stride=1, pad=1, include_pad=false) -> hardswish
-> avgpool3(stride=2, pad=1, ceil=true) -> hardsigmoid -> maxpool2(stride=1, pad=1)
-> adaptive_avgpool((2, 3)) -> gelu
""",
    "merges": """
input 6x7x7
conv3x3(8) -> bn
-> residual(conv3x3(8) -> relu -> conv3x3(8), shortcut=identity) -> relu
-> add(conv1x1(8), conv3x3(8), identity)
-> concat(conv1x1(3), maxpool3(stride=1, pad=1), avgpool3(stride=1, pad=1) -> conv1x1(2))
-> mul(gap -> conv1x1(13) -> sigmoid, identity, conv1x1(13))
-> mul(gmp, gap) -> flatten -> fc(7)
""",
    "dense_head": """
input 2x6x6
bn -> conv3x3(4) -> gmp -> flatten -> dropout(0.3) -> fc(12) -> bn -> relu -> fc(9, bias=false)
-> leaky_relu(0.1) -> bn -> fc(5) -> softmax
""",
    # The wide-row im2col (stride-1 convs): kernel widths 5, 3 and 2, few or ragged numbers of channels,
    # dilation, different padding per dimension, deep and shallow reductions; 2x2 max pooling on even and
    # odd sizes.
    "wide_convs": """
input 3x13x10
conv5x5(6, pad=2) -> relu -> conv(3, kernel=3, dilation=2, pad=2) -> gelu
-> conv5x5(9, pad=(1, 2)) -> maxpool2 -> conv(5, kernel=(5, 2), pad=(2, 1)) -> maxpool2(ceil=true)
-> conv3x3(24) -> bn -> hardswish -> conv3x3(4)
""",
    # issue 14's ops: ConvNeXt (layernorm, layer_scale, stochastic_depth), ShuffleNet (slice, shuffle),
    # dense prediction (upsample nearest and bilinear, by a factor and to a size, crop, transposed conv)
    "reach": """
input 4x7x6
conv3x3(6) -> layernorm(eps=1e-6) -> layer_scale(0.5) -> stochastic_depth(0.1)
-> concat(slice(0, 3), slice(3) -> conv1x1(3)) -> shuffle(2) -> relu
-> upsample(2) -> crop((11, 9)) -> conv(4, kernel=3, stride=2, groups=2)
-> upsample(size=(9, 7), mode=bilinear) -> upsample(1.5, mode=bilinear, align_corners=true)
-> convt(6, kernel=3, stride=2, pad=1, output_pad=1, groups=2) -> relu -> convt2x2(3, stride=2, bias=false)
-> upsample(size=(13, 20)) -> gap -> flatten -> layernorm -> fc(3)
""",
    # Depthwise convs: the in-place 3x3 kernel on a 15x15 output, the 16-channels-at-a-time one on 14x14
    # and smaller (two tiles of 20 channels, the second with 4 lanes used), at strides 2 and 3, dilation 2,
    # a 5x5 kernel, padding per dimension, and an activation applied after the tile (silu, hardswish).
    "depthwise": """
input 20x15x15
conv3x3(20, groups=20) -> relu6
-> conv(20, kernel=5, groups=20, stride=2, pad=(2, 1)) -> silu
-> conv(20, kernel=3, groups=20, dilation=2, pad=2) -> bn -> relu
-> conv(20, kernel=3, groups=20, stride=3, pad=1) -> hardswish -> conv1x1(6)
""",
    # The in-place 3x3 kernel (pad 1, stride 1 or 2) on odd and even sides, so that the last row or column
    # is a border one or not (9x8 -> 5x4 -> 3x2), down to planes of 3x2 and 2x1 (every output a border
    # one), then a 2x1 -> 2x1 layer, too narrow for it (the wide-row kernel takes it).
    "depthwise3x3": """
input 6x9x8
conv3x3(6, groups=6) -> silu -> conv3x3(6, stride=2, groups=6) -> relu6
-> conv3x3(6, stride=2, groups=6) -> hardswish -> conv3x3(6, groups=6) -> relu
-> conv3x3(6, stride=2, groups=6) -> conv3x3(6, groups=6) -> conv1x1(4)
""",
    # stride 4 on a 56-wide map: the tile holds 34 of the 55 input rows, so it runs in two bands of rows
    "depthwise_bands": """
input 17x56x56
conv(17, kernel=3, groups=17, stride=4, pad=1) -> relu
""",
    # 1x1 convs with few channels on a 56x56 map (conv_pointwise): 6 -> 13 channels (three blocks of four
    # output channels and one left over, one block of four input channels and two left over), 13 -> 3,
    # activations fused (relu6) and applied after the chunk (gelu)
    "pointwise": """
input 6x56x56
conv1x1(13) -> relu6 -> conv1x1(3) -> gelu -> conv1x1(2, stride=2)
""",
    # stride-1 max pools padded to keep the size (flat passes, row ends redone): 3x3, 5x5 on a 4-wide map
    # (every column an edge column), 3x5 and 1x3 windows
    "same_pools": """
input 5x9x4
maxpool3(stride=1, pad=1) -> maxpool5(stride=1, pad=2) -> conv1x1(3)
-> maxpool(kernel=(3, 5), stride=1, pad=(1, 2)) -> maxpool(kernel=(1, 3), stride=1, pad=(0, 1)) -> relu
""",
    # 3x3 max pools by their own passes: stride 2 with the last window clipped (ceil mode, an odd width) or
    # not, padded or not, and stride 1 padded to keep the size down to a 2x2 plane
    "pools3x3": """
input 3x11x10
maxpool3(stride=2, pad=1) -> relu -> conv1x1(3) -> maxpool3(stride=2, ceil=true) -> maxpool3(stride=2, pad=1) -> maxpool3(stride=1, pad=1)
-> maxpool3(stride=2, pad=1) -> maxpool3(stride=1, pad=1) -> conv1x1(4)
""",
    "softmax_map": """
input 3x5x4
conv1x1(4, bias=false) -> softmax -> avgpool2(ceil=true) -> flatten -> relu -> softmax
""",
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_ops_match_reference(name):
    err, out = agrees(NETWORKS[name], seed=1, batch=3)
    assert out.std() > 0, "a constant output would hide errors"


def test_flat_input_network():
    agrees("input 20\nfc(16) -> bn -> silu -> dropout(0.5) -> fc(4) -> softmax")
