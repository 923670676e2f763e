"""The analysis passes against published figures for the spec library (issue 4's table):
exact parameter counts, and MACs within 0.5 % of torchvision's published GFLOPS (= GMACs).

The specs live in `specs/`; set CNNDSL_SPECS_DIR to check another copy of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import cnndsl
from cnndsl.analysis.figures import Figures

SPECS = Path(os.environ.get("CNNDSL_SPECS_DIR") or Path(__file__).resolve().parent.parent / "specs")

# file, torchvision parameter count, torchvision GMACs at 224x224 (its model table's "GFLOPS")
PUBLISHED = [
    ("alexnet.cnn", 61_100_840, 0.714),
    ("vgg16.cnn", 138_357_544, 15.47),
    ("vgg16_bn.cnn", 138_365_992, 15.47),
    ("resnet18.cnn", 11_689_512, 1.814),
    ("resnet50.cnn", 25_557_032, 4.089),
    ("googlenet.cnn", 6_624_904, 1.498),
    ("mobilenet_v2.cnn", 3_504_872, 0.301),
    ("efficientnet_b0.cnn", 5_288_548, 0.386),
    ("resnet152.cnn", 60_192_808, 11.51),
    ("convnext_tiny.cnn", 28_589_128, 4.456),
    ("shufflenet_v2_x1_0.cnn", 2_278_604, 0.145),
]


def _load(file: str):
    return cnndsl.load(SPECS / file)


@pytest.mark.parametrize("file, params, gmacs", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_params_and_macs_match_torchvision(file, params, gmacs):
    fig = Figures(_load(file))
    assert fig.total_params == params
    assert fig.total_macs / 1e9 == pytest.approx(gmacs, rel=0.005)


@pytest.mark.parametrize("file", ["alexnet.cnn", "vgg16.cnn"])
def test_library_receptive_fields_at_the_last_pool(file):
    net = _load(file)
    fig = Figures(net)
    last_pool = [n for n in net.layers if n.op == "maxpool"][-1]
    size = {"alexnet.cnn": 195, "vgg16.cnn": 212}[file]
    assert fig.fields[last_pool.name].size == (size, size) and fig.fields[last_pool.name].stride == (32, 32)
