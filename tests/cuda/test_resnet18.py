"""ResNet-18 compiled to a CUDA module file, run in the simulator, against the reference.

The spec is torchvision's ResNet-18 written inline (the spec library's `specs/resnet18.cnn`
uses `import resnet`; this file has no such dependency). The simulator runs one Python
thread per CUDA thread, so the input is small: 3x16x16 still runs every layer, down to 1x1.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np

import cnndsl
from cnndsl import reference
from cnndsl.analysis.params import param_counts
from cnndsl.reference import random_weights

RESNET18 = """network resnet18
input 3x224x224

block basic(c, stride=1) {
  residual(conv3x3(c, stride=stride, bias=false) -> bn -> relu -> conv3x3(c, bias=false) -> bn,
           shortcut=(identity if stride == 1 and in_channels == c else (conv1x1(c, stride=stride, bias=false) -> bn)))
  -> relu
}

conv7x7(64, stride=2, bias=false) -> bn -> relu -> maxpool3(stride=2, pad=1)
-> (basic(64) -> basic(64)) as layer1
-> (basic(128, stride=2) -> basic(128)) as layer2
-> (basic(256, stride=2) -> basic(256)) as layer3
-> (basic(512, stride=2) -> basic(512)) as layer4
-> gap -> fc(1000) as fc

expect params == 11_689_512
"""


def _compile(spec_path, out_path, input_shape: str) -> None:
    """`cnndsl compile SPEC --backend cuda -o OUT --input ...`; the library route if that command is not in this tree."""
    from cnndsl.cli import COMMANDS
    from cnndsl.commands import load_all

    load_all()
    if "compile" in COMMANDS:
        cmd = [sys.executable, "-m", "cnndsl", "compile", str(spec_path), "--backend", "cuda", "-o", str(out_path)]
        done = subprocess.run([*cmd, "--input", input_shape], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    else:
        from cnndsl.backends import render, write_atomic
        from cnndsl.frontend import compile_file

        dims = tuple(int(d) for d in input_shape.split("x"))
        result = compile_file(str(spec_path), dims)
        assert not result.errors
        write_atomic(out_path, render(result.network, "cuda"))


def test_compiled_resnet18_module_agrees_with_reference(tmp_path):
    spec = tmp_path / "resnet18.cnn"
    spec.write_text(RESNET18)
    out = tmp_path / "r18cuda.py"
    _compile(spec, out, "3x16x16")
    source = out.read_text()
    assert source.count("\n        conv2d(") == 20  # 17 convs + 3 downsample shortcuts, each a single launch
    assert "\n        affine(" not in source  # every batch norm folded into its conv

    loader = importlib.util.spec_from_file_location("r18cuda", out)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    net = cnndsl.parse(RESNET18.replace("3x224x224", "3x16x16"))
    assert sum(param_counts(net).values()) == 11_689_512  # torchvision's published count: this is ResNet-18
    weights = random_weights(net, seed=1)
    model = module.Model().load_state_dict(weights)
    x = np.random.default_rng(2).normal(size=(1, 3, 16, 16)).astype(np.float32)
    got = model(x)
    assert got.shape == (1, 1000)
    np.testing.assert_allclose(got, reference.run(net, weights, x), rtol=1e-3, atol=1e-3)
