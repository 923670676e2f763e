"""The torch backend: the IR rendered as the source of a standalone, readable `nn.Module`.

The module imports only torch (and math when a connection table needs it). Its
submodules are named by the IR's node names, dotted names becoming nested plain
`nn.Module()` containers, so `state_dict()` keys are exactly the shared weight
names of `cnndsl.analysis.weight_specs` (docs/weights.md). `forward` has one
statement per node, each commented with the spec line it came from. A chain
keeps one variable (`x`) while nothing else needs the old value; a fork opens a
new variable named after the node that starts it.
"""

from __future__ import annotations

import builtins
import keyword
import re
from typing import Any

from .. import runtime
from ..diagnostics import CnnError, error
from ..ir import Network, Node, format_shape
from .layout import LINE, fit_call, outputs_line
from .torch_layers import MERGES, MODULES, SUPPORT, support_lines, table_const, tuple_literal

INDENT = "        "  # statements inside a method


def class_name(network: Network) -> str:
    """CamelCase of the network name, always a valid class name: resnet_tiny -> ResnetTiny, lenet5_1998 -> Lenet5_1998."""
    parts = [p for p in network.name.split("_") if p]
    name = ""
    for p in parts:
        if name and p[0].isdigit():
            name += "_"
        name += p[0].upper() + p[1:]
    if not name[:1].isalpha():  # empty, or the name was all underscores and digits
        name = "Net" + name
    if keyword.iskeyword(name) or name in _GLOBALS:
        name += "Net"
    return name


def _table_conv() -> str:
    """TableConv2d's source, copied verbatim from the runtime file (its imports are the module's own)."""
    text = runtime.source("torch_table_conv.py")
    return text[text.index("class TableConv2d(") :]


_GLOBALS = {"torch", "nn", "F", "math", "TableConv2d", *SUPPORT}


def _module_attributes() -> frozenset[str]:
    import torch

    return frozenset(dir(torch.nn.Module()))


def _name_error(node: Node, message: str, hint: str) -> CnnError:
    return CnnError([error("E112", message, node.span, hint)])


def _check_names(network: Network) -> None:
    """Node names become attribute paths; a part torch or Python reserves would break the module, so say so."""
    reserved = _module_attributes() | {"forward"}
    for n in network.layers:
        for part in n.name.split("."):
            if keyword.iskeyword(part) or part in reserved or part.startswith("__"):
                raise _name_error(
                    n,
                    f"the name `{part}` (in `{n.name}`) cannot name a torch submodule",
                    f"label the layer or block differently, e.g. `as my_{part.lstrip('_')}`",
                )


def _where(node: Node) -> str:
    """`line 12` of the spec, or `line 12 (resnet.cnn line 7)` for a node a block made there.

    Only numbers and a file name that is an identifier plus `.cnn` appear: no spec text reaches the source.
    """
    if not node.trace:
        return f"line {node.span.line}"
    top = node.trace[0].call
    if node.span.file == top.file:
        return f"line {top.line} (block line {node.span.line})"
    base = re.split(r"[/\\]", node.span.file)[-1]
    where = base if _FILE.fullmatch(base) else "imported file"
    return f"line {top.line} ({where} line {node.span.line})"


_FILE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.cnn")


def _comment(node: Node) -> str:
    return f"# {_where(node)}: {node.op} -> {format_shape(node.shape)[2:]}"  # the shape without the batch


def _with_comment(code: list[str], comment: str) -> list[str]:
    """A trailing comment when one line stays within ruff's width, else the comment on its own line above."""
    if len(code) == 1 and len(code[0]) + 2 + len(comment) <= LINE:
        return [f"{code[0]}  {comment}"]
    indent = code[0][: len(code[0]) - len(code[0].lstrip())]
    return [indent + comment, *code]


def _attr(name: str) -> str:
    return f"self.{name}"


def _table_names(network: Network) -> dict[str, str]:
    """Module-level constant names for connection tables (`C3_TABLE`), made unique if two names fold together."""
    names: dict[str, str] = {}
    for n in network.layers:
        if n.op == "conv" and n.attrs["table"] is not None:
            base = table_const(n)
            name, k = base, 1
            while name in names.values():
                k += 1
                name = f"{base}_{k}"
            names[n.name] = name
    return names


def _init_lines(network: Network, tables: dict[str, str]) -> list[str]:
    lines: list[str] = []
    containers: set[str] = set()
    for n in network.layers:
        if n.op not in MODULES:
            continue
        parts = n.name.split(".")
        for i in range(1, len(parts)):
            scope = ".".join(parts[:i])
            if scope not in containers:
                containers.add(scope)
                lines.append(f"{INDENT}{_attr(scope)} = nn.Module()")
        ins = [network.node(i).shape for i in n.inputs]
        callee, args = MODULES[n.op](n, ins)
        if n.name in tables:
            args[1] = tables[n.name]
        lines += fit_call(INDENT, f"{_attr(n.name)} = {callee}", args)
    for name in network.frozen:
        if _has_weights(network, name):
            lines.append(f"{INDENT}{_attr(name)}.requires_grad_(False)")
    return lines


def _has_weights(network: Network, name: str) -> bool:
    from ..analysis.params import node_weights

    return bool(node_weights(network, network.node(name)))


class _Variables:
    """Local variable names for forward: `x` for the main chain, short node-derived names for forks.

    A name is free again once the value it holds has had its last use, so each block's branches can read
    `conv1 = ...` like hand-written code; a longer (more dotted) form is taken only while the short one is live.
    """

    def __init__(self) -> None:
        self.reserved = {"x", "self", *_GLOBALS, *dir(builtins)}
        self.live: set[str] = set()
        self.born: dict[str, int] = {"x": 0}  # when each name last started a chain; the oldest keeps going
        self.clock = 0

    def fresh(self, node_name: str) -> str:
        parts = node_name.split(".")
        candidates = ["_".join(parts[-k:]) for k in range(1, len(parts) + 1)]
        candidates += [f"{candidates[-1]}_{k}" for k in range(2, len(self.live) + 3)]
        name = next(c for c in candidates if c not in self.live and c not in self.reserved and not keyword.iskeyword(c))
        self.live.add(name)
        self.clock += 1
        self.born[name] = self.clock
        return name


def _forward_lines(network: Network) -> list[str]:
    layers = network.layers
    last_use: dict[str, int] = {}
    for idx, n in enumerate(layers):
        for i in n.inputs:
            last_use[i] = idx
    for o in network.outputs:
        last_use[o] = len(layers)
    names = _Variables()
    var = {"input": "x"}
    lines: list[str] = []
    for idx, n in enumerate(layers):
        args = [var[i] for i in n.inputs]
        dying = [var[i] for i in dict.fromkeys(n.inputs) if last_use.get(i) == idx]
        names.live.difference_update(dying)
        # a merge continues the chain that started first (the trunk), so `x` stays the trunk
        out = min(dying, key=names.born.__getitem__) if dying else names.fresh(n.name)
        names.live.add(out)
        var[n.name] = out
        if n.op in MERGES:
            code = [f"{INDENT}{out} = {MERGES[n.op](args)}"]
            if len(code[0]) > LINE:  # names are short unless scopes nest very deeply; say so rather than misformat
                raise _name_error(
                    n,
                    f"the names around `{n.name}` are too long for a readable torch module",
                    "use shorter block or layer labels",
                )
        else:
            code = fit_call(INDENT, f"{out} = {_attr(n.name)}", [args[0]])
        lines += _with_comment(code, _comment(n))
    results = [var[o] for o in network.outputs]
    lines.append(f"{INDENT}return {results[0] if len(results) == 1 else ', '.join(results)}")
    return lines


def render(network: Network) -> str:
    """The source of a standalone PyTorch module for network (deterministic, ruff-clean)."""
    _check_names(network)
    cls = class_name(network)
    table_names = _table_names(network)
    tables = [network.node(name) for name in table_names]
    shape_in = format_shape(network.input_shape)
    shape_out = ", ".join(format_shape(network.node(o).shape) for o in network.outputs)
    out = [
        f'"""{cls}: a PyTorch module generated by cnndsl from the network `{network.name}`.',
        "",
        f"Input {shape_in}, output {shape_out}. State-dict keys follow the cnndsl weight naming",
        "(docs/weights.md), shared with the numba and cuda backends. Regenerate rather than edit.",
        '"""',
        "",
    ]
    if tables:
        out += ["import math", ""]
    out.append("import torch")
    if tables:
        out.append("import torch.nn.functional as F")
    out += ["from torch import nn", "", f'__all__ = ["{cls}"]', outputs_line(network)]
    for n in tables:
        out += [
            "",
            "",
            f"# Connection table of `{n.name}` ({_where(n)}): row k lists the input maps output map k sees.",
        ]
        out += tuple_literal("", f"{table_names[n.name]} = ", n.attrs["table"])
    if tables:
        out += ["", "", *_table_conv().strip("\n").split("\n")]
    out += support_lines(
        {MODULES[n.op](n, [network.node(i).shape for i in n.inputs])[0] for n in network.layers if n.op in MODULES}
    )
    out += [
        "",
        "",
        f"class {cls}(nn.Module):",
        f'    """{network.name}: {shape_in} -> {shape_out}."""',
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        *_init_lines(network, table_names),
        "",
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:"
        if len(network.outputs) == 1
        else "    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:",
        *_forward_lines(network),
    ]
    return "\n".join(out) + "\n"


def instantiate(
    module: Any,
    *,
    device: Any = None,
    dtype: Any = None,
    seed: int | None = None,
    train: bool = True,
    weights: Any = None,
    allow_nonfinite: bool = False,
):
    """An instance of the generated class: on `device` (e.g. "meta" to count without memory), cast to `dtype`,
    initialised from `seed` when given, then from `weights` (a file path or a state dict, see load_weights),
    in training mode unless train=False."""
    import contextlib

    import torch

    cls = getattr(module, module.__all__[0])
    if seed is not None:
        torch.manual_seed(seed)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = cls()
    if weights is not None:
        load_weights(model, weights, allow_nonfinite=allow_nonfinite)
    if dtype is not None:
        model = model.to(dtype)
    return model.train(train)


def load_weights(model: Any, weights: Any, *, strict: bool = True, allow_nonfinite: bool = False):
    """Load a `.safetensors`/`.npz` path or a state dict into a torch module under the numba and cuda
    backends' policy (cnndsl.runtime.model_api.checked_weights): only floating tensors convert, NaN/inf
    only with allow_nonfinite, overflow and bad keys or shapes are a WeightsError listing every problem.
    `nn.Module.load_state_dict` alone would cast bool, int or 1e300 weights silently."""
    import os

    import torch

    from ..runtime.model_api import WeightsError, checked_weights, read_weights_file

    path = os.fspath(weights) if isinstance(weights, (str, os.PathLike)) else None
    specs = {k: (tuple(v.shape), numpy_dtype(v.dtype)) for k, v in model.state_dict().items()}
    try:
        arrays = checked_weights(read_weights_file(path) if path else weights, specs, strict, allow_nonfinite)
    except WeightsError as e:
        if path is None:
            raise
        raise WeightsError(f"{path}: {e}") from None
    # torch's strict mode would demand the batch-norm counter, which checked_weights lets a file leave out
    model.load_state_dict({k: torch.from_numpy(a) for k, a in arrays.items()}, strict=False)
    return model


def numpy_dtype(dtype: Any) -> str:
    """The numpy dtype a torch tensor's values are checked in: its own (float16 overflows sooner than float32),
    or float32 for the floating types numpy lacks (bfloat16, float8), whose range float32 covers."""
    name = str(dtype).removeprefix("torch.")
    return "float32" if dtype.is_floating_point and name not in ("float16", "float32", "float64") else name
