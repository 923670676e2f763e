"""A Diagram as Graphviz DOT text: deterministic (same spec, byte-identical DOT), top to bottom, each box
with its name, op and output shape, enclosing blocks as labelled clusters, merges as small circles."""

from __future__ import annotations

import re

from ..report import human
from .boxes import Box, Diagram

FONT = "Helvetica"
# Fill colours by what a box does; a block gets its colour from its name, so all bottlenecks match.
FILL = {"conv": "#dbe9f6", "pool": "#dcf0dc", "fc": "#fde3c8", "input": "#eeeeee", "other": "#f4f4f4"}
BLOCK_FILLS = ["#e3dcf2", "#d7eef0", "#f6e0e9", "#f2ecd0", "#dce8f8", "#e8f1d8"]
MERGE_SYMBOL = {"add": "+", "mul": "×"}  # drawn as small circles; concat is a box, as in the papers


def to_dot(d: Diagram, costs: bool = False) -> str:
    out = [
        f'digraph "{_q(d.name)}" {{',
        f'  graph [rankdir=TB, nodesep=0.25, ranksep=0.28, fontname="{FONT}", fontsize=11, '
        f'labeljust=l, newrank=true, label="{_q(_title(d, costs))}", labelloc=t];',
        f'  node [shape=box, style="rounded,filled", fontname="{FONT}", fontsize=10, color="#666666", '
        f'penwidth=0.8, margin="0.12,0.05", height=0.3];',
        '  edge [color="#555555", arrowsize=0.6, penwidth=0.8];',
    ]
    tree: dict[str, list[Box]] = {}
    for box in d.boxes.values():
        tree.setdefault(box.scope[-1] if box.scope else "", []).append(box)
        for p in box.scope:  # a cluster holding only clusters still needs its entry
            tree.setdefault(p, [])
    out += _cluster("", tree, d, costs, 1, _index(d, tree))
    out += [f'  "{_q(a)}" -> "{_q(b)}";' for a, b in d.edges]
    out.append("}")
    return "\n".join(out) + "\n"


def _title(d: Diagram, costs: bool) -> str:
    boxes = d.boxes.values()
    title = d.name
    if costs:
        title += f"  {human(sum(b.params for b in boxes))} params · {human(sum(b.macs for b in boxes))} MACs"
    return title


def _cluster(prefix: str, tree: dict[str, list[Box]], d: Diagram, costs: bool, level: int, index) -> list[str]:
    """The boxes and sub-clusters directly inside prefix, in execution order (it guides the layout)."""
    pad = "  " * level
    order, first, subs = index
    items = [(order[b.key], b) for b in tree.get(prefix, [])]
    items += [(first[p], p) for p in subs.get(prefix, [])]
    lines = []
    for _, item in sorted(items, key=lambda t: t[0]):
        if isinstance(item, Box):
            lines.append(pad + _node(item, _local(item.key, prefix), costs, d.output == item.key))
            continue
        only = tree[item]
        if len(only) == 1 and not subs.get(item):  # a cluster around one box
            lines.append(pad + _node(only[0], _local(item, prefix), costs, d.output == only[0].key))
            continue
        label = _local(item, prefix)
        if d.labels.get(item) and d.labels[item] != re.sub(r"\d+$", "", label):  # not `bottleneck1: bottleneck`
            label += f": {d.labels[item]}"
        lines.append(f'{pad}subgraph "cluster_{_q(item)}" {{')
        lines.append(
            f'{pad}  graph [label="{_q(label)}", style="rounded,dashed", color="#9a9a9a", fontsize=10, margin=8];'
        )
        lines += _cluster(item, tree, d, costs, level + 1, index)
        lines.append(pad + "}")
    return lines


def _index(d: Diagram, tree: dict[str, list[Box]]):
    """Each box's position, each cluster's first position and each cluster's sub-clusters, computed once."""
    order = {key: i for i, key in enumerate(d.boxes)}
    first: dict[str, int] = {}
    for key, i in order.items():
        for p in d.boxes[key].scope:
            first.setdefault(p, i)
    subs: dict[str, list[str]] = {}
    for p in tree:
        if p:
            subs.setdefault(_parent(p), []).append(p)
    return order, first, subs


def _parent(prefix: str) -> str:
    return prefix.rsplit(".", 1)[0] if "." in prefix else ""


def _local(key: str, prefix: str) -> str:
    return key[len(prefix) + 1 :] if prefix else key


def _node(box: Box, name: str, costs: bool, is_output: bool) -> str:
    # Plain-text labels, not HTML-like ones: the WebAssembly Graphviz is built without them.
    shape = "×".join(map(str, box.shape))
    key = _q(box.key)
    if box.kind == "merge" and box.ops[0] in MERGE_SYMBOL and len(box.ops) == 1:
        op = box.ops[0]
        return (
            f'"{key}" [shape=circle, style=filled, fillcolor="#ffffff", width=0.3, height=0.3, fixedsize=true, '
            f'fontsize=12, label="{MERGE_SYMBOL[op]}", tooltip="{key}: {op} → {shape}"];'
        )
    what = " · ".join(box.ops)
    rows = [what] if box.kind == "merge" else [name] if what == re.sub(r"\d+$", "", name) else [name, what]
    rows.append(shape)
    if costs and (box.params or box.macs):
        rows.append(f"{human(box.params)} params · {human(box.macs)} MACs")
    extra = ", penwidth=1.6" if is_output else ""
    return f'"{key}" [label="{_q(chr(10).join(rows))}", fillcolor="{_fill(box)}", tooltip="{key}"{extra}];'


def _fill(box: Box) -> str:
    if box.kind == "group":
        name = box.ops[0]
        return BLOCK_FILLS[sum(map(ord, name)) % len(BLOCK_FILLS)]  # stable across runs, unlike hash()
    first = box.ops[0].split()[0]
    if box.kind == "input":
        return FILL["input"]
    if box.kind == "merge":
        return FILL["other"]
    if "conv" in first:
        return FILL["conv"]
    if "pool" in first or first in ("gap", "gmp"):
        return FILL["pool"]
    return FILL["fc"] if first == "fc" else FILL["other"]


def _q(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
