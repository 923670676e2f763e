"""What each IR op becomes in PyTorch: data for the torch renderer (cnndsl.backends.torch_backend).

`MODULES` maps an op to a function giving the `nn` constructor for a node, as
(callee, [argument, ...]) source fragments: a new op is one entry here. `CALLS`
optionally gives a stateless op's functional form (`F.relu(x)`), used in a
`forward` instead of a module; `MERGES` maps a merge op to the expression over
its input variables. Only numbers and validated identifiers are ever formatted
into these fragments (the renderer may pass numbers that stand for constructor
parameters: they format as the parameter's name).
"""

from __future__ import annotations

from collections.abc import Callable

from ..ir import Node, Shape
from .layout import LINE


def num(v) -> str:
    """A number as Python source (bool and str never reach here: the IR holds validated numbers)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"expected a number, got {type(v).__name__}")
    return repr(v)


def pair(p: tuple[int, int]) -> str:
    return num(p[0]) if p[0] == p[1] else f"({num(p[0])}, {num(p[1])})"


def _kw(args: list[str], name: str, value: str, default: str | None) -> None:
    if value != default:
        args.append(f"{name}={value}")


def table_const(node: Node) -> str:
    """The module-level constant holding a conv's connection table."""
    return node.name.replace(".", "_").upper() + "_TABLE"


def _conv(node: Node, ins: list[Shape]) -> tuple[str, list[str]]:
    a = node.attrs
    if a["table"] is not None:
        # A table conv stores only connected kernels; fan-in as in the op table's init rule.
        kh, kw = a["kernel"]
        fan_in = max(len(r) for r in a["table"]) * kh * kw
        args = [num(ins[0][0]), table_const(node), pair(a["kernel"])]
        _kw(args, "stride", pair(a["stride"]), "1")
        _kw(args, "padding", pair(a["pad"]), "0")
        _kw(args, "dilation", pair(a["dilation"]), "1")
        _kw(args, "bias", "True" if a["bias"] else "False", "True")
        args.append(f"fan_in={num(fan_in)}")
        return "TableConv2d", args
    args = [num(ins[0][0]), num(a["out"]), pair(a["kernel"])]
    _kw(args, "stride", pair(a["stride"]), "1")
    _kw(args, "padding", pair(a["pad"]), "0")
    _kw(args, "dilation", pair(a["dilation"]), "1")
    _kw(args, "groups", num(a["groups"]), "1")
    _kw(args, "bias", "True" if a["bias"] else "False", "True")
    return "nn.Conv2d", args


def _pool(cls: str) -> Callable[[Node, list[Shape]], tuple[str, list[str]]]:
    def ctor(node: Node, ins: list[Shape]) -> tuple[str, list[str]]:
        a = node.attrs
        kernel = pair(a["kernel"])
        args = [kernel]
        _kw(args, "stride", pair(a["stride"]), kernel)
        _kw(args, "padding", pair(a["pad"]), "0")
        _kw(args, "ceil_mode", "True" if a["ceil"] else "False", "False")
        if cls == "nn.AvgPool2d":
            _kw(args, "count_include_pad", "True" if a["include_pad"] else "False", "True")
        return cls, args

    return ctor


def _bn(node: Node, ins: list[Shape]) -> tuple[str, list[str]]:
    args = [num(ins[0][0])]
    _kw(args, "eps", num(node.attrs["eps"]), "1e-05")
    _kw(args, "momentum", num(node.attrs["momentum"]), "0.1")
    return ("nn.BatchNorm2d" if len(ins[0]) == 3 else "nn.BatchNorm1d"), args


def _fc(node: Node, ins: list[Shape]) -> tuple[str, list[str]]:
    args = [num(ins[0][0]), num(node.attrs["out"])]
    _kw(args, "bias", "True" if node.attrs["bias"] else "False", "True")
    return "nn.Linear", args


def _shape_literal(t: tuple[int, ...]) -> str:
    return "(" + ", ".join(num(v) for v in t) + ("," if len(t) == 1 else "") + ")"


def _per_channel(shape: Shape) -> tuple[int, ...]:
    return (shape[0], 1, 1) if len(shape) == 3 else (shape[0],)


def _layernorm(node: Node, ins: list[Shape]) -> tuple[str, list[str]]:
    args = [num(ins[0][0])]
    _kw(args, "eps", num(node.attrs["eps"]), "1e-05")
    return "LayerNorm2d", args


def _upsample(node: Node, ins: list[Shape]) -> tuple[str, list[str]]:
    a = node.attrs
    if a["scale"] is not None:
        sh, sw = a["scale"]
        args = [f"scale_factor={num(sh) if sh == sw else _shape_literal((sh, sw))}"]
    else:
        args = [f"size={_shape_literal(a['size'])}"]
    _kw(args, "mode", '"bilinear"' if a["mode"] == "bilinear" else '"nearest"', '"nearest"')
    _kw(args, "align_corners", "True" if a["align_corners"] else "False", "False")
    return "nn.Upsample", args


def _convt(node: Node, ins: list[Shape]) -> tuple[str, list[str]]:
    a = node.attrs
    args = [num(ins[0][0]), num(a["out"]), pair(a["kernel"])]
    _kw(args, "stride", pair(a["stride"]), "1")
    _kw(args, "padding", pair(a["pad"]), "0")
    _kw(args, "output_padding", pair(a["output_pad"]), "0")
    _kw(args, "groups", num(a["groups"]), "1")
    _kw(args, "bias", "True" if a["bias"] else "False", "True")
    _kw(args, "dilation", pair(a["dilation"]), "1")
    return "nn.ConvTranspose2d", args


def _plain(cls: str, *args: str) -> Callable[[Node, list[Shape]], tuple[str, list[str]]]:
    return lambda node, ins: (cls, list(args))


MODULES: dict[str, Callable[[Node, list[Shape]], tuple[str, list[str]]]] = {
    "conv": _conv,
    "maxpool": _pool("nn.MaxPool2d"),
    "avgpool": _pool("nn.AvgPool2d"),
    "gap": _plain("nn.AdaptiveAvgPool2d", "1"),
    "gmp": _plain("nn.AdaptiveMaxPool2d", "1"),
    "adaptive_avgpool": lambda node, ins: ("nn.AdaptiveAvgPool2d", [pair(node.attrs["size"])]),
    "flatten": _plain("nn.Flatten"),
    "fc": _fc,
    "bn": _bn,
    "dropout": lambda node, ins: ("nn.Dropout", [num(node.attrs["p"])]),
    "relu": _plain("nn.ReLU"),
    "relu6": _plain("nn.ReLU6"),
    "leaky_relu": lambda node, ins: ("nn.LeakyReLU", [num(node.attrs["slope"])]),
    "elu": lambda node, ins: ("nn.ELU", [num(node.attrs["alpha"])]),
    "sigmoid": _plain("nn.Sigmoid"),
    "tanh": _plain("nn.Tanh"),
    "gelu": _plain("nn.GELU"),
    "silu": _plain("nn.SiLU"),
    "hardswish": _plain("nn.Hardswish"),
    "hardsigmoid": _plain("nn.Hardsigmoid"),
    "softmax": _plain("nn.Softmax", "dim=1"),
    "layernorm": _layernorm,
    "layer_scale": lambda node, ins: ("LayerScale", [_shape_literal(_per_channel(ins[0])), num(node.attrs["init"])]),
    "stochastic_depth": lambda node, ins: ("StochasticDepth", [num(node.attrs["p"])]),
    "slice": lambda node, ins: ("ChannelSlice", [num(node.attrs["start"]), num(node.attrs["end"])]),
    "shuffle": lambda node, ins: ("ChannelShuffle", [num(node.attrs["groups"])]),
    "upsample": _upsample,
    "crop": lambda node, ins: (
        "CenterCrop2d",
        [_shape_literal(node.attrs["size"]), _shape_literal(node.attrs["offset"])],
    ),
    "convt": _convt,
}

# Classes of runtime/torch_modules.py that a generated module copies in when it uses them.
SUPPORT = ("LayerNorm2d", "LayerScale", "StochasticDepth", "ChannelSlice", "ChannelShuffle", "CenterCrop2d")


def support_lines(callees: set[str]) -> list[str]:
    """The source of the runtime classes among callees, each after two blank lines (for the module body)."""
    from .. import runtime

    text = runtime.source("torch_modules.py")
    out: list[str] = []
    for cls in SUPPORT:
        if cls in callees:
            start = text.index(f"class {cls}(")
            end = text.find("\n\n\nclass ", start)
            out += ["", "", *text[start : None if end < 0 else end].strip("\n").split("\n")]
    return out


def _call(fn: str, *args: str) -> Callable[[Node, str], str]:
    return lambda node, v: f"{fn}({', '.join([v, *args])})"


# Stateless ops as calls in forward; an op missing here stays a module (registered under its node name).
CALLS: dict[str, Callable[[Node, str], str]] = {
    "flatten": _call("torch.flatten", "1"),
    "relu": _call("F.relu"),
    "relu6": _call("F.relu6"),
    "leaky_relu": lambda node, v: f"F.leaky_relu({v}, {num(node.attrs['slope'])})",
    "elu": lambda node, v: f"F.elu({v}, {num(node.attrs['alpha'])})",
    "sigmoid": _call("torch.sigmoid"),
    "tanh": _call("torch.tanh"),
    "gelu": _call("F.gelu"),
    "silu": _call("F.silu"),
    "hardswish": _call("F.hardswish"),
    "hardsigmoid": _call("F.hardsigmoid"),
    "softmax": _call("F.softmax", "dim=1"),
}

# Merges have no state: an expression over the variables of their inputs.
MERGES: dict[str, Callable[[list[str]], str]] = {
    "add": lambda vs: " + ".join(vs),
    "mul": lambda vs: " * ".join(vs),  # a Cx1x1 input broadcasts over HxW, as the IR's shape rule says
    "concat": lambda vs: f"torch.cat([{', '.join(vs)}], dim=1)",
}


def tuple_literal(indent: str, head: str, rows: tuple[tuple[int, ...], ...]) -> list[str]:
    """A tuple of int tuples, exploded one row per line (a magic trailing comma keeps ruff from joining it)."""
    out = [f"{indent}{head}("]
    for row in rows:
        items = [num(i) for i in row]
        text = f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
        if len(indent) + 4 + len(text) + 1 <= LINE:
            out.append(f"{indent}    {text},")
        else:
            out += [f"{indent}    (", *(f"{indent}        {i}," for i in items), f"{indent}    ),"]
    out.append(f"{indent})")
    return out
