"""The spec library: every spec builds with torch, and its figures match the published ones.

Published parameter counts are torchvision's model tables and the seed documents; the analysis
pass, the torch module and the spec's own `expect` lines must all agree with them.
"""

from __future__ import annotations

import math
import operator
from pathlib import Path

import pytest

import cnndsl
from cnndsl.analysis import param_counts, weight_specs

torch = pytest.importorskip("torch")

from cnndsl.backends import build  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "specs"

# Published figures (issue 4's table): torchvision's model documentation, the seed documents.
PUBLISHED = {
    "lenet5": 61_706,
    "lenet5_1998": 156 + 0 + 1_516 + 0 + 48_120 + 10_164 + 850,
    "image_classifier": 25_710_922,
    "simple_cnn": 94_986,  # torch's count for the seed's SimpleCNN, checked below against nn layers
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "googlenet": 6_624_904,
    "mobilenet_v2": 3_504_872,
    "efficientnet_b0": 5_288_548,
    "resnet152": 60_192_808,
    "unet": 31_030_658,  # Ronneberger et al. 2015, Figure 1 (every conv with a bias)
    "resnet50_fpn": 23_508_032 + 984_064 + 2_360_320,  # torchvision resnet_fpn_backbone: body, laterals, outputs
    "convnext_tiny": 28_589_128,
    "shufflenet_v2_x1_0": 2_278_604,
}
# Nets small enough to run forward at their own input size in a test; the rest run on the meta device
# (shapes propagate, no memory, no arithmetic).
RUN_FORWARD = {"lenet5", "lenet5_1998", "image_classifier", "simple_cnn", "mission", "conv_pool_pattern", "resnet50"}

ALL = sorted(p.stem for p in SPECS.glob("*.cnn"))


def test_the_library_is_complete():
    assert set(PUBLISHED) | {"conv_pool_pattern", "mission"} == set(ALL)


def expected(net, metric: str):
    values = [e.value for e in net.expectations if e.metric == metric and e.op == "=="]
    assert values, f"{net.name} has no `expect {metric} == ...` line"
    return values[0]


@pytest.mark.parametrize("name", ALL)
def test_spec_figures(name):
    net = cnndsl.load(SPECS / f"{name}.cnn")
    analysed = sum(param_counts(net).values())
    assert analysed == expected(net, "params")
    if name in PUBLISHED:
        assert analysed == PUBLISHED[name]
    if len(net.outputs) == 1:
        want = expected(net, "output")
        assert net.output_shape == (want if isinstance(want, tuple) else (want,))
    else:
        assert net.output_shapes == expected(net, "outputs")

    model = build(net, "torch", device="meta", train=False)
    assert sum(p.numel() for p in model.parameters()) == analysed
    state = model.state_dict()
    assert list(state) == list(weight_specs(net))
    assert all(tuple(state[k].shape) == s.shape for k, s in weight_specs(net).items())
    y = model(torch.empty(1, *net.input_shape, device="meta"))
    ys = y if len(net.outputs) > 1 else (y,)
    assert [tuple(t.shape) for t in ys] == [(1, *s) for s in net.output_shapes]


def test_resnet50_fpn_matches_torchvision_levels():
    net = cnndsl.load(SPECS / "resnet50_fpn.cnn")
    assert net.output_shapes == ((256, 56, 56), (256, 28, 28), (256, 14, 14), (256, 7, 7), (256, 4, 4))
    upsamples = [n for n in net.layers if n.op == "upsample"]
    assert [n.attrs["size"] for n in upsamples] == [(14, 14), (28, 28), (56, 56)]
    assert all(n.attrs["mode"] == "nearest" for n in upsamples)


def test_unet_crops_the_skips_to_the_decoder():
    net = cnndsl.load(SPECS / "unet.cnn")
    crops = [n for n in net.layers if n.op == "crop"]
    assert [n.shape for n in crops] == [(512, 56, 56), (256, 104, 104), (128, 200, 200), (64, 392, 392)]
    assert all(net.node(n.inputs[0]).op == "relu" for n in crops)  # the encoder's maps, cropped
    assert sum(n.op == "convt" for n in net.layers) == 4


@pytest.mark.parametrize("name", sorted(RUN_FORWARD))
def test_spec_forward(name):
    net = cnndsl.load(SPECS / f"{name}.cnn")
    model = build(net, "torch", seed=0, train=False)
    with torch.no_grad():
        y = model(torch.randn(1, *net.input_shape))
    assert tuple(y.shape) == (1, *net.output_shape)
    assert torch.isfinite(y).all()


def test_lenet5_1998_per_layer():
    net = cnndsl.load(SPECS / "lenet5_1998.cnn")
    counts = param_counts(net)
    assert [counts[n] for n in ("c1", "s2", "c3", "s4", "c5", "f6", "output")] == [
        156,
        0,
        1_516,
        0,
        48_120,
        10_164,
        850,
    ]
    model = build(net, "torch")
    torch_counts = {
        name: sum(p.numel() for p in getattr(model, name).parameters()) for name in ("c1", "c3", "c5", "f6")
    }
    assert torch_counts == {"c1": 156, "c3": 1_516, "c5": 48_120, "f6": 10_164}
    assert sum(len(row) for row in net.node("c3").attrs["table"]) == 60  # LeCun et al. 1998, Table I


def test_image_classifier_flattens_200704():
    net = cnndsl.load(SPECS / "image_classifier.cnn")
    flat = next(n for n in net.layers if n.op == "flatten")
    assert flat.shape == (200_704,)


def test_simple_cnn_as_torch_counts_it():
    # the seed's SimpleCNN written with nn layers, counted by torch itself
    nn = torch.nn
    seed = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(), nn.Linear(128, 10),
    )  # fmt: skip
    assert sum(p.numel() for p in seed.parameters()) == PUBLISHED["simple_cnn"]


def test_seed_residual_block():
    # the seed's ResidualBlock(channels, stride): projection shortcut only when it strides
    net = cnndsl.parse("input 16x32x32\nimport resnet\nresidual_block(16) -> residual_block(16, stride=2)")
    per_block_convs = 2 * 16 * 16 * 9
    expected = 2 * (per_block_convs + 2 * 2 * 16) + (16 * 16 + 2 * 16)  # two blocks, one projection (conv + bn)
    assert sum(param_counts(net).values()) == expected
    assert net.output_shape == (16, 16, 16)
    assert sum(p.numel() for p in build(net, "torch").parameters()) == expected


@pytest.mark.parametrize("module", ["resnet", "inception", "mobilenet", "se"])
def test_stdlib_blocks_import(module):
    calls = {
        "resnet": "basic(8) -> bottleneck(4, stride=2) -> residual_block(16)",
        "inception": "inception(4, 4, 8, 2, 4, 4)",
        "mobilenet": "inverted_residual(8, expand=1) -> inverted_residual(8) -> mbconv(16, kernel=5, stride=2)",
        "se": "se(2) -> se(2, act=silu, gate=hardsigmoid)",
    }
    net = cnndsl.parse(f"input 8x16x16\nimport {module}\n{calls[module]}")
    model = build(net, "torch", seed=0, train=False)
    with torch.no_grad():
        y = model(torch.randn(2, *net.input_shape))
    assert tuple(y.shape) == (2, *net.output_shape)
    assert sum(p.numel() for p in model.parameters()) == sum(param_counts(net).values())


def test_inverted_residual_shortcut_rule():
    net = cnndsl.parse(
        "input 8x8x8\nimport mobilenet\ninverted_residual(8) -> inverted_residual(16) -> "
        "inverted_residual(16, stride=2)"
    )
    adds = [n.name for n in net.layers if n.op == "add"]
    assert adds == ["inverted_residual1.add1"]  # identity shortcut only at stride 1 with equal widths
    assert math.prod(net.output_shape) == 16 * 4 * 4


COMPARE = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}


@pytest.mark.parametrize("name", ALL)
def test_mac_bounds(name):
    # the op table's MAC rule (conv and fc multiply-accumulates) against the spec's `expect macs` bounds,
    # which carry the published GMACs at 224x224 within 0.5 %
    from cnndsl.analysis.cost import macs as layer_macs

    net = cnndsl.load(SPECS / f"{name}.cnn")
    macs = sum(layer_macs(net).values())
    bounds = [(e.op, e.value) for e in net.expectations if e.metric == "macs"]
    # no published MACs: the small seed nets, and U-Net and the FPN (no torchvision table figure)
    if name in PUBLISHED and name not in (
        "lenet5",
        "lenet5_1998",
        "image_classifier",
        "simple_cnn",
        "unet",
        "resnet50_fpn",
    ):
        assert len(bounds) == 2
    for op, value in bounds:
        assert COMPARE[op](macs, value), (op, value, macs)
