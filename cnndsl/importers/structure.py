"""Recover the language's structure from a dataflow graph: chains, and merges of branches from one fork.

A merge node (add, mul, concat) joins branches that all start at its immediate dominator (the fork),
so `expr(fork, value)` reads the graph backwards: a unary node extends the chain, a merge becomes a
`Merge` of one chain per input. A value read where branches do not fork and merge once (a long skip,
a top-down pathway), and every output of a model with several, becomes a named tensor: a statement
`tensor NAME = chain` of its own, which the chains reading it start from (`Ref`).
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


@dataclass
class Ref:
    """A chain or branch that starts from a named tensor (the import node `name`) instead of its input."""

    name: str


@dataclass
class Statement:
    """`tensor NAME = items` (target: the import node it names), or the unnamed body (target None)."""

    target: str | None
    items: list


ROOT = "\0root"  # a virtual node before the input and every named tensor


def _use(name: str) -> str:
    return f"\0use:{name}"


def _used(value: str) -> str | None:
    return value[5:] if value.startswith("\0use:") else None


def dominators(graph: ImportGraph, sources: set[str] = frozenset()) -> dict[str, str]:
    """Immediate dominators from ROOT, where each source (the input, a named tensor) is read through a
    node of its own under ROOT: a merge of branches from two sources is dominated by ROOT alone."""
    order: dict[str, float] = {ROOT: -1}
    for i, n in enumerate(graph.nodes):
        order[n.name] = i
        order[_use(n.name)] = i + 0.5
    idom: dict[str, str] = {ROOT: ROOT}
    for s in sources:
        idom[_use(s)] = ROOT

    def meet(a: str, b: str) -> str:
        while a != b:
            while order[a] > order[b]:
                a = idom[a]
            while order[b] > order[a]:
                b = idom[b]
        return a

    for n in graph.nodes[1:]:
        preds = [_use(p) if p in sources else p for p in n.inputs]
        preds = [p for p in preds if p in idom]
        if not preds:
            continue  # not reachable from the input (a constant); refused where used
        d = preds[0]
        for p in preds[1:]:
            d = meet(d, p)
        idom[n.name] = d
    return idom


class _Shared(Exception):
    """A node two statements (or two branches merging at different points) both read: name it."""

    def __init__(self, node: str):
        self.node = node


def to_statements(graph: ImportGraph) -> list[Statement]:
    """The graph as `tensor` statements and a body. The outputs of a model with several are named; so
    is every value read where branches do not fork and merge once (a top-down pathway reading several
    backbone stages), found one at a time: each is where a walk back from an output meets another."""
    outputs = list(graph.outputs)
    if len(set(outputs)) != len(outputs):
        twice = next(o for o in outputs if outputs.count(o) > 1)
        raise ImportFailure(f"cannot import: the model returns the result of `{twice}` twice")
    if graph.nodes[0].name in outputs:
        raise ImportFailure("cannot import: the model returns its input unchanged")
    named = set(outputs) if len(outputs) > 1 else set()
    while True:
        try:
            return _statements(graph, named)
        except _Shared as e:
            if e.node in named:  # cannot happen: a named tensor is read through its own source node
                raise ImportFailure(f"internal: named tensor `{e.node}` walked twice") from None
            named.add(e.node)


def _statements(graph: ImportGraph, named: set[str]) -> list[Statement]:
    nodes = graph.by_name()
    sources = {graph.nodes[0].name, *named}
    idom = dominators(graph, sources)
    seen: set[str] = set()

    def read(value: str) -> str:
        return _use(value) if value in sources else value

    def expr(start: str, value: str) -> list:
        items: list = []
        while value != start and value != ROOT:
            source = _used(value)
            if source is not None:
                if source != graph.nodes[0].name:
                    items.append(Ref(source))
                break
            n = nodes[value]
            if n.name in seen:
                raise _Shared(n.name)
            seen.add(n.name)
            if n.op in MERGE_OPS:
                fork = idom[n.name]
                items.append(Merge(n, [expr(fork, read(i)) for i in n.inputs]))
                value = fork
            elif len(n.inputs) != 1:
                raise ImportFailure(f"cannot import `{n.name}`: {len(n.inputs)} inputs to a `{n.op}`", n.where)
            else:
                items.append(Layer(n))
                value = read(n.inputs[0])
        return items[::-1]

    order = [n.name for n in graph.nodes if n.name in named]
    out = [Statement(t, expr(ROOT, t)) for t in order]
    if len(graph.outputs) == 1 and graph.output not in named:
        out.append(Statement(None, expr(ROOT, graph.output)))
    return out


def walk(items: list):
    """Every ImportNode under items, in order."""
    for it in items:
        if isinstance(it, Ref):
            continue
        if isinstance(it, Layer):
            yield it.node
        elif isinstance(it, Merge):
            for b in it.branches:
                yield from walk(b)
            yield it.node
        else:
            yield from walk(it.items)
