"""The cuda model loads weights through the same model API as numba: the same policy applies, checked here
once end to end (tests/test_weights_policy.py covers the cases)."""

from __future__ import annotations

import numpy as np
import pytest

import cnndsl
from cnndsl.backends import build
from cnndsl.reference import random_weights

SPEC = "input 1x6x6\nconv3x3(2) -> bn -> relu -> gap -> fc(3)"
X = np.random.default_rng(0).standard_normal((1, 1, 6, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def net():
    return cnndsl.parse(SPEC)


@pytest.fixture(scope="module")
def model(net):
    return build(net, "cuda")


def test_floating_types_convert_and_others_are_refused(net, model):
    exact = {k: v.astype(np.float16).astype(v.dtype) for k, v in random_weights(net, 1).items()}
    want = model.load_state_dict(exact)(X)
    halves = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in exact.items()}
    np.testing.assert_array_equal(model.load_state_dict(halves)(X), want)
    for bad in (
        exact["fc1.weight"] > 0,
        exact["fc1.weight"].astype(np.complex64),
        exact["fc1.weight"].astype(np.float64) * 1e300,
    ):
        with pytest.raises(ValueError, match="'fc1.weight'") as e:
            model.load_state_dict({**exact, "fc1.weight": bad})
        assert type(e.value).__name__ == "WeightsError"
    with pytest.raises(ValueError, match="must be a mapping"):
        model.load_state_dict([1, 2, 3])
    np.testing.assert_array_equal(model(X), want)  # refused loads left the weights alone


def test_nan_needs_allow_nonfinite_also_through_build(net, tmp_path):
    weights = random_weights(net, 2)
    weights["bn1.running_mean"][0] = np.nan
    path = tmp_path / "w.npz"
    np.savez(path, **weights)
    with pytest.raises(ValueError, match="'bn1.running_mean' has 1 non-finite"):
        build(net, "cuda", weights=path)
    assert np.isnan(build(net, "cuda", weights=str(path), allow_nonfinite=True)(X)).all()
