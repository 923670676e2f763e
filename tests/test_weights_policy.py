"""One weights policy for every backend: what converts, what is refused, and that refusals name the tensor.

Floating tensors (float16/32/64, bfloat16) convert, unless a finite value overflows the target; any other
dtype is refused; NaN/inf only with allow_nonfinite=True; a bad container, key or shape is a WeightsError.
The numba model (model_api.checked_weights) and the torch helpers (torch_backend.load_weights,
`cnndsl train --init`) share the one implementation, so each case runs against both.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numba_helpers import build_shared

import cnndsl
from cnndsl.backends import numba_backend
from cnndsl.reference import random_weights
from cnndsl.runtime.model_api import WeightsError

# bn brings torch's int64 counter, whose policy differs: integers, not floats
SPEC = "input 1x8x8\nconv3x3(2) -> bn -> relu -> gap -> fc(10)"
X = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
BACKENDS = ("numba", "torch")
# every fixture is module-scoped and each load replaces all weights, so Hypothesis may reuse them
REUSE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def net():
    return cnndsl.parse(SPEC)


@pytest.fixture(scope="module")
def models(net):
    """Built lazily: a torch-less machine still runs the numba half."""
    cache = {}

    def get(backend):
        if backend not in cache:
            if backend == "torch":
                pytest.importorskip("torch")
            cache[backend] = build_shared(net) if backend == "numba" else cnndsl.build(net, "torch", train=False)
        return cache[backend]

    return get


def load(models, backend, weights, **kw):
    """Load weights (a mapping or a file path) into the backend's model; its output on X."""
    model = models(backend)
    if backend == "numba":
        model.load(weights, **kw) if isinstance(weights, os.PathLike) else model.load_state_dict(weights, **kw)
        return model(X)
    import torch

    from cnndsl.backends.torch_backend import load_weights

    load_weights(model, weights, **kw)
    with torch.no_grad():
        return model(torch.from_numpy(X)).numpy()


def refused(models, backend, weights, *needles, **kw) -> str:
    # each generated module defines its own WeightsError (it may not import cnndsl): matched by name
    with pytest.raises(ValueError) as e:
        load(models, backend, weights, **kw)
    assert type(e.value).__name__ == "WeightsError"
    for needle in needles:
        assert needle in str(e.value)
    return str(e.value)


def rounded(weights, dtype):
    """The weights rounded to dtype's precision, held as float32: what a dtype load should reproduce exactly."""
    return {k: v.astype(dtype).astype(np.float32) if v.dtype == np.float32 else v for k, v in weights.items()}


# ---- floating types convert -----------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_float16_and_float64_give_the_float32_output(models, net, backend, dtype):
    exact = rounded(random_weights(net, 1), np.float16)  # representable in every float type
    want = load(models, backend, exact)
    got = load(models, backend, {k: v.astype(dtype) if v.dtype == np.float32 else v for k, v in exact.items()})
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_bfloat16_tensors_give_the_float32_output(models, net, backend):
    torch = pytest.importorskip("torch")
    exact = {k: torch.from_numpy(v) for k, v in random_weights(net, 2).items()}
    exact = {k: v.bfloat16().float() if v.is_floating_point() else v for k, v in exact.items()}
    want = load(models, backend, exact)
    got = load(models, backend, {k: v.bfloat16() if v.is_floating_point() else v for k, v in exact.items()})
    np.testing.assert_array_equal(got, want)


# ---- other dtypes are refused, naming tensor and dtype ------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [bool, np.int8, np.int64, np.uint8, np.complex64, np.complex128, str, object])
def test_non_floating_weights_are_refused(models, net, backend, dtype):
    weights = random_weights(net, 0)
    weights["conv1.weight"] = weights["conv1.weight"].astype(dtype)
    msg = refused(models, backend, weights, "'conv1.weight'", f"dtype {weights['conv1.weight'].dtype}")
    assert "1 problem(s)" in msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_batch_norm_counter_takes_integers_only(models, net, backend):
    weights = random_weights(net, 0)
    weights["bn1.num_batches_tracked"] = np.array(7, np.int32)
    load(models, backend, weights)
    for bad in (np.array(7.0), np.array(True), np.array(2**64 - 1, np.uint64)):
        weights["bn1.num_batches_tracked"] = bad
        refused(models, backend, weights, "'bn1.num_batches_tracked'")


@REUSE
@given(
    backend=st.sampled_from(BACKENDS),
    dtype=st.one_of(
        hnp.boolean_dtypes(),
        hnp.integer_dtypes(),
        hnp.unsigned_integer_dtypes(),
        hnp.complex_number_dtypes(),
        hnp.unicode_string_dtypes(),
        hnp.byte_string_dtypes(),
        hnp.datetime64_dtypes(),
    ),
    name=st.sampled_from(["conv1.weight", "conv1.bias", "bn1.running_var", "fc1.weight"]),
)
def test_any_non_floating_dtype_is_refused_by_name(models, net, backend, dtype, name):
    weights = random_weights(net, 0)
    weights[name] = np.zeros(weights[name].shape, dtype)
    refused(models, backend, weights, repr(name), str(dtype))


# ---- values: NaN/inf only when asked for, overflow never ---------------------------------------
@REUSE
@given(
    backend=st.sampled_from(BACKENDS),
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
    value=st.sampled_from([np.nan, np.inf, -np.inf]),
    name=st.sampled_from(["conv1.weight", "bn1.running_mean", "fc1.weight", "fc1.bias"]),
    where=st.integers(0, 10**6),
)
def test_non_finite_values_need_allow_nonfinite(models, net, backend, dtype, value, name, where):
    weights = random_weights(net, 0)
    bad = weights[name].astype(dtype)
    bad.flat[where % bad.size] = value
    weights[name] = bad
    refused(models, backend, weights, repr(name), "non-finite", "allow_nonfinite=True")
    load(models, backend, weights, allow_nonfinite=True)
    loaded = models(backend).state_dict()[name]  # loaded as given (relu may keep it from the output)
    np.testing.assert_array_equal(np.asarray(loaded), bad.astype(np.float32))


@pytest.mark.filterwarnings("error")  # the overflow is a WeightsError, not a numpy warning
@REUSE
@given(
    backend=st.sampled_from(BACKENDS),
    value=st.floats(3.5e38, 1e308) | st.floats(-1e308, -3.5e38),
    name=st.sampled_from(["conv1.weight", "bn1.weight", "fc1.bias"]),
)
def test_finite_values_that_overflow_float32_are_refused_even_when_nonfinite_is_allowed(
    models, net, backend, value, name
):
    weights = random_weights(net, 0)
    weights[name] = weights[name].astype(np.float64)
    weights[name].flat[0] = value
    refused(models, backend, weights, repr(name), "too large for float32")
    refused(models, backend, weights, repr(name), "too large for float32", allow_nonfinite=True)


# ---- containers, keys and shapes -----------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("container", [[1, 2, 3], None, 3.0, ("conv1.weight",)])
def test_a_non_mapping_is_refused(models, backend, container):
    refused(models, backend, container, "must be a mapping", type(container).__name__)


@pytest.mark.parametrize("backend", BACKENDS)
def test_keys_and_shapes_are_all_reported_at_once(models, net, backend):
    weights = random_weights(net, 0)
    del weights["fc1.bias"]
    weights[1] = np.zeros(3, np.float32)
    weights["fc9.weight"] = np.zeros(3, np.float32)
    weights["conv1.weight"] = np.zeros((2, 1, 3, 4), np.float32)
    weights["conv1.bias"] = [[1.0], [2.0, 3.0]]  # ragged: not an array at all
    msg = refused(
        models,
        backend,
        weights,
        "5 problem(s)",
        "key 1 is not a string but int",
        "unexpected key 'fc9.weight'",
        "missing key 'fc1.bias'",
        "'conv1.weight' has shape (2, 1, 3, 4), expected (2, 1, 3, 3)",
        "'conv1.bias' is not an array",
    )
    assert "missing key 'conv1.weight'" not in msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_refused_load_keeps_the_previous_weights(models, net, backend):
    before = load(models, backend, random_weights(net, 3))
    weights = random_weights(net, 4)
    weights["fc1.bias"] = weights["fc1.bias"].astype(bool)
    refused(models, backend, weights, "'fc1.bias'")
    np.testing.assert_array_equal(load(models, backend, random_weights(net, 3)), before)


# ---- files ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_npz_of_strings_names_file_and_tensors(models, net, backend, tmp_path):
    path = tmp_path / "strings.npz"
    np.savez(path, **{k: np.full(v.shape, "x") for k, v in random_weights(net, 0).items()})
    refused(models, backend, path, str(path), "'conv1.weight' has dtype <U1", "'fc1.bias' has dtype <U1")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_safetensors_file_with_nan_is_refused_unless_asked(models, net, backend, tmp_path):
    from safetensors.numpy import save_file

    weights = random_weights(net, 0)
    weights["bn1.running_var"][1] = np.nan
    path = tmp_path / "w.safetensors"
    save_file(weights, str(path))
    refused(models, backend, path, str(path), "'bn1.running_var' has 1 non-finite")
    assert np.isnan(load(models, backend, path, allow_nonfinite=True)).any()


def test_numba_instantiate_applies_the_policy(models, net):
    module = sys.modules[type(models("numba")).__module__]
    with pytest.raises(module.WeightsError, match="got list"):  # once taken for a path: TypeError from fspath
        numba_backend.instantiate(module, weights=[1, 2, 3])
    weights = random_weights(net, 0)
    weights["fc1.bias"][0] = np.inf
    with pytest.raises(module.WeightsError, match="'fc1.bias' has 1 non-finite"):
        numba_backend.instantiate(module, weights=weights)
    assert np.isinf(numba_backend.instantiate(module, weights=weights, allow_nonfinite=True)(X)).any()


def test_torch_build_loads_weights_under_the_policy(net, tmp_path):
    pytest.importorskip("torch")
    from safetensors.numpy import save_file

    weights = random_weights(net, 0)
    path = tmp_path / "w.safetensors"
    save_file(weights, str(path))
    model = cnndsl.build(net, "torch", weights=path, train=False)
    assert all(np.array_equal(model.state_dict()[k].numpy(), v) for k, v in weights.items())
    weights["fc1.weight"] = weights["fc1.weight"].astype(np.int8)
    with pytest.raises(WeightsError, match="'fc1.weight' has dtype int8"):
        cnndsl.build(net, "torch", weights=weights)


# ---- `cnndsl train --init`: the torch-side loader of files ----------------------------------------
def _torch_file(net, path, name, change):
    """The net's random weights as a torch-written .safetensors file, with tensor `name` changed."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    weights = {k: torch.from_numpy(v) for k, v in random_weights(net, 0).items()}
    weights[name] = change(weights[name])
    save_file(weights, str(path))
    return path


@pytest.mark.parametrize(
    "name, change, needle",
    [
        ("conv1.weight", lambda t: t > 0, "'conv1.weight' has dtype bool"),
        ("fc1.bias", lambda t: t / 0 * 0, "'fc1.bias' has 10 non-finite"),
        ("fc1.weight", lambda t: t.double() * 1e300, "'fc1.weight' has 20 value(s) too large for float32"),
    ],
    ids=["bool", "nan", "overflow"],
)
def test_init_refuses_bad_tensors_with_a_clean_error(net, tmp_path, capsys, name, change, needle):
    from cnndsl.cli import main
    from cnndsl.training import TrainError
    from cnndsl.training.transfer import load_matching

    path = _torch_file(net, tmp_path / "bad.safetensors", name, change)
    with pytest.raises(TrainError) as e:
        load_matching(cnndsl.build(net, "torch"), str(path))
    assert needle in str(e.value)
    spec = tmp_path / "tiny.cnn"
    spec.write_text(SPEC + "\n")
    code = main(["train", str(spec), "--data", "digits", "--epochs", "1", "--init", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "cnndsl train: error:" in err and needle in err and "Traceback" not in err


def test_init_loads_bfloat16_files(net, tmp_path):
    from cnndsl.training.transfer import load_matching

    path = _torch_file(net, tmp_path / "bf16.safetensors", "conv1.weight", lambda t: t.bfloat16())
    model = cnndsl.build(net, "torch")
    report = load_matching(model, str(path))
    assert sorted(report.loaded) == sorted(random_weights(net, 0))  # the int64 counter too
    want = random_weights(net, 0)["conv1.weight"]
    np.testing.assert_allclose(model.state_dict()["conv1.weight"].numpy(), want, rtol=2**-8)


def test_train_init_takes_non_finite_weights_only_when_asked(net, tmp_path, capsys):
    from cnndsl.cli import main

    path = _torch_file(net, tmp_path / "nan.safetensors", "fc1.bias", lambda t: t / 0 * 0)
    spec = tmp_path / "tiny.cnn"
    spec.write_text(SPEC + "\n")
    argv = ["train", str(spec), "--data", "digits", "--epochs", "1", "--init", str(path), "--json"]
    argv += ["--out", str(tmp_path / "out.safetensors")]
    assert main(argv) == 2
    assert "non-finite" in capsys.readouterr().err
    assert main([*argv, "--allow-nonfinite"]) == 0  # loaded as given; training runs on
