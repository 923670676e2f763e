"""The torch backend: the IR rendered as the source of a standalone `nn.Module`, as a person writes one.

The module imports only torch (and math when a connection table needs it). Its submodules are named by
the IR's node names, so `state_dict()` keys are exactly the shared weight names of
`cnndsl.analysis.weight_specs` (docs/weights.md). Each scope of the names is one submodule
(torch_scopes): a class per distinct block expansion (torch_classes), a callable `Chain` for a labelled
chain. Each `forward` has one statement per layer or scope, commented with the spec line (and the block
file's line) it came from; stateless activations are functional calls (torch_layers.CALLS).
"""

from __future__ import annotations

import builtins
import keyword
import re
from typing import Any

from .. import runtime
from ..diagnostics import CnnError, error
from ..ir import Network, Node, format_shape
from ..modules import MODULE_ATTRIBUTES
from .base import where
from .layout import LINE, fit_all, fit_call, outputs_line
from .torch_classes import INDENT, Classes, Group, comment, lay, lines_where
from .torch_layers import MODULES, SUPPORT, support_lines, table_const, tuple_literal
from .torch_scopes import CHAIN, scope_tree, walk


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


def _name_error(node: Node, message: str, hint: str) -> CnnError:
    return CnnError([error("E112", message, node.span, hint)])


def _check_names(network: Network) -> None:
    """Node names become attribute paths; a part torch or Python reserves would break the module, so say so."""
    # Rendering needs no torch: the front end's list of nn.Module attributes (checked against the installed
    # torch by tests/test_hostile_input.py), and every `_` name, which nn.Module keeps for itself.
    for n in network.layers:
        for part in n.name.split("."):
            if keyword.iskeyword(part) or part in MODULE_ATTRIBUTES or part.startswith("_"):
                raise _name_error(
                    n,
                    f"the name `{part}` (in `{n.name}`) cannot name a torch submodule",
                    f"label the layer or block differently, e.g. `as my_{part.lstrip('_')}`",
                )


def _with_comment(code: list[str], comment: str) -> list[str]:
    """A trailing comment when one line stays within ruff's width, else the comment on its own line above."""
    if len(code) == 1 and len(code[0]) + 2 + len(comment) <= LINE:
        return [f"{code[0]}  {comment}"]
    indent = code[0][: len(code[0]) - len(code[0].lstrip())]
    return [indent + comment, *code]


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


def _has_weights(network: Network, name: str) -> bool:
    from ..analysis.params import node_weights

    return bool(node_weights(network, network.node(name)))


CHAIN_SOURCE = '''class Chain(nn.Sequential):
    """Layers applied in order, each under its cnndsl name: an nn.Sequential whose children are named."""

    def __init__(self, /, **layers: nn.Module) -> None:
        super().__init__()
        for name, layer in layers.items():
            self.add_module(name, layer)'''


def _init_lines(group: Group) -> list[str]:
    lines: list[str] = []
    for kind, target, expr, *flag in group.draft.init:
        if kind == "optional":
            lines += [f"{INDENT}self.{target} = None", f"{INDENT}if {flag[0]!r}:"]
            lines += lay(INDENT + "    ", f"self.{target} = ", expr, "", LINE)
        else:
            lines += lay(INDENT, f"self.{target} = ", expr, "", LINE)
    return lines


def _forward_lines(group: Group) -> list[str]:
    lines: list[str] = []
    for key, code, merge in group.draft.forward:
        notes = [n[key] for n in group.notes if key in n]
        if merge and len(code[0]) > LINE:  # a merge or an optional shortcut past the width: names are short
            # unless scopes nest very deeply, and ruff would wrap such an expression in parentheses; say so
            raise _TooLong(merge)
        code = fit_all(code)
        lines += _with_comment(code, comment(notes))
    return [*lines, f"{INDENT}return {group.draft.result}"]


def _class_lines(group: Group, doc: str, extra_init: list[str], several: bool = False) -> list[str]:
    params = [f"{p}: {t}" for p, t, _ in group.params]
    return [
        "",
        "",
        f"class {group.name}(nn.Module):",
        f'    """{doc}"""',
        "",
        *fit_call("    ", "def __init__", ["self", *params], " -> None:"),
        f"{INDENT}super().__init__()",
        *_init_lines(group),
        *extra_init,
        "",
        "    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:"
        if several
        else "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
        *_forward_lines(group),
    ]


def _doc(group: Group) -> str:
    """A class's docstring: what it is and where the spec uses it (identifiers and numbers only)."""
    first = group.members[0]
    if first.kind == "block":
        what = f"The block `{first.block}`" if _IDENT.fullmatch(first.block) else "A block"
    else:
        what = f"The {'chain' if first.kind == 'label' else first.kind} `{first.part}`"
    tops = [(next(iter(n.values()))[0], None) for n in group.notes if n]
    uses = len(group.members)
    return f"{what}: {uses} expansion{'s' if uses > 1 else ''}, at {lines_where(tops)} of the spec."


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def render(network: Network) -> str:
    """The source of a standalone PyTorch module for network (deterministic, ruff-clean)."""
    _check_names(network)
    cls = class_name(network)
    table_names = _table_names(network)
    root = scope_tree(network, _chain_reserved())
    reserved = frozenset({*_GLOBALS, "Chain", cls, *table_names.values(), *dir(builtins)})
    classes = Classes(network, root, cls, table_names, reserved)
    classes.build()
    try:
        return _module_source(network, cls, classes, table_names)
    except _TooLong as e:
        long = network.node(e.args[0])
        raise _name_error(
            long,
            f"the names around `{long.name}` are too long for a readable torch module",
            "use shorter block or layer labels",
        ) from None


class _TooLong(Exception):
    """A merge statement past the line width (its node's name)."""


def _module_source(network: Network, cls: str, classes: Classes, table_names: dict[str, str]) -> str:
    tables = [network.node(name) for name in table_names]
    shape_in = format_shape(network.input_shape)
    shape_out = ", ".join(format_shape(network.node(o).shape) for o in network.outputs)
    root = classes.root
    body: list[str] = []
    for n in tables:
        body += [
            "",
            "",
            f"# Connection table of `{n.name}` ({where(n)}): row k lists the input maps output map k sees.",
        ]
        body += tuple_literal("", f"{table_names[n.name]} = ", n.attrs["table"])
    if tables:
        body += ["", "", *_table_conv().strip("\n").split("\n")]
    body += support_lines(
        {MODULES[n.op](n, [network.node(i).shape for i in n.inputs])[0] for n in network.layers if n.op in MODULES}
    )
    if any(s.role == CHAIN for s in walk(root)):
        body += ["", "", *CHAIN_SOURCE.split("\n")]
    frozen = [f"{INDENT}self.{name}.requires_grad_(False)" for name in network.frozen if _has_weights(network, name)]
    for group in classes.groups:
        if group.members[0] is root:
            several = len(network.outputs) > 1
            body += _class_lines(group, f"{network.name}: {shape_in} -> {shape_out}.", frozen, several)
        else:
            body += _class_lines(group, _doc(group), [])
    text = "\n".join(body)
    uses_f = re.search(r"\bF\.", text) is not None
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
    if uses_f:
        out.append("import torch.nn.functional as F")
    out += ["from torch import nn", "", f'__all__ = ["{cls}"]', outputs_line(network)]
    return "\n".join(out) + "\n" + text + "\n"


# What nn.Sequential adds to nn.Module's attributes (tests/test_torch_backend.py checks it against torch):
# rendering needs no torch.
SEQUENTIAL_ATTRIBUTES = frozenset({"append", "extend", "insert", "pop"})


def _chain_reserved() -> frozenset[str]:
    return MODULE_ATTRIBUTES | SEQUENTIAL_ATTRIBUTES | {"forward"}


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
