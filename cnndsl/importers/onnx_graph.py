"""ONNX importer: an .onnx file's graph becomes an ImportGraph; its initializers are the weights.

One table entry per ONNX op type. Module scopes come from the weight names (`layer1.0.conv1.weight`)
and the exporter's node names (`/layer1/layer1.0/Add`); shapes from ONNX shape inference.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import numpy_helper

from .graph import (
    VIEW_WORDS,
    ImportFailure,
    ImportGraph,
    ImportNode,
    View,
    clamp_range,
    conv_attrs,
    crop_attrs,
    infer_scopes,
    pair,
    pool_attrs,
)
from .onnx_fold import fold, node_attrs


class _Unsupported(Exception):
    pass


def _refuse(why: str):
    raise _Unsupported(why)


def _f32(v) -> float:
    """An ONNX float attribute (stored as float32) as the decimal it was written as: 1e-05, not 9.99e-06."""
    return float(f"{np.float32(v):.7g}")


def _pads(a: dict, n: int = 2) -> tuple[int, int]:
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        _refuse(f"auto_pad={a['auto_pad']!r} (give explicit pads)")
    pads = list(a.get("pads", [0] * 2 * n))
    if pads[:n] != pads[n:]:
        _refuse(f"asymmetric padding {pads} (cnndsl pads both sides equally)")
    return tuple(pads[:n])  # type: ignore[return-value]


class _Ctx:
    """What a rule sees: the node's attributes, its constant inputs, its data inputs' shapes (of the
    viewed tensor for a view) and the view its first data input is, if it is one."""

    def __init__(self, node, attrs, consts, shapes, view=None):
        self.node, self.a, self.consts, self.shapes, self.view = node, attrs, consts, shapes, view

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


def _convt(c: _Ctx):
    w, a = c.const(1), c.a
    if w is None or w.ndim != 4:
        _refuse("a transposed convolution whose weight is not a 2-D kernel initializer")
    if "output_shape" in a:
        _refuse("ConvTranspose with output_shape (give pads and output_padding)")
    bias = len(c.node.input) > 2 and c.node.input[2] != ""
    group = int(a.get("group", 1))
    attrs = {
        "out": int(w.shape[1]) * group,  # ONNX and torch keep the weight as (in, out / groups, kh, kw)
        "kernel": tuple(int(k) for k in w.shape[2:]),
        "stride": pair(a.get("strides", 1)),
        "pad": _pads(a),
        "output_pad": pair(a.get("output_padding", 0)),
        "dilation": pair(a.get("dilations", 1)),
        "groups": group,
        "bias": bias,
    }
    return "convt", attrs, {"weight": c.node.input[1], **({"bias": c.node.input[2]} if bias else {})}


def _transpose(c: _Ctx):
    perm, view = list(c.a.get("perm", [])), c.view
    if view is None and len(c.shapes[0]) == 3 and perm == [0, 2, 3, 1]:
        return View("nhwc")  # torch's LayerNorm2d: permute to channel-last, normalise, permute back
    if view is not None and view.kind == "nhwc" and perm == [0, 3, 1, 2]:
        return None  # back to channel-first: the viewed tensor itself
    if view is not None and view.kind == "grouped" and perm == [0, 2, 1, 3, 4]:
        return View("shuffled", view.info)
    _refuse(
        f"Transpose(perm={perm}) (cnndsl keeps maps channel-first: only a layer norm's channel-last round trip "
        "and a channel shuffle's transpose are understood)"
    )


def _reshape(c: _Ctx):
    shape, view = c.const(1), c.view
    target = None if shape is None else [int(d) for d in shape]
    if view is not None and view.kind == "shuffled" and target is not None and target[1:] == list(c.shapes[0]):
        return "shuffle", {"groups": int(view.info)}, {}  # x.view(n, g, c/g, h, w).transpose(1, 2).reshape(n, c, h, w)
    if view is None and target is not None and len(target) == 5 and len(c.shapes[0]) == 3:
        ch, h, w = c.shapes[0]
        if target[1] * target[2] == ch and target[3:] == [h, w]:
            return View("grouped", target[1])
    if view is None and target is not None and len(target) == 2 and target[1] in (-1, int(np.prod(c.shapes[0]))):
        return "flatten", {}, {}
    _refuse(f"a reshape to {target} (only a flatten to (N, -1) and a channel shuffle's reshapes are understood)")


def _layernorm(c: _Ctx):
    channel_last = c.view is not None and c.view.kind == "nhwc"
    rank = len(c.shapes[0]) + 1
    flat = c.view is None and rank == 2
    if not (channel_last or flat) or c.a.get("axis", -1) % rank != rank - 1:
        _refuse("a layer norm other than over the channels (channel-last within a Transpose pair, or of a vector)")
    scale, bias = c.const(1), c.const(2)
    if scale is None or bias is None or scale.shape != (c.shapes[0][0],):
        _refuse("a layer norm without per-channel weight and bias initializers")
    weights = {"weight": c.node.input[1], "bias": c.node.input[2]}
    return "layernorm", {"eps": _f32(c.a.get("epsilon", 1e-5))}, weights, "nhwc" if channel_last else None


def _slice(c: _Ctx):
    starts, ends, axes, steps = (c.const(k) for k in (1, 2, 3, 4))
    if starts is None or ends is None:
        _refuse("a Slice whose bounds are computed at run time")
    rank = len(c.shapes[0]) + 1
    axes = list(range(len(starts))) if axes is None else [int(a) % rank for a in axes]
    if steps is not None and any(int(s) != 1 for s in steps):
        _refuse("a strided Slice")
    bounds = {a: clamp_range(int(s), int(e), c.shapes[0][a - 1]) for a, s, e in zip(axes, starts, ends)}
    if c.view is None and list(bounds) == [1] and rank == 4:
        return "slice", {"start": bounds[1][0], "end": bounds[1][1]}, {}
    rows = c.view.info if c.view is not None and c.view.kind == "rows" and 2 not in bounds else None
    if set(bounds) <= {2, 3} and rank == 4 and (c.view is None or rows is not None):
        _, h, w = c.shapes[0]
        rows = bounds.get(2, rows or (0, h))
        if 3 not in bounds:
            return View("rows", rows)  # torch slices a crop's rows and columns one Slice each
        return _crop(rows, bounds[3], (h, w))
    _refuse(f"a Slice of axes {axes} (cnndsl slices channels, or crops rows and columns at the centre)")


def _crop(rows, cols, hw):
    attrs, why = crop_attrs(rows, cols, hw)
    return ("crop", attrs, {}) if not why else _refuse(why)


def _resize(c: _Ctx):
    a = c.a
    mode, coords = _text(a.get("mode", "nearest")), _text(a.get("coordinate_transformation_mode", "half_pixel"))
    if mode == "nearest" and coords == "asymmetric" and _text(a.get("nearest_mode", "round_prefer_floor")) == "floor":
        attrs = {"mode": "nearest", "align_corners": False}  # torch's nearest
    elif mode == "linear" and coords in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        attrs = {"mode": "bilinear", "align_corners": coords == "align_corners"}
    else:
        _refuse(f"Resize(mode={mode}, coordinate_transformation_mode={coords}) (cnndsl upsamples as torch does)")
    if (
        a.get("antialias", 0)
        or a.get("exclude_outside", 0)
        or _text(a.get("keep_aspect_ratio_policy", "stretch")) != "stretch"
    ):
        _refuse("Resize with antialias, exclude_outside or a kept aspect ratio")
    scales, sizes = c.const(2), c.const(3)
    if sizes is not None and sizes.size == 4:
        return "upsample", {"scale": None, "size": tuple(int(d) for d in sizes[2:]), **attrs}, {}
    if scales is not None and scales.size == 4 and list(scales[:2]) == [1, 1]:
        return "upsample", {"scale": tuple(_f32(v) for v in scales[2:]), "size": None, **attrs}, {}
    _refuse("a Resize whose output size is computed at run time")


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _mul(c: _Ctx):
    """A product of two computed tensors (squeeze-and-excitation), or of one and a per-channel
    initializer: ConvNeXt's layer scale."""
    scale = c.const(1) if c.const(0) is None else c.const(0)
    if scale is None:
        return "mul", {}, {}
    k = 1 if c.const(1) is not None else 0
    per_channel = (c.shapes[0][0], 1, 1) if len(c.shapes[0]) == 3 else (c.shapes[0][0],)
    if scale.shape != per_channel:
        _refuse(f"Mul by a constant of shape {scale.shape} (only a per-channel {per_channel} layer scale)")
    init = _f32(scale.flat[0]) if np.all(scale == scale.flat[0]) else 1e-6  # the spec's init; the weights load
    return "layer_scale", {"init": init}, {"scale": c.node.input[k]}


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
    "Mul": _mul,
    "Concat": _concat,
    "ConvTranspose": _convt,
    "Transpose": _transpose,
    "LayerNormalization": _layernorm,
    "Slice": _slice,
    "Resize": _resize,
}
READS_VIEWS = ("Transpose", "Reshape", "LayerNormalization", "Slice")  # the rules that know View
SAME_SHAPE = ("layernorm", "shuffle", "layer_scale")  # their ONNX output may be a channel-last view
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
        self.views: dict[str, View] = {}  # ONNX value -> a pending view of an import node
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
        batch = inputs[0].type.tensor_type.shape.dim[0]
        self.batch = batch.dim_value if batch.HasField("dim_value") else None
        self.value[inputs[0].name] = "input"
        self.nodes.append(ImportNode("input", "input", {}, [], shape))
        for node in self.g.node:
            self.constants(node)
        self.containers = {w.rsplit(".", 2)[0] for w in [*self.consts, *self.alias_of] if w.count(".") >= 2}
        self.containers = {".".join(c.split(".")[: i + 1]) for c in self.containers for i in range(c.count(".") + 1)}
        for node in self.g.node:
            if node.op_type == "Constant" or node.output[0] in self.consts or self.fold(node):
                continue
            try:
                self.visit(node)
            except _Unsupported as e:
                raise ImportFailure(
                    f"cannot import ONNX node `{node.name or node.output[0]}` ({node.op_type}): {e}", path
                ) from None
        infer_scopes(self.nodes)
        for o in outputs:
            if o.name in self.views:
                raise ImportFailure(f"the ONNX graph's output `{o.name}` is {VIEW_WORDS[self.views[o.name].kind]}")
        outs = [self.value.get(o.name) for o in outputs]
        if None in outs:
            missing = outputs[outs.index(None)].name
            raise ImportFailure(f"the ONNX graph's output `{missing}` is not computed from its input")
        names = dict(zip(outs, (o.name for o in outputs)))
        return ImportGraph(_name(path), shape, self.nodes, outs, path, names), self.weights

    def constants(self, node) -> None:
        if node.op_type == "Constant":
            self.consts[node.output[0]] = numpy_helper.to_array(node_attrs(node)["value"])
        elif node.op_type == "Cast" and node.input[0] in self.consts:  # F.relu6's Clip bounds
            to = onnx.helper.tensor_dtype_to_np_dtype(node_attrs(node)["to"])
            self.consts[node.output[0]] = self.consts[node.input[0]].astype(to)
        elif node.op_type == "Identity" and node.input[0] in self.consts:
            self.consts[node.output[0]] = self.consts[node.input[0]]
            self.alias_of[node.output[0]] = node.input[0]

    def fold(self, node) -> bool:
        """Shape arithmetic on constants (and on the static shapes of computed tensors) becomes a constant."""
        value = fold(node, self.consts, self.full_shape)
        if value is not None:
            self.consts[node.output[0]] = value
        return value is not None

    def full_shape(self, name: str) -> tuple | None:
        """A computed tensor's static shape, batch dimension included (what an ONNX Shape reads)."""
        if name not in self.value or self.batch is None:
            return None
        return (self.batch, *self.shape_of(self.value[name]))

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
            if i not in self.value and i not in self.views:
                _refuse(f"input `{i}` is not computed from the network input")
        view = self.views.get(data[0]) if data else None
        pending = next((i for i in data if i in self.views), None)
        if pending is not None and (node.op_type not in READS_VIEWS or len(data) > 1):
            _refuse(f"input `{pending}` is {VIEW_WORDS[self.views[pending].kind]}: no cnndsl op")
        sources = [view.src] if view is not None else [self.value[i] for i in data]
        shapes = [self.shape_of(src) for src in sources]
        mapped = rule(_Ctx(node, node_attrs(node), self.consts, shapes, view))
        if isinstance(mapped, View):
            mapped.src = sources[0]
            self.views[node.output[0]] = mapped
            return
        if mapped is None:
            self.value[node.output[0]] = sources[0]
            return
        op, attrs, weights, *keeps = mapped
        if op in MERGES and len(data) != len([i for i in node.input if i]):
            _refuse(f"{node.op_type} with a constant operand (cnndsl merges computed tensors)")
        if op not in MERGES and len(data) != 1:
            _refuse(f"{len(data)} computed inputs")
        for src in weights.values():
            self.weights[src] = self.consts[src]
        out = shapes[0] if op in SAME_SHAPE else self.shapes.get(node.output[0])
        if out is None:  # shape inference stops at sizes computed by shape arithmetic
            out = _cnndsl_shape(op, attrs, shapes)
        if out is None:
            _refuse("ONNX shape inference gives its output no static shape")
        name = node.output[0]
        self.nodes.append(ImportNode(name, op, attrs, sources, out, weights, self.scope(node, weights), node.name))
        if keeps and keeps[0]:  # computed channel-last: still a view until transposed back
            self.views[name] = View(keeps[0], None, name)
        else:
            self.value[name] = name

    def shape_of(self, name: str):
        return next(n.shape for n in reversed(self.nodes) if n.name == name)


def _cnndsl_shape(op: str, attrs: dict, shapes: list) -> tuple:
    """The output shape cnndsl's op table gives op on inputs of these shapes."""
    from ..ir import Attrs
    from ..ops import OPS as CNN_OPS

    defn, ins = CNN_OPS[op], [tuple(s) for s in shapes]
    resolved = defn.resolve({**{p.name: p.default for p in defn.params}, **attrs}, ins)
    return tuple(defn.shape(Attrs.of(resolved), ins))


def _name(path: str) -> str:
    import os

    return os.path.splitext(os.path.basename(path))[0]
