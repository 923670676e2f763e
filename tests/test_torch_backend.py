"""The torch backend: generated source (deterministic, ruff-clean, safe), weight naming, interop, properties."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import HealthCheck, given, reject, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import cnndsl  # noqa: E402
from cnndsl import reference  # noqa: E402
from cnndsl.analysis import param_counts, weight_specs  # noqa: E402
from cnndsl.backends import build, render  # noqa: E402
from cnndsl.backends.lowering import elementwise_ops  # noqa: E402
from cnndsl.cli import main  # noqa: E402
from cnndsl.ops import OPS  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "specs"

SMALL = """
network small_mix
input 3x16x16
conv3x3(8, bias=false) -> bn -> relu
-> residual(conv3x3(8) -> bn -> relu -> conv3x3(8), shortcut=identity)
-> concat(conv1x1(4), maxpool3(stride=1, pad=1) -> conv1x1(4) -> relu6)
-> mul(gap -> conv1x1(2) -> silu -> conv1x1(8) -> sigmoid, identity)
-> dwconv3x3(stride=2) -> hardswish -> avgpool2(include_pad=false) -> leaky_relu(0.2)
-> flatten -> dropout(0.1) -> fc(12) -> bn -> gelu -> fc(5) -> softmax
"""


def torch_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_state_dict_is_the_shared_weight_naming():
    net = cnndsl.parse(SMALL)
    model = build(net, "torch")
    state = model.state_dict()
    specs = weight_specs(net)
    assert list(state) == list(specs)  # same names, same (execution) order
    for key, spec in specs.items():
        assert tuple(state[key].shape) == spec.shape, key
        assert str(state[key].dtype) == f"torch.{spec.dtype}", key
    assert torch_params(model) == sum(param_counts(net).values())
    buffers = {k for k, s in specs.items() if s.kind == "buffer"}
    assert buffers == {k for k, _ in model.named_buffers()}


def test_forward_shape_and_grad():
    net = cnndsl.parse(SMALL)
    model = build(net, "torch", seed=0)
    y = model(torch.randn(2, *net.input_shape))
    assert tuple(y.shape) == (2, *net.output_shape)
    torch.testing.assert_close(y.sum(dim=1), torch.ones(2))  # softmax over dim 1
    y[:, 0].sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_render_is_deterministic():
    text = (SPECS / "googlenet.cnn").read_text()
    a = render(cnndsl.parse(text, path="googlenet.cnn"), "torch")
    b = render(cnndsl.parse(text, path="googlenet.cnn"), "torch")
    assert a == b


def test_generated_module_imports_only_torch():
    for spec in ("lenet5_1998.cnn", "efficientnet_b0.cnn"):
        tree = ast.parse(render(cnndsl.load(SPECS / spec), "torch"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module.split(".")[0])
        assert imported <= {"torch", "math"}, imported


def test_no_spec_text_reaches_the_source():
    text = '# """ import os; os.system("boom") \'\'\'\ninput 3x8x8\nconv3x3(4) -> relu -> gap -> fc(2)  # EVIL"""\n'
    source = render(cnndsl.parse(text), "torch")
    assert "boom" not in source and "EVIL" not in source


def _forward_statements(source: str):
    """(class, statement, its comment) for every statement of every forward in a generated module."""
    tree, lines = ast.parse(source), source.splitlines()
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for fn in (f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "forward"):
            for stmt in fn.body:
                line = lines[stmt.lineno - 1]
                above = lines[stmt.lineno - 2].strip()
                yield cls.name, stmt, line[line.index("  # ") + 2 :] if "  # " in line else above


def test_forward_lines_carry_the_spec_line():
    source = render(cnndsl.load(SPECS / "resnet18.cnn"), "torch")
    statements = list(_forward_statements(source))
    assert {c for c, _, _ in statements} == {"Basic", "Resnet18"}  # Chain uses nn.Sequential's forward
    # every statement of every forward has its comment, trailing or on the line above
    for cls, stmt, comment in statements:
        if not isinstance(stmt, ast.Return):
            assert comment.startswith(("# line ", "# lines ")), (cls, ast.unparse(stmt))
    assert isinstance(statements[-1][1], ast.Return)
    assert "x = self.conv1(x)  # line 7: conv -> 64x112x112" in source
    assert "x = self.layer1(x)  # line 8: layer1 -> 64x56x56" in source
    stdlib = (Path(cnndsl.__file__).parent / "stdlib" / "resnet.cnn").read_text().splitlines()
    conv_line = next(i for i, ln in enumerate(stdlib, 1) if "conv3x3(c, stride=stride" in ln)
    # a block's statement: the lines of the calls its class serves and the line in the block's own file
    assert f"out = self.conv1(x)  # lines 8-11 (resnet.cnn line {conv_line}): conv\n" in source
    one = "input 3x8x8\nblock b(c) {\n  conv3x3(c) -> relu\n}\nb(4)\n"
    assert "# line 5 (block line 3): conv -> 4x8x8" in render(cnndsl.parse(one), "torch")
    two = render(cnndsl.parse(one.replace("b(4)", "b(4) -> b(2)")), "torch")
    assert "# line 5 (block line 3): conv\n" in two  # one class for both calls: their shapes differ
    assert "x = self.b1(x)  # line 5: b -> 4x8x8" in two and "x = self.b2(x)  # line 5: b -> 2x8x8" in two


# ruff sits beside the interpreter in a virtualenv that is not activated (as in CI)
RUFF = shutil.which("ruff") or shutil.which("ruff", path=os.path.dirname(sys.executable))


@pytest.mark.skipif(RUFF is None, reason="ruff not installed")
@pytest.mark.parametrize("spec", ["lenet5_1998.cnn", "googlenet.cnn", "efficientnet_b0.cnn", "resnet50.cnn"])
def test_generated_source_is_ruff_clean(spec, tmp_path):
    path = tmp_path / "model.py"
    path.write_text(render(cnndsl.load(SPECS / spec), "torch"))
    config = Path(__file__).resolve().parent.parent / "pyproject.toml"
    for args in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        r = subprocess.run([RUFF, *args, "--config", str(config), str(path)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_long_names_stay_ruff_clean(tmp_path):
    # deep scopes push lines past 120 characters: comments move above, calls wrap the way ruff wraps them
    text = (
        "input 3x8x8\n"
        + "(" * 6
        + "conv3x3(300, bias=false) -> bn -> relu"
        + "".join(f") as some_rather_long_scope_name_{i}" for i in range(6))
        + " -> gap -> fc(3)\n"
    )
    source = render(cnndsl.parse(text), "torch")
    assert any(len(ln) > 100 for ln in source.splitlines())
    if RUFF:
        path = tmp_path / "m.py"
        path.write_text(source)
        r = subprocess.run(
            [RUFF, "format", "--check", "--no-cache", "--line-length", "120", str(path)],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stdout + r.stderr
    model = build(cnndsl.parse(text), "torch")
    assert tuple(model(torch.randn(1, 3, 8, 8)).shape) == (1, 3)


def test_connection_table_conv_matches_a_masked_dense_conv():
    net = cnndsl.load(SPECS / "lenet5_1998.cnn")
    model = build(net, "torch", seed=1).eval()
    c3 = model.c3
    table = net.node("c3").attrs["table"]
    assert tuple(c3.weight.shape) == (sum(len(r) for r in table), 5, 5)
    dense = torch.zeros(16, 6, 5, 5)
    k = 0
    for out, row in enumerate(table):
        for i in row:
            dense[out, i] = c3.weight.detach()[k]
            k += 1
    x = torch.randn(2, 6, 14, 14)
    torch.testing.assert_close(c3(x), torch.nn.functional.conv2d(x, dense, c3.bias.detach()))
    c3(x).sum().backward()
    assert c3.weight.grad.shape == c3.weight.shape and c3.weight.grad.abs().sum() > 0
    assert "index" not in model.state_dict() and "c3.index" not in model.state_dict()


def test_reserved_names_are_located_errors():
    for label in ("train", "forward", "to", "class", "__x"):
        with pytest.raises(cnndsl.CnnError) as e:
            render(cnndsl.parse(f"input 3x8x8\nconv3x3(4) as {label} -> relu"), "torch")
        assert e.value.diagnostics[0].code == "E112"
        assert e.value.diagnostics[0].span.line == 2


def test_frozen_layers_do_not_train():
    net = cnndsl.parse("input 3x8x8\nconv3x3(4) -> bn -> relu -> gap -> fc(2) as head\nfreeze conv1, bn1")
    model = build(net, "torch")
    assert not any(p.requires_grad for p in model.conv1.parameters())
    assert not any(p.requires_grad for p in model.bn1.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


def test_instantiate_options():
    net = cnndsl.load(SPECS / "vgg16.cnn")
    model = build(net, "torch", device="meta", train=False)
    assert next(model.parameters()).device.type == "meta" and not model.training
    assert torch_params(model) == 138_357_544
    a = build(cnndsl.parse(SMALL), "torch", seed=3).state_dict()
    b = build(cnndsl.parse(SMALL), "torch", seed=3, dtype=torch.float64).state_dict()
    assert b["conv1.weight"].dtype == torch.float64 and b["bn1.num_batches_tracked"].dtype == torch.int64
    torch.testing.assert_close(a["conv1.weight"].double(), b["conv1.weight"])


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("spec", ["lenet5_1998.cnn", "small"])
def test_torch_export_and_script(spec):
    net = cnndsl.parse(SMALL) if spec == "small" else cnndsl.load(SPECS / spec)
    model = build(net, "torch", seed=0).eval()
    x = torch.randn(2, *net.input_shape)
    expected = model(x)
    scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted(x), expected)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), expected)


def test_state_dict_loads_from_numpy_arrays():
    # the cross-backend contract: {k: v.numpy()} goes back in under the same names
    net = cnndsl.parse(SMALL)
    a, b = build(net, "torch", seed=1), build(net, "torch", seed=2)
    arrays = {k: v.numpy() for k, v in a.state_dict().items()}
    b.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
    x = torch.randn(3, *net.input_shape)
    torch.testing.assert_close(a.eval()(x), b.eval()(x))


# -- the compile command ------------------------------------------------------------------------


def test_compile_prints_source(capsys):
    assert main(["compile", str(SPECS / "lenet5.cnn"), "--backend", "torch"]) == 0
    out = capsys.readouterr().out
    assert "class Lenet5(nn.Module):" in out
    compile(out, "lenet5.py", "exec")


def test_compile_writes_file_and_runs(tmp_path):
    target = tmp_path / "r18.py"
    assert main(["compile", str(SPECS / "resnet18.cnn"), "--backend", "torch", "-o", str(target)]) == 0
    namespace: dict = {}
    exec(compile(target.read_text(), str(target), "exec"), namespace)
    model = namespace["Resnet18"]().eval()
    with torch.no_grad():
        assert tuple(model(torch.randn(1, 3, 64, 64)).shape) == (1, 1000)


def test_compile_input_override(capsys):
    assert main(["compile", str(SPECS / "mission.cnn"), "--backend", "torch", "--input", "3x64x64"]) == 0
    assert "Nx3x64x64" in capsys.readouterr().out


def test_compile_errors_exit_2_and_write_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.cnn"
    bad.write_text("input 3x8x8\nconv3x3(4) -> relu -> fc(10) -> conv3x3(2)\n")
    target = tmp_path / "out.py"
    assert main(["compile", str(bad), "--backend", "torch", "-o", str(target)]) == 2
    assert "error[E205]" in capsys.readouterr().err
    assert not target.exists() and list(tmp_path.iterdir()) == [bad]
    assert main(["compile", str(SPECS / "lenet5.cnn"), "--backend", "tensorflow"]) == 2
    assert "unknown backend" in capsys.readouterr().err
    reserved = tmp_path / "reserved.cnn"
    reserved.write_text("input 3x8x8\nconv3x3(4) as eval\n")
    assert main(["compile", str(reserved), "--backend", "torch"]) == 2
    assert "E112" in capsys.readouterr().err


def test_compile_does_not_import_torch_before_it_must():
    code = (
        "import sys; from cnndsl.cli import build_parser; build_parser(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)


# -- properties -----------------------------------------------------------------------------------

ACTIVATIONS = [f"{op}(0.1)" if OPS[op].scalar else op for op in elementwise_ops()]  # every one the op table has


REACH = [
    "layernorm",
    "layer_scale(0.5)",
    "stochastic_depth(0.2)",
    "slice(0, 1)",
    "concat(identity, identity) -> shuffle(2)",
    "upsample(size=(9, 7))",
    "upsample(size=(5, 8), mode=bilinear, align_corners=true)",
    "convt3x3(3, pad=1)",
    "convt2x2(2, bias=false)",
]


@st.composite
def layer(draw, defs: list[str], depth: int = 0):
    """One layer, or a call of a block appended to defs (`in_channels` means the input of the enclosing block)."""
    kinds = ["conv", "act", "bn", "pool", "dropout", "reach"] + (["residual", "concat", "se"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "reach":  # issue 14's ops, in forms valid on any input (sizes bounded)
        return draw(st.sampled_from(REACH))
    if kind == "conv":
        k = draw(st.sampled_from([1, 3, 5]))
        stride = draw(st.sampled_from([1, 1, 2]))
        bias = str(draw(st.booleans())).lower()
        if draw(st.integers(0, 4)) == 0:
            return f"dwconv{k}x{k}(stride={stride}, bias={bias})"
        return f"conv{k}x{k}({draw(st.integers(1, 6))}, stride={stride}, bias={bias})"
    if kind == "act":
        return draw(st.sampled_from(ACTIVATIONS))
    if kind == "bn":
        return "bn"
    if kind == "dropout":
        return "dropout(0.25)"
    if kind == "pool":
        return draw(
            st.sampled_from(
                [
                    "maxpool2",
                    "avgpool2",
                    "maxpool3(stride=2, pad=1, ceil=true)",
                    "avgpool3(stride=1, pad=1, include_pad=false)",
                    "maxpool3(stride=1, pad=1)",
                ]
            )
        )
    if kind == "concat":
        n = draw(st.integers(2, 3))
        return "concat(" + ", ".join(draw(branch()) for _ in range(n)) + ")"
    name = f"b{len(defs)}"
    if kind == "residual":  # the body keeps channels and size: width in_channels, stride 1
        items = [f"conv3x3(in_channels, bias={str(draw(st.booleans())).lower()})"]
        items += draw(st.lists(st.sampled_from(["bn", "relu", "conv1x1(in_channels)", "silu"]), max_size=3))
        defs.append(f"block {name}() {{ residual({' -> '.join(items)}) }}")
    else:
        defs.append(f"block {name}() {{ mul(gap -> conv1x1(2) -> relu -> conv1x1(in_channels) -> sigmoid, identity) }}")
    return name


@st.composite
def branch(draw):
    """A concat branch keeps the spatial size: stride 1, default padding."""
    k = draw(st.sampled_from([1, 3]))
    items = [f"conv{k}x{k}({draw(st.integers(1, 5))})"]
    items += draw(st.lists(st.sampled_from(["bn", "relu", "maxpool3(stride=1, pad=1)"]), max_size=2))
    return " -> ".join(items)


@st.composite
def spec_text(draw):
    c, h, w = draw(st.integers(1, 4)), draw(st.integers(6, 20)), draw(st.integers(6, 20))
    defs: list[str] = []
    body = " -> ".join(draw(st.lists(layer(defs), min_size=1, max_size=6)))
    head = draw(st.sampled_from(["", " -> gap -> fc(7)", " -> flatten -> fc(5) -> relu -> fc(3)", " -> gmp"]))
    return "\n".join([f"input {c}x{h}x{w}", *defs, body + head]) + "\n"


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec_text())
def test_property_torch_matches_the_analysis(text):
    try:
        net = cnndsl.parse(text)
    except cnndsl.CnnError as e:
        if all(d.code == "E201" for d in e.diagnostics):  # too much downsampling for the drawn input size
            reject()
        raise
    model = build(net, "torch", seed=0).eval()
    assert torch_params(model) == sum(param_counts(net).values())
    assert list(model.state_dict()) == list(weight_specs(net))
    with torch.no_grad():
        y = model(torch.randn(2, *net.input_shape))
    assert tuple(y.shape) == (2, *net.output_shape)


def test_build_from_path_and_text():
    model = cnndsl.build(str(SPECS / "lenet5.cnn"), backend="torch")
    assert type(model).__name__ == "Lenet5"
    model = cnndsl.build("input 3x8x8\nconv3x3(4) -> gap -> fc(2)")
    assert tuple(model(torch.randn(1, 3, 8, 8)).shape) == (1, 2)


def test_table_constants_never_collide():
    text = (
        "input 3x8x8\n(conv3x3(2, table=[[0], [1, 2]]) as c) as a -> conv3x3(2, table=[[0, 1], [1]]) as a_c"
        " -> (conv1x1(1, table=[[0, 1]]) as b) as x"
    )
    net = cnndsl.parse(text)
    source = render(net, "torch")
    assert "A_C_TABLE = (" in source and "A_C_TABLE_2 = (" in source
    model = build(net, "torch")
    assert tuple(model.a.c.weight.shape) == (3, 3, 3) and tuple(model.a_c.weight.shape) == (3, 3, 3)
    assert sum(p.numel() for p in model.parameters()) == sum(param_counts(net).values())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    net = cnndsl.load(SPECS / "lenet5_1998.cnn")
    model = build(net, "torch", seed=0).eval()
    x = torch.randn(2, *net.input_shape)
    path = tmp_path / "lenet.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"])
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    (y,) = ReferenceEvaluator(proto).run(None, {"x": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(y), model(x).detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_keeps_every_output(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    net = cnndsl.parse(MULTI)
    model = build(net, "torch", seed=0).eval()
    x = torch.randn(2, *net.input_shape)
    path = tmp_path / "multi.onnx"
    names = list(net.outputs)
    torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"], output_names=names)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert [o.name for o in proto.graph.output] == names
    got = ReferenceEvaluator(proto).run(None, {"x": x.numpy()})
    for y, want in zip(got, model(x), strict=True):
        torch.testing.assert_close(torch.from_numpy(y), want.detach(), rtol=1e-4, atol=1e-5)


MULTI = """input 3x12x12
tensor stem = conv3x3(8) -> bn -> relu
tensor c2 = stem -> maxpool2 -> conv3x3(12) -> relu
tensor c3 = c2 -> maxpool2 -> conv3x3(16) -> relu
tensor head = c3 -> gap -> fc(5)
tensor side = add(c2 -> conv1x1(6), c2 -> conv3x3(6)) -> relu
output head, side, c3
"""


def test_multi_output_forward_returns_a_tuple_in_declaration_order():
    net = cnndsl.parse(MULTI)
    assert len(net.outputs) == 3 and net.output == net.outputs[0]
    source = render(net, "torch")
    assert f"OUTPUTS = {tuple(net.outputs)!r}".replace("'", '"') in source
    model = build(net, "torch", seed=0).eval()
    x = torch.randn(2, *net.input_shape)
    ys = model(x)
    assert isinstance(ys, tuple) and [tuple(y.shape[1:]) for y in ys] == [net.node(o).shape for o in net.outputs]
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    want = reference.run(net, weights, x.numpy())
    assert isinstance(want, tuple) and len(want) == 3
    for y, w in zip(ys, want, strict=True):
        np.testing.assert_allclose(y.detach().numpy(), w, rtol=1e-4, atol=1e-5)


def test_single_output_forward_is_unchanged():
    net = cnndsl.parse("input 3x8x8\nconv3x3(4) -> relu")
    assert net.outputs == (net.output,)
    assert 'OUTPUTS = ("relu1",)' in render(net, "torch")
    assert isinstance(build(net, "torch")(torch.randn(1, 3, 8, 8)), torch.Tensor)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("resnet_tiny", "ResnetTiny"),
        ("lenet5_1998", "Lenet5_1998"),
        ("_3d", "Net3d"),
        ("none", "NoneNet"),
        ("f", "FNet"),
    ],
)
def test_class_name(name, cls):
    net = cnndsl.parse(f"network {name}\ninput 3x8x8\nconv3x3(2)")
    assert f"class {cls}(nn.Module):" in render(net, "torch")
    assert type(build(net, "torch")).__name__ == cls


# -- the generated code reads like hand-written torch (one class per block, callable stages) ---------------


def _classes(source: str) -> list[str]:
    return [ln.split("(")[0].removeprefix("class ") for ln in source.splitlines() if ln.startswith("class ")]


def test_resnet50_defines_its_bottleneck_once():
    source = render(cnndsl.load(SPECS / "resnet50.cnn"), "torch")
    assert _classes(source) == ["Chain", "Bottleneck", "Resnet50"]
    assert "        self.layer1 = Chain(\n            bottleneck1=Bottleneck(64, 64, 256, 1, True)," in source
    assert "bottleneck2=Bottleneck(256, 64, 256, 1, False)," in source
    # the identity shortcut of most expansions and the projection of each stage's first share the class
    assert "identity = x if self.shortcut1 is None else self.shortcut1(x)" in source
    assert render(cnndsl.load(SPECS / "resnet152.cnn"), "torch").count("class Bottleneck(") == 1
    assert _classes(render(cnndsl.load(SPECS / "resnet18.cnn"), "torch")) == ["Chain", "Basic", "Resnet18"]


def test_expansions_that_differ_in_structure_get_their_own_class():
    text = "input 3x8x8\nblock b(c, k=3) {\n  conv(c, kernel=k) -> relu\n}\nb(4) -> b(4, k=1) -> b(6) -> gap -> fc(2)\n"
    source = render(cnndsl.parse(text), "torch")
    # a kernel size is a parameter too, so one class serves all three; a different op sequence would not
    assert _classes(source) == ["B", "Network"]
    assert "def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int)" in source
    model = build(cnndsl.parse(text), "torch", seed=0)
    assert list(model.state_dict()) == list(weight_specs(cnndsl.parse(text)))
    other = (
        "input 3x8x8\nblock b(c, act=1) {\n  conv3x3(c) -> (relu if act == 1 else sigmoid)\n}\nb(4) -> b(4, act=0)\n"
    )
    assert _classes(render(cnndsl.parse(other), "torch")) == ["B", "B2", "Network"]


def test_labelled_stages_are_callable():
    net = cnndsl.load(SPECS / "resnet18.cnn", input_shape=(3, 64, 64))
    model = build(net, "torch", seed=0).eval()
    x = torch.randn(2, 64, 16, 16)
    with torch.no_grad():
        y = model.layer1(x)
        torch.testing.assert_close(y, model.layer1.basic2(model.layer1.basic1(x)))
        assert tuple(model.layer2(y).shape) == (2, 128, 8, 8)
    # a labelled stage that is not a plain chain becomes a small class with a forward
    text = "input 3x8x8\n(conv3x3(4) -> residual(conv3x3(4) -> relu) -> relu) as stage -> gap -> fc(2) as head\n"
    net = cnndsl.parse(text)
    model = build(net, "torch", seed=0).eval()
    source = render(net, "torch")
    assert "class Stage(nn.Module):" in source and "x = self.stage(x)" in source
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.head(torch.flatten(model.stage(x).mean((2, 3), keepdim=True), 1)))


def test_generated_names_never_collide():
    # labels that are Python builtins, generated names or torch names stay attributes; locals and
    # parameters keep out of their way
    text = (
        "input 3x8x8\nblock torch(c) {\n  conv3x3(c) -> relu\n}\n"
        "(torch(4) -> torch(6)) as F -> (conv1x1(2) -> relu) as nn -> gap -> fc(2) as list\n"
    )
    net = cnndsl.parse(text)
    source = render(net, "torch")
    compile(source, "m.py", "exec")
    assert "class Torch(nn.Module):" in source
    model = build(net, "torch", seed=0)
    assert list(model.state_dict()) == list(weight_specs(net))
    assert tuple(model(torch.randn(1, 3, 8, 8)).shape) == (1, 2)


@pytest.mark.parametrize("spec", sorted(p.name for p in SPECS.glob("*.cnn")))
def test_state_dict_keys_are_the_weight_specs_for_every_spec(spec):
    net = cnndsl.load(SPECS / spec)
    model = build(net, "torch", device="meta")
    state = model.state_dict()
    specs = weight_specs(net)
    assert list(state) == list(specs)
    assert all(tuple(state[k].shape) == s.shape for k, s in specs.items())


@pytest.mark.parametrize(
    ("spec", "shape"),
    [
        ("resnet18.cnn", (3, 32, 32)),
        ("googlenet.cnn", (3, 32, 32)),
        ("efficientnet_b0.cnn", (3, 32, 32)),
        ("lenet5_1998.cnn", None),
        ("small", None),
    ],
)
def test_outputs_equal_the_reference_evaluator(spec, shape):
    from cnndsl import reference

    net = cnndsl.parse(SMALL) if spec == "small" else cnndsl.load(SPECS / spec, input_shape=shape)
    weights = reference.random_weights(net, seed=4)
    model = build(net, "torch", train=False, weights=weights)
    x = np.random.default_rng(5).standard_normal((2, *net.input_shape)).astype(np.float32)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, reference.run(net, weights, x), rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_block_classes_script_and_export():
    net = cnndsl.load(SPECS / "resnet18.cnn", input_shape=(3, 32, 32))
    model = build(net, "torch", seed=0).eval()
    x = torch.randn(2, *net.input_shape)
    expected = model(x)
    torch.testing.assert_close(torch.jit.script(model)(x), expected)
    torch.testing.assert_close(torch.export.export(model, (x,)).module()(x), expected)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_block_classes_export_to_onnx(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    net = cnndsl.load(SPECS / "resnet18.cnn", input_shape=(3, 32, 32))
    model = build(net, "torch", seed=0).eval()
    x = torch.randn(1, *net.input_shape)
    path = tmp_path / "r18.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"])
    (y,) = ReferenceEvaluator(onnx.load(str(path))).run(None, {"x": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(y), model(x).detach(), rtol=1e-4, atol=1e-4)


def test_a_scope_whose_values_leak_stays_a_plain_container():
    # the language never makes one, but a rewritten IR may: `a.conv1` is used outside scope `a`
    import dataclasses

    from cnndsl.ir import Attrs, Node

    net = cnndsl.parse("input 3x8x8\n(conv3x3(4) -> bn -> conv3x3(4)) as a -> relu -> gap -> fc(2)")
    relu = net.node("relu1")
    nodes = list(net.nodes)
    i = [n.name for n in nodes].index("relu1")
    nodes[i : i + 1] = [
        Node("add1", "add", Attrs(), ("a.conv1", "a.conv2"), relu.shape, relu.span),
        dataclasses.replace(relu, inputs=("add1",)),
    ]
    net = dataclasses.replace(net, nodes=tuple(nodes))
    source = render(net, "torch")
    assert "self.a = nn.Module()" in source and "self.a.conv1(x)" in source
    model = build(net, "torch", seed=0).eval()
    assert list(model.state_dict()) == list(weight_specs(net))
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        a = model.a.conv1(x)
        want = model.fc1(torch.flatten(torch.relu(a + model.a.conv2(model.a.bn1(a))).mean((2, 3)), 1))
        torch.testing.assert_close(model(x), want)


def test_render_is_byte_identical_across_processes():
    code = (
        "import sys, hashlib, cnndsl; from cnndsl.backends import render; "
        "print(hashlib.sha256(''.join(render(cnndsl.load(p), 'torch') for p in sys.argv[1:]).encode()).hexdigest())"
    )
    specs = [str(SPECS / s) for s in ("resnet50.cnn", "googlenet.cnn", "efficientnet_b0.cnn")]
    root = Path(__file__).resolve().parent.parent
    digests = {
        subprocess.run(
            [sys.executable, "-c", code, *specs],
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec_text(), st.integers(0, 2**16))
def test_property_torch_classes_compute_the_reference(text, seed):
    # blocks called with different arguments share classes: each expansion must still be its own function
    from cnndsl import reference

    try:
        net = cnndsl.parse(text)
    except cnndsl.CnnError as e:
        if all(d.code == "E201" for d in e.diagnostics):
            reject()
        raise
    weights = reference.random_weights(net, seed)
    model = build(net, "torch", train=False, weights=weights)
    x = np.random.default_rng(seed).standard_normal((2, *net.input_shape)).astype(np.float32)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, reference.run(net, weights, x), rtol=1e-3, atol=1e-4)


BLOCKS = """
block unit(c, k=3, s=1) {
  residual(
    conv(c, kernel=k, stride=s, bias=false) -> bn -> relu -> conv3x3(c),
    shortcut=identity if s == 1 and in_channels == c else (conv1x1(c, stride=s) -> bn),
  ) -> relu
}
block pair(c, s=1) {
  unit(c, s=s) -> (unit(c, k=1) -> dwconv3x3 -> relu6) as tail
}
"""


@st.composite
def repeated_blocks(draw):
    calls = []
    for _ in range(draw(st.integers(2, 5))):
        c, s = draw(st.integers(1, 4)), draw(st.sampled_from([1, 1, 2]))
        if draw(st.booleans()):
            calls.append(f"unit({c}, k={draw(st.sampled_from([1, 3, 5]))}, s={s})")
        else:
            calls.append(f"pair({c}, s={s})")
    stage = draw(st.integers(0, len(calls) - 1))
    calls[stage] = f"({calls[stage]} -> {calls[stage]}) as stage"
    return f"input {draw(st.integers(1, 3))}x12x12\n{BLOCKS}\n" + " -> ".join(calls) + " -> gap -> fc(3)\n"


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(repeated_blocks(), st.integers(0, 2**16))
def test_property_shared_block_classes_compute_the_reference(text, seed):
    from cnndsl import reference

    net = cnndsl.parse(text)
    source = render(net, "torch")
    assert source.count("class Unit(") == 1 and source.count("class Pair(") <= 1  # one class per block
    weights = reference.random_weights(net, seed)
    model = build(net, "torch", train=False, weights=weights)
    assert list(model.state_dict()) == list(weight_specs(net))
    x = np.random.default_rng(seed).standard_normal((2, *net.input_shape)).astype(np.float32)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, reference.run(net, weights, x), rtol=1e-3, atol=1e-4)


def test_the_names_rendering_reserves_are_torchs_own():
    import torch

    from cnndsl.backends.torch_backend import SEQUENTIAL_ATTRIBUTES
    from cnndsl.modules import MODULE_ATTRIBUTES

    public = {n for n in dir(torch.nn.Sequential()) if not n.startswith("_")}
    assert public <= MODULE_ATTRIBUTES | SEQUENTIAL_ATTRIBUTES
