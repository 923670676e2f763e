"""How an op with resolved attributes is written in a spec: a surface name and its argument slots.

One entry per op. A slot keeps its value and the value the language would assume without it, so the
writer omits defaults, and a block can turn a slot that differs between instances into a parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .graph import ImportFailure, ImportNode


@dataclass(frozen=True)
class Slot:
    key: str
    value: Any
    default: Any = None  # omitted when value == default
    positional: bool = False


@dataclass(frozen=True)
class Spelled:
    name: str  # conv3x3, maxpool3, relu
    slots: tuple[Slot, ...] = ()


def _one(v):
    """(3, 3) -> 3: how a square pair is written."""
    return v[0] if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1] else v


def _kname(family: str, kernel, short: bool) -> str:
    kh, kw = kernel
    return f"{family}{kh}" if short and kh == kw else f"{family}{kh}x{kw}"


def _conv(n: ImportNode, in_shape) -> Spelled:
    a = n.attrs
    auto = tuple(d * (k - 1) // 2 for k, d in zip(a["kernel"], a["dilation"]))
    common = (
        Slot("stride", _one(a["stride"]), 1),
        Slot("pad", _one(a["pad"]), _one(auto)),
        Slot("dilation", _one(a["dilation"]), 1),
    )
    bias = Slot("bias", a["bias"], True)
    c = in_shape[0]
    if a["table"] is not None:
        table = [list(r) for r in a["table"]]
        return Spelled(
            _kname("conv", a["kernel"], False),
            (Slot("out", a["out"], positional=True), *common, Slot("table", table), bias),
        )
    if a["groups"] == c and c > 1 and a["out"] % c == 0:
        return Spelled(
            _kname("dwconv", a["kernel"], False), (Slot("multiplier", a["out"] // c, 1, True), *common, bias)
        )
    groups = Slot("groups", a["groups"], 1)
    return Spelled(_kname("conv", a["kernel"], False), (Slot("out", a["out"], positional=True), *common, groups, bias))


def _convt(n: ImportNode, in_shape) -> Spelled:
    a = n.attrs
    slots = (
        Slot("out", a["out"], positional=True),
        Slot("stride", _one(a["stride"]), 1),
        Slot("pad", _one(a["pad"]), 0),
        Slot("output_pad", _one(a["output_pad"]), 0),
        Slot("dilation", _one(a["dilation"]), 1),
        Slot("groups", a["groups"], 1),
        Slot("bias", a["bias"], True),
    )
    return Spelled(_kname("convt", a["kernel"], False), slots)


def _upsample(n: ImportNode, in_shape) -> Spelled:
    a = n.attrs
    first = (
        Slot("scale", _one(a["scale"]), positional=True) if a["scale"] is not None else Slot("size", _one(a["size"]))
    )
    return Spelled(
        "upsample", (first, Slot("mode", a["mode"], "nearest"), Slot("align_corners", a["align_corners"], False))
    )


def _pool(n: ImportNode, in_shape) -> Spelled:
    a = n.attrs
    slots = [
        Slot("stride", _one(a["stride"]), _one(a["kernel"])),
        Slot("pad", _one(a["pad"]), 0),
        Slot("ceil", a["ceil"], False),
    ]
    if n.op == "avgpool":
        slots.append(Slot("include_pad", a.get("include_pad", True), True))
    return Spelled(_kname(n.op, a["kernel"], True), tuple(slots))


SPELLINGS: dict[str, Callable[[ImportNode, tuple], Spelled]] = {
    "conv": _conv,
    "convt": _convt,
    "upsample": _upsample,
    "maxpool": _pool,
    "avgpool": _pool,
    "adaptive_avgpool": lambda n, s: Spelled(
        "adaptive_avgpool", (Slot("size", _one(n.attrs["size"]), positional=True),)
    ),
    "fc": lambda n, s: Spelled(
        "fc", (Slot("out", n.attrs["out"], positional=True), Slot("bias", n.attrs["bias"], True))
    ),
    "bn": lambda n, s: Spelled("bn", (Slot("eps", n.attrs["eps"], 1e-5), Slot("momentum", n.attrs["momentum"], 0.1))),
    "dropout": lambda n, s: Spelled("dropout", (Slot("p", n.attrs["p"], 0.5, True),)),
    "leaky_relu": lambda n, s: Spelled("leaky_relu", (Slot("slope", n.attrs["slope"], 0.01, True),)),
    "elu": lambda n, s: Spelled("elu", (Slot("alpha", n.attrs["alpha"], 1.0, True),)),
}


def _generic(n: ImportNode, in_shape) -> Spelled:
    """An op written as its name and the op table's parameters (new ops need no entry above)."""
    from ..ops import OPS, REQUIRED

    op = OPS[n.op]
    slots = tuple(
        Slot(p.name, _one(n.attrs[p.name]), None if p.default is REQUIRED else _one(p.default), p.positional)
        for p in op.params
        if p.name in n.attrs
    )
    return Spelled(n.op, slots)


def spell(n: ImportNode, in_shape) -> Spelled:
    from ..ops import OPS

    if n.op == "identity":
        return Spelled("identity")
    rule = SPELLINGS.get(n.op) or (_generic if n.op in OPS else None)
    if rule is None:
        raise ImportFailure(f"cannot import `{n.name}`: the spec writer has no spelling for op `{n.op}`", n.where)
    return rule(n, in_shape)


def literal(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, float):
        text = repr(v)
        return text if ("." in text or "e" in text or "inf" in text) else text + ".0"
    if isinstance(v, tuple):
        return "(" + ", ".join(literal(x) for x in v) + ")"
    if isinstance(v, list):
        return "[" + ", ".join(literal(x) for x in v) + "]"
    return str(v)
