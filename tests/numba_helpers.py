"""Shared helpers for the numba backend tests: one compiled kernel library for every test network."""

from __future__ import annotations

import numpy as np

import cnndsl
from cnndsl import reference
from cnndsl.backends import import_source, numba_backend
from cnndsl.reference import random_weights

RTOL, ATOL = 1e-4, 1e-5


def build_shared(net):
    """A model whose module imports cnndsl's kernel library instead of copying it, so every test network
    reuses the kernels compiled (and cached) once; only each network's small `_forward` is compiled."""
    module = import_source(numba_backend.render(net, inline_kernels=False), "numba")
    return numba_backend.instantiate(module)


def agrees(text: str, seed: int = 0, batch: int = 2) -> tuple[float, np.ndarray]:
    """Run spec text on numba and the reference with the same random weights and input; return max error."""
    net = cnndsl.parse(text)
    model = build_shared(net)
    weights = random_weights(net, seed)
    model.load_state_dict(weights)
    x = np.random.default_rng(seed).standard_normal((batch, *net.input_shape)).astype(np.float32)
    got = model(x)
    want = reference.run(net, weights, x)
    assert got.shape == want.shape == (batch, *net.output_shape)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    return float(np.abs(got - want).max()), got
