"""torch.export importer: a saved ExportedProgram (`.pt2`) becomes an ImportGraph.

The program is ATen-level: one table entry per ATen op (in-place variants share the entry), its
parameters are placeholders named through the graph signature, module scopes come from
`nn_module_stack` and shapes from each node's `val`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .graph import ImportFailure, ImportGraph, ImportNode, conv_attrs, pool_attrs
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
    "view": _view,
    "reshape": _view,
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
    "mul": _merge("mul"),
    "cat": _cat,
    "clone": lambda args, ins: None,
    "contiguous": lambda args, ins: None,
    "alias": lambda args, ins: None,
}
MERGES = ("add", "mul", "concat")


class _Inputs:
    def __init__(self, builder, in_shape, batch):
        self.builder, self.in_shape, self.batch = builder, in_shape, batch

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
        rule = OPS.get(_op_name(node.target))
        if rule is None:
            _refuse("no cnndsl op for it")
        data = self.data_inputs(node)
        ins = _Inputs(self, self.shape_of(data[0]), getattr(self, "batch", 1))
        mapped = rule(node.args, ins)
        if mapped is None:
            self.value[node.name] = data[0]
            return None
        steps = mapped if isinstance(mapped, list) else [mapped]
        src = data
        for k, (op, attrs, weights) in enumerate(steps):
            last = k == len(steps) - 1
            name = node.name if last else f"{node.name}_{k}"
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
        self.value[node.name] = src[0]
        return None

    def data_inputs(self, node) -> list[str]:
        args = (
            node.args[0]
            if _op_name(node.target) == "cat"
            else node.args[: 2 if _op_name(node.target) in ("add", "mul") else 1]
        )
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
