"""The numba backend's threaded paths compute what its serial ones do, and threaded_call keeps BLAS to one
thread for exactly the length of a call.

The property tests' networks are too small to cross the kernels' split thresholds, so this file builds
layers big enough to take every parallel branch (bands of output rows, output channels split over threads,
Winograd's three phases, depthwise, pooling, batch norm, add, mul, fc) and runs each with T = 2 and T = 1.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba_helpers import ATOL, RTOL, build_shared
from test_winograd import WINOGRAD_ATOL

import cnndsl
from cnndsl import reference
from cnndsl.reference import random_weights
from cnndsl.runtime import numba_kernels as K

# Each line takes one of conv_gemm's parallel branches or another kernel's split (thresholds in
# cnndsl/runtime/numba_kernels.py: PARALLEL_MACS, _BAND_COLUMNS); an odd channel count splits im2col unevenly.
SPECS = {
    "bands": "input 3x96x96\nconv7x7(32, stride=2) -> bn -> relu -> maxpool3(stride=2, pad=1) -> conv1x1(64) -> relu6",
    "channel_split": "input 255x14x14\nconv3x3(256, stride=2) -> relu -> conv1x1(640) -> gap -> fc(1000)",
    "winograd": "input 32x40x40\nconv3x3(48) -> bn -> silu -> conv3x3(48) -> sigmoid",
    "depthwise": (
        "input 64x56x56\nconv3x3(64, groups=64) -> relu6 -> conv3x3(64, stride=2, groups=64) -> silu"
        " -> conv5x5(64, stride=2, groups=64) -> hardswish"
    ),
    "same_pool": "input 96x28x28\nmaxpool3(stride=1, pad=1) -> conv1x1(8)",
    "pointwise": "input 24x56x56\nconv1x1(144) -> bn -> relu6 -> conv1x1(22) -> silu",
    "depthwise_blocked": "input 200x14x14\nconv3x3(200, groups=200) -> relu6 -> conv5x5(200, stride=2, groups=200) -> silu",
    "elementwise": (
        "input 64x64x64\n"
        "tensor a = conv1x1(64)\n"
        "tensor g = a -> gap -> conv1x1(64) -> sigmoid\n"
        "tensor m = mul(a, g) -> bn\n"
        "add(m, a) -> relu -> avgpool2"
    ),
}


def _run(model, x, threads: int):
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return model(x)
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_threaded_and_serial_kernels_agree_with_the_reference(name):
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one core: numba cannot run two threads")
    net = cnndsl.parse(SPECS[name])
    model = build_shared(net)
    weights = random_weights(net, 0)
    model.load_state_dict(weights)
    x = np.random.default_rng(1).standard_normal((2, *net.input_shape)).astype(np.float32)
    threaded, serial = _run(model, x, 2), _run(model, x, 1)
    want = reference.run(net, weights, x)
    atol = WINOGRAD_ATOL if name == "winograd" else ATOL
    np.testing.assert_allclose(threaded, want, rtol=RTOL, atol=atol)
    np.testing.assert_allclose(serial, want, rtol=RTOL, atol=atol)
    # split GEMMs block their sums differently: equal within a few ulp, not bit for bit
    np.testing.assert_allclose(threaded, serial, rtol=1e-5, atol=1e-6)


def test_threaded_call_keeps_blas_on_one_thread_for_the_call_only():
    import numba

    K.threaded_call(lambda threads: None)  # the first call finds BLAS's thread-count functions
    blas = K._THREADING["blas"]
    if blas is None or not K._THREADING["cheap"] or numba.get_num_threads() < 2:
        pytest.skip("no settable BLAS or no cheap threading layer here: every call runs serially")
    get, _ = blas
    before = get()
    seen = K.threaded_call(lambda threads: (threads, get()))
    assert seen == (numba.get_num_threads(), 1)
    assert get() == before


def test_threaded_call_runs_serially_without_a_settable_blas(monkeypatch):
    monkeypatch.setitem(K._THREADING, "blas", None)
    monkeypatch.setitem(K._THREADING, "cheap", True)
    assert K.threaded_call(lambda threads: threads) == 1


def test_threaded_call_restores_blas_when_the_forward_raises():
    K.threaded_call(lambda threads: None)
    if K._THREADING["blas"] is None:
        pytest.skip("no settable BLAS here")
    get, _ = K._THREADING["blas"]
    before = get()

    def fail(threads):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        K.threaded_call(fail)
    assert get() == before


@pytest.mark.parametrize(
    "cin, cout, size, kernel, stride",
    [(37, 96, 14, 3, 2), (128, 192, 7, 1, 1), (24, 64, 9, 3, 1)],  # each >= PARALLEL_MACS
    ids=["3x3_stride2", "1x1", "3x3"],
)
def test_few_pixel_convs_in_image_groups_match_the_reference(cin, cout, size, kernel, stride):
    """With scratch for 2.5 images, conv_gemm's few-pixel branch runs a batch of 5 as groups of 2, 2 and 1
    (each group's columns side by side for one GEMM); every image must come out as alone."""
    import numba

    pad = kernel // 2
    net = cnndsl.parse(f"input {cin}x{size}x{size}\nconv{kernel}x{kernel}({cout}, stride={stride}, pad={pad}) -> relu")
    weights = random_weights(net, 3)
    w, b = weights["conv1.weight"], weights["conv1.bias"]
    x = np.random.default_rng(3).standard_normal((5, *net.input_shape)).astype(np.float32)
    want = reference.run(net, weights, x)
    out = want.shape[2]
    per_image = (cin * kernel * kernel + cout) * out * out
    for threads in (2, 1) if numba.config.NUMBA_NUM_THREADS >= 2 else (1,):
        scratch = np.full(per_image * 5 // 2, np.nan, np.float32)  # NaN: a read of unwritten scratch shows
        y = np.full(want.shape, np.nan, np.float32)
        K.conv_gemm(x, w, b, y, scratch, threads, stride, stride, pad, pad, 1, 1, K.ACT_RELU, 0.0)
        np.testing.assert_allclose(y, want, rtol=RTOL, atol=ATOL)
