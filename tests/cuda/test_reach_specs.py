"""Issue 14's specs on the CUDA backend, in the simulator, against the reference.

ShuffleNet V2 1.0x runs whole at 3x32x32 (every layer, down to 1x1). ConvNeXt-T at 32x32 is still
91 M multiply-adds, about 40 minutes of the simulator's one Python thread per CUDA thread, so it is
built whole (module rendered, weights loaded) and run as the same spec at an eighth of its widths:
every layer kind and launch of ConvNeXt, in the same order, in a minute.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cnndsl
from cnndsl import reference
from cnndsl.backends import build

SPECS = Path(__file__).resolve().parent.parent.parent / "specs"


def _agrees(net, seed: int = 0):
    weights = reference.random_weights(net, seed)
    model = build(net, "cuda")
    model.load_state_dict(weights)
    x = np.random.default_rng(1).standard_normal((1, *net.input_shape)).astype(np.float32)
    want = reference.run(net, weights, x)
    np.testing.assert_allclose(model(x), want, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(want).max())))


@pytest.mark.slow
def test_shufflenet_v2_agrees_with_reference_at_32x32():
    _agrees(cnndsl.load(SPECS / "shufflenet_v2_x1_0.cnn", input_shape=(3, 32, 32)))


def _narrow_convnext() -> str:
    """specs/convnext_tiny.cnn with every width divided by 8 (96 -> 12, ..., 768 -> 96)."""
    text = (SPECS / "convnext_tiny.cnn").read_text()
    # narrowest first, so that a width already divided is not divided again
    for wide, narrow in (("(96,", "(12,"), ("conv4x4(96", "conv4x4(12"), ("192", "24"), ("384", "48"), ("768", "96")):
        text = text.replace(wide, narrow)
    return "\n".join(line for line in text.splitlines() if not line.startswith("expect"))


def test_convnext_tiny_builds_whole():
    net = cnndsl.load(SPECS / "convnext_tiny.cnn", input_shape=(3, 32, 32))
    model = build(net, "cuda")
    model.load_state_dict(reference.random_weights(net, 0))


@pytest.mark.slow
def test_convnext_tiny_at_an_eighth_of_its_widths_agrees_with_reference_at_32x32():
    net = cnndsl.parse(_narrow_convnext(), input_shape=(3, 32, 32))
    assert [n.shape[0] for n in net.layers if n.op == "add"][::3] == [12, 24, 48, 48, 48, 96]
    _agrees(net)
