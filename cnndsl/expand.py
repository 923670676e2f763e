"""`cnndsl expand`: the network as a flat spec of primitives, every attribute explicit.

The output is itself a valid spec: blocks, repeats and defaults are gone, and
each top-level layer carries its IR name and shape in a comment. Merges are
rebuilt from the DAG: a merge's branches start at its immediate dominator
(the tensor every branch was forked from).
"""

from __future__ import annotations

from . import ast
from .fmt import Formatter, inline
from .ir import Network, Node, format_shape
from .ops import MERGES, OPS
from .source import UNKNOWN_SPAN


def dominators(network: Network) -> dict[str, str]:
    """Immediate dominator of every node (the input dominates everything)."""
    order = {n.name: i for i, n in enumerate(network.nodes)}
    idom: dict[str, str] = {}
    for node in network.layers:
        ins = list(node.inputs)
        d = ins[0]
        for other in ins[1:]:
            a, b = d, other
            while a != b:  # walk the deeper one up until both meet
                if order[a] > order[b]:
                    a = idom[a]
                else:
                    b = idom[b]
            d = a
        idom[node.name] = d
    return idom


def _value(v) -> ast.Expr:
    if isinstance(v, bool):
        return ast.Bool(v, UNKNOWN_SPAN)
    if isinstance(v, (int, float)):
        return ast.Number(v, repr(v), UNKNOWN_SPAN)
    if isinstance(v, tuple):
        return (
            ast.TupleExpr(tuple(_value(i) for i in v), UNKNOWN_SPAN)
            if v and not isinstance(v[0], tuple)
            else ast.ListExpr(tuple(_value(i) for i in v), UNKNOWN_SPAN)
        )
    return ast.Name(str(v), UNKNOWN_SPAN)


def primitive(node: Node) -> ast.Expr:
    """A node as a call with every attribute spelled out (table rows as lists)."""
    args = []
    params = {p.name for p in OPS[node.op].params}
    derived = OPS[node.op].extra.get("derived", lambda attrs: ())(node.attrs)  # upsample's size from its scale
    for k, v in node.attrs.items:
        if k not in params or k in derived:  # derived by the op's resolve (a crop's offset): not written
            continue
        if v is None:  # an optional argument left out (upsample's scale when it has a size)
            continue
        if k == "table":
            if v is None:
                continue
            value = ast.ListExpr(
                tuple(ast.ListExpr(tuple(_value(i) for i in row), UNKNOWN_SPAN) for row in v), UNKNOWN_SPAN
            )
        else:
            value = _value(v)
        args.append(ast.Arg(k, value, UNKNOWN_SPAN))
    if not args:
        return ast.Name(node.op, UNKNOWN_SPAN)
    return ast.Call(node.op, tuple(args), UNKNOWN_SPAN, UNKNOWN_SPAN)


def chain(network: Network, idom: dict[str, str], end: str, start: str) -> list[tuple[ast.Expr, Node]]:
    """The layers that take tensor `start` to tensor `end`, in order, each with its final node."""
    items = []
    cur = end
    while cur != start:
        node = network.node(cur)
        if node.op in MERGES:
            fork = idom[cur]
            branches = []
            for i in node.inputs:
                sub = chain(network, idom, i, fork)
                expr = ast.Name("identity", UNKNOWN_SPAN) if not sub else _pipe([e for e, _ in sub])
                branches.append(ast.Arg(None, expr, UNKNOWN_SPAN))
            items.append((ast.Call(node.op, tuple(branches), UNKNOWN_SPAN, UNKNOWN_SPAN), node))
            cur = fork
        else:
            items.append((primitive(node), node))
            cur = node.inputs[0]
    return items[::-1]


def _pipe(items: list[ast.Expr]) -> ast.Expr:
    return items[0] if len(items) == 1 else ast.Pipe(tuple(items), UNKNOWN_SPAN)


def expand(network: Network) -> str:
    idom = dominators(network)
    lines = [
        f"# {network.name}: fully expanded by `cnndsl expand`",
        f"network {network.name}",
        "input " + "x".join(map(str, network.input_shape)),
    ]
    items = chain(network, idom, network.output, "input")
    for i, (expr, node) in enumerate(items):
        text = inline(expr)
        if len(text) > 100 and isinstance(expr, ast.Call):
            text = "\n".join(Formatter(ast.Module("", (), ()), [], []).layout(expr, 0))
        prefix = "-> " if i else ""
        first, *rest = text.split("\n")
        lines.append(f"{prefix}{first}" + (f"  # {node.name}: {format_shape(node.shape)}" if not rest else ""))
        if rest:
            lines += rest
            lines[-1] += f"  # {node.name}: {format_shape(node.shape)}"
    if not items:
        lines.append("identity")
    return "\n".join(lines) + "\n"
