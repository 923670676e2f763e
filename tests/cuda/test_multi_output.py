"""A network with several outputs on the cuda backend: a tuple in declaration order, host or device."""

from __future__ import annotations

import sys

import numpy as np

import cnndsl
from cnndsl import reference
from cnndsl.backends import build

SPEC = """input 3x6x6
tensor stem = conv3x3(4, bias=false) -> bn -> relu
tensor head = stem -> gap -> fc(3)
tensor side = add(stem -> conv1x1(4), stem) -> relu
output head, side, stem
"""


def test_multi_output_agrees_with_the_reference():
    from numba import cuda

    net = cnndsl.parse(SPEC)
    weights = reference.random_weights(net, 0)
    model = build(net, "cuda").load_state_dict(weights)
    assert sys.modules[type(model).__module__].OUTPUTS == net.outputs
    x = np.random.default_rng(1).normal(size=(2, *net.input_shape)).astype(np.float32)
    got, want = model(x), reference.run(net, weights, x)
    assert isinstance(got, tuple) and len(got) == 3
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
    on_device = model(cuda.to_device(x))
    assert isinstance(on_device, tuple) and all(cuda.devicearray.is_cuda_ndarray(d) for d in on_device)
    for d, g in zip(on_device, got, strict=True):
        np.testing.assert_array_equal(d.copy_to_host(), g)


ALIGNED = """input 2x10x10
tensor c1 = conv3x3(2, pad=valid) -> relu
tensor c2 = c1 -> maxpool2 -> conv1x1(2)
tensor u = concat(c1, c2 -> convt2x2(2, stride=2), align=crop)
tensor p = add(c1 -> conv1x1(2), c2, align=upsample)
output u, p
"""


def test_aligned_merges_with_several_outputs_agree_with_the_reference():
    net = cnndsl.parse(ALIGNED)
    weights = reference.random_weights(net, 3)
    model = build(net, "cuda").load_state_dict(weights)
    x = np.random.default_rng(3).normal(size=(1, *net.input_shape)).astype(np.float32)
    for g, w in zip(model(x), reference.run(net, weights, x), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
