"""`cnndsl import` from torch: torchvision-style modules and every spec's own torch module come back as
specs with the same parameters, MACs and outputs, and the source state dict loads through the name map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import cnndsl
from cnndsl.analysis import macs, param_counts, weight_specs
from cnndsl.fmt import format_text

torch = pytest.importorskip("torch")
import torchvision_style as tv  # noqa: E402

from cnndsl.importers import ImportFailure, import_module  # noqa: E402

SPECS = sorted(Path(__file__).resolve().parents[1].joinpath("specs").glob("*.cnn"))


def _randomise_bn(model) -> None:
    """Non-trivial running statistics, so a batch norm loaded into the wrong place shows."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)


def _macs(net) -> int:
    return sum(macs(net).values())


def _params(net) -> int:
    return sum(param_counts(net).values())


def _as_tuple(out) -> tuple:
    return tuple(out.values()) if isinstance(out, dict) else tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _same_outputs(model, imported, shape, atol=1e-4):
    """Every output of the spec built with the source's weights equals the source's, in order."""
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    rebuilt = cnndsl.build(imported.network, "torch", weights=imported.rename(model.state_dict()), train=False)
    with torch.no_grad():
        got, want = _as_tuple(rebuilt(x)), _as_tuple(model(x))
    assert len(got) == len(want) == len(imported.network.outputs)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=atol)


SIZES = {"alexnet": 64, "googlenet": 64, "image_classifier": 224, "unet": 188}  # the smallest these nets take, roughly


def _small(net):
    shape = net.input_shape
    side = SIZES.get(net.name, 32)
    return shape if len(shape) != 3 or shape[1] <= side else (shape[0], side, side)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_round_trip_of_every_spec(path):
    net = cnndsl.load(path)
    net = cnndsl.load(path, input_shape=_small(net))
    model = cnndsl.build(net, "torch", seed=0, train=False)
    _randomise_bn(model)
    imported = import_module(model, net.input_shape)
    back = imported.network
    assert back.output_shapes == net.output_shapes
    assert _params(back) == _params(net)
    assert _macs(back) == _macs(net)
    assert set(imported.name_map) == set(model.state_dict())
    assert set(imported.name_map.values()) == set(weight_specs(back))
    assert format_text(imported.text) == imported.text
    _same_outputs(model, imported, net.input_shape)


def test_resnet18_imports_as_one_block_like_the_standard_library():
    model = tv.resnet18().eval()
    imported = import_module(model, (3, 224, 224))
    text = imported.text
    assert text.count("block ") == 1
    assert (
        "shortcut=identity if stride == 1 and in_channels == c else (conv1x1(c, stride=stride, bias=false) -> bn)"
        in text
    )
    assert (
        "[basic_block(64)]x2 as layer1" in text and "(basic_block(128, stride=2) -> basic_block(128)) as layer2" in text
    )
    assert len([line for line in text.splitlines() if line.strip()]) <= 25
    assert f"expect params == {sum(p.numel() for p in model.parameters()):_}" in text
    assert _params(imported.network) == sum(p.numel() for p in model.parameters())
    assert 1.80e9 < _macs(imported.network) < 1.83e9
    assert imported.network.output_shape == (1000,)


def test_torchvision_style_resnet18_matches_in_torch_and_numba():
    from numba_helpers import build_shared

    model = tv.resnet18().eval()
    _randomise_bn(model)
    imported = import_module(model, (3, 32, 32))
    assert "block basic_block" in imported.text
    _same_outputs(model, imported, (3, 32, 32))
    numba_model = build_shared(imported.network)
    numba_model.load_state_dict({k: v.numpy() for k, v in imported.rename(model.state_dict()).items()})
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        np.testing.assert_allclose(numba_model(x.numpy()), model(x).numpy(), rtol=1e-4, atol=1e-4)


def test_torchvision_style_fpn_imports_with_named_tensors_and_matches_in_torch_and_numba():
    from numba_helpers import build_shared

    model = tv.BackboneWithFPN().eval()
    _randomise_bn(model)
    imported = import_module(model, (3, 64, 64))
    text = imported.text
    # the returned OrderedDict's order, its key where it is a name; stages read by two statements are named
    assert "output fpn_layer_blocks_0, fpn_layer_blocks_1, fpn_layer_blocks_2, fpn_layer_blocks_3, pool" in text
    assert "tensor layer2 = layer1 -> basic_block(16)" in text
    # F.interpolate(last_inner, size=inner_lateral.shape[-2:]) at the traced size
    assert "add(layer3 -> conv1x1(16), fpn_inner_blocks_3 -> upsample(size=4))" in text
    with torch.no_grad():
        want = list(model(torch.zeros(1, 3, 64, 64)).values())
    assert imported.network.output_shapes == tuple(tuple(w.shape[1:]) for w in want)
    assert _params(imported.network) == sum(p.numel() for p in model.parameters())
    _same_outputs(model, imported, (3, 64, 64))
    numba_model = build_shared(imported.network)
    numba_model.load_state_dict({k: v.numpy() for k, v in imported.rename(model.state_dict()).items()})
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = list(model(x).values())
    got = numba_model(x.numpy())
    assert len(got) == len(want) == 5
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-4)


def test_cli_imports_a_two_headed_model_that_checks_and_is_formatted(tmp_path, monkeypatch):
    from cnndsl.cli import main

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    out = tmp_path / "two.cnn"
    assert main(["import", "torchvision_style:TwoHeads", "--input", "3x32x32", "-o", str(out)]) == 0
    text = out.read_text()
    assert "tensor aux = stem -> gap -> fc(5)" in text and "output out1, aux" in text  # forward's tuple order
    assert "expect outputs == ((5,), (5,))" in text
    assert main(["check", str(out)]) == 0
    assert main(["fmt", "--check", str(out)]) == 0
    model = tv.TwoHeads().eval()
    _same_outputs(model, import_module(model, (3, 32, 32)), (3, 32, 32))


def test_dense_connections_import_with_a_named_tensor():
    model = tv.DenseLayers().eval()
    imported = import_module(model, (3, 16, 16))
    assert "tensor " in imported.text and "output" not in imported.text  # one output: the body is unnamed
    _same_outputs(model, imported, (3, 16, 16))


def test_sequential_of_sequential_and_view_flatten():
    model = tv.VGGish().eval()
    _randomise_bn(model)
    imported = import_module(model, (3, 32, 32))
    assert "[conv3x3(16) -> bn -> relu]x2" in imported.text and ") as features" in imported.text
    _same_outputs(model, imported, (3, 32, 32))


def test_functional_calls_se_concat_and_nested_blocks():
    model = tv.MobileIncept().eval()
    _randomise_bn(model)
    imported = import_module(model, (3, 32, 32))
    text = imported.text
    assert "block squeeze_excitation(c, c2)" in text and "mul(gap -> conv1x1(c)" in text
    assert "block inception" in text and "concat(" in text and "[inception]x2 as mix" in text
    assert "-> squeeze_excitation(c2, c) ->" in text  # a block inside a block, with parameters passed on
    # `if self.use_res_connect: return x + self.conv(x)`: one block, the residual conditional
    assert text.count("block inverted_residual") == 1 and "if stride == 1 and in_channels == c3" in text
    assert "inverted_residual(64, 4, 24, stride=2)" in text
    _same_outputs(model, imported, (3, 32, 32))


def test_imported_spec_is_formatted_and_checks(tmp_path):
    from cnndsl.fmt import format_text

    imported = import_module(tv.MobileIncept().eval(), (3, 32, 32))
    assert format_text(imported.text) == imported.text
    assert cnndsl.parse(imported.text).output_shape == (10,)


@pytest.mark.parametrize(
    "cls, words",
    [
        (tv.DataDependent, ["control flow", "torchvision_style.py", "if x.sum() > 0:"]),
        (tv.Unsupported, ["Softplus `act`", "torchvision_style.py", "return self.act(self.conv(x))"]),
        (tv.UnsupportedFunction, ["cumsum", "torchvision_style.py", "torch.cumsum"]),
        (tv.SharedWeights, ["node `conv_1`", "weights are used twice", "return self.conv(self.conv(x))"]),
        (tv.AddConstant, ["node `add`", "not a tensor computed from the input", "return self.conv(x) + 1"]),
        (tv.LinearOnMap, ["Linear `fc`", "acts on its last dim", "return self.fc(self.conv(x))"]),
        (tv.ReturnsTwice, ["returns the result of `conv` twice"]),
        (tv.ReshapeNotFlatten, ["node `size_1`", "data-dependent shape", "x.view(x.size(0), x.size(1), -1)"]),
    ],
)
def test_what_cannot_be_imported_is_named(cls, words):
    with pytest.raises(ImportFailure) as e:
        import_module(cls(), (4 if cls is tv.SharedWeights else 3, 16, 16))
    for w in words:
        assert w in str(e.value)


def test_cli_writes_spec_and_name_map(tmp_path, monkeypatch, capsys):
    from cnndsl.cli import main

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    out, saved = tmp_path / "net.cnn", tmp_path / "net.safetensors"
    argv = ["import", "torchvision_style:tiny_resnet", "--input", "3x32x32", "--args", "num_classes=7", "-o", str(out)]
    assert main([*argv, "--weights-out", str(saved)]) == 0
    names = json.loads((tmp_path / "net.weights.json").read_text())
    assert names["format"] == "cnndsl-weight-map/1"
    net = cnndsl.load(out)
    assert set(names["weights"].values()) == set(weight_specs(net))
    assert main(["check", str(out)]) == 0
    assert main(["fmt", "--check", str(out)]) == 0
    assert net.output_shape == (7,)
    model = cnndsl.build(net, "torch", weights=str(saved), train=False)  # the source's weights, renamed
    assert set(model.state_dict()) == set(weight_specs(net))


def test_cli_refuses_with_exit_2_and_no_traceback(monkeypatch, capsys):
    from cnndsl.cli import main

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    assert main(["import", "torchvision_style:DataDependent", "--input", "3x16x16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnndsl import: error: cannot import: control flow") and "Traceback" not in err
    assert main(["import", "torchvision_style:NoSuchModel", "--input", "3x16x16"]) == 2
    assert main(["import", "torchvision_style:VGGish", "--args", "num_classes=import os"]) == 2


def test_torch_export_program_imports_like_the_module(tmp_path):
    from cnndsl.cli import main

    model = tv.MobileIncept().eval()
    _randomise_bn(model)
    program = torch.export.export(model, (torch.zeros(1, 3, 32, 32),))
    torch.export.save(program, tmp_path / "m.pt2")
    from_module = import_module(model, (3, 32, 32))
    from cnndsl.importers import import_exported

    from_program = import_exported(tmp_path / "m.pt2")
    assert from_program.text.split("network")[1:] != [] and from_program.text.count("block ") == 3
    assert _params(from_program.network) == _params(from_module.network)
    assert set(from_program.name_map) == set(model.state_dict())
    _same_outputs(model, from_program, (3, 32, 32))
    assert main(["import", str(tmp_path / "m.pt2"), "-o", str(tmp_path / "m.cnn")]) == 0


@pytest.mark.parametrize(
    "name", ["convnext_tiny", "shufflenet_v2_x1_0", "unet", "resnet50_fpn"], ids=lambda n: n.split("_")[0]
)
def test_torch_export_of_a_spec_with_newer_ops_imports_back(tmp_path, name):
    """permute -> layer_norm -> permute, x * scale, view -> transpose -> reshape, slices, conv_transpose2d,
    upsample_nearest2d and several outputs, from a saved ExportedProgram."""
    from cnndsl.importers import import_exported

    net = cnndsl.load(SPECS[0].parent / f"{name}.cnn")
    net = cnndsl.load(SPECS[0].parent / f"{name}.cnn", input_shape=_small(net))
    model = cnndsl.build(net, "torch", seed=0, train=False)
    _randomise_bn(model)
    torch.export.save(torch.export.export(model, (torch.zeros(1, *net.input_shape),)), tmp_path / "m.pt2")
    imported = import_exported(tmp_path / "m.pt2")
    back = imported.network
    assert back.output_shapes == net.output_shapes
    assert _params(back) == _params(net) and _macs(back) == _macs(net)
    assert set(imported.name_map) == set(model.state_dict())
    _same_outputs(model, imported, net.input_shape)


def test_torch_export_layout_without_a_cnndsl_op_is_named(tmp_path):
    from cnndsl.importers import import_exported

    program = torch.export.export(tv.ChannelLast().eval(), (torch.zeros(1, 3, 16, 16),))
    torch.export.save(program, tmp_path / "c.pt2")
    with pytest.raises(ImportFailure) as e:
        import_exported(tmp_path / "c.pt2")
    assert "node `relu`" in str(e.value) and "`permute` is a channel-last" in str(e.value)
    assert "torchvision_style.py" in str(e.value)  # the source line


def test_foreign_state_dict_loads_into_a_hand_written_spec_by_structure():
    net = cnndsl.load(SPECS[0].parent / "resnet18.cnn", input_shape=(3, 32, 32))
    model = tv.resnet18().eval()
    _randomise_bn(model)
    mapped, report = cnndsl.load_foreign_state_dict(net, model.state_dict())
    assert report == []
    assert set(mapped) == set(weight_specs(net))
    rebuilt = cnndsl.build(net, "torch", weights=mapped, train=False)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(rebuilt(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)


def test_foreign_state_dict_reports_what_it_could_not_place_and_what_order_decided():
    text = "input 3x16x16\nconcat(conv3x3(8), conv3x3(8)) -> relu -> conv1x1(4) -> gap -> fc(2)"
    net = cnndsl.parse(text)
    sd = {
        "a.weight": torch.zeros(8, 3, 3, 3),
        "a.bias": torch.zeros(8),
        "b.weight": torch.zeros(8, 3, 3, 3),
        "b.bias": torch.zeros(8),
        "extra.weight": torch.zeros(5, 5),
        "head.weight": torch.zeros(2, 4),
        "head.bias": torch.zeros(2),
    }
    mapped, report = cnndsl.load_foreign_state_dict(net, sd)
    joined = "\n".join(report)
    assert "ambiguous: `a` -> `branch1.conv1`" in joined and "ambiguous: `b` -> `branch2.conv1`" in joined
    assert "no source tensors fit `conv1`" in joined  # the 1x1 conv has no counterpart
    assert "`extra`" in joined
    assert mapped["fc1.weight"] is sd["head.weight"]


def test_cnndsl_check_never_imports_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from cnndsl.cli import main; rc = main(['check', 'specs/resnet18.cnn']);"
        "assert 'torch' not in sys.modules and 'onnx' not in sys.modules, 'heavy import'; sys.exit(rc)"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_label_that_clashes_with_a_layer_name_is_left_out():
    model = tv.LabelClash().eval()
    imported = import_module(model, (3, 16, 16))
    assert " as " not in imported.text
    _same_outputs(model, imported, (3, 16, 16))
