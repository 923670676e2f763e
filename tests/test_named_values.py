"""Named tensors, several outputs, computed lists and selective imports: front end, analysis, backends."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from conftest import needs_torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numba_helpers import build_shared

import cnndsl
from cnndsl import reference
from cnndsl.analysis.cost import peak_activation
from cnndsl.analysis.figures import Figures
from cnndsl.backends import numba_backend, render
from cnndsl.cli import main
from cnndsl.diagnostics import render as render_diagnostic
from cnndsl.fmt import format_text
from cnndsl.frontend import compile_text
from cnndsl.report import network_json

# A backbone with two stages read by a top-down pathway, and a classifier head: three outputs.
MULTI = """input 3x12x12
tensor stem = conv3x3(8) -> bn -> relu
tensor c2 = stem -> maxpool2 -> conv3x3(12) -> relu
tensor c3 = c2 -> maxpool2 -> conv3x3(16) -> relu
tensor head = c3 -> gap -> fc(5)
tensor side = add(c2 -> conv1x1(6), c2 -> conv3x3(6)) -> relu
output head, side, c3
"""


def errors(text: str):
    c = compile_text(text, "t.cnn")
    assert c.network is None
    return [(d.code, d.span.line, d.span.column, d.message, d.hint or "") for d in c.errors], c


def one_error(text: str):
    found, c = errors(text)
    assert len(found) == 1, found
    d = c.errors[0]
    assert d.hint, d  # every misuse comes with a hint
    return found[0]


# -- the front end ---------------------------------------------------------------------------------


def test_outputs_in_declaration_order_and_output_is_the_first():
    net = cnndsl.parse(MULTI)
    assert net.outputs == ("fc1", "relu4", "relu3")
    assert net.output == "fc1" and net.output_shape == (5,)
    assert net.output_shapes == ((5,), (6, 6, 6), (16, 3, 3))


def test_a_named_tensor_is_a_long_skip_without_nesting():
    net = cnndsl.parse(
        "input 3x8x8\ntensor skip = conv3x3(8) -> relu\nskip -> conv3x3(8) -> relu -> add(identity, skip)\n"
    )
    assert net.outputs == ("add1",)
    assert net.node("add1").inputs == ("relu2", "relu1")


def test_a_single_body_network_is_unchanged():
    net = cnndsl.parse("input 3x8x8\nconv3x3(4) -> relu")
    assert net.outputs == ("relu1",) and net.output == "relu1"


def test_node_names_run_on_across_statements():
    net = cnndsl.parse(MULTI)
    assert [n.name for n in net.layers][:4] == ["conv1", "bn1", "relu1", "maxpool1"]
    assert len({n.name for n in net.nodes}) == len(net.nodes)


def test_a_tensor_passed_to_a_block_is_read_there():
    text = (
        "input 3x8x8\nblock join(skip) { conv3x3(4) -> concat(identity, skip) }\ntensor a = conv3x3(4)\na -> join(a)\n"
    )
    net = cnndsl.parse(text)
    assert net.output_shape == (8, 8, 8)


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        ("input 3x8x8\ntensor a = b -> relu\ntensor b = relu\noutput a\n", "E101", "used before it is defined"),
        ("input 3x8x8\ntensor a = relu\ntensor a = relu\noutput a\n", "E106", "named twice"),
        ("input 3x8x8\ntensor relu = conv3x3(4)\noutput relu\n", "E106", "already names a layer"),
        ("input 3x8x8\ntensor a = relu\noutput a, a\n", "E106", "listed twice"),
        ("input 3x8x8\ntensor a = relu\ntensor b = a\noutput a, b\n", "E106", "same tensor as `a`"),
        ("input 3x8x8\ntensor a = relu\noutput b\n", "E101", "no tensor named `b`"),
        ("input 3x8x8\ntensor a = identity\noutput a\n", "E108", "the input itself"),
        ("input 3x8x8\ntensor a = relu\nconv3x3(4)\noutput a\n", "E108", "without a name"),
        ("input 3x8x8\ntensor a = relu\noutput a\noutput a\n", "E108", "given twice"),
        ("input 3x8x8\ntensor a = relu\n", "E108", "no output"),
        ("input 3x8x8\ntensor a = relu\na -> conv3x3(a)\n", "E103", "named tensor, not a value"),
        ("input 3x8x8\ntensor a = relu\na(3) -> relu\n", "E103", "takes no arguments"),
        ("input 3x8x8\ntensor a = relu\ntensor b = conv3x3(4) -> a -> relu\noutput b\n", "E113", "`conv1`"),
        ("input 3x8x8\nconv3x3(4)\nconv3x3(4)\n", "E108", "output head1, head2"),
    ],
)
def test_every_misuse_is_located_with_a_hint(text, code, fragment):
    got = one_error(text)
    assert got[0] == code and fragment in got[3] + got[4], got


def test_unused_layer_is_reported_where_it_was_written():
    c = compile_text("input 3x8x8\ntensor a = conv3x3(8)\ntensor b = a -> relu -> bn\noutput a\n", "t.cnn")
    [d] = c.errors
    assert (d.code, d.span.line, d.span.column) == ("E113", 3, 17)
    assert "^^^^" in render_diagnostic(d, c.sources)


def test_let_of_a_chain_says_how_to_name_a_tensor():
    [(code, *_, hint)], _ = errors("input 3x8x8\nlet trunk = conv3x3(16) -> relu\nrelu\n")
    assert code == "E103" and "tensor trunk = ..." in hint


def test_a_newline_before_as_has_a_hint():
    [(code, line, column, _, hint)], _ = errors("input 3x8x8\nconv3x3(4)\n  as stem -> relu\n")
    assert (code, line, column) == ("E001", 3, 3) and "newline ended the statement before `as`" in hint


def test_fmt_keeps_the_new_statements():
    text = (
        "from resnet import basic\ninput 3x8x8\nlet w = [2**i for i in range(3)]\n"
        "tensor a = conv3x3(w[1]) -> relu\ntensor b = a -> basic(2)\noutput a, b\n"
    )
    formatted = format_text(text, "t.cnn")
    assert formatted == text
    assert cnndsl.parse(formatted).outputs == cnndsl.parse(text).outputs


# -- computed lists, functions, selective import ----------------------------------------------------


def test_comprehension_range_index_and_functions():
    net = cnndsl.parse(
        "input 3x8x8\nlet widths = [8 * 2**i for i in range(3)]\n"
        "let c = round(exp(log(widths[-1]))) + len(widths) + sum(range(3))\n"
        "conv3x3(widths[0]) -> conv3x3(c)\n"
    )
    assert [n.shape[0] for n in net.layers] == [8, 32 + 3 + 3]


def test_a_computed_connection_table():
    net = cnndsl.parse("input 4x8x8\nconv3x3(4, table=[[i, (i + 1) % 4] for i in range(4)])\n")
    assert net.layers[0].attrs["table"] == ((0, 1), (1, 2), (2, 3), (3, 0))


@pytest.mark.parametrize(
    ("value", "code", "fragment"),
    [
        ("[i for i in 3]", "E103", "needs a list"),
        ("range(1.5)", "E102", "one to three integers"),
        ("range(0, 4, 0)", "E104", "must not be zero"),
        ("range(10**7)", "E104", "beyond the limit"),
        ("len(3)", "E102", "takes one list"),
        ("w[5]", "E104", "out of range"),
        ("w[true]", "E103", "an integer"),
        ("log(0)", "E110", "arithmetic error"),
        ("exp(1000)", "E110", "too large"),
    ],
)
def test_list_and_function_misuse(value, code, fragment):
    found, _ = errors(f"input 3x8x8\nlet w = [1, 2]\nlet v = {value}\nrelu\n")
    assert [f[0] for f in found] == [code] and fragment in found[0][3], found


def test_nested_comprehensions_are_bounded_by_work():
    found, _ = errors("input 3x8x8\nlet v = [[j for j in range(999999)] for i in range(999999)]\nrelu\n")
    assert found[0][0] == "E107"


def test_selective_import_takes_only_the_names_given():
    net = cnndsl.parse("from resnet import basic\ninput 64x8x8\nbasic(64)\n")
    assert net.output_shape == (64, 8, 8)
    [(code, *_, message, hint)], _ = errors("from resnet import basic\ninput 64x8x8\nbottleneck(16)\n")
    assert code == "E101"
    [(code, line, column, message, hint)], _ = errors("from resnet import basik\ninput 3x8x8\nrelu\n")
    assert (code, line, column) == ("E101", 1, 20) and "did you mean `basic`" in hint


def test_a_clash_with_an_import_names_the_import():
    found, c = errors("import resnet\ninput 3x8x8\nblock basic(c) { relu }\nrelu\n")
    [(code, line, _, message, hint)] = found
    assert (code, line) == ("E106", 3) and "`import resnet`" in message and "from resnet import" in hint
    assert c.errors[0].notes[0].span.line == 1


# -- analysis and check ------------------------------------------------------------------------------


def test_params_and_macs_cover_every_output_branch():
    net = cnndsl.parse(MULTI)
    fig = Figures(net)
    assert fig.total_params == sum(fig.params.values()) > 0
    assert fig.params["fc1"] == 16 * 5 + 5 and fig.params["branch1.conv1"] == 12 * 6 + 6


def test_peak_memory_keeps_every_output_live():
    net = cnndsl.parse(MULTI)
    peak, during = peak_activation(net)
    outputs = sum(4 * int(np.prod(net.node(o).shape)) for o in net.outputs)
    last = net.nodes[-1].name
    assert during[last] >= outputs and peak >= during[last]


def test_check_json_lists_every_output():
    net = cnndsl.parse(MULTI)
    out = network_json(net, [], "t.cnn")
    assert out["output_shape"] == [5] and out["receptive_field"] is not None  # the keys of old
    assert [o["name"] for o in out["outputs"]] == list(net.outputs)
    assert [o["output_shape"] for o in out["outputs"]] == [[5], [6, 6, 6], [16, 3, 3]]
    assert all(o["receptive_field"] for o in out["outputs"])


def test_check_prints_each_output(tmp_path, capsys):
    spec = tmp_path / "multi.cnn"
    spec.write_text(MULTI)
    assert main(["check", str(spec)]) == 0
    text = capsys.readouterr().out
    assert "3 outputs: fc1 Nx5 RF" in text and "relu4 Nx6x6x6" in text
    assert main(["check", str(spec), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["outputs"]) == 3


# -- backends -------------------------------------------------------------------------------------


def test_reference_returns_a_tuple_for_several_outputs():
    net = cnndsl.parse(MULTI)
    x = np.random.default_rng(0).standard_normal((2, *net.input_shape))
    ys = reference.run(net, reference.random_weights(net), x)
    assert isinstance(ys, tuple) and [y.shape[1:] for y in ys] == list(net.output_shapes)


def test_every_generated_module_defines_outputs():
    net = cnndsl.parse(MULTI)
    for backend in ("torch", "numba", "cuda"):
        assert 'OUTPUTS = ("fc1", "relu4", "relu3")' in render(net, backend), backend


def test_numba_returns_a_tuple_that_agrees_with_the_reference():
    net = cnndsl.parse(MULTI)
    model = build_shared(net)
    weights = reference.random_weights(net, 1)
    model.load_state_dict(weights)
    x = np.random.default_rng(1).standard_normal((2, *net.input_shape)).astype(np.float32)
    got, want = model(x), reference.run(net, weights, x)
    assert isinstance(got, tuple) and len(got) == 3
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@needs_torch
def test_verify_compares_every_output(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(numba_backend, "render", functools.partial(numba_backend.render, inline_kernels=False))
    spec = tmp_path / "multi.cnn"
    spec.write_text(MULTI)
    assert main(["verify", str(spec), "--backends", "torch,numba", "--seeds", "1"]) == 0
    assert "all backends agree" in capsys.readouterr().out
    from cnndsl.commands.verify import compare

    a = (np.zeros(3), np.ones(2))
    assert compare(a, (np.zeros(3), np.ones(2)), 1e-4, 1e-5)[2]
    assert not compare(a, (np.zeros(3), np.full(2, 2.0)), 1e-4, 1e-5)[2]  # the second output differs
    assert not compare(a, np.zeros(3), 1e-4, 1e-5)[2]


# -- random graphs of named tensors ---------------------------------------------------------------


@st.composite
def tensor_graphs(draw):
    """A spec of named tensors: each continues an earlier one, or merges two earlier ones (a long skip
    or a top-down read); the outputs are a random non-empty set that covers every sink."""
    lines, shapes, readers = ["input 3x8x8"], [], []
    n = draw(st.integers(1, 6))
    for i in range(n):
        layer = draw(st.sampled_from(["conv3x3(4)", "conv1x1(4) -> bn", "relu", "conv3x3(4) -> relu"]))
        same = [j for j in range(i) if shapes[j] == "4"]
        if i == 0 or not same:
            src = draw(st.sampled_from([f"t{j}" for j in range(i)])) if i else None
            chain = f"{src} -> {layer}" if src else layer
            shape = "4" if "conv" in layer or (src and shapes[int(src[1:])] == "4") else "3"
            used = [int(src[1:])] if src else []
        else:
            a, b = draw(st.lists(st.sampled_from(same), min_size=2, max_size=2))
            merge = draw(st.sampled_from(["add", "mul", "concat"]))
            chain = f"{merge}(t{a} -> {layer.replace('conv1x1(4) -> bn', 'bn')}, t{b})"
            shape = "8" if merge == "concat" else "4"
            used = [a, b]
        lines.append(f"tensor t{i} = {chain}")
        shapes.append(shape)
        readers += used
    sinks = [i for i in range(n) if i not in readers]
    extra = draw(st.lists(st.integers(0, n - 1), unique=True, max_size=2))
    outs = list(dict.fromkeys([*sinks, *extra]))
    draw(st.randoms()).shuffle(outs)
    lines.append("output " + ", ".join(f"t{i}" for i in outs))
    return "\n".join(lines) + "\n"


@given(tensor_graphs())
@settings(max_examples=25, deadline=None)
def test_random_tensor_graphs_compile_format_and_agree_on_torch(text):
    torch = pytest.importorskip("torch")
    from cnndsl.backends import build

    c = compile_text(text, "t.cnn")
    if c.network is None:  # an identity-only tensor named as an output, say: refused, located
        assert all(d.span.line >= 1 and d.hint for d in c.errors), c.errors
        return
    net = c.network
    assert cnndsl.parse(format_text(text, "t.cnn")).nodes == net.nodes
    model = build(net, "torch", seed=0).eval()
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    x = np.random.default_rng(0).standard_normal((2, *net.input_shape)).astype(np.float32)
    with torch.no_grad():
        got = model(torch.from_numpy(x))
    want = reference.run(net, weights, x)
    got, want = (got, want) if len(net.outputs) > 1 else ((got,), (want,))
    assert len(got) == len(want) == len(net.outputs)
    for g, w, o in zip(got, want, net.outputs, strict=True):
        assert tuple(g.shape[1:]) == net.node(o).shape
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-4, atol=1e-4)


def test_expect_outputs_pins_every_output_shape():
    from cnndsl.analysis.judge import judge

    ok = MULTI + "expect outputs == 3\nexpect outputs == ((5,), (6, 6, 6), (16, 3, 3))\nexpect output == 5\n"
    assert [d for d in judge(Figures(cnndsl.parse(ok))) if d.severity == "error"] == []
    bad = MULTI + "expect outputs == ((5,), (6, 6, 6), (16, 4, 4))\n"
    [d] = [d for d in judge(Figures(cnndsl.parse(bad))) if d.severity == "error"]
    assert d.code == "E401" and "it is 5, 6x6x6, 16x3x3" in d.message


# -- merges that align sizes --------------------------------------------------------------------------

ALIGNED = """input 3x20x20
tensor c1 = conv3x3(4, pad=valid) -> relu
tensor c2 = c1 -> maxpool2 -> conv3x3(4, pad=valid) -> relu
tensor u = concat(c1, c2 -> convt2x2(4, stride=2), align=crop)
tensor p = add(c2 -> conv1x1(4), c1 -> maxpool2 -> maxpool2, align=upsample) -> conv3x3(4)
output u, p
"""


def test_align_crop_and_upsample_insert_nodes_through_the_op_table():
    net = cnndsl.parse(ALIGNED)
    [crop] = [n for n in net.layers if n.op == "crop"]
    assert crop.inputs == ("relu1",) and crop.shape == (4, 14, 14) and crop.attrs["size"] == (14, 14)
    [up] = [n for n in net.layers if n.op == "upsample"]
    assert up.shape == (4, 7, 7) and up.attrs["mode"] == "nearest"
    assert net.output_shapes == ((8, 14, 14), (4, 7, 7))


def test_aligned_merges_agree_on_torch_and_numba():
    torch = pytest.importorskip("torch")
    from cnndsl.backends import build

    net = cnndsl.parse(ALIGNED)
    weights = reference.random_weights(net, 2)
    x = np.random.default_rng(2).standard_normal((2, *net.input_shape)).astype(np.float32)
    want = reference.run(net, weights, x)
    model = build(net, "torch").eval()
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in weights.items()})
    with torch.no_grad():
        got = model(torch.from_numpy(x))
    numba_model = build_shared(net)
    numba_model.load_state_dict(weights)
    for t, n, w in zip(got, numba_model(x), want, strict=True):
        np.testing.assert_allclose(t.numpy(), w, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(n, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("merge", "code", "fragment"),
    [
        ("concat(identity, maxpool2, align=center)", "E102", "`crop` or `upsample`"),
        ("concat(identity, maxpool2, align=crop, align=crop)", "E102", "given twice"),
        ("concat(identity, maxpool2, align=(2))", "E102", "`crop` or `upsample`"),
        ("flatten -> concat(identity, identity, align=crop)", "E205", "feature maps"),
        ("concat(identity, maxpool2)", "E203", "align=crop"),
        ("add(identity, maxpool2)", "E203", "align=upsample"),
    ],
)
def test_align_misuse(merge, code, fragment):
    found, _ = errors(f"input 3x8x8\n{merge}\n")
    assert found[0][0] == code and fragment in found[0][3] + found[0][4], found
