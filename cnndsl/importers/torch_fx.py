"""torch.fx importer: a torch.nn.Module traced symbolically becomes an ImportGraph.

Two tables, one entry per module class / function, say what each source construct is in cnndsl
terms; anything else is refused with its node and source line (never approximated). Shapes come from
running the traced graph once on zeros (torch.fx's ShapeProp).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .graph import ImportFailure, ImportGraph, ImportNode, conv_attrs, infer_scopes, pair, pool_attrs

Mapped = tuple[str, dict[str, Any]] | None  # (cnndsl op, attrs); None: an alias of its input


def _refuse(why: str) -> None:
    raise _Unsupported(why)


class _Unsupported(Exception):
    pass


# Modules -----------------------------------------------------------------------------------


def _conv_module(m: nn.Conv2d, in_shape) -> Mapped:
    if m.padding_mode != "zeros":
        _refuse(f"padding_mode={m.padding_mode!r} (cnndsl pads with zeros)")
    pad = m.padding
    if isinstance(pad, str):  # "same" / "valid"
        pad = (0, 0) if pad == "valid" else tuple(d * (k - 1) // 2 for k, d in zip(m.kernel_size, m.dilation))
    return "conv", conv_attrs(m.out_channels, m.kernel_size, m.stride, pad, m.dilation, m.groups, m.bias is not None)


def _table_conv_module(m, in_shape) -> Mapped:
    table, row = [], []
    index = m.index.tolist()
    rows: dict[int, list[int]] = {}
    for flat in index:
        rows.setdefault(flat // m.in_channels, []).append(flat % m.in_channels)
    table = tuple(tuple(rows.get(k, row)) for k in range(m.out_channels))
    attrs = conv_attrs(m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, 1, m.bias is not None, table)
    return "conv", attrs


def _bn_module(m: nn.BatchNorm2d, in_shape) -> Mapped:
    if not m.affine or not m.track_running_stats:
        _refuse("batch norm without affine parameters or running statistics")
    return "bn", {"eps": float(m.eps), "momentum": float(m.momentum if m.momentum is not None else 0.1)}


def _linear_module(m: nn.Linear, in_shape) -> Mapped:
    _flat_input("nn.Linear", in_shape)
    return "fc", {"out": m.out_features, "bias": m.bias is not None}


def _flat_input(what: str, in_shape) -> None:
    if len(in_shape) != 1:
        _refuse(f"{what} on a {'x'.join(map(str, in_shape))} map acts on its last dim; cnndsl's fc needs a flat input")


def _maxpool_module(m: nn.MaxPool2d, in_shape) -> Mapped:
    return _maxpool(m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, m.return_indices)


def _avgpool_module(m: nn.AvgPool2d, in_shape) -> Mapped:
    return _avgpool(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override)


def _maxpool(kernel, stride, pad, dilation=1, ceil=False, indices=False) -> Mapped:
    if pair(dilation) != (1, 1) or indices:
        _refuse("max pooling with dilation or return_indices")
    return "maxpool", pool_attrs(kernel, stride, pad, ceil)


def _avgpool(kernel, stride, pad, ceil=False, include_pad=True, divisor=None) -> Mapped:
    if divisor is not None:
        _refuse("average pooling with divisor_override")
    return "avgpool", pool_attrs(kernel, stride, pad, ceil, include_pad)


def _adaptive(kind: str, size, in_shape) -> Mapped:
    if size is None or (not isinstance(size, int) and None in tuple(size)):
        _refuse("adaptive pooling with a size of None")
    size = pair(size)
    if size == (1, 1):
        return ("gap" if kind == "avg" else "gmp"), {}
    if kind != "avg":
        _refuse("adaptive max pooling to a size other than 1")
    return "adaptive_avgpool", {"size": size}


def _flatten(start: int, end: int, in_shape) -> Mapped:
    if start != 1 or end not in (-1, len(in_shape)):
        _refuse(f"flatten(start_dim={start}, end_dim={end}) (cnndsl flattens all but the batch)")
    return ("flatten", {}) if len(in_shape) > 1 else None


def _softmax(dim, in_shape) -> Mapped:
    if dim != 1 and dim != -len(in_shape):  # dim 1 of (N, C, H, W) is -3; of (N, F), -1
        _refuse(f"softmax over dim={dim} (cnndsl's softmax is over channels, dim 1)")
    return "softmax", {}


def _gelu(approximate: str) -> Mapped:
    if approximate != "none":
        _refuse(f"gelu(approximate={approximate!r}) (cnndsl's gelu is the exact erf form)")
    return "gelu", {}


def _hardtanh(lo, hi) -> Mapped:
    if (lo, hi) != (0.0, 6.0):
        _refuse(f"hardtanh({lo}, {hi}) (only hardtanh(0, 6), i.e. relu6)")
    return "relu6", {}


def _plain(op: str) -> Callable:
    return lambda m, in_shape: (op, {})


def _convt_module(m: nn.ConvTranspose2d, in_shape) -> Mapped:
    if m.padding_mode != "zeros":
        _refuse(f"padding_mode={m.padding_mode!r}")
    attrs = {
        "out": m.out_channels,
        "kernel": pair(m.kernel_size),
        "stride": pair(m.stride),
        "pad": pair(m.padding),
        "output_pad": pair(m.output_padding),
        "dilation": pair(m.dilation),
        "groups": m.groups,
        "bias": m.bias is not None,
    }
    return "convt", attrs


def _upsample_module(m: nn.Upsample, in_shape) -> Mapped:
    if m.mode not in ("nearest", "bilinear"):
        _refuse(f"upsampling mode {m.mode!r} (cnndsl has nearest and bilinear)")
    scale = None if m.scale_factor is None else tuple(float(v) for v in pair_float(m.scale_factor))
    size = None if m.size is None else pair(m.size)
    return "upsample", {"scale": scale, "size": size, "mode": m.mode, "align_corners": bool(m.align_corners)}


def pair_float(v) -> tuple:
    return (v, v) if isinstance(v, (int, float)) else tuple(v)


def _layernorm_module(m: nn.LayerNorm, in_shape) -> Mapped:
    if not m.elementwise_affine or tuple(m.normalized_shape) != (in_shape[0],) or getattr(m, "bias", 1) is None:
        _refuse("layer norm other than over the channels, with weight and bias")
    if type(m) is nn.LayerNorm and len(in_shape) != 1:
        _refuse("nn.LayerNorm on a feature map normalises its last dims; cnndsl's layernorm is over channels")
    return "layernorm", {"eps": float(m.eps)}


def _crop_module(m, in_shape) -> Mapped:
    from ..ops import OPS

    size = pair(m.size)
    if tuple(OPS["crop"].resolve({"size": size}, [in_shape])["offset"]) != tuple(pair(m.offset)):
        _refuse(f"a crop at offset {tuple(m.offset)}, not centred (cnndsl crops the centre)")
    return "crop", {"size": size, "offset": pair(m.offset)}


MODULES: dict[type, Callable[[Any, tuple], Mapped]] = {
    nn.Conv2d: _conv_module,
    nn.BatchNorm2d: _bn_module,
    nn.Linear: _linear_module,
    nn.ConvTranspose2d: _convt_module,
    nn.Upsample: _upsample_module,
    nn.LayerNorm: _layernorm_module,
    nn.MaxPool2d: _maxpool_module,
    nn.AvgPool2d: _avgpool_module,
    nn.AdaptiveAvgPool2d: lambda m, s: _adaptive("avg", m.output_size, s),
    nn.AdaptiveMaxPool2d: lambda m, s: _adaptive("max", m.output_size, s),
    nn.Flatten: lambda m, s: _flatten(m.start_dim, m.end_dim, s),
    nn.Dropout: lambda m, s: ("dropout", {"p": float(m.p)}),
    nn.Dropout2d: lambda m, s: ("dropout", {"p": float(m.p)}) if m.p == 0 else _refuse("Dropout2d"),
    nn.Identity: lambda m, s: None,
    nn.ReLU: _plain("relu"),
    nn.ReLU6: _plain("relu6"),
    nn.Hardtanh: lambda m, s: _hardtanh(m.min_val, m.max_val),
    nn.LeakyReLU: lambda m, s: ("leaky_relu", {"slope": float(m.negative_slope)}),
    nn.ELU: lambda m, s: ("elu", {"alpha": float(m.alpha)}),
    nn.Sigmoid: _plain("sigmoid"),
    nn.Tanh: _plain("tanh"),
    nn.GELU: lambda m, s: _gelu(m.approximate),
    nn.SiLU: _plain("silu"),
    nn.Hardswish: _plain("hardswish"),
    nn.Hardsigmoid: _plain("hardsigmoid"),
    nn.Softmax: lambda m, s: _softmax(m.dim, s),
}


# cnndsl's own generated support classes (runtime/), found by name: their forward is not traced
LEAF_NAMES = {
    "TableConv2d": _table_conv_module,
    "LayerNorm2d": _layernorm_module,
    "LayerScale": lambda m, s: ("layer_scale", {"init": 1e-6}),
    "StochasticDepth": lambda m, s: ("stochastic_depth", {"p": float(m.p)}),
    "ChannelSlice": lambda m, s: ("slice", {"start": int(m.start), "end": int(m.end)}),
    "ChannelShuffle": lambda m, s: ("shuffle", {"groups": int(m.groups)}),
    "CenterCrop2d": _crop_module,
}


# Functions and methods: fn(args, kwargs, input shape) -> Mapped -----------------------------------


def _arg(args, kwargs, i: int, name: str, default=None):
    return args[i] if len(args) > i else kwargs.get(name, default)


def _pool_fn(kind: str):
    def rule(a, k, s):
        kernel = _arg(a, k, 1, "kernel_size")
        stride, pad = _arg(a, k, 2, "stride"), _arg(a, k, 3, "padding", 0)
        if kind == "max":
            return _maxpool(kernel, stride, pad, _arg(a, k, 4, "dilation", 1), _arg(a, k, 5, "ceil_mode", False))
        return _avgpool(
            kernel, stride, pad, _arg(a, k, 4, "ceil_mode", False), _arg(a, k, 5, "count_include_pad", True)
        )

    return rule


def _mean(a, k, s) -> list:
    dims = _arg(a, k, 1, "dim")
    dims = tuple(d % (len(s) + 1) for d in ((dims,) if isinstance(dims, int) else dims))
    if len(s) != 3 or sorted(dims) != [2, 3]:
        _refuse(f"mean over dims {dims} (only the spatial mean, dims (2, 3), is global pooling)")
    return [("gap", {})] if _arg(a, k, 2, "keepdim", False) else [("gap", {}), ("flatten", {})]


def _dropout_fn(a, k, s) -> Mapped:
    if _arg(a, k, 2, "training", False):
        _refuse("dropout with training=True is random at inference")
    return "dropout", {"p": float(_arg(a, k, 1, "p", 0.5))}


def _unary(op: str) -> Callable:
    return lambda a, k, s: (op, {})


def _interpolate(a, k, s) -> Mapped:
    """F.interpolate with a static size (an int, a pair, or another tensor's `y.shape[-2:]`, which the
    trace fixes at the traced input size, as the spec fixes its input) or scale factor."""
    size, scale = _arg(a, k, 1, "size"), _arg(a, k, 2, "scale_factor")
    mode, corners = _arg(a, k, 3, "mode", "nearest"), _arg(a, k, 4, "align_corners")
    if isinstance(size, fx.Node) or isinstance(scale, fx.Node) or _has_node(size) or _has_node(scale):
        _refuse("an interpolation size computed at run time other than another tensor's y.shape[-2:]")
    if mode not in ("nearest", "bilinear"):
        _refuse(f"interpolation mode {mode!r} (cnndsl has nearest and bilinear)")
    if k.get("antialias", False):
        _refuse("antialiased interpolation")
    if scale is not None and _arg(a, k, 5, "recompute_scale_factor") and any(v != int(v) for v in pair_float(scale)):
        _refuse("recompute_scale_factor=True with a fractional scale (torch then samples at out/in, not 1/scale)")
    scale = None if scale is None else tuple(float(v) for v in pair_float(scale))
    size = None if size is None else pair(size)
    return "upsample", {"scale": scale, "size": size, "mode": mode, "align_corners": bool(corners)}


def _has_node(v) -> bool:
    return isinstance(v, (tuple, list)) and any(isinstance(x, fx.Node) for x in v)


FUNCTIONS: dict[Any, Callable] = {
    F.relu: _unary("relu"),
    torch.relu: _unary("relu"),
    F.relu6: _unary("relu6"),
    F.hardtanh: lambda a, k, s: _hardtanh(_arg(a, k, 1, "min_val", -1.0), _arg(a, k, 2, "max_val", 1.0)),
    F.leaky_relu: lambda a, k, s: ("leaky_relu", {"slope": float(_arg(a, k, 1, "negative_slope", 0.01))}),
    F.elu: lambda a, k, s: ("elu", {"alpha": float(_arg(a, k, 1, "alpha", 1.0))}),
    torch.sigmoid: _unary("sigmoid"),
    F.sigmoid: _unary("sigmoid"),
    torch.tanh: _unary("tanh"),
    F.tanh: _unary("tanh"),
    F.gelu: lambda a, k, s: _gelu(k.get("approximate", "none")),
    F.silu: _unary("silu"),
    F.hardswish: _unary("hardswish"),
    F.hardsigmoid: _unary("hardsigmoid"),
    F.softmax: lambda a, k, s: _softmax(_arg(a, k, 1, "dim"), s),
    torch.softmax: lambda a, k, s: _softmax(_arg(a, k, 1, "dim"), s),
    F.max_pool2d: _pool_fn("max"),
    F.avg_pool2d: _pool_fn("avg"),
    F.adaptive_avg_pool2d: lambda a, k, s: _adaptive("avg", _arg(a, k, 1, "output_size"), s),
    F.adaptive_max_pool2d: lambda a, k, s: _adaptive("max", _arg(a, k, 1, "output_size"), s),
    torch.flatten: lambda a, k, s: _flatten(_arg(a, k, 1, "start_dim", 0), _arg(a, k, 2, "end_dim", -1), s),
    torch.mean: _mean,
    F.dropout: _dropout_fn,
    F.interpolate: _interpolate,
}
METHODS: dict[str, Callable] = {
    "relu": _unary("relu"),
    "sigmoid": _unary("sigmoid"),
    "tanh": _unary("tanh"),
    "softmax": lambda a, k, s: _softmax(_arg(a, k, 1, "dim"), s),
    "flatten": lambda a, k, s: _flatten(_arg(a, k, 1, "start_dim", 0), _arg(a, k, 2, "end_dim", -1), s),
    "mean": _mean,
    "contiguous": lambda a, k, s: None,
}
MERGES = {
    operator.add: "add",
    operator.iadd: "add",
    torch.add: "add",
    operator.mul: "mul",
    operator.imul: "mul",
    torch.mul: "mul",
    "add": "add",
    "add_": "add",
    "mul": "mul",
    "mul_": "mul",
}
_BATCH = object()  # x.size(0) / x.shape[0]: the batch size, allowed only as view(batch, -1)


# Tracing -----------------------------------------------------------------------------------------


def _where(node: fx.Node | None, stack: str | None = None) -> str:
    """file:line: code of the innermost frame outside torch in a stack trace."""
    text = stack if stack is not None else (node.stack_trace or "" if node is not None else "")
    frames = re.findall(r'File "([^"]+)", line (\d+), in [^\n]*\n\s*([^\n]*)', text)
    torch_dir = torch.__file__.rsplit("/", 1)[0]
    user = [f for f in frames if not f[0].startswith(torch_dir)]
    if not user:
        return ""
    path, line, code = user[-1]
    return f"{path}:{line}: {code.strip()}"


def _trace(module: nn.Module) -> fx.GraphModule:
    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return type(m) in MODULES or type(m).__name__ in LEAF_NAMES or super().is_leaf_module(m, qualname)

    tracer = Tracer()
    tracer.record_stack_traces = True
    try:
        graph = tracer.trace(module)
    except Exception as e:  # control flow on values, unsupported Python on proxies, ...
        import traceback

        where = _where(None, "".join(traceback.format_tb(e.__traceback__)))
        what = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "control flow" in what or "iterate" in what or "bool" in what.lower():
            raise ImportFailure(f"cannot import: control flow that depends on the input ({what})", where) from None
        raise ImportFailure(f"cannot trace the model: {type(e).__name__}: {what}", where) from None
    return fx.GraphModule(module, graph)


def import_module(module: nn.Module, input_shape: tuple[int, ...], name: str | None = None) -> ImportGraph:
    """Trace module (in eval mode) on a 1xinput_shape sample and map every node to a cnndsl op."""
    from torch.fx.passes.shape_prop import ShapeProp

    module = module.eval()
    gm = _trace(module)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ImportFailure(f"the model's forward takes {len(placeholders)} inputs; a cnndsl network takes one")
    with torch.no_grad():
        try:
            ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
        except Exception as e:
            raise ImportFailure(f"the model does not run on a 1x{'x'.join(map(str, input_shape))} input: {e}") from None
    return _Builder(gm, module, tuple(input_shape), name or type(module).__name__).run()


class _Builder:
    def __init__(self, gm: fx.GraphModule, root: nn.Module, input_shape, name: str):
        self.gm, self.name, self.input_shape = gm, name, input_shape
        self.modules = dict(root.named_modules())  # the GraphModule's copies lose the classes
        self.nodes: list[ImportNode] = []
        self.value: dict[str, Any] = {}  # fx node name -> ImportNode name, or _BATCH, or a shape tuple
        self.used_weights: dict[str, str] = {}
        self.sizes: dict[str, tuple[int, int]] = {}  # fx node -> the (H, W) it reads off a tensor's shape

    def run(self) -> ImportGraph:
        outputs: dict[str, str] = {}
        for node in self.gm.graph.nodes:
            try:
                outputs = self.visit(node) or outputs
            except _Unsupported as e:
                raise ImportFailure(
                    f"cannot import node `{node.name}` ({self.describe(node)}): {e}", _where(node)
                ) from None
        if not any(n.meta.get("nn_module_stack") for n in self.gm.graph.nodes if n.op == "call_function"):
            infer_scopes(self.nodes)
        names = {v: k for k, v in outputs.items() if not k.isdigit()}
        return ImportGraph(self.name, self.input_shape, self.nodes, list(outputs.values()), output_names=names)

    def describe(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"{type(self.modules[node.target]).__name__} `{node.target}`"
        target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", node.target)
        return f"{node.op} {target}"

    def shape(self, node: fx.Node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            _refuse("its result is not a single tensor")
        return tuple(meta.shape[1:])

    def scope(self, node: fx.Node, leaf: bool) -> tuple:
        if leaf:  # a module's place in the module tree, whether or not its parents' forward ran
            parts = node.target.split(".")[:-1]
            paths = [".".join(parts[: i + 1]) for i in range(len(parts))]
            return tuple((p, type(self.modules[p]).__name__) for p in paths)
        stack = list((node.meta.get("nn_module_stack") or {}).values())
        return tuple((path, cls.__name__ if isinstance(cls, type) else str(cls)) for path, cls in stack)

    def add(self, node: fx.Node, op: str, attrs: dict, inputs: list[str], leaf=False, weights=None, suffix="") -> str:
        name = node.name + suffix
        shape = self.shape(node) if not suffix else None
        self.nodes.append(
            ImportNode(name, op, attrs, inputs, shape, weights or {}, self.scope(node, leaf), _where(node))
        )
        return name

    def tensor_input(self, arg) -> str:
        v = self.value.get(arg.name) if isinstance(arg, fx.Node) else None
        if not isinstance(v, str):
            _refuse("an operand is not a tensor computed from the input (a constant or a parameter)")
        return v

    def visit(self, node: fx.Node):
        if node.op == "placeholder":
            self.value[node.name] = "input"
            self.nodes.append(ImportNode("input", "input", {}, [], self.input_shape))
        elif node.op == "output":
            return self.outputs(node.args[0])
        elif node.op == "call_module":
            self.visit_module(node)
        elif node.op in ("call_function", "call_method"):
            self.visit_call(node)
        else:
            _refuse("it reads a parameter or buffer directly (get_attr); use a module such as nn.Conv2d")
        return None

    def outputs(self, out) -> dict[str, str]:
        """{the source's name or position: import node} for what forward returns: a tensor, or a
        tuple, list or dict of tensors (torchvision's FPN returns an OrderedDict), in that order."""
        if isinstance(out, fx.Node):
            return {"0": self.tensor_input(out)}
        items = list(out.items()) if isinstance(out, dict) else list(enumerate(out or ()))
        if not items or any(not isinstance(v, fx.Node) for _, v in items):
            _refuse("the model returns something other than tensors (a tuple, list or dict of tensors at most)")
        return {str(k): self.tensor_input(v) for k, v in items}

    def visit_module(self, node: fx.Node) -> None:
        m = self.modules[node.target]
        rule = MODULES.get(type(m)) or LEAF_NAMES.get(type(m).__name__)
        if rule is None:
            _refuse(f"no cnndsl op for module {type(m).__name__}")
        src = self.tensor_input(node.args[0])
        in_shape = self.node_shape(src)
        mapped = rule(m, in_shape)
        if mapped is None:
            self.value[node.name] = src
            return
        weights = {}
        for key in m.state_dict():
            full = f"{node.target}.{key}"
            if full in self.used_weights:
                _refuse(f"its weights are used twice (by `{self.used_weights[full]}` too); cnndsl cannot share weights")
            self.used_weights[full] = node.name
            weights[key] = full
        op, attrs = mapped
        self.value[node.name] = self.add(node, op, attrs, [src], leaf=True, weights=weights)

    def node_shape(self, name: str) -> tuple[int, ...]:
        return next(n.shape for n in reversed(self.nodes) if n.name == name)

    def visit_call(self, node: fx.Node) -> None:
        t = node.target
        if (
            node.op == "call_method"
            and t == "size"
            and len(node.args) == 1
            or (t is getattr and node.args[1] == "shape")
        ):
            self.value[node.name] = ("size", node.args[0])
            return
        if t is operator.getitem and isinstance(self.value.get(getattr(node.args[0], "name", None)), tuple):
            dim = node.args[1]
            hw = self.spatial_size(self.value[node.args[0].name][1], dim) if isinstance(dim, slice) else None
            if hw is not None:
                self.value[node.name], self.sizes[node.name] = ("spatial",), hw
                return
            self.value[node.name] = (
                _BATCH
                if dim == 0
                else _refuse(
                    "it reads the shape (x.shape[d], d > 0): a data-dependent shape; only x.view(x.size(0), -1) is understood"
                )
            )
            return
        if node.op == "call_method" and t == "size" and len(node.args) > 1:
            self.value[node.name] = (
                _BATCH
                if node.args[1] == 0
                else _refuse(
                    f"it reads the shape (x.size({node.args[1]})): a data-dependent shape; only x.view(x.size(0), -1) is understood"
                )
            )
            return
        if node.op == "call_method" and t in ("view", "reshape") or t is torch.reshape:
            self.visit_view(node)
            return
        merge = MERGES.get(t) if (node.op == "call_method") == isinstance(t, str) else None
        if merge is not None:
            self.visit_merge(node, merge, list(node.args[:2]))
            return
        if t is torch.cat:
            dim = _arg(node.args, node.kwargs, 1, "dim", 0)
            if dim != 1:
                _refuse(f"concatenation along dim {dim} (cnndsl concatenates channels, dim 1)")
            self.visit_merge(node, "concat", list(node.args[0]))
            return
        rule = METHODS.get(t) if node.op == "call_method" else FUNCTIONS.get(t)
        if rule is None:
            _refuse("no cnndsl op for it")
        src = self.tensor_input(node.args[0])
        args = tuple(self.static(a) for a in node.args)
        mapped = rule(args, {k: self.static(v) for k, v in node.kwargs.items()}, self.node_shape(src))
        if mapped is None:
            self.value[node.name] = src
            return
        steps = mapped if isinstance(mapped, list) else [mapped]
        for i, (op, attrs) in enumerate(steps):
            last = i == len(steps) - 1
            src = self.add(node, op, attrs, [src], suffix="" if last else f"_{i}")
            if not last:
                self.nodes[-1].shape = _shape_of(op, self.node_shape(self.nodes[-1].inputs[0]))
        self.value[node.name] = src

    def spatial_size(self, shape_of: fx.Node, dims: slice) -> tuple[int, int] | None:
        """(H, W) for x.shape[-2:] or x.shape[2:] of a feature map x, as traced; None for other slices."""
        meta = shape_of.meta.get("tensor_meta")
        full = tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else ()
        if len(full) != 4 or dims.step not in (None, 1) or dims.start not in (2, -2) or dims.stop not in (None, 4):
            return None
        return tuple(int(d) for d in full[2:])

    def static(self, arg):
        """An argument with a traced spatial size (`y.shape[-2:]`) replaced by its value."""
        return self.sizes.get(arg.name, arg) if isinstance(arg, fx.Node) else arg

    def visit_view(self, node: fx.Node) -> None:
        src = self.tensor_input(node.args[0])
        dims = node.args[1:]
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        batch = [self.value.get(d.name) if isinstance(d, fx.Node) else d for d in dims]
        out = self.shape(node)
        if len(batch) == 2 and batch[0] in (_BATCH, -1) and (batch[1] == -1 or batch[0] == -1 and len(out) == 1):
            self.value[node.name] = self.add(node, "flatten", {}, [src]) if len(self.node_shape(src)) > 1 else src
            return
        _refuse(f"a reshape to {dims} (only x.view(x.size(0), -1), a flatten, is supported)")

    def visit_merge(self, node: fx.Node, op: str, args: list) -> None:
        if node.kwargs.get("alpha", 1) != 1:
            _refuse("add with alpha")
        inputs = [self.tensor_input(a) for a in args]
        self.value[node.name] = self.add(node, op, {}, inputs)


def _shape_of(op: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[0], 1, 1) if op in ("gap", "gmp") else shape
