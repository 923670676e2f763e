"""Receptive fields: published figures, merges, global ops, and a torch gradient probe."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from conftest import needs_torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cnndsl
from cnndsl.analysis.figures import Figures
from cnndsl.analysis.judge import judge
from cnndsl.analysis.receptive import misaligned_merges, receptive_fields

VGG16 = """
input 3x224x224
conv3x3(64) -> relu -> conv3x3(64) -> relu -> maxpool2
-> conv3x3(128) -> relu -> conv3x3(128) -> relu -> maxpool2
-> [conv3x3(256) -> relu]x3 -> maxpool2
-> [conv3x3(512) -> relu]x3 -> maxpool2
-> [conv3x3(512) -> relu]x3 -> maxpool2 as pool5
-> adaptive_avgpool(7) -> flatten -> fc(4096) -> relu -> dropout -> fc(4096) -> relu -> dropout -> fc(1000)
"""

ALEXNET = """
input 3x224x224
conv(64, kernel=11, stride=4, pad=2) -> relu -> maxpool3(stride=2)
-> conv5x5(192) -> relu -> maxpool3(stride=2)
-> conv3x3(384) -> relu -> conv3x3(256) -> relu -> conv3x3(256) -> relu -> maxpool3(stride=2) as pool5
-> adaptive_avgpool(6) -> dropout -> fc(4096) -> relu -> dropout -> fc(4096) -> relu -> fc(1000)
"""


@pytest.mark.parametrize("text, size", [(VGG16, 212), (ALEXNET, 195)], ids=["vgg16", "alexnet"])
def test_published_receptive_fields_at_pool5(text, size):
    # Araujo, Norris and Sim, Distill 2019, table of receptive fields: both with effective stride 32.
    f = receptive_fields(cnndsl.parse(text))["pool5"]
    assert f.size == (size, size)
    assert f.stride == (32, 32)


def test_vgg16_offset_matches_effective_padding():
    # Distill 2019 lists VGG-16's effective padding as 90: pixel 0's field starts at input coordinate -90.
    f = receptive_fields(cnndsl.parse(VGG16))["pool5"]
    assert f.offset[0] - (f.size[0] - 1) / 2 == -90


def test_global_ops_make_the_field_global_and_json_null():
    net = cnndsl.parse("input 3x32x32\nconv3x3(8) -> gap -> fc(10)")
    fields = receptive_fields(net)
    assert fields["conv1"].size == (3, 3) and fields["gap1"].is_global and fields["fc1"].is_global
    assert fields["fc1"].to_json()["size"] is None


def test_adaptive_pool_to_own_size_keeps_the_field():
    net = cnndsl.parse("input 3x14x14\nconv3x3(8, stride=2) -> adaptive_avgpool(7) -> flatten -> fc(2)")
    assert receptive_fields(net)["adaptive_avgpool1"].size == (3, 3)


def test_squeeze_excitation_gate_makes_the_field_global():
    net = cnndsl.parse("input 8x16x16\nconv3x3(8) -> mul(identity, gap -> conv1x1(8) -> sigmoid) -> conv1x1(4)")
    assert receptive_fields(net)[net.output].is_global


def test_merge_takes_the_covering_extent():
    net = cnndsl.parse("input 3x32x32\nconcat(conv1x1(4), conv5x5(4), conv3x3(4, dilation=3))")
    f = receptive_fields(net)["concat1"]
    assert f.size == (7, 7) and f.offset == (0, 0)
    assert misaligned_merges(net, receptive_fields(net)) == []


def test_misaligned_branches_warn_w302():
    # Both halve 32 to 16, but the 2x2 kernel's centre sits half a pixel right of the 3x3 one's.
    net = cnndsl.parse("input 3x32x32\nconcat(conv3x3(4, stride=2), conv2x2(4, stride=2, pad=0))")
    f = receptive_fields(net)
    assert f["branch1.conv1"].offset == (0, 0) and f["branch2.conv1"].offset == (0.5, 0.5)
    assert f["concat1"].size == (3, 3)  # covers -1..1 and 0..1
    diags = judge(Figures(net))
    assert [d.code for d in diags] == ["W302"] and diags[0].span.line == 2


def test_upsampled_branches_are_judged_by_where_their_maps_are_centred():
    def w302(text):
        net = cnndsl.parse(text)
        return [d.code for d in misaligned_merges(net, receptive_fields(net))]

    # a 2x2 stride-2 conv's pixels are centred between two input pixels: upsampled back, its map lines up
    # with a full-resolution 3x3 conv's though its first pixel's field does not (as U-Net's skips)
    assert w302("input 3x16x16\nadd(conv2x2(8, stride=2, pad=0) -> upsample(2), conv3x3(8))") == []
    # a 3x3 stride-2 conv samples the even pixels: upsampled, its map sits half a pixel up and left
    assert w302("input 3x16x16\nadd(conv3x3(8, stride=2) -> upsample(2), conv3x3(8))") == ["W302"]
    assert (
        w302("input 3x16x16\ntensor a = conv2x2(8, stride=2, pad=0)\nadd(a -> upsample(2), a -> convt2x2(8, stride=2))")
        == []
    )
    net = cnndsl.load(Path(__file__).resolve().parents[1] / "specs" / "unet.cnn")
    assert misaligned_merges(net, receptive_fields(net)) == []


def test_resnet_downsampling_shortcut_is_aligned():
    net = cnndsl.parse(
        "input 3x32x32\nresidual(conv3x3(8, stride=2) -> relu -> conv3x3(8), shortcut=conv1x1(8, stride=2))"
    )
    assert misaligned_merges(net, receptive_fields(net)) == []


def test_asymmetric_kernels_report_both_axes():
    net = cnndsl.parse("input 3x32x32\nconv1x7(4) -> conv3x3(4, stride=(1, 2))")
    j = receptive_fields(net)[net.output].to_json()
    assert j["size_hw"] == [3, 9] and j["stride_hw"] == [1, 2] and j["size"] == 3


# Gradient probe ------------------------------------------------------------------------------------

LAYER = st.one_of(
    st.builds(
        lambda k, s, d: f"conv({4}, kernel={k}, stride={s}, dilation={d}, pad={d * (k - 1) // 2})",
        st.integers(1, 5),
        st.integers(1, 3),
        st.integers(1, 2),
    ),
    st.builds(
        lambda k, s, p: f"maxpool{k}(stride={s}, pad={min(p, k // 2)})",
        st.integers(1, 3),
        st.integers(1, 3),
        st.integers(0, 1),
    ),
    st.builds(lambda k, s: f"avgpool{k}(stride={s})", st.integers(2, 3), st.integers(1, 2)),
    st.just("relu"),
    st.just("bn"),
)
# Branches halve the size in different ways, so centres may differ (W302 cases included).
BRANCH = st.sampled_from(
    [
        "identity",
        "conv3x3(4)",
        "conv5x5(4)",
        "conv3x3(4, dilation=2)",
        "conv1x1(4) -> conv3x3(4)",
        "maxpool3(stride=1, pad=1)",
    ]
)
DOWN = st.sampled_from(
    [
        "conv3x3(4, stride=2)",
        "conv1x1(4, stride=2)",
        "conv2x2(4, stride=2, pad=0)",
        "maxpool2",
        "conv4x4(4, stride=2, pad=1)",
        "avgpool3(stride=2, pad=1)",
    ]
)
MERGE = st.one_of(
    st.builds(lambda m, a, b: f"{m}({a}, {b})", st.sampled_from(["add", "concat", "mul"]), BRANCH, BRANCH),
    st.builds(lambda a, b: f"concat({a}, {b})", DOWN, DOWN),
)


def _probe(text: str, size: int):
    import torch
    from ir_functional import run

    try:
        net = cnndsl.parse(f"input 4x{size}x{size}\n" + text)
    except cnndsl.CnnError:
        assume(False)
    field = receptive_fields(net)[net.output]
    _, oh, ow = net.output_shape
    # an output pixel whose whole field lies inside the input on both axes
    picks = []
    for ax, n_out in ((0, oh), (1, ow)):
        r, j, c = field.size[ax], field.stride[ax], field.offset[ax]
        ok = [i for i in range(n_out) if c + i * j - (r - 1) / 2 >= 0 and c + i * j + (r - 1) / 2 <= size - 1]
        assume(ok)
        picks.append(ok[len(ok) // 2])
    x = torch.ones((1, 4, size, size), dtype=torch.float64, requires_grad=True)
    y = run(net, x, probe=True)
    y[0, :, picks[0], picks[1]].sum().backward()
    g = x.grad[0].abs().sum(0)
    for ax in (0, 1):
        hit = (g.sum(1 - ax) > 0).nonzero().flatten().tolist()
        assert hit[-1] - hit[0] + 1 == field.size[ax], (ax, hit)
        assert (hit[0] + hit[-1]) / 2 == field.offset[ax] + picks[ax] * field.stride[ax]


@needs_torch
@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(st.lists(LAYER, min_size=1, max_size=5), st.integers(24, 48))
def test_static_field_equals_gradient_probe_single_branch(layers, size):
    _probe(" -> ".join(layers), size)


@needs_torch
@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(st.lists(st.one_of(LAYER, MERGE), min_size=1, max_size=5), st.integers(24, 48))
def test_static_field_equals_gradient_probe_multi_branch(layers, size):
    _probe(" -> ".join(layers), size)


# Fractional strides: upsampling and transposed convolutions ----------------------------------------

VALID = st.one_of(  # no padding
    st.builds(lambda k, s: f"conv({4}, kernel={k}, stride={s}, pad=0)", st.integers(1, 3), st.integers(1, 2)),
    st.builds(lambda k: f"maxpool{k}(stride=1)", st.integers(2, 3)),
    st.sampled_from(["relu", "layernorm", "slice(1)", "shuffle(2)", "crop((20, 19))"]),
)
# Padded windows, but no crop then: padding after a crop reads the crop's border as zeros, where the
# analysis (as for any padding) counts the pixels that lie there before the crop.
PADDED = st.one_of(
    VALID.filter(lambda t: not t.startswith("crop")), st.sampled_from(["conv3x3(4)", "maxpool3(stride=2, pad=1)"])
)
RESAMPLE = st.sampled_from(
    [
        "upsample(2)",
        "upsample(3)",
        "upsample(size=(41, 37))",
        "upsample(2, mode=bilinear)",
        "upsample(2, mode=bilinear, align_corners=true)",
        "convt2x2(4, stride=2)",
        "convt3x3(4, stride=2)",
        "convt(4, kernel=4, stride=3)",
        "convt(4, kernel=3, stride=2, pad=1, output_pad=1)",
    ]
)
# With a crop in the chain: resamplings that never read past their input's border (no bilinear clamp,
# no transposed-conv tap before pixel 0), so that no pixel the crop removed is counted.
INSIDE = st.sampled_from(
    ["upsample(2)", "upsample(3)", "upsample(size=(41, 37))", "upsample(2, mode=bilinear, align_corners=true)"]
    + ["convt2x2(4, stride=2)"]
)


def _probe_resampled(text: str, size: int):
    """Every output pixel's field against the gradient (along each axis, in row or column 0): the field
    pixel 0 sees exactly, the size as the largest field of any pixel, the stride as its period."""
    import torch
    from ir_functional import run

    try:
        net = cnndsl.parse(f"input 4x{size}x{size}\n" + text)
    except cnndsl.CnnError:
        assume(False)
    field = receptive_fields(net)[net.output]
    assume(not field.is_global)
    # a period past receptive.MAX_PHASES (odd sizes resampled to odd sizes) is tracked approximately, and
    # every field from it on says so
    assume(field.exact)
    _, oh, ow = net.output_shape
    x = torch.ones((1, 4, size, size), dtype=torch.float64, requires_grad=True)
    y = run(net, x, probe=True)
    for ax, n_out in ((0, oh), (1, ow)):
        table = field.axis(ax)
        extents = []
        for o in range(n_out):
            x.grad = None
            pick = (slice(None), o, 0) if ax == 0 else (slice(None), 0, o)
            y[0][pick].sum().backward(retain_graph=True)
            hit = (x.grad[0].abs().sum(0).sum(1 - ax) > 0).nonzero().flatten().tolist()
            want = table.at(o)
            if not hit:
                assert want is None or want[1] < 0 or want[0] >= size, (ax, o, want)
                continue
            assert want is not None, (ax, o, hit)
            # where the analysis counts pixels outside the input (as padding does), torch clamps or pads at
            # that layer's border, which the probe cannot see: compare the fields that lie inside
            if want is not None and want[0] >= 0 and want[1] < size:
                assert (want[0], want[1]) == (hit[0], hit[-1]), (ax, o, want, hit)
                extents.append(want[1] - want[0] + 1)
        assert not extents or max(extents) <= field.size[ax]


@needs_torch
@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(
    st.sampled_from([(VALID, INSIDE), (PADDED, RESAMPLE)]).flatmap(
        lambda kinds: st.tuples(st.lists(kinds[0], max_size=2), kinds[1], st.lists(st.one_of(*kinds), max_size=3))
    ),
    st.integers(12, 30),
)
def test_fractional_field_equals_gradient_probe(parts, size):
    before, resample, after = parts
    _probe_resampled(" -> ".join([*before, resample, *after]), size)


def test_upsampling_halves_the_stride_and_keeps_pixel_zero():
    net = cnndsl.parse("input 3x32x32\nconv3x3(4, stride=2, pad=0) -> upsample(2) -> conv3x3(4, pad=0)")
    f = receptive_fields(net)
    assert f["upsample1"].size == (3, 3) and f["upsample1"].stride == (1, 1) and f["upsample1"].offset == (1, 1)
    assert f["conv2"].size == (5, 5)  # three upsampled pixels come from two conv outputs: 3 + 2
    up = receptive_fields(cnndsl.parse("input 3x8x8\nupsample(2) -> conv3x3(4, pad=0)"))
    assert up["upsample1"].stride == (Fraction(1, 2),) * 2 and up["conv1"].size == (2, 2)
    assert up["conv1"].to_json()["stride"] == 0.5


def test_a_cut_phase_table_marks_every_later_field_approximate():
    # 12 -> 41 -> 82 (align_corners: 40/81 per pixel) repeats only every 3,321 output pixels
    net = cnndsl.parse(
        "input 4x12x12\nupsample(size=(41, 37)) -> upsample(2, mode=bilinear, align_corners=true) -> maxpool2(stride=1)"
    )
    f = receptive_fields(net)
    assert f["upsample1"].exact and not f["upsample2"].exact and not f["maxpool1"].exact
    assert f["maxpool1"].to_json()["exact"] is False
    assert receptive_fields(cnndsl.parse("input 4x12x12\nupsample(2) -> conv3x3(4)"))["conv1"].exact


def test_transposed_conv_field():
    f = receptive_fields(cnndsl.parse("input 3x8x8\nconvt2x2(4, stride=2) -> convt3x3(4, stride=2, pad=1)"))
    assert f["convt1"].size == (1, 1) and f["convt1"].stride == (Fraction(1, 2),) * 2 and f["convt1"].offset == (0, 0)
    assert f["convt1"].axes[0].lo == (0, 0)  # pixels 0 and 1 both come from input pixel 0
    assert f["convt2"].stride == (Fraction(1, 4),) * 2
