"""What each IR op becomes in PyTorch: data for the torch renderer (cnndsl.backends.torch_backend).

`MODULES` maps an op to a function giving the `nn` constructor for a node, as
(callee, [argument, ...]) source fragments; `MERGES` maps a merge op to the
expression over its input variables. Only numbers and validated identifiers are
ever formatted into these fragments.
"""

from __future__ import annotations

from collections.abc import Callable

from ..ir import Node, Shape

LINE = 120  # ruff's line length: generated code must come out ruff-format clean


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
    "sigmoid": _plain("nn.Sigmoid"),
    "tanh": _plain("nn.Tanh"),
    "gelu": _plain("nn.GELU"),
    "silu": _plain("nn.SiLU"),
    "hardswish": _plain("nn.Hardswish"),
    "hardsigmoid": _plain("nn.Hardsigmoid"),
    "softmax": _plain("nn.Softmax", "dim=1"),
}

# Merges have no state: an expression over the variables of their inputs.
MERGES: dict[str, Callable[[list[str]], str]] = {
    "add": lambda vs: " + ".join(vs),
    "mul": lambda vs: " * ".join(vs),  # a Cx1x1 input broadcasts over HxW, as the IR's shape rule says
    "concat": lambda vs: f"torch.cat([{', '.join(vs)}], dim=1)",
}

# Emitted once, only into modules that use a connection table.
TABLE_CONV = '''
class TableConv2d(nn.Module):
    """A convolution where output map k sees only the input maps in row k of a connection table.

    Only connected kernels are parameters: `weight` has shape (connections, kh, kw), rows in table order,
    so the parameter count is the table's. `forward` scatters them into a dense (out, in, kh, kw) kernel
    (differentiable; unconnected kernels stay zero) and runs an ordinary convolution.
    """

    def __init__(
        self,
        in_channels: int,
        table: tuple[tuple[int, ...], ...],
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        fan_in: int = 1,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = len(table)
        self.kernel_size = nn.modules.utils._pair(kernel_size)
        self.stride = nn.modules.utils._pair(stride)
        self.padding = nn.modules.utils._pair(padding)
        self.dilation = nn.modules.utils._pair(dilation)
        index = [k * in_channels + i for k, row in enumerate(table) for i in row]
        # Not persistent: the state dict holds exactly the shared weight names.
        self.register_buffer("index", torch.tensor(index, dtype=torch.long), persistent=False)
        bound = 1 / math.sqrt(fan_in)
        self.weight = nn.Parameter(torch.empty(len(index), *self.kernel_size).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(len(table)).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def extra_repr(self) -> str:
        connections = self.weight.shape[0]
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, connections={connections}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        dense = self.weight.new_zeros(self.out_channels * self.in_channels, kh, kw)
        dense = dense.index_copy(0, self.index, self.weight)
        dense = dense.view(self.out_channels, self.in_channels, kh, kw)
        return F.conv2d(x, dense, self.bias, self.stride, self.padding, self.dilation)
'''


def fit_call(indent: str, head: str, args: list[str], tail: str = "") -> list[str]:
    """`head(args)tail` laid out as ruff format would: one line, args on one indented line, or one per line."""
    joined = ", ".join(args)
    one = f"{indent}{head}({joined}){tail}"
    if len(one) <= LINE or not args:  # ruff leaves an empty call alone
        return [one]
    if len(indent) + 4 + len(joined) <= LINE:
        return [f"{indent}{head}(", f"{indent}    {joined}", f"{indent}){tail}"]
    return [f"{indent}{head}(", *(f"{indent}    {a}," for a in args), f"{indent}){tail}"]


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
