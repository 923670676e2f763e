"""Every op of the CUDA backend against the reference evaluator, on tiny shapes in the simulator."""

from __future__ import annotations

import pytest
from helpers import check_agrees

from cnndsl.backends.lowering import elementwise_ops
from cnndsl.ops import OPS

CASES = {
    # convolution: the tiled direct kernel in its variants, with fused epilogues
    "conv": "input 3x6x6\nconv3x3(4)",
    "conv_stride_no_bias": "input 3x7x7\nconv3x3(5, stride=2, bias=false)",
    "conv_multi_tile": "input 2x10x10\nconv3x3(10, bias=false)",  # 2x2 pixel tiles, 2 channel tiles
    "conv_dilation_chunks": "input 12x8x8\nconv(2, kernel=5, dilation=3)",  # 400-float patch: 2 channel chunks
    "conv_asymmetric": "input 2x5x7\nconv1x7(3, stride=(1, 2))",
    "conv_pad_valid": "input 2x6x6\nconv3x3(3, pad=valid)",
    "conv_groups": "input 4x5x5\nconv3x3(6, groups=2)",
    "conv_depthwise": "input 3x5x5\ndwconv3x3 -> relu6",
    "conv_depthwise_multiplier": "input 2x5x5\ndwconv3x3(2, stride=2)",
    "conv_table": "input 6x5x5\nconv3x3(4, table=[[0, 1], [2, 3, 4], [5], [0, 5]])",
    "conv_bn_relu": "input 3x6x6\nconv3x3(4, bias=false) -> bn -> relu",
    "conv_bias_bn_silu": "input 3x6x6\nconv3x3(4) -> bn -> silu",
    # pooling
    "maxpool": "input 2x7x7\nmaxpool3(stride=2, pad=1)",
    "maxpool_ceil": "input 2x7x7\nmaxpool2(ceil=true)",
    "avgpool_include_pad": "input 2x6x6\navgpool3(stride=2, pad=1)",
    "avgpool_exclude_pad": "input 2x6x6\navgpool3(stride=2, pad=1, include_pad=false)",
    "avgpool_ceil": "input 2x7x7\navgpool2(ceil=true)",
    "gap": "input 3x5x4\ngap",
    "gmp": "input 3x5x4\ngmp",
    "adaptive_avgpool": "input 2x7x5\nadaptive_avgpool((3, 2))",
    # fully connected: the tiled matrix product, over several tiles of features and depth
    "fc": "input 2x6x6\nflatten -> fc(70)",
    "fc_no_bias_bn_gelu": "input 2x3x3\nflatten -> fc(5, bias=false) -> bn -> gelu",
    "fc_after_gap": "input 3x4x4\ngap -> fc(4) -> softmax",
    # batch norm alone (nothing to fold into), flat or not, with and without an activation
    "bn": "input 3x4x4\nmaxpool2 -> bn",
    "bn_hardswish": "input 3x4x4\nmaxpool2 -> bn -> hardswish",
    "bn_flat": "input 2x2x2\nflatten -> bn",
    # merges
    "add_relu": "input 3x4x4\nadd(identity, conv3x3(3), conv1x1(3)) -> relu",
    "residual": "input 3x4x4\nresidual(conv3x3(3) -> bn -> relu -> conv3x3(3) -> bn) -> relu",
    "mul_broadcast": "input 4x5x5\nmul(identity, gap -> conv1x1(4) -> sigmoid)",
    "mul_broadcast_left": "input 4x5x5\nmul(gap -> conv1x1(4) -> hardsigmoid, identity)",
    "concat": "input 2x4x4\nconcat(identity, conv3x3(3), maxpool3(stride=1, pad=1))",
    # the rest
    "softmax_channels": "input 2x3x3\nconv1x1(3) -> softmax",
    "flatten_dropout": "input 2x3x3\nflatten -> dropout(0.5) -> fc(3)",
    # issue 14's ops
    "layernorm_layer_scale": "input 5x3x2\nlayernorm(eps=1e-6) -> layer_scale(0.5) -> stochastic_depth(0.2)",
    "layernorm_flat": "input 2x2x2\nflatten -> layernorm -> layer_scale",
    "slice_shuffle": "input 6x3x3\nconcat(slice(0, 2), slice(2) -> conv1x1(4)) -> shuffle(3)",
    "crop": "input 2x7x6\ncrop((4, 3))",
    "upsample_nearest": "input 2x3x4\nupsample(2) -> upsample(size=(7, 5)) -> upsample(1.5)",
    "upsample_bilinear": "input 2x3x4\nupsample(2, mode=bilinear) -> upsample(size=(5, 9), mode=bilinear, align_corners=true)",
    "convt": "input 4x3x3\nconvt2x2(4, stride=2) -> relu -> convt(4, kernel=3, stride=2, pad=1, output_pad=1, groups=2, bias=false)",
    "convt_dilated": "input 2x3x4\nconvt(3, kernel=(3, 2), stride=(2, 1), dilation=2, pad=(1, 0)) -> silu",
    # many ops in one network, with values that feed several consumers
    "mixed": """input 6x9x9
conv3x3(4, table=[[0, 1], [2, 3, 4], [5], [0, 5]]) -> bn -> relu6 -> maxpool3(stride=2, pad=1, ceil=true)
-> residual(dwconv3x3 -> bn -> hardswish -> conv1x1(4, bias=false) -> bn) -> leaky_relu(0.1)
-> mul(identity, gap -> conv1x1(4) -> sigmoid) -> mul(gmp -> conv1x1(4, groups=2) -> tanh, identity)
-> avgpool2(stride=1, pad=1, include_pad=false)
-> concat(adaptive_avgpool(2), adaptive_avgpool(2) -> silu, identity -> gelu -> adaptive_avgpool(2) -> tanh)
-> flatten -> dropout(0.3) -> fc(7) -> hardsigmoid -> softmax""",
}

ACTIVATIONS = [f"{op}(0.2)" if OPS[op].scalar else op for op in elementwise_ops()]  # every one the op table has


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_agrees_with_reference(name):
    check_agrees(CASES[name])


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_standalone_and_fused(act):
    # Scaled so that every activation's bends (0, +-3, 6) are crossed.
    check_agrees(f"input 2x3x3\nmaxpool1 -> {act} -> conv1x1(2) -> {act}", scale=4.0)
