"""ConvNeXt-T and ShuffleNet V2 (issue 14's specs) on the CUDA backend at 3x32x32, against the reference.

32x32 is the smallest input both take down to 1x1 (ConvNeXt's stem strides 4, three downsamplings 2):
every layer runs, with the published widths, in the simulator's one Python thread per CUDA thread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cnndsl
from cnndsl import reference
from cnndsl.backends import build

SPECS = Path(__file__).resolve().parent.parent.parent / "specs"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["shufflenet_v2_x1_0", "convnext_tiny"])
def test_spec_agrees_with_reference_at_32x32(name):
    net = cnndsl.load(SPECS / f"{name}.cnn", input_shape=(3, 32, 32))
    weights = reference.random_weights(net, 0)
    model = build(net, "cuda")
    model.load_state_dict(weights)
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    want = reference.run(net, weights, x)
    np.testing.assert_allclose(model(x), want, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(want).max())))
