"""Issue 14's ops (layernorm, layer_scale, stochastic_depth, slice, shuffle, upsample, crop, convt) against
the torch functional each mirrors, through the reference evaluator and the torch backend; their
analysis (params, MACs, receptive fields) and their misuse errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import cnndsl  # noqa: E402
from cnndsl import reference  # noqa: E402
from cnndsl.analysis import param_counts, weight_specs  # noqa: E402
from cnndsl.backends import build, render  # noqa: E402

RNG = np.random.default_rng(3)


def _run(text: str, batch: int = 2):
    """The network, its random weights, an input, the reference output and the torch backend's output."""
    net = cnndsl.parse(text)
    weights = reference.random_weights(net, 1)
    x = RNG.standard_normal((batch, *net.input_shape)).astype(np.float32)
    want = reference.run(net, weights, x)
    model = build(net, "torch")
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    model.eval()
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape == (batch, *net.output_shape)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    return net, weights, torch.from_numpy(x).double(), want


def _w(weights, name):
    return torch.from_numpy(np.asarray(weights[name])).double()


def test_layernorm_is_torch_layer_norm_over_channels():
    net, w, x, want = _run("input 5x4x3\nlayernorm(eps=1e-6)")
    t = F.layer_norm(x.permute(0, 2, 3, 1), (5,), _w(w, "layernorm1.weight"), _w(w, "layernorm1.bias"), 1e-6)
    np.testing.assert_allclose(want, t.permute(0, 3, 1, 2).numpy(), rtol=1e-10, atol=1e-10)
    assert param_counts(net)["layernorm1"] == 10


def test_layernorm_on_a_flat_vector():
    _run("input 6\nlayernorm")


def test_layer_scale_is_torchvisions_parameter():
    net, w, x, want = _run("input 3x2x2\nlayer_scale(1e-6)")
    assert weight_specs(net)["layer_scale1.scale"].shape == (3, 1, 1)  # torchvision: CNBlock.layer_scale
    np.testing.assert_allclose(want, (x * _w(w, "layer_scale1.scale")).numpy())
    model = build(net, "torch")
    assert torch.all(model.state_dict()["layer_scale1.scale"] == torch.full((3, 1, 1), 1e-6))


def test_stochastic_depth_is_the_identity_at_inference_and_drops_rows_in_training():
    net, w, x, want = _run("input 3x2x2\nstochastic_depth(0.5)")
    np.testing.assert_array_equal(want, x.numpy())
    model = build(net, "torch").train()
    y = model(torch.ones(64, 3, 2, 2))
    per_row = y.flatten(1)
    assert set(per_row.unique().tolist()) <= {0.0, 2.0}  # whole samples dropped, survivors scaled by 1/(1-p)
    assert all(len(set(r.tolist())) == 1 for r in per_row)


@pytest.mark.parametrize("args, lo, hi", [("1, 4", 1, 4), ("2", 2, 6), ("0, 6", 0, 6)])
def test_slice_takes_channels(args, lo, hi):
    net, w, x, want = _run(f"input 6x3x2\nslice({args})")
    np.testing.assert_array_equal(want, x[:, lo:hi].numpy())


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_shuffle_is_torch_channel_shuffle(groups):
    net, w, x, want = _run(f"input 6x3x2\nshuffle({groups})")
    np.testing.assert_array_equal(want, F.channel_shuffle(x, groups).numpy())


UPSAMPLES = [
    ("upsample(2)", dict(scale_factor=2, mode="nearest")),
    ("upsample(3)", dict(scale_factor=3, mode="nearest")),
    ("upsample(1.5)", dict(scale_factor=1.5, mode="nearest")),
    ("upsample((2, 3))", dict(scale_factor=(2, 3), mode="nearest")),
    ("upsample(size=(11, 7))", dict(size=(11, 7), mode="nearest")),
    ("upsample(size=3)", dict(size=3, mode="nearest")),
    ("upsample(2, mode=bilinear)", dict(scale_factor=2, mode="bilinear", align_corners=False)),
    ("upsample(2.5, mode=bilinear)", dict(scale_factor=2.5, mode="bilinear", align_corners=False)),
    ("upsample(2, mode=bilinear, align_corners=true)", dict(scale_factor=2, mode="bilinear", align_corners=True)),
    ("upsample(size=(9, 4), mode=bilinear)", dict(size=(9, 4), mode="bilinear", align_corners=False)),
    (
        "upsample(size=(1, 9), mode=bilinear, align_corners=true)",
        dict(size=(1, 9), mode="bilinear", align_corners=True),
    ),
]


@pytest.mark.parametrize("layer, kw", UPSAMPLES, ids=[u[0] for u in UPSAMPLES])
def test_upsample_is_torch_interpolate(layer, kw):
    net, w, x, want = _run(f"input 2x5x4\n{layer}")
    t = F.interpolate(x.float(), **kw).double()  # float32, as torch's kernels compute source indices
    np.testing.assert_allclose(want, t.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("size, top, left", [("(4, 3)", 2, 3), ("5", 2, 2), ("(8, 9)", 0, 0), ("(3, 8)", 2, 0)])
def test_crop_is_torchvision_center_crop(size, top, left):
    # torchvision's center_crop: top = int(round((h - th) / 2)), Python's round (2.5 -> 2)
    net, w, x, want = _run(f"input 2x8x9\ncrop({size})")
    th, tw = net.output_shape[1:]
    np.testing.assert_array_equal(want, x[:, :, top : top + th, left : left + tw].numpy())


CONVTS = [
    ("convt2x2(4, stride=2)", dict(stride=2)),
    ("convt(4, kernel=3, stride=2, pad=1, output_pad=1)", dict(stride=2, padding=1, output_padding=1)),
    (
        "convt(4, kernel=(3, 2), stride=(1, 3), pad=(1, 0), groups=2, bias=false)",
        dict(stride=(1, 3), padding=(1, 0), groups=2),
    ),
    ("convt(6, kernel=3, dilation=2, stride=2, output_pad=1)", dict(stride=2, dilation=2, output_padding=1)),
    ("deconv4x4(2, stride=2, pad=1)", dict(stride=2, padding=1)),
]


@pytest.mark.parametrize("layer, kw", CONVTS, ids=[c[0] for c in CONVTS])
def test_convt_is_torch_conv_transpose2d(layer, kw):
    net, w, x, want = _run(f"input 4x5x4\n{layer}")
    name = net.layers[0].name
    bias = _w(w, f"{name}.bias") if f"{name}.bias" in w else None
    t = F.conv_transpose2d(x, _w(w, f"{name}.weight"), bias, **kw)
    np.testing.assert_allclose(want, t.numpy(), rtol=1e-10, atol=1e-10)
    m = torch.nn.ConvTranspose2d(4, net.output_shape[0], net.layers[0].attrs["kernel"], bias=bias is not None, **kw)
    assert sum(p.numel() for p in m.parameters()) == sum(param_counts(net).values())


def test_convt_macs_count_each_input_pixel_times_each_tap():
    from cnndsl.analysis.cost import macs

    net = cnndsl.parse("input 8x5x4\nconvt2x2(6, stride=2, groups=2)")
    assert sum(macs(net).values()) == 8 * 3 * 2 * 2 * 5 * 4


def test_generated_torch_module_copies_only_the_classes_it_uses():
    src = render(cnndsl.parse("input 4x4x4\nlayernorm -> slice(1) -> upsample(2) -> crop(6)"), "torch")
    assert "class LayerNorm2d(" in src and "class ChannelSlice(" in src and "class CenterCrop2d(" in src
    assert "class LayerScale(" not in src and "class StochasticDepth(" not in src


MISUSES = [
    ("input 6x4x4\nslice(4, 2)", "E209", "slice"),
    ("input 6x4x4\nslice(0, 7)", "E209", "7"),
    ("input 6x4x4\nshuffle(4)", "E204", "shuffle"),
    ("input 6x4x4\nupsample(2, size=8)", "E210", "size"),
    ("input 6x4x4\nupsample", "E210", "upsample"),
    ("input 6x4x4\nupsample(2, align_corners=true)", "E210", "align_corners"),
    ("input 6x4x4\nupsample(2, mode=cubic)", "E101", "cubic"),
    ("input 6x4x4\nupsample(0.1)", "E201", "upsample"),
    ("input 6x4x4\ncrop(5)", "E211", "crop"),
    ("input 6x4x4\nconvt2x2(4, stride=2, output_pad=2)", "E206", "output_pad"),
    ("input 6x4x4\nconvt3x3(4, pad=3)", "E201", "convt"),
    ("input 6x4x4\nconvt3x3(4, groups=4)", "E204", "groups"),
    ("input 16\nupsample(2)", "E205", "upsample"),
    ("input 16\ncrop(2)", "E205", "crop"),
]


@pytest.mark.parametrize("text, code, where", MISUSES, ids=[m[0].split("\n")[1] for m in MISUSES])
def test_misuse_is_a_located_error_with_a_hint(text, code, where):
    with pytest.raises(cnndsl.CnnError) as e:
        cnndsl.parse(text)
    d = e.value.diagnostics[0]
    assert d.code == code, d
    assert d.span.line == 2
    assert where in text.split("\n")[1][d.span.column - 1 :] or where in d.message
    if code not in ("E101",):
        assert d.hint, d


def test_dwconv_multiplier_equal_to_the_channels_warns_w305():
    from cnndsl.frontend import compile_text

    diags = compile_text("input 64x8x8\nconv1x1(64) -> dwconv3x3(64)").diagnostics
    assert [(d.code, d.span.line, d.span.column) for d in diags] == [("W305", 2, 26)]
    assert "4,096" in diags[0].message and diags[0].hint
    assert compile_text("input 64x8x8\ndwconv3x3 -> dwconv3x3(2)").diagnostics == []


EVERY_NEW_OP = """
input 4x8x8
conv3x3(8) -> layernorm(eps=1e-6) -> layer_scale(0.5) -> stochastic_depth(0.1)
-> concat(slice(0, 4), slice(4) -> conv1x1(4)) -> shuffle(2) -> upsample(2) -> crop(14)
-> upsample(size=(9, 9), mode=bilinear) -> convt2x2(4, stride=2) -> relu -> gap -> flatten -> layernorm -> fc(3)
"""


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_new_ops_script_export_and_train():
    net = cnndsl.parse(EVERY_NEW_OP)
    model = build(net, "torch", seed=0).eval()
    x = torch.randn(2, *net.input_shape)
    expected = model(x)
    torch.testing.assert_close(torch.jit.script(model)(x), expected)
    torch.testing.assert_close(torch.export.export(model, (x,)).module()(x), expected)
    import io

    torch.onnx.export(model, (x,), io.BytesIO(), dynamo=False)
    model.train()(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    "layer",
    ["upsample(2)", "upsample(1.5, mode=bilinear, align_corners=true)", "upsample(size=(9, 7))", "crop(3)"]
    + ["slice(1)", "slice(0, 2)", "shuffle(2)", "layernorm", "layer_scale", "stochastic_depth(0.1)"]
    + ["convt(4, kernel=3, stride=2, pad=1, output_pad=1, groups=2)", "deconv2x2(2, stride=2)"],
)
def test_cnndsl_expand_spells_the_new_ops_back(layer):
    from cnndsl.expand import expand

    net = cnndsl.parse(f"network probe\ninput 4x6x5\n{layer}")
    flat = cnndsl.parse(expand(net))
    assert [(n.op, n.attrs, n.shape) for n in flat.layers] == [(n.op, n.attrs, n.shape) for n in net.layers]
