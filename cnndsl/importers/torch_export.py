"""torch.export importer: a saved ExportedProgram (`.pt2`) becomes an ImportGraph.

The program is ATen-level: one table entry per ATen op (in-place variants share the entry), its
parameters are placeholders named through the graph signature, module scopes come from
`nn_module_stack` and shapes from each node's `val`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .graph import (
    VIEW_WORDS,
    ImportFailure,
    ImportGraph,
    ImportNode,
    View,
    clamp_range,
    conv_attrs,
    crop_attrs,
    pair,
    pool_attrs,
)
from .torch_fx import _where


class _Unsupported(Exception):
    pass


def _refuse(why: str):
    raise _Unsupported(why)


def _a(args, i, default=None):
    return args[i] if len(args) > i else default


def _conv(args, ins):
    w = ins.weight(args[1])
    attrs = conv_attrs(
        w.shape[0],
        tuple(w.shape[2:]),
        _a(args, 3, 1),
        _a(args, 4, 0),
        _a(args, 5, 1),
        _a(args, 6, 1),
        _a(args, 2) is not None,
    )
    return "conv", attrs, {"weight": args[1], "bias": _a(args, 2)}


def _bn(args, ins):
    if _a(args, 5):
        _refuse("batch norm in training mode")
    if args[1] is None:
        _refuse("batch norm without affine parameters")
    weights = dict(zip(("weight", "bias", "running_mean", "running_var"), args[1:5]))
    return "bn", {"eps": float(_a(args, 7, 1e-5)), "momentum": float(_a(args, 6, 0.1))}, weights


def _linear(args, ins):
    if len(ins.in_shape) != 1:
        _refuse("a linear layer on a feature map acts on its last dim; cnndsl's fc needs a flat input")
    w = ins.weight(args[1])
    return "fc", {"out": int(w.shape[0]), "bias": _a(args, 2) is not None}, {"weight": args[1], "bias": _a(args, 2)}


def _maxpool(args, ins):
    if any(d != 1 for d in (_a(args, 4, [1]) or [1])):
        _refuse("max pooling with dilation")
    return "maxpool", pool_attrs(tuple(args[1]), _a(args, 2), _a(args, 3, 0), bool(_a(args, 5, False))), {}


def _avgpool(args, ins):
    if _a(args, 6) is not None:
        _refuse("average pooling with divisor_override")
    attrs = pool_attrs(tuple(args[1]), _a(args, 2), _a(args, 3, 0), bool(_a(args, 4, False)), bool(_a(args, 5, True)))
    return "avgpool", attrs, {}


def _adaptive(kind):
    def rule(args, ins):
        size = tuple(args[1])
        if size == (1, 1):
            return ("gap" if kind == "avg" else "gmp"), {}, {}
        if kind != "avg":
            _refuse("adaptive max pooling to a size other than 1")
        return "adaptive_avgpool", {"size": size}, {}

    return rule


def _mean(args, ins):
    dims = sorted(d % (len(ins.in_shape) + 1) for d in args[1])
    if len(ins.in_shape) != 3 or dims != [2, 3]:
        _refuse(f"mean over dims {dims} (only the spatial mean is global pooling)")
    return ("gap", {}, {}) if _a(args, 2, False) else [("gap", {}, {}), ("flatten", {}, {})]


def _flatten(args, ins):
    start, end = _a(args, 1, 0), _a(args, 2, -1)
    if start != 1 or end not in (-1, len(ins.in_shape)):
        _refuse(f"flatten({start}, {end}) (cnndsl flattens all but the batch)")
    return ("flatten", {}, {}) if len(ins.in_shape) > 1 else None


def _view(args, ins):
    shape = list(args[1])
    if len(shape) == 2 and shape[0] == ins.batch and (shape[1] == -1 or shape[1] == _numel(ins.in_shape)):
        return ("flatten", {}, {}) if len(ins.in_shape) > 1 else None
    _refuse(f"a reshape to {shape} (only a flatten to (N, -1) is supported)")


def _numel(shape) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def _hardtanh(args, ins):
    if (float(_a(args, 1, -1.0)), float(_a(args, 2, 1.0))) != (0.0, 6.0):
        _refuse("hardtanh other than hardtanh(0, 6), i.e. relu6")
    return "relu6", {}, {}


def _softmax(args, ins):
    if args[1] != 1 and args[1] != -len(ins.in_shape):
        _refuse(f"softmax over dim {args[1]} (cnndsl's softmax is over channels)")
    return "softmax", {}, {}


def _merge(op):
    def rule(args, ins):
        if op == "add" and len(args) > 2 and args[2] != 1:
            _refuse("add with alpha")
        return op, {}, {}

    return rule


def _cat(args, ins):
    if _a(args, 1, 0) % (len(ins.in_shape) + 1) != 1:
        _refuse(f"concatenation along dim {_a(args, 1, 0)} (cnndsl concatenates channels)")
    return "concat", {}, {}


def _plain(op):
    return lambda args, ins: (op, {}, {})


def _convt(args, ins):
    w = ins.weight(args[1])
    groups = int(_a(args, 6, 1))
    attrs = {
        "out": int(w.shape[1]) * groups,  # torch keeps the weight as (in, out / groups, kh, kw)
        "kernel": tuple(int(k) for k in w.shape[2:]),
        "stride": pair(_a(args, 3, 1)),
        "pad": pair(_a(args, 4, 0)),
        "output_pad": pair(_a(args, 5, 0)),
        "dilation": pair(_a(args, 7, 1)),
        "groups": groups,
        "bias": _a(args, 2) is not None,
    }
    return "convt", attrs, {"weight": args[1], "bias": _a(args, 2)}


def _permute(args, ins):
    perm, view = [int(d) for d in args[1]], ins.view
    if view is None and len(ins.in_shape) == 3 and perm == [0, 2, 3, 1]:
        return View("nhwc")  # LayerNorm2d: channel-last, normalise, back
    if view is not None and view.kind == "nhwc" and perm == [0, 3, 1, 2]:
        return None
    _refuse(f"permute({perm}) (cnndsl keeps maps channel-first: only a layer norm's channel-last round trip)")


def _transpose(args, ins):
    dims = sorted(int(d) % 5 for d in args[1:3])
    if ins.view is not None and ins.view.kind == "grouped" and dims == [1, 2]:
        return View("shuffled", ins.view.info)
    _refuse(f"transpose{tuple(args[1:3])} (only a channel shuffle's transpose of (N, g, C/g, H, W))")


def _reshape(args, ins):
    target, view = [int(d) for d in args[1]], ins.view
    if view is not None and view.kind == "shuffled" and target[1:] == list(ins.in_shape):
        return "shuffle", {"groups": int(view.info)}, {}  # x.view(n, g, c/g, h, w).transpose(1, 2).reshape(n, c, h, w)
    if view is None and len(target) == 5 and len(ins.in_shape) == 3:
        c, h, w = ins.in_shape
        if target[1] * target[2] == c and target[3:] == [h, w]:
            return View("grouped", target[1])
    if view is None:
        return _view(args, ins)
    _refuse(f"a reshape to {target} of {VIEW_WORDS[view.kind]}")


def _layer_norm(args, ins):
    channel_last = ins.view is not None and ins.view.kind == "nhwc"
    if not (channel_last or (ins.view is None and len(ins.in_shape) == 1)):
        _refuse("a layer norm other than over the channels (channel-last within a permute pair, or of a vector)")
    if list(args[1]) != [ins.in_shape[0]] or _a(args, 2) is None or _a(args, 3) is None:
        _refuse("a layer norm without per-channel weight and bias")
    weights = {"weight": args[2], "bias": args[3]}
    return "layernorm", {"eps": float(_a(args, 4, 1e-5))}, weights, "nhwc" if channel_last else None


def _slice(args, ins):
    dim, start, end, step = int(_a(args, 1, 0)), _a(args, 2), _a(args, 3), int(_a(args, 4, 1))
    rank = len(ins.in_shape) + 1
    dim %= rank
    if step != 1 or rank != 4:
        _refuse("a strided slice, or a slice of a vector")
    n = ins.in_shape[dim - 1] if dim else ins.batch
    bounds = clamp_range(0 if start is None else int(start), n if end is None else min(int(end), n), n)
    if dim == 0 and bounds == (0, n) and ins.view is None:
        return None  # x[:, ...]: all of the batch
    if dim == 1 and ins.view is None:
        return "slice", {"start": bounds[0], "end": bounds[1]}, {}
    rows = ins.view.info if ins.view is not None and ins.view.kind == "rows" else None
    if dim == 2 and ins.view is None:
        return View("rows", bounds)  # a crop: its rows, then its columns
    if dim == 3 and (ins.view is None or rows is not None):
        attrs, why = crop_attrs(rows or (0, ins.in_shape[1]), bounds, ins.in_shape[1:])
        return ("crop", attrs, {}) if not why else _refuse(why)
    _refuse(f"a slice along dim {dim} (cnndsl slices channels, or crops rows and columns at the centre)")


def _upsample(mode):
    def rule(args, ins):
        size = _a(args, 1)
        corners = bool(_a(args, 2, False)) if mode == "bilinear" else False
        scales = _a(args, 3 if mode == "bilinear" else 2)
        attrs = {"mode": mode, "align_corners": corners}
        if size is not None:
            return "upsample", {"scale": None, "size": tuple(int(d) for d in size), **attrs}, {}
        return "upsample", {"scale": tuple(float(v) for v in scales), "size": None, **attrs}, {}

    return rule


def _mul(args, ins):
    """x * y of computed tensors (squeeze-and-excitation), or x * a parameter: ConvNeXt's layer scale."""
    param = next((a for a in args[:2] if isinstance(a, torch.fx.Node) and a.name in ins.builder.params), None)
    if param is None:
        return "mul", {}, {}
    scale = ins.weight(param)
    per_channel = (ins.in_shape[0], 1, 1) if len(ins.in_shape) == 3 else (ins.in_shape[0],)
    if tuple(scale.shape) != per_channel:
        _refuse(f"x * a parameter of shape {tuple(scale.shape)} (only a per-channel {per_channel} layer scale)")
    flat = scale.flatten()
    init = float(flat[0]) if bool((flat == flat[0]).all()) else 1e-6  # the spec's init; the weights load
    return "layer_scale", {"init": init}, {"scale": param}


OPS: dict[str, Callable] = {
    "conv2d": _conv,
    "batch_norm": _bn,
    "linear": _linear,
    "max_pool2d": _maxpool,
    "avg_pool2d": _avgpool,
    "adaptive_avg_pool2d": _adaptive("avg"),
    "adaptive_max_pool2d": _adaptive("max"),
    "mean": _mean,
    "flatten": _flatten,
    "view": _reshape,
    "reshape": _reshape,
    "dropout": lambda args, ins: (
        ("dropout", {"p": float(args[1])}, {}) if not _a(args, 2) else _refuse("training dropout")
    ),
    "relu": _plain("relu"),
    "relu6": _plain("relu6"),
    "hardtanh": _hardtanh,
    "leaky_relu": lambda args, ins: ("leaky_relu", {"slope": float(_a(args, 1, 0.01))}, {}),
    "elu": lambda args, ins: ("elu", {"alpha": float(_a(args, 1, 1.0))}, {}),
    "sigmoid": _plain("sigmoid"),
    "tanh": _plain("tanh"),
    "gelu": lambda args, ins: ("gelu", {}, {}),
    "silu": _plain("silu"),
    "hardswish": _plain("hardswish"),
    "hardsigmoid": _plain("hardsigmoid"),
    "softmax": _softmax,
    "_softmax": _softmax,
    "add": _merge("add"),
    "mul": _mul,
    "cat": _cat,
    "conv_transpose2d": _convt,
    "permute": _permute,
    "transpose": _transpose,
    "layer_norm": _layer_norm,
    "slice": _slice,
    "upsample_nearest2d": _upsample("nearest"),
    "upsample_bilinear2d": _upsample("bilinear"),
    "clone": lambda args, ins: None,
    "contiguous": lambda args, ins: None,
    "alias": lambda args, ins: None,
}
MERGES = ("add", "mul", "concat")
READS_VIEWS = ("permute", "transpose", "view", "reshape", "layer_norm", "slice")  # the rules that know View
SAME_SHAPE = ("layernorm", "shuffle", "layer_scale")  # shapes from the input: a layer norm's output is channel-last


class _Inputs:
    def __init__(self, builder, in_shape, batch, view=None):
        self.builder, self.in_shape, self.batch, self.view = builder, in_shape, batch, view

    def weight(self, node):
        return self.builder.params[node.name]


def import_exported(path: str) -> tuple[ImportGraph, dict[str, Any]]:
    try:
        program = torch.export.load(str(path))
    except Exception as e:
        raise ImportFailure(f"cannot load the torch.export program {path}: {type(e).__name__}: {e}") from None
    return _Builder(program).run(str(path))


def _op_name(target) -> str:
    name = str(target).split(".")[1] if str(target).startswith("aten.") else getattr(target, "__name__", str(target))
    return name[:-1] if name.endswith("_") and not name.startswith("_") else name


class _Builder:
    def __init__(self, program):
        self.program = program
        sig = program.graph_signature
        self.names = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}  # placeholder -> state-dict key
        state = {**program.state_dict, **getattr(program, "constants", {})}
        self.state = {k: v.detach() for k, v in state.items() if isinstance(v, torch.Tensor)}
        self.params = {p: self.state[k] for p, k in self.names.items() if k in self.state}
        self.user_inputs = list(sig.user_inputs)
        self.nodes: list[ImportNode] = []
        self.value: dict[str, str] = {}
        self.views: dict[str, View] = {}  # fx node -> a pending view of an import node

    def run(self, path: str):
        if len(self.user_inputs) != 1:
            raise ImportFailure(f"the program takes {len(self.user_inputs)} inputs; a cnndsl network takes one")
        outputs = None
        for node in self.program.graph.nodes:
            try:
                outputs = self.visit(node) or outputs
            except _Unsupported as e:
                raise ImportFailure(
                    f"cannot import node `{node.name}` ({node.target}): {e}",
                    _where(None, node.meta.get("stack_trace") or ""),
                ) from None
        shape = self.nodes[0].shape
        names = dict(zip(outputs, _output_keys(self.program)))
        graph = ImportGraph(_name(path), shape, self.nodes, outputs, path, {k: v for k, v in names.items() if v})
        return graph, self.state

    def visit(self, node):
        if node.op == "placeholder":
            if node.name == self.user_inputs[0]:
                shape = tuple(node.meta["val"].shape)
                self.batch = shape[0]
                self.value[node.name] = "input"
                self.nodes.append(ImportNode("input", "input", {}, [], shape[1:]))
            return None
        if node.op == "output":
            outs = node.args[0]
            if not outs or any(not isinstance(o, torch.fx.Node) or o.name not in self.value for o in outs):
                _refuse("the program returns something other than tensors computed from its input")
            return [self.value[o.name] for o in outs]
        if node.op != "call_function":
            _refuse(f"a {node.op} node")
        op_name = _op_name(node.target)
        rule = OPS.get(op_name)
        if rule is None:
            _refuse("no cnndsl op for it")
        first = node.args[0] if node.args else None
        view = self.views.get(first.name) if isinstance(first, torch.fx.Node) else None
        if view is not None and op_name not in READS_VIEWS:
            _refuse(f"its input `{first.name}` is {VIEW_WORDS[view.kind]}: no cnndsl op")
        data = [view.src] if view is not None else self.data_inputs(node)
        ins = _Inputs(self, self.shape_of(data[0]), getattr(self, "batch", 1), view)
        mapped = rule(node.args, ins)
        if isinstance(mapped, View):
            mapped.src = data[0]
            self.views[node.name] = mapped
            return None
        if mapped is None:
            self.value[node.name] = data[0]
            return None
        steps = mapped if isinstance(mapped, list) else [mapped]
        src = data
        for k, step in enumerate(steps):
            op, attrs, weights = step[:3]
            last = k == len(steps) - 1
            name = node.name if last else f"{node.name}_{k}"
            if op in SAME_SHAPE:
                shape = self.shape_of(src[0])
            else:
                shape = tuple(node.meta["val"].shape[1:]) if last else (self.shape_of(src[0])[0], 1, 1)
            self.nodes.append(
                ImportNode(
                    name,
                    op,
                    attrs,
                    src,
                    shape,
                    self.weights(weights),
                    self.scope(node),
                    _where(None, node.meta.get("stack_trace") or ""),
                )
            )
            src = [name]
        keeps = steps[-1][3] if len(steps[-1]) > 3 else None
        if keeps:  # computed channel-last: a view until permuted back
            self.views[node.name] = View(keeps, None, src[0])
        else:
            self.value[node.name] = src[0]
        return None

    def data_inputs(self, node) -> list[str]:
        args = (
            node.args[0]
            if _op_name(node.target) == "cat"
            else node.args[: 2 if _op_name(node.target) in ("add", "mul") else 1]
        )
        if _op_name(node.target) == "mul":  # a parameter operand is a layer scale's weight, not data
            args = [a for a in args if not (isinstance(a, torch.fx.Node) and a.name in self.params)] or args
        out = []
        for a in args:
            if not isinstance(a, torch.fx.Node) or a.name not in self.value:
                _refuse("an operand is not a tensor computed from the input (a constant or a parameter)")
            out.append(self.value[a.name])
        return out

    def weights(self, weights: dict) -> dict[str, str]:
        out = {}
        for tensor, node in weights.items():
            if node is None:
                continue
            out[tensor] = self.names[node.name]
        if "running_mean" in out:
            count = out["running_mean"].rsplit(".", 1)[0] + ".num_batches_tracked"
            if count in self.state:
                out["num_batches_tracked"] = count
        return out

    def scope(self, node) -> tuple:
        stack = [(path, cls) for path, cls in (node.meta.get("nn_module_stack") or {}).values() if path]
        while stack and _is_leaf(stack[-1][1]):
            stack.pop()
        return tuple((path, _class_name(cls)) for path, cls in stack)

    def shape_of(self, name: str):
        return next(n.shape for n in reversed(self.nodes) if n.name == name)


def _output_keys(program) -> list[str | None]:
    """The keys of a program whose forward returns a dict (torchvision's FPN), else Nones."""
    spec = program.call_spec.out_spec
    if spec is not None and spec.type is dict and all(isinstance(k, str) for k in spec.context):
        return [k if not k.isdigit() else None for k in spec.context]
    return [None] * (spec.num_leaves if spec is not None else 1)


def _class_name(cls) -> str:
    return (cls if isinstance(cls, str) else cls.__qualname__).rsplit(".", 1)[-1]


def _is_leaf(cls) -> bool:
    text = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
    return text.startswith("torch.nn.modules.") and ".container." not in text


def _name(path: str) -> str:
    import os

    return os.path.splitext(os.path.basename(path))[0]
