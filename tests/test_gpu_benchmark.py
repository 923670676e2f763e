"""benchmarks/gpu.py, the parts that run without a GPU: its torch side, and its refusal."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnndsl
from cnndsl import reference

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu.py"

SPEC = """input 6x9x9
conv3x3(4, table=[[0, 1], [2, 3, 4], [5], [0, 5]]) -> bn -> relu6 -> maxpool3(stride=2, pad=1, ceil=true)
-> residual(dwconv3x3 -> bn -> hardswish -> conv1x1(4, bias=false) -> bn) -> leaky_relu(0.1)
-> mul(identity, gap -> conv1x1(4) -> sigmoid) -> mul(gmp -> conv1x1(4, groups=2) -> tanh, identity)
-> avgpool2(stride=1, pad=1, include_pad=false)
-> concat(adaptive_avgpool(2), adaptive_avgpool(2) -> silu, identity -> gelu -> adaptive_avgpool(2) -> tanh)
-> flatten -> dropout(0.3) -> fc(7) -> hardsigmoid -> softmax
"""


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_torch_side_matches_reference():
    torch = pytest.importorskip("torch")
    gpu = _load_script()
    net = cnndsl.parse(SPEC)
    weights = reference.random_weights(net, seed=3)
    x = np.random.default_rng(4).normal(size=(2, *net.input_shape)).astype(np.float32)
    with torch.no_grad():
        got = gpu.torch_model(net, weights, "cpu")(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, reference.run(net, weights, x), rtol=1e-4, atol=1e-5)
    assert gpu.total_macs(net) > 0


def test_refuses_clearly_without_a_gpu():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}  # the simulator is never benchmarked, GPU or not
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "NUMBA_ENABLE_CUDASIM=1" in done.stderr and "GPU" in done.stderr
    assert "Traceback" not in done.stderr
