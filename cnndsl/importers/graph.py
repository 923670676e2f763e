"""The importers' common graph: a source model's dataflow, already spelled in cnndsl ops.

Each importer (torch.fx, torch.export, ONNX) turns its source into an `ImportGraph`; the writer turns
that into spec text, and `names` matches the compiled spec back to it to name the source's weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Shape = tuple[int, ...]
Scope = tuple[tuple[str, str | None], ...]  # (qualified module path, class name or None), outermost first


class ImportFailure(Exception):
    """What cannot be imported, and where: the CLI prints the message and exits 2."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(f"{message}{f' ({where})' if where else ''}")
        self.where = where


@dataclass
class ImportNode:
    name: str  # unique within the graph (the source's node name)
    op: str  # an op of cnndsl/ops.py, or "input"
    attrs: dict[str, Any]
    inputs: list[str]
    shape: Shape  # per sample, without the batch dimension
    weights: dict[str, str] = field(default_factory=dict)  # cnndsl tensor name ("weight") -> source key
    scope: Scope = ()
    where: str = ""  # the source line it came from, for messages


@dataclass
class ImportGraph:
    name: str
    input_shape: Shape
    nodes: list[ImportNode]  # topological order; nodes[0] is the input
    outputs: list[str]  # in the order the source returns them
    source: str = ""  # what was imported, for the name map file
    output_names: dict[str, str] = field(default_factory=dict)  # output node -> the source's name for it

    @property
    def output(self) -> str:
        return self.outputs[0]

    def by_name(self) -> dict[str, ImportNode]:
        return {n.name: n for n in self.nodes}

    def consumers(self) -> dict[str, list[str]]:
        users: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                users[i].append(n.name)
        return users


@dataclass
class View:
    """A value no cnndsl op computes by itself, pending the nodes that complete it: `nhwc` (a channel-
    last transpose, undone after a layer norm), `grouped` and `shuffled` (a channel shuffle's reshape and
    transpose), `rows` (a crop's slice of the rows, before the columns'). src: the import node it
    views. The ONNX and torch.export importers hold these between nodes; any other op reading one is
    refused."""

    kind: str
    info: Any = None
    src: str = ""


VIEW_WORDS = {
    "nhwc": "a channel-last Transpose of a map not followed by a layer norm and the Transpose back",
    "grouped": "a map reshaped to (N, g, C/g, H, W) not followed by a channel shuffle's transpose",
    "shuffled": "a channel shuffle's transposed (N, C/g, g, H, W) tensor not reshaped back to (N, C, H, W)",
    "rows": "a map with its rows sliced (half a crop) whose columns are not sliced next",
}


def clamp_range(start: int, end: int, n: int) -> tuple[int, int]:
    """A slice's bounds on an axis of n, as Python reads negative and past-the-end ones."""
    start, end = (start + n if start < 0 else start), (end + n if end < 0 else end)
    return max(0, min(start, n)), max(0, min(end, n))


def crop_attrs(rows: tuple[int, int], cols: tuple[int, int], hw: tuple[int, int]) -> tuple[dict, str]:
    """The crop of rows x cols of an h x w map, and why it is not cnndsl's crop ('' if it is): cnndsl
    crops the centre, as torchvision's center_crop rounds it."""
    from ..ops import OPS

    size, offset = (rows[1] - rows[0], cols[1] - cols[0]), (rows[0], cols[0])
    centred = tuple(OPS["crop"].resolve({"size": size}, [(1, *hw)])["offset"])
    why = "" if centred == offset else f"a crop at offset {offset}, not centred (cnndsl crops the centre, at {centred})"
    return {"size": size, "offset": offset}, why


def pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(x) for x in v)
    return (v[0], v[0]) if len(v) == 1 else v  # type: ignore[return-value]


def conv_attrs(out, kernel, stride, pad, dilation, groups, bias: bool, table=None) -> dict[str, Any]:
    return {
        "out": int(out),
        "kernel": pair(kernel),
        "stride": pair(stride),
        "pad": pair(pad),
        "dilation": pair(dilation),
        "groups": int(groups),
        "bias": bool(bias),
        "table": table,
    }


def pool_attrs(kernel, stride, pad, ceil: bool, include_pad: bool | None = None) -> dict[str, Any]:
    kernel = pair(kernel)
    attrs = {"kernel": kernel, "stride": pair(stride if stride not in (None, [], ()) else kernel), "pad": pair(pad)}
    attrs["ceil"] = bool(ceil)
    if include_pad is not None:
        attrs["include_pad"] = bool(include_pad)
    return attrs


def infer_scopes(nodes: list[ImportNode]) -> None:
    """A node no module scope was recorded for (a function in a flat forward) takes the scope its first
    input and all its users share, so `x = conv(x) + x` inside a block lands in the block."""
    scopes = {n.name: n.scope for n in nodes}
    users: dict[str, list[str]] = {}
    for n in nodes:
        for i in n.inputs:
            users.setdefault(i, []).append(n.name)
    for n in nodes:
        if n.scope or n.op == "input" or not n.inputs:
            continue
        common = scopes[n.inputs[0]]
        for c in (scopes[u] for u in users.get(n.name, [])):
            k = 0
            while k < min(len(common), len(c)) and common[k] == c[k]:
                k += 1
            common = common[:k]
        n.scope = scopes[n.name] = common
