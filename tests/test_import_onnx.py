"""`cnndsl import x.onnx`: the torch backend's ONNX export of a spec imports back to the same network,
and its initializers load under cnndsl names."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import cnndsl
from cnndsl.analysis import macs, param_counts, weight_specs

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from cnndsl.importers import ImportFailure, import_onnx  # noqa: E402

SPECS = Path(__file__).resolve().parents[1] / "specs"


def _export(net, path):
    model = cnndsl.build(net, "torch", seed=0, train=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, *net.input_shape), str(path), dynamo=False, do_constant_folding=False)
    return model


def _outputs(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


@pytest.mark.parametrize(
    "name, side",
    [
        ("resnet18", 32),
        ("mobilenet_v2", 32),
        ("googlenet", 64),
        ("efficientnet_b0", 32),
        ("convnext_tiny", 32),  # Transpose -> LayerNormalization -> Transpose, Mul by the layer scale
        ("shufflenet_v2_x1_0", 32),  # channel Slice, Reshape -> Transpose -> Reshape
        ("unet", 188),  # ConvTranspose, a crop as a Slice of the rows and one of the columns
        ("resnet50_fpn", 64),  # five outputs, Resize to a size read off Shape
    ],
)
def test_onnx_export_imports_back(tmp_path, name, side):
    net = cnndsl.load(SPECS / f"{name}.cnn")
    net = cnndsl.load(SPECS / f"{name}.cnn", input_shape=(net.input_shape[0], side, side))
    model = _export(net, tmp_path / "net.onnx")
    imported = import_onnx(tmp_path / "net.onnx")
    back = imported.network
    assert back.output_shapes == net.output_shapes
    assert sum(param_counts(back).values()) == sum(param_counts(net).values())
    assert sum(macs(back).values()) == sum(macs(net).values())
    weights = {k: torch.from_numpy(np.array(v)) for k, v in imported.weights.items()}
    rebuilt = cnndsl.build(back, "torch", weights=weights, train=False)
    x = torch.randn(2, *net.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want = _outputs(rebuilt(x)), _outputs(model(x))
    assert len(got) == len(want) == len(net.outputs)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-4)


def test_onnx_resnet_has_blocks(tmp_path):
    net = cnndsl.load(SPECS / "resnet18.cnn", input_shape=(3, 32, 32))
    _export(net, tmp_path / "r.onnx")
    text = import_onnx(tmp_path / "r.onnx").text
    assert "block basic(c, stride=1)" in text and "shortcut=identity if stride == 1 and in_channels == c else" in text
    assert "eps=" not in text  # float32 attributes read back as the decimals they were


def test_onnx_op_without_a_cnndsl_op_is_named(tmp_path):
    net = cnndsl.load(SPECS / "lenet5_1998.cnn")  # the connection table exports as scatter ops
    _export(net, tmp_path / "l.onnx")
    with pytest.raises(ImportFailure, match=r"cannot import ONNX node `[^`]+` \(\w+\): no cnndsl op"):
        import_onnx(tmp_path / "l.onnx")


def test_cli_imports_an_onnx_file(tmp_path):
    import json

    from cnndsl.cli import main

    net = cnndsl.load(SPECS / "mobilenet_v2.cnn", input_shape=(3, 32, 32))
    _export(net, tmp_path / "m.onnx")
    assert main(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.cnn")]) == 0
    names = json.loads((tmp_path / "m.weights.json").read_text())["weights"]
    specs = weight_specs(cnndsl.load(tmp_path / "m.cnn"))  # ONNX keeps no num_batches_tracked
    assert set(names.values()) == {k for k in specs if not k.endswith(".num_batches_tracked")}
    assert main(["fmt", "--check", str(tmp_path / "m.cnn")]) == 0


class _ChannelLast(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x).permute(0, 2, 3, 1).relu()


class _ScaledByConstant(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.scale = torch.nn.Parameter(torch.ones(4, 14, 14))

    def forward(self, x):
        return self.conv(x) * self.scale


@pytest.mark.parametrize(
    "model, words",
    [
        (_ChannelLast(), [r"`/Relu` \(Relu\)", "`/Transpose_output_0` is a channel-last Transpose", "no cnndsl op"]),
        (_ScaledByConstant(), [r"\(Mul\)", r"shape \(4, 14, 14\)", "per-channel"]),
    ],
)
def test_onnx_layouts_and_constants_cnndsl_cannot_express_are_named(tmp_path, model, words):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 3, 16, 16), str(tmp_path / "m.onnx"), dynamo=False)
    with pytest.raises(ImportFailure) as e:
        import_onnx(tmp_path / "m.onnx")
    for w in words:
        assert re.search(w, str(e.value)), (w, str(e.value))


# Ops a source format has no counterpart for: name the reason here rather than leave an op unmapped.
_INFERENCE_IDENTITY = (
    "the identity at inference: torch's StochasticDepth returns its input in eval mode, so an exported "
    "inference graph holds nothing for it and the imported spec has no stochastic_depth"
)
NO_COUNTERPART: dict[str, dict[str, str]] = {
    "onnx_graph": {
        "adaptive_avgpool": "ONNX has no adaptive pooling; exporters write AveragePool or GlobalAveragePool",
        "dropout": "an ONNX inference graph has no dropout",
        "silu": "exported as x * Sigmoid(x), which imports as mul(identity, sigmoid)",
        "stochastic_depth": _INFERENCE_IDENTITY,
    },
    "torch_fx": {},
    "torch_export": {"stochastic_depth": _INFERENCE_IDENTITY},
}


@pytest.mark.parametrize("importer", sorted(NO_COUNTERPART))
def test_every_op_of_the_table_has_an_importer_entry(importer):
    """Adding an op to cnndsl/ops.py means one entry per importer table (docs/architecture.md)."""
    import re

    from cnndsl.ops import OPS

    source = (Path(cnndsl.__file__).parent / "importers" / f"{importer}.py").read_text()
    produced = set(re.findall(r'"([a-z_0-9]+)"', source))
    missing = [op for op in OPS if op != "input" and op not in produced and op not in NO_COUNTERPART[importer]]
    assert not missing, f"{importer} maps nothing to {missing}"
