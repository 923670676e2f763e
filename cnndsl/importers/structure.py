"""Recover the language's structure from a dataflow graph: chains, and merges of branches from one fork.

A merge node (add, mul, concat) joins branches that all start at its immediate dominator (the fork),
so `expr(fork, value)` reads the graph backwards: a unary node extends the chain, a merge becomes a
`Merge` of one chain per input. A node that two branches share cannot be written as a spec and is
refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .graph import ImportFailure, ImportGraph, ImportNode

MERGE_OPS = ("add", "mul", "concat")


@dataclass
class Layer:
    node: ImportNode


@dataclass
class Merge:
    node: ImportNode
    branches: list[list]  # one chain of items per merge input, in input order


@dataclass
class Scoped:
    """Items that one module instance computed; becomes a block call or a labelled group."""

    path: str
    cls: str | None
    items: list
    block: str | None = None  # set by blocks.py
    args: list = field(default_factory=list)


def dominators(graph: ImportGraph) -> dict[str, str]:
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    idom: dict[str, str] = {graph.nodes[0].name: graph.nodes[0].name}

    def meet(a: str, b: str) -> str:
        while a != b:
            while order[a] > order[b]:
                a = idom[a]
            while order[b] > order[a]:
                b = idom[b]
        return a

    for n in graph.nodes[1:]:
        preds = [p for p in n.inputs if p in idom]
        if not preds:
            continue  # not reachable from the input (a constant); refused where used
        d = preds[0]
        for p in preds[1:]:
            d = meet(d, p)
        idom[n.name] = d
    return idom


def to_items(graph: ImportGraph) -> list:
    nodes, idom = graph.by_name(), dominators(graph)
    seen: dict[str, str] = {}

    def expr(start: str, value: str) -> list:
        items: list = []
        while value != start:
            n = nodes[value]
            if n.name in seen:
                raise ImportFailure(
                    f"cannot import: the result of `{n.name}` is used by two branches that merge at different "
                    "points; a spec can only express branches that fork and merge once",
                    n.where,
                )
            seen[n.name] = value
            if n.op in MERGE_OPS:
                fork = idom[n.name]
                items.append(Merge(n, [expr(fork, i) for i in n.inputs]))
                value = fork
            elif len(n.inputs) != 1:
                raise ImportFailure(f"cannot import `{n.name}`: {len(n.inputs)} inputs to a `{n.op}`", n.where)
            else:
                items.append(Layer(n))
                value = n.inputs[0]
        return items[::-1]

    return expr(graph.nodes[0].name, graph.output)


def walk(items: list):
    """Every ImportNode under items, in order."""
    for it in items:
        if isinstance(it, Layer):
            yield it.node
        elif isinstance(it, Merge):
            for b in it.branches:
                yield from walk(b)
            yield it.node
        else:
            yield from walk(it.items)
