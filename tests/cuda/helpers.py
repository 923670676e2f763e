"""Build a spec with the cuda backend and compare it with the reference evaluator."""

from __future__ import annotations

import numpy as np

import cnndsl
from cnndsl import reference
from cnndsl.backends import build


def weights_of(net, seed=0):
    """Seeded weights in the shared naming: He-scaled kernels (so deep nets stay O(1)), batch norm off identity."""
    from cnndsl.analysis.params import weight_specs

    rng = np.random.default_rng(seed)
    out = {}
    for name, spec in weight_specs(net).items():
        if spec.dtype != "float32":
            out[name] = np.zeros(spec.shape, spec.dtype)
        elif name.endswith("running_var") or (name.endswith(".weight") and spec.init == "ones"):
            out[name] = rng.uniform(0.5, 1.5, spec.shape).astype(np.float32)
        elif isinstance(spec.init, int):
            out[name] = rng.normal(0.0, np.sqrt(2.0 / spec.init), spec.shape).astype(np.float32)
        else:
            out[name] = rng.normal(0.0, 0.2, spec.shape).astype(np.float32)
    return out


def check_agrees(spec: str, batch: int = 2, seed: int = 0, rtol: float = 1e-4, atol: float = 1e-4, scale: float = 1.0):
    net = cnndsl.parse(spec)
    weights = weights_of(net, seed)
    model = build(net, "cuda")
    model.load_state_dict(weights)
    x = np.random.default_rng(seed + 1).normal(0.0, scale, size=(batch, *net.input_shape)).astype(np.float32)
    got = model(x)
    want = reference.run(net, weights, x)
    assert got.shape == (batch, *net.output_shape)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * max(1.0, float(np.abs(want).max())))
    return model, net, x, got
