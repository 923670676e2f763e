"""Winograd F(4x4, 3x3) in the numba kernel library: the same function as a direct convolution, within a
rounding error measured against the scale of the sum it computes, and picked only where it pays."""

from __future__ import annotations

import numpy as np
import pytest
from numba_helpers import RTOL, build_shared

import cnndsl
from cnndsl import reference
from cnndsl.backends import numba_backend
from cnndsl.reference import random_weights

K = pytest.importorskip("cnndsl.runtime.numba_kernels")

# |error| / conv(|x|, |w|) + |b|: a direct fp32 conv measures ~1e-7; Winograd's transforms (coefficients up
# to 8 in A^T, 5 in B^T) amplify rounding ~30x, measured up to 4.8e-6 (edge tiles of a pad-2 map).
WINOGRAD_REL_ERROR = 2e-5
# What that means for a unit-scale network output next to the reference: up to ~2e-5 absolute where a
# direct conv stays under 1e-5, so specs with Winograd layers are compared with this atol (RTOL unchanged).
WINOGRAD_ATOL = 5e-5


def _conv64(x, w, b, pad):
    """The float64 convolution and the scale of its sums (the same sums over absolute values)."""
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, _, hp, wp = xp.shape
    oh, ow = hp - 2, wp - 2
    y, scale = np.zeros((n, w.shape[0], oh, ow)), np.zeros((n, w.shape[0], oh, ow))
    for ky in range(3):
        for kx in range(3):
            patch = xp[:, :, ky : ky + oh, kx : kx + ow]
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, ky, kx].astype(np.float64))
            scale += np.einsum("nchw,oc->nohw", np.abs(patch), np.abs(w[:, :, ky, kx]).astype(np.float64))
    return y + b[None, :, None, None], scale + np.abs(b)[None, :, None, None]


@pytest.mark.parametrize(
    "cin, cout, h, w, pad, act, images",
    [
        (64, 64, 16, 16, 1, "ACT_RELU", 1),
        (64, 96, 7, 9, 1, "ACT_NONE", 2),  # sizes no multiple of 4: the last tiles stick out; 2 + 1 images
        (80, 64, 13, 5, 0, "ACT_SIGMOID", 3),  # no padding; an activation outside the fused relu
        (64, 64, 10, 11, 2, "ACT_NONE", 4),  # more images per GEMM than the batch has
        (64, 64, 30, 34, 1, "ACT_RELU", 2),
        (3, 5, 6, 6, 1, "ACT_RELU6", 1),  # the kernel is general; the renderer just never picks it this small
    ],
)
@pytest.mark.parametrize("threads", [1, 2])  # serial, and each phase split in two parallel tasks
def test_winograd_is_a_3x3_convolution_within_its_rounding(cin, cout, h, w, pad, act, images, threads):
    rng = np.random.default_rng(cin + h)
    x = rng.standard_normal((3, cin, h, w)).astype(np.float32)
    wt = (rng.standard_normal((cout, cin, 3, 3)) / np.sqrt(9 * cin)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    oh, ow = h + 2 * pad - 2, w + 2 * pad - 2
    y = np.full((3, cout, oh, ow), np.nan, np.float32)
    scratch = np.empty(36 * (cin + cout) * ((oh + 3) // 4) * ((ow + 3) // 4) * images, np.float32)
    K.conv_winograd(x, K.winograd_weights(wt), b, y, scratch, threads, pad, pad, images, getattr(K, act), 0.0)
    want, scale = _conv64(x, wt, b, pad)
    pre = y if act == "ACT_NONE" else None
    if act == "ACT_RELU":
        want = np.maximum(want, 0)
    elif act == "ACT_RELU6":
        want = np.clip(want, 0, 6)
    elif act == "ACT_SIGMOID":
        want = 1 / (1 + np.exp(-want))
    assert np.isfinite(y).all()  # every output pixel written, the clipped edge tiles included
    assert (np.abs(y - want) / scale).max() <= WINOGRAD_REL_ERROR
    if pre is not None:  # and the error is Winograd's, not a wrong tap: far above a direct conv's
        assert (np.abs(pre - want) / scale).max() > 1e-8


def _methods(text: str) -> list[str]:
    net = cnndsl.parse(text)
    convs = [n for n in net.layers if n.op == "conv"]
    return [numba_backend.conv_method(net.node(n.inputs[0]).shape[0], n) for n in convs]


def test_renderer_picks_winograd_where_it_was_measured_to_pay():
    wino = numba_backend.CONV_WINOGRAD
    # every stride-1 3x3 conv of ResNet-18, 512 channels at 7x7 included (even at 2 threads, batch 1; 2.5x at batch 8)
    net = cnndsl.load("specs/resnet18.cnn")
    methods = {
        (n.shape[0], n.shape[1]): numba_backend.conv_method(net.node(n.inputs[0]).shape[0], n)
        for n in net.layers
        if n.op == "conv" and n.attrs["stride"] == (1, 1) and n.attrs["kernel"] == (3, 3)
    }
    assert methods == {(64, 56): wino, (128, 28): wino, (256, 14): wino, (512, 7): wino}
    assert wino not in _methods("input 8x32x32\nconv3x3(32)")  # few channels in: the transforms dominate
    assert wino not in _methods("input 3x32x32\nconv3x3(64)")  # an RGB stem
    assert wino not in _methods("input 64x6x6\nconv3x3(64)")  # two tiles by two
    assert wino not in _methods("input 64x32x32\nconv3x3(64, stride=2) -> conv3x3(64, dilation=2, pad=2)")
    assert wino not in _methods("input 64x32x32\nconv3x3(64, groups=2) -> conv5x5(64)")
    assert _methods("input 64x16x16\nconv3x3(64)") == [wino]


def test_a_spec_with_winograd_layers_agrees_with_the_reference():
    text = "input 64x15x15\nconv3x3(64) -> bn -> relu -> conv3x3(128, pad=2) -> relu -> conv3x3(128) -> gap -> fc(10)"
    net = cnndsl.parse(text)
    assert _methods(text).count(numba_backend.CONV_WINOGRAD) == 3
    model = build_shared(net)
    weights = random_weights(net, 0)
    model.load_state_dict(weights)
    x = np.random.default_rng(0).standard_normal((2, *net.input_shape)).astype(np.float32)
    np.testing.assert_allclose(model(x), reference.run(net, weights, x), rtol=RTOL, atol=WINOGRAD_ATOL)
    source = numba_backend.render(net)
    assert source.count("conv_winograd(") == 4  # three calls and the kernel's definition
    assert "winograd_weights(w)" in source  # transformed once, when weights load
