"""The CUDA backend's renderer: runs anywhere, without numba-cuda, a GPU or the simulator."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap

import cnndsl
from cnndsl.backends import render
from cnndsl.backends.cuda_backend import plan

SPEC = """network tiny
input 3x8x8
conv3x3(4, bias=false) -> bn -> relu -> maxpool2
-> residual(conv3x3(4) -> bn -> relu6 -> conv3x3(4) -> bn) -> relu
-> concat(gap, gmp) -> flatten -> dropout(0.2) -> fc(5) -> softmax
"""


def test_render_is_deterministic_and_valid_python():
    net = cnndsl.parse(SPEC)
    source = render(net, "cuda")
    assert source == render(cnndsl.parse(SPEC), "cuda")
    compile(source, "generated.py", "exec")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported <= {"math", "os", "numpy", "numba", "safetensors.numpy"}, imported


def test_one_launch_per_layer_with_fused_epilogues_named_and_located():
    source = render(cnndsl.parse(SPEC), "cuda")
    forward = source[source.index("    def forward(") :]
    assert "# line 3: conv1 conv(" in forward and "+ bn1 + relu1" in forward
    assert (
        'conv2d(t["input"], p["conv1.weight"], p["conv1.shift"], t["relu1"], (1, 1), (1, 1), (1, 1), 1, ACT_RELU, 0.0)'
        in forward
    )
    # the residual add applies the block's final relu in its own epilogue
    assert "# line 4: add1 add() + relu2" in forward
    assert 'add(t["bn3"], t["maxpool1"], t["relu2"], ACT_RELU, 0.0)' in forward
    assert 't["flatten1"] = t["concat1"].reshape(n, 8)' in forward


def test_plan_fuses_only_sole_consumers():
    net = cnndsl.parse(SPEC)
    steps = {s.node.name: [n.name for n in s.nodes] for s in plan(net)}
    assert steps["conv1"] == ["conv1", "bn1", "relu1"]
    assert steps["softmax1"] == ["softmax1"]
    fused = [n for names in steps.values() for n in names]
    assert sorted(fused) == sorted(n.name for n in net.layers)  # every layer in exactly one launch
    # the relu feeding both the residual body and its shortcut is a value of its own, never fused away
    two_uses = cnndsl.parse("input 2x4x4\nconv1x1(2) -> relu -> add(identity, conv1x1(2))")
    assert [n.name for s in plan(two_uses) for n in s.nodes][:2] == ["conv1", "relu1"]
    assert {s.out for s in plan(two_uses)} >= {"relu1"}
    # the network's output is never fused into its producer
    ends_in_bn = cnndsl.parse("input 2x4x4\nconv1x1(2) -> bn")
    assert [s.out for s in plan(ends_in_bn)] == ["bn1"]


def _run(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=120
    )


def _env_without_simulator() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    return env


def test_render_does_not_import_numba():
    done = _run(
        f"""
        import sys, cnndsl
        from cnndsl.backends import render
        render(cnndsl.parse({SPEC!r}), "cuda")
        assert "numba" not in sys.modules, sorted(m for m in sys.modules if "numba" in m)
        """,
        _env_without_simulator(),
    )
    assert done.returncode == 0, done.stderr


def test_building_without_gpu_or_simulator_says_both_ways_out(tmp_path):
    env = _env_without_simulator()
    env["CNNDSL_CACHE_DIR"] = str(tmp_path)
    done = _run(
        f"""
        from numba import cuda
        if cuda.is_available():
            print("HAS-GPU")
            raise SystemExit(0)
        import cnndsl
        from cnndsl.backends import BackendError, build
        try:
            build(cnndsl.parse({SPEC!r}), "cuda")
        except BackendError as e:
            print(e)
        """,
        env,
    )
    assert done.returncode == 0, done.stderr
    if "HAS-GPU" in done.stdout:
        import pytest

        pytest.skip("this machine has a CUDA GPU")
    assert "NVIDIA GPU" in done.stdout and "NUMBA_ENABLE_CUDASIM=1" in done.stdout, done.stdout
