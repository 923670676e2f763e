"""The IR as a person would sketch it: nodes collapsed into one box per block at a chosen depth.

A node named `layer1.bottleneck1.conv1` sits in the group `layer1` at depth 1 and in `layer1.bottleneck1`
at depth 2; at depth 3 it is a box of its own. Within a group, a batch norm, activation or dropout that
directly follows the only consumer of its input is folded into that box (`conv 3x3 · bn · relu`), as
papers draw them. Figures are summed from cnndsl.analysis, never re-derived.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..analysis.figures import Figures
from ..ir import Network, Node
from ..ops import AFFINE, ELEMENTWISE, MERGES, OPS, VIEW

# Drawn inside the box of the layer before them, from the op table's lowering kinds (never op names):
# batch norm (affine), activations (element-wise), flatten and dropout (views).
FOLDED = frozenset(name for name, op in OPS.items() if op.lowering in (VIEW, ELEMENTWISE, AFFINE))


@dataclass
class Box:
    key: str  # the group prefix, or the first node's name
    kind: str  # "group" (a block) | "branch" (a group that is no block) | "layer" | "merge" | "input"
    ops: list[str]  # what it does: the block name, or the folded primitives
    shape: tuple[int, ...]
    params: int = 0
    macs: int = 0
    members: list[str] = field(default_factory=list)

    @property
    def scope(self) -> tuple[str, ...]:
        """The enclosing groups (clusters), outermost first."""
        parts = self.key.split(".")
        return tuple(".".join(parts[:i]) for i in range(1, len(parts)))


@dataclass
class Diagram:
    name: str
    depth: int
    boxes: dict[str, Box]  # in execution order
    edges: list[tuple[str, str]]
    output: str
    labels: dict[str, str]  # cluster prefix -> what it is ("3× bottleneck")


def parent(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def group_of(name: str, depth: int) -> str | None:
    parts = name.split(".")
    return ".".join(parts[:depth]) if len(parts) > depth else None


AUTO_BOXES = 60  # the most boxes the automatic depth allows: a figure that still fits a page


def auto_depth(network: Network) -> int:
    """The deepest level that still draws at most AUTO_BOXES boxes (at least 1)."""
    deepest = max(len(n.name.split(".")) for n in network.nodes)
    fig, scopes = Figures(network), scope_index(network)
    best = 1
    for depth in range(2, deepest + 1):
        if len(collapse(network, depth, fig, scopes).boxes) > AUTO_BOXES:
            break
        best = depth
    return best


def scope_index(network: Network) -> dict[str, list[Node]]:
    """Every dotted prefix -> the nodes under it, in order (so no group scans the whole network)."""
    out: dict[str, list[Node]] = {}
    for n in network.nodes:
        parts = n.name.split(".")
        for i in range(1, len(parts)):
            out.setdefault(".".join(parts[:i]), []).append(n)
    return out


def collapse(network: Network, depth: int = 2, fig: Figures | None = None, scopes=None) -> Diagram:
    fig = fig or Figures(network)
    scopes = scopes if scopes is not None else scope_index(network)
    consumers: dict[str, int] = {}
    for n in network.nodes:
        for i in n.inputs:
            consumers[i] = consumers.get(i, 0) + 1
    box_of: dict[str, str] = {}
    boxes: dict[str, Box] = {}
    for n in network.nodes:
        key = _place(n, depth, network, boxes, box_of, consumers)
        box = boxes[key]
        box.members.append(n.name)
        box.shape = n.shape
        box.params += fig.params.get(n.name, 0)
        box.macs += fig.macs.get(n.name, 0)
        box_of[n.name] = key
    for key, box in boxes.items():
        if box.kind == "group":
            block = _block_name(key, scopes)
            box.kind = "group" if block is not None else "branch"
            box.ops = _summary(scopes[key], network) if block is None else [block, *_window_of(scopes[key], network)]
    edges: list[tuple[str, str]] = []
    for n in network.nodes:
        for i in n.inputs:
            edge = (box_of[i], box_of[n.name])
            if edge[0] != edge[1]:
                edges.append(edge)
    labels = _cluster_labels(boxes, scopes)
    edges = list(dict.fromkeys(edges))
    return Diagram(network.name, depth, boxes, edges, box_of[network.output], labels)


def _place(n: Node, depth, network, boxes, box_of, consumers) -> str:
    group = group_of(n.name, depth)
    if group is not None:
        boxes.setdefault(group, Box(group, "group", [], n.shape))
        return group
    if n.op in FOLDED and len(n.inputs) == 1:
        prev = boxes.get(box_of.get(n.inputs[0], ""))
        same_scope = prev is not None and parent(prev.key) == parent(n.name)
        if prev is not None and prev.kind == "layer" and same_scope and consumers.get(n.inputs[0]) == 1:
            prev.ops.append(describe(n, network))
            return prev.key
    kind = "input" if n.op == "input" else "merge" if n.op in MERGES else "layer"
    boxes[n.name] = Box(n.name, kind, [describe(n, network)], n.shape)
    return n.name


def describe(n: Node, network: Network) -> str:
    """`conv 3×3 /2`, `dwconv 5×5`, `maxpool 3×3 /2`, `fc`, `relu`: the op as a figure names it."""
    a = n.attrs
    if n.op == "conv":
        groups = a.get("groups", 1)
        c_in = network.node(n.inputs[0]).shape[0]
        op = "dwconv" if groups > 1 and groups == c_in else "conv" if groups == 1 else f"conv g{groups}"
        return op + _window(a)
    if n.op in ("maxpool", "avgpool"):
        return n.op + _window(a)
    if n.op == "dropout":
        return f"dropout {a.get('p')}"
    return n.op


def _window(a) -> str:
    kh, kw = a.get("kernel", (1, 1))
    sh, sw = a.get("stride", (1, 1))
    stride = "" if (sh, sw) == (1, 1) else f" /{sh}" if sh == sw else f" /{sh}×{sw}"
    dil = a.get("dilation", (1, 1))
    return f" {kh}×{kw}{stride}" + ("" if dil == (1, 1) else f" d{dil[0]}")


def _block_name(key: str, scopes: dict[str, list[Node]]) -> str | None:
    """The block this group instantiates (from the nodes' traces); None for a branch, shortcut or `as` group."""
    inner = _common(scopes[key])
    up = parent(key)
    outer = _common(scopes[up]) if up else ()
    return inner[-1].block if len(inner) > len(outer) else None


def _window_of(nodes: list[Node], network: Network) -> list[str]:
    """The one spatial conv or pool of a block, if it has one (`dwconv 5×5 /2` of an MBConv), else nothing."""
    spatial = [n for n in nodes if n.op in ("conv", "maxpool", "avgpool") and n.attrs.get("kernel") != (1, 1)]
    return [describe(spatial[0], network)] if len(spatial) == 1 else []


def _stem(key: str) -> str:
    """`branch` for `inception3a.branch2`: a name with its counter dropped."""
    return re.sub(r"\d+$", "", key.rsplit(".", 1)[-1])


def _summary(nodes: list[Node], network: Network) -> list[str]:
    """What a group that is no block does, in its main ops: `conv 1×1 → conv 3×3` (branch, shortcut)."""
    main = [describe(n, network) for n in nodes if n.op not in FOLDED and n.op not in MERGES]
    return [" → ".join(main[:3]) + (" → …" if len(main) > 3 else "")] if main else [_stem(nodes[0].name)]


def _common(nodes: list[Node]) -> tuple:
    if not nodes:
        return ()
    common = nodes[0].trace
    for n in nodes[1:]:
        k = 0
        while k < len(common) and k < len(n.trace) and common[k] == n.trace[k]:
            k += 1
        common = common[:k]
    return common


def _cluster_labels(boxes: dict[str, Box], scopes: dict[str, list[Node]]) -> dict[str, str]:
    """Each enclosing group's name with its block (`inception3a: inception`) or its repeat (`3× bottleneck`)."""
    out: dict[str, str] = {}
    children: dict[str, list[Box]] = {}
    for b in boxes.values():
        scope = b.scope
        for p in scope:
            children.setdefault(p, [])
        if scope and b.kind == "group":
            children[scope[-1]].append(b)
    for p in sorted(children):
        block = _block_name(p, scopes)
        kinds = {b.ops[0] for b in children[p]}
        if block is None and len(kinds) == 1 and len(children[p]) > 1:
            block = f"{len(children[p])}× {kinds.pop()}"
        out[p] = block or ""
    return out
