"""Build a spec with the cuda backend and compare it with the reference evaluator."""

from __future__ import annotations

import numpy as np

import cnndsl
from cnndsl import reference
from cnndsl.backends import build


def check_agrees(spec: str, batch: int = 2, seed: int = 0, rtol: float = 1e-4, atol: float = 1e-4, scale: float = 1.0):
    net = cnndsl.parse(spec)
    weights = reference.random_weights(net, seed)
    model = build(net, "cuda")
    model.load_state_dict(weights)
    x = np.random.default_rng(seed + 1).normal(0.0, scale, size=(batch, *net.input_shape)).astype(np.float32)
    got = model(x)
    want = reference.run(net, weights, x)
    assert got.shape == (batch, *net.output_shape)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * max(1.0, float(np.abs(want).max())))
    return model, net, x, got
