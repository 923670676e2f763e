"""Every spec in specs/, at a reduced input size, agrees with the reference evaluator on numba."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numba_helpers import ATOL, RTOL, build_shared

import cnndsl
from cnndsl import reference
from cnndsl.reference import random_weights

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.cnn"))


def reduced(path: Path):
    """The spec at 3x32x32 (or its own input when that is smaller or not an image); 64x64 if 32 is too small."""
    net = cnndsl.load(path)
    if len(net.input_shape) != 3 or net.input_shape[1] * net.input_shape[2] <= 32 * 32:
        return net
    for size in (32, 64, 96, 188):  # 188: the smallest input U-Net's valid convs accept
        try:
            return cnndsl.load(path, input_shape=(net.input_shape[0], size, size))
        except cnndsl.CnnError:
            continue
    return net


@pytest.mark.slow
@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_matches_reference(path):
    net = reduced(path)
    model = build_shared(net)
    weights = random_weights(net, 0)
    model.load_state_dict(weights)
    x = np.random.default_rng(0).standard_normal((1, *net.input_shape)).astype(np.float32)
    got, want = model(x), reference.run(net, weights, x)
    if len(net.outputs) == 1:
        got, want = (got,), (want,)
    assert len(got) == len(want) == len(net.outputs)  # several outputs: a tuple, compared output by output
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)
