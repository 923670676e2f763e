"""ONNX importer: an .onnx file's graph becomes an ImportGraph; its initializers are the weights.

One table entry per ONNX op type. Module scopes come from the weight names (`layer1.0.conv1.weight`)
and the exporter's node names (`/layer1/layer1.0/Add`); shapes from ONNX shape inference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from .graph import ImportFailure, ImportGraph, ImportNode, conv_attrs, infer_scopes, pool_attrs


class _Unsupported(Exception):
    pass


def _refuse(why: str):
    raise _Unsupported(why)


def _f32(v) -> float:
    """An ONNX float attribute (stored as float32) as the decimal it was written as: 1e-05, not 9.99e-06."""
    return float(f"{np.float32(v):.7g}")


def _attrs(node) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pads(a: dict, n: int = 2) -> tuple[int, int]:
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        _refuse(f"auto_pad={a['auto_pad']!r} (give explicit pads)")
    pads = list(a.get("pads", [0] * 2 * n))
    if pads[:n] != pads[n:]:
        _refuse(f"asymmetric padding {pads} (cnndsl pads both sides equally)")
    return tuple(pads[:n])  # type: ignore[return-value]


class _Ctx:
    """What a rule sees: the node's attributes, its constant inputs, and its data inputs' shapes."""

    def __init__(self, node, attrs, consts, shapes):
        self.node, self.a, self.consts, self.shapes = node, attrs, consts, shapes

    def const(self, i: int):
        name = self.node.input[i] if len(self.node.input) > i else ""
        return self.consts.get(name) if name else None


def _conv(c: _Ctx):
    w = c.const(1)
    if w is None or w.ndim != 4:
        _refuse("a convolution whose weight is not a 2-D kernel initializer")
    a = c.a
    bias = len(c.node.input) > 2 and c.node.input[2] != ""
    attrs = conv_attrs(
        w.shape[0], tuple(w.shape[2:]), a.get("strides", 1), _pads(a), a.get("dilations", 1), a.get("group", 1), bias
    )
    weights = {"weight": c.node.input[1], **({"bias": c.node.input[2]} if bias else {})}
    return "conv", attrs, weights


def _bn(c: _Ctx):
    names = ["weight", "bias", "running_mean", "running_var"]
    momentum = round(1.0 - float(c.a.get("momentum", 0.9)), 6)  # ONNX keeps 1 - torch's momentum
    return "bn", {"eps": _f32(c.a.get("epsilon", 1e-5)), "momentum": momentum}, dict(zip(names, c.node.input[1:5]))


def _pool(op: str):
    def rule(c: _Ctx):
        a = c.a
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            _refuse("pooling with dilation")
        include = bool(a.get("count_include_pad", 0)) if op == "avgpool" else None
        return (
            op,
            pool_attrs(
                tuple(a["kernel_shape"]),
                tuple(a.get("strides", a["kernel_shape"])),
                _pads(a),
                bool(a.get("ceil_mode", 0)),
                include,
            ),
            {},
        )

    return rule


def _gemm(c: _Ctx):
    a = c.a
    if a.get("transA", 0) or not a.get("transB", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
        _refuse("a Gemm that is not x @ W.T + b")
    w = c.const(1)
    if w is None:
        _refuse("a Gemm whose weight is not an initializer")
    bias = len(c.node.input) > 2 and c.node.input[2] != ""
    return (
        "fc",
        {"out": int(w.shape[0]), "bias": bias},
        {"weight": c.node.input[1], **({"bias": c.node.input[2]} if bias else {})},
    )


def _clip(c: _Ctx):
    lo, hi = c.const(1), c.const(2)
    lo = c.a.get("min", lo if lo is None else float(lo))
    hi = c.a.get("max", hi if hi is None else float(hi))
    if (lo, hi) != (0.0, 6.0):
        _refuse(f"Clip({lo}, {hi}) (only Clip(0, 6), i.e. relu6)")
    return "relu6", {}, {}


def _flatten(c: _Ctx):
    if c.a.get("axis", 1) != 1:
        _refuse(f"Flatten(axis={c.a.get('axis')}) (cnndsl flattens all but the batch)")
    return "flatten", {}, {}


def _reshape(c: _Ctx):
    shape = c.const(1)
    if shape is None or len(shape) != 2 or int(shape[1]) not in (-1, int(np.prod(c.shapes[0]))):
        _refuse(f"a reshape to {None if shape is None else shape.tolist()} (only a flatten to (N, -1) is supported)")
    return "flatten", {}, {}


def _softmax(c: _Ctx):
    axis, rank = c.a.get("axis", -1), len(c.shapes[0]) + 1
    if axis % rank != 1:
        _refuse(f"Softmax over axis {axis} (cnndsl's softmax is over channels)")
    return "softmax", {}, {}


def _hardsigmoid(c: _Ctx):
    if abs(c.a.get("alpha", 0.2) - 1 / 6) > 1e-6 or abs(c.a.get("beta", 0.5) - 0.5) > 1e-6:
        _refuse("HardSigmoid with alpha != 1/6 (torch's hardsigmoid)")
    return "hardsigmoid", {}, {}


def _concat(c: _Ctx):
    if c.a.get("axis") % (len(c.shapes[0]) + 1) != 1:
        _refuse(f"Concat along axis {c.a.get('axis')} (cnndsl concatenates channels)")
    return "concat", {}, {}


def _plain(op: str) -> Callable:
    return lambda c: (op, {}, {})


OPS: dict[str, Callable[[_Ctx], tuple]] = {
    "Conv": _conv,
    "BatchNormalization": _bn,
    "Gemm": _gemm,
    "MaxPool": _pool("maxpool"),
    "AveragePool": _pool("avgpool"),
    "GlobalAveragePool": _plain("gap"),
    "GlobalMaxPool": _plain("gmp"),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Relu": _plain("relu"),
    "Clip": _clip,
    "LeakyRelu": lambda c: ("leaky_relu", {"slope": _f32(c.a.get("alpha", 0.01))}, {}),
    "Elu": lambda c: ("elu", {"alpha": _f32(c.a.get("alpha", 1.0))}, {}),
    "Sigmoid": _plain("sigmoid"),
    "Tanh": _plain("tanh"),
    "HardSwish": _plain("hardswish"),
    "HardSigmoid": _hardsigmoid,
    "Softmax": _softmax,
    "Gelu": lambda c: (
        ("gelu", {}, {}) if c.a.get("approximate", b"none") in (b"none", "none") else _refuse("tanh gelu")
    ),
    "Dropout": lambda c: None,  # inference: the identity
    "Identity": lambda c: None,
    "Add": _plain("add"),
    "Mul": _plain("mul"),
    "Concat": _concat,
}
MERGES = ("add", "mul", "concat")


def import_onnx(path: str) -> tuple[ImportGraph, dict[str, np.ndarray]]:
    try:
        model = onnx.load(str(path))
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as e:
        raise ImportFailure(f"cannot read ONNX file {path}: {e}") from None
    return _Builder(model).run(str(path))


def _dims(vi) -> tuple | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    return None if any(d is None for d in dims[1:]) else tuple(dims[1:])


class _Builder:
    def __init__(self, model):
        g = model.graph
        self.g = g
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.alias_of: dict[str, str] = {}  # a constant re-exported under another name by Identity
        self.shapes = {vi.name: _dims(vi) for vi in [*g.value_info, *g.input, *g.output]}
        self.value: dict[str, str] = {}
        self.nodes: list[ImportNode] = []
        self.weights: dict[str, np.ndarray] = {}
        self.containers = set()

    def run(self, path: str) -> tuple[ImportGraph, dict[str, np.ndarray]]:
        inputs = [i for i in self.g.input if i.name not in self.consts]
        outputs = list(self.g.output)
        if len(inputs) != 1:
            raise ImportFailure(f"the ONNX graph has {len(inputs)} inputs; a cnndsl network has one")
        shape = self.shapes.get(inputs[0].name)
        if not shape:
            raise ImportFailure("the ONNX graph's input has no static CxHxW shape")
        self.value[inputs[0].name] = "input"
        self.nodes.append(ImportNode("input", "input", {}, [], shape))
        for node in self.g.node:
            self.constants(node)
        self.containers = {w.rsplit(".", 2)[0] for w in [*self.consts, *self.alias_of] if w.count(".") >= 2}
        self.containers = {".".join(c.split(".")[: i + 1]) for c in self.containers for i in range(c.count(".") + 1)}
        for node in self.g.node:
            if node.op_type == "Constant" or node.output[0] in self.consts:
                continue
            try:
                self.visit(node)
            except _Unsupported as e:
                raise ImportFailure(
                    f"cannot import ONNX node `{node.name or node.output[0]}` ({node.op_type}): {e}", path
                ) from None
        infer_scopes(self.nodes)
        outs = [self.value.get(o.name) for o in outputs]
        if None in outs:
            missing = outputs[outs.index(None)].name
            raise ImportFailure(f"the ONNX graph's output `{missing}` is not computed from its input")
        names = dict(zip(outs, (o.name for o in outputs)))
        return ImportGraph(_name(path), shape, self.nodes, outs, path, names), self.weights

    def constants(self, node) -> None:
        if node.op_type == "Constant":
            self.consts[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
        elif node.op_type == "Cast" and node.input[0] in self.consts:  # F.relu6's Clip bounds
            to = onnx.helper.tensor_dtype_to_np_dtype(_attrs(node)["to"])
            self.consts[node.output[0]] = self.consts[node.input[0]].astype(to)
        elif node.op_type == "Identity" and node.input[0] in self.consts:
            self.consts[node.output[0]] = self.consts[node.input[0]]
            self.alias_of[node.output[0]] = node.input[0]

    def scope(self, node, weights: dict[str, str]) -> tuple:
        if weights:  # the weight's module path: its parents are the scope
            parts = next(iter(weights.values())).split(".")[:-2]
        else:
            parts, path = [], ""
            for p in node.name.strip("/").split("/")[:-1]:
                path = p if "." in p or not path else f"{path}.{p}"
                if path not in self.containers:
                    break
                parts = path.split(".")
        return tuple((".".join(parts[: i + 1]), None) for i in range(len(parts)))

    def visit(self, node) -> None:
        rule = OPS.get(node.op_type)
        if rule is None:
            _refuse("no cnndsl op for it")
        data = [i for i in node.input if i and i not in self.consts]
        for i in data:
            if i not in self.value:
                _refuse(f"input `{i}` is not computed from the network input")
        shapes = [self.shapes.get(i) or self.shape_of(self.value[i]) for i in data]
        mapped = rule(_Ctx(node, _attrs(node), self.consts, shapes))
        if mapped is None:
            self.value[node.output[0]] = self.value[data[0]]
            return
        op, attrs, weights = mapped
        if op in MERGES and len(data) != len([i for i in node.input if i]):
            _refuse(f"{node.op_type} with a constant operand (cnndsl merges computed tensors)")
        if op not in MERGES and len(data) != 1:
            _refuse(f"{len(data)} computed inputs")
        for src in weights.values():
            self.weights[src] = self.consts[src]
        out = self.shapes.get(node.output[0])
        if out is None:
            _refuse("ONNX shape inference gives its output no static shape")
        name = node.output[0]
        self.nodes.append(
            ImportNode(
                name, op, attrs, [self.value[i] for i in data], out, weights, self.scope(node, weights), node.name
            )
        )
        self.value[name] = name

    def shape_of(self, name: str):
        return next(n.shape for n in self.nodes if n.name == name)


def _name(path: str) -> str:
    import os

    return os.path.splitext(os.path.basename(path))[0]
