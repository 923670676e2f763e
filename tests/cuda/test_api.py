"""The CUDA model API: the numba backend's API (weights, loading, input checks) plus device arrays."""

from __future__ import annotations

import numpy as np
import pytest

import cnndsl
from cnndsl.backends import build
from cnndsl.reference import random_weights

SPEC = "input 3x5x5\nconv3x3(4, bias=false) -> bn -> relu -> gap -> fc(3)"


@pytest.fixture(scope="module")
def net():
    return cnndsl.parse(SPEC)


@pytest.fixture()
def model(net):
    return build(net, "cuda").load_state_dict(random_weights(net))


def _x(n=2):
    return np.random.default_rng(7).normal(size=(n, 3, 5, 5)).astype(np.float32)


def test_device_array_in_gives_device_array_out(model):
    from numba import cuda

    x = _x()
    d = model(cuda.to_device(x))
    assert cuda.devicearray.is_cuda_ndarray(d)
    np.testing.assert_array_equal(d.copy_to_host(), model(x))


def test_device_outputs_are_not_overwritten_by_the_next_call(model):
    from numba import cuda

    first = model(cuda.to_device(_x()))
    kept = first.copy_to_host()
    model(cuda.to_device(-_x()))
    np.testing.assert_array_equal(first.copy_to_host(), kept)


def test_buffers_are_allocated_once_per_batch_size(model):
    model(_x(2))
    buffers = model._device_buffers(2)
    model(_x(2))
    assert model._device_buffers(2) is buffers
    assert model(_x(1)).shape == (1, 3)
    assert model._device_buffers(1)["relu1"].shape == (1, 4, 5, 5)


def test_state_dict_round_trip_and_files(model, net, tmp_path):
    want = model(_x())
    state = model.state_dict()
    assert set(state) == set(model.WEIGHTS)
    other = build(net, "cuda")
    assert not np.allclose(other(_x()), want)
    np.testing.assert_array_equal(other.load_state_dict(state)(_x()), want)
    np.savez(tmp_path / "w.npz", **state)
    np.testing.assert_array_equal(build(net, "cuda").load(tmp_path / "w.npz")(_x()), want)
    from safetensors.numpy import save_file

    save_file(state, str(tmp_path / "w.safetensors"))
    np.testing.assert_array_equal(build(net, "cuda").load(tmp_path / "w.safetensors")(_x()), want)


def test_loading_refolds_batch_norm(model):
    before = model(_x())
    state = model.state_dict()
    state["bn1.running_mean"] = state["bn1.running_mean"] + 1.0
    assert not np.allclose(model.load_state_dict(state)(_x()), before)


def test_seeded_init_is_deterministic(net):
    a, b, c = build(net, "cuda", seed=3), build(net, "cuda", seed=3), build(net, "cuda", seed=4)
    np.testing.assert_array_equal(a(_x()), b(_x()))
    assert not np.allclose(a(_x()), c(_x()))


def test_bad_weights_are_all_reported(model):
    module = type(model)
    state = model.state_dict()
    del state["conv1.weight"]
    state["fc1.bias"] = np.zeros(5, np.float32)
    state["nope"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError) as e:
        model.load_state_dict(state)
    assert type(e.value).__name__ == "WeightsError" and module.__module__
    for needle in ("conv1.weight", "fc1.bias", "nope"):
        assert needle in str(e.value)


def test_bad_inputs_are_rejected(model):
    from numba import cuda

    with pytest.raises(ValueError, match="3x5x5"):
        model(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="float32"):
        model(np.zeros((1, 3, 5, 5), np.float64))
    with pytest.raises(ValueError, match="device array"):
        model(cuda.to_device(np.zeros((1, 3, 4, 4), np.float32)))


def test_generated_module_runs_alone_in_a_fresh_process(net, tmp_path):
    """The module file needs numpy and numba only: it never imports cnndsl (or torch)."""
    import os
    import subprocess
    import sys

    from cnndsl.backends import render

    (tmp_path / "tiny_cuda.py").write_text(render(net, "cuda"))
    code = (
        "import sys, numpy as np, tiny_cuda\n"
        "y = tiny_cuda.Model(seed=5)(np.ones((2, 3, 5, 5), np.float32))\n"
        "assert y.shape == (2, 3) and np.isfinite(y).all()\n"
        "assert not [m for m in sys.modules if m.startswith(('cnndsl', 'torch'))], 'imported cnndsl or torch'\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "NUMBA_ENABLE_CUDASIM": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr
