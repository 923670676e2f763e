"""The numba backend's model API: weights in and out, errors, determinism, a standalone generated module."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba_helpers import ATOL, RTOL, build_shared

import cnndsl
from cnndsl import reference
from cnndsl.backends import numba_backend
from cnndsl.reference import random_weights

SPEC = """
network tiny
input 2x7x6
conv3x3(4, bias=false) -> bn -> relu -> maxpool2(ceil=true) -> conv1x1(3) -> bn
-> flatten -> fc(5) -> softmax
"""


@pytest.fixture(scope="module")
def net():
    return cnndsl.parse(SPEC)


@pytest.fixture(scope="module")
def model(net):
    return build_shared(net)


def test_state_dict_round_trip_and_names(net, model):
    weights = random_weights(net, 3)
    model.load_state_dict(weights)
    sd = model.state_dict()
    assert list(sd) == list(weights)
    for k in weights:
        np.testing.assert_array_equal(sd[k], weights[k])
    assert sd["bn1.num_batches_tracked"].dtype == np.int64


def test_batch_norm_bookkeeping_counter_is_optional(net, model):
    weights = {k: v for k, v in random_weights(net, 4).items() if not k.endswith("num_batches_tracked")}
    model.load_state_dict(weights)
    x = np.ones((1, 2, 7, 6), np.float32)
    np.testing.assert_allclose(model(x), reference.run(net, weights, x), rtol=RTOL, atol=ATOL)


def test_bad_weights_listed_together(net, model):
    weights = random_weights(net, 0)
    del weights["conv1.weight"], weights["bn2.running_var"]
    weights["fc1.weight"] = np.zeros((5, 99), np.float32)
    weights["conv9.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError) as e:
        model.load_state_dict(weights)
    assert type(e.value).__name__ == "WeightsError"
    msg = str(e.value)
    assert "4 problem(s)" in msg
    for part in (
        "missing key 'conv1.weight'",
        "missing key 'bn2.running_var'",
        "unexpected key 'conv9.weight'",
        "'fc1.weight' has shape (5, 99), expected (5, 36)",
    ):
        assert part in msg


def test_failed_load_keeps_previous_weights(net, model):
    weights = random_weights(net, 5)
    model.load_state_dict(weights)
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 6)).astype(np.float32)
    before = model(x)
    with pytest.raises(ValueError):
        model.load_state_dict({"conv1.weight": np.zeros((1,), np.float32)})
    np.testing.assert_array_equal(model(x), before)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_corrupt_or_foreign_weight_files(tmp_path, model, suffix):
    path = tmp_path / f"w{suffix}"
    path.write_bytes(b"\x00\x01 definitely not weights")
    with pytest.raises(ValueError, match="cannot read weights"):
        model.load(path)
    with pytest.raises(ValueError, match="must be a .safetensors or .npz"):
        model.load(tmp_path / "w.pt")


def test_bad_inputs(model):
    with pytest.raises(ValueError, match=r"expected input of shape Nx2x7x6, got 1x2x6x7"):
        model(np.zeros((1, 2, 6, 7), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape Nx2x7x6, got 2x7x6"):
        model(np.zeros((2, 7, 6), np.float32))
    with pytest.raises(ValueError, match="expected float32 input, got float64"):
        model(np.zeros((1, 2, 7, 6)))
    with pytest.raises(ValueError, match="numpy array"):
        model([[0.0]])


def test_batches_of_any_size_and_outputs_not_aliased(net, model):
    weights = random_weights(net, 6)
    model.load_state_dict(weights)
    x = np.random.default_rng(1).standard_normal((3, 2, 7, 6)).astype(np.float32)
    first = model(x[:1])
    kept = first.copy()
    whole = model(x)
    model(x[1:2] * 7)  # must not write into arrays returned earlier
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_allclose(whole[:1], first, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(whole, reference.run(net, weights, x), rtol=RTOL, atol=ATOL)
    # non-contiguous input is accepted (copied), with the same result
    xt = np.asfortranarray(x)
    np.testing.assert_allclose(model(xt), whole, rtol=1e-6, atol=1e-7)


def test_generated_source_is_deterministic_and_plain(net):
    a, b = numba_backend.render(net), numba_backend.render(cnndsl.parse(SPEC))
    assert a == b
    tree = ast.parse(a)
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    # scipy: the BLAS numba's np.dot calls, whose thread count ctypes sets for the length of a call
    assert imported <= {"ctypes", "math", "os", "numpy", "numba", "safetensors", "scipy"}, imported
    assert "# line 4: conv1 (conv) -> bn1 (bn) -> relu1 (relu): 4x7x6" in a
    assert "0x" not in a.split("# ---- end of cnndsl numba kernels")[1]  # no object addresses


@pytest.mark.slow  # a cold compile of the whole kernel library in a fresh process
def test_standalone_module_in_a_fresh_process(tmp_path, net):
    """The generated file alone (numpy + numba) runs on weights saved to .npz and .safetensors."""
    from safetensors.numpy import save_file

    (tmp_path / "tiny_model.py").write_text(numba_backend.render(net))
    weights = random_weights(net, 7)
    np.savez(tmp_path / "w.npz", **weights)
    save_file(weights, str(tmp_path / "w.safetensors"))
    x = np.random.default_rng(2).standard_normal((2, 2, 7, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import numpy as np
        import tiny_model
        x = np.load({str(tmp_path / "x.npy")!r})
        for name in ("w.npz", "w.safetensors"):
            y = tiny_model.Model().load({str(tmp_path)!r} + "/" + name)(x)
            np.save({str(tmp_path)!r} + "/y_" + name + ".npy", y)
        assert "cnndsl" not in sys.modules and "torch" not in sys.modules, sorted(sys.modules)
    """)
    subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        cwd=tmp_path,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    want = reference.run(net, weights, x)
    for name in ("w.npz", "w.safetensors"):
        np.testing.assert_allclose(np.load(tmp_path / f"y_{name}.npy"), want, rtol=RTOL, atol=ATOL)
