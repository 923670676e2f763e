"""The module tree of a generated torch model, read off the IR's dotted node names.

A node `layer2.basic1.shortcut1.conv1` sits in nested scopes (docs/weights.md): `layer2` (a labelled
chain), `basic1` (a block instance: the trace frame whose `scope` names it), `shortcut1` (a residual's
shortcut). Each scope becomes one submodule registered under its name, so `state_dict()` keys do not
change. A scope with one input and one output is callable as a unit: a class (`Basic`) for a block, a
`Chain` (nn.Sequential with named children) for a plain chain, else a small class with a forward. A
scope that is not (its values leak out) stays a plain container whose layers the parent calls itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..ir import Network, Node

CLASS, CHAIN, FLAT = "class", "chain", "flat"


@dataclass(eq=False)
class Scope:
    name: str  # dotted; "" for the network itself
    part: str  # the last part: the attribute it is registered under in its parent
    kind: str  # "network" | "block" | "shortcut" | "branch" | "label"
    block: str = ""  # the block's name, for a block instance
    items: list[Node | Scope] = field(default_factory=list)  # in execution order
    nodes: list[Node] = field(default_factory=list)  # every node inside, nested ones too
    input: str = ""  # the one value it reads from outside
    output: str = ""  # the node whose value it gives back
    outputs: tuple[str, ...] = ()  # the network's (root only): every output, in declaration order
    role: str = CLASS

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


def item_output(item: Node | Scope) -> str:
    return item.name if isinstance(item, Node) else item.output


def scope_tree(network: Network, chain_reserved: frozenset[str]) -> Scope:
    """The scopes of network, each with its role (CLASS, CHAIN or FLAT). chain_reserved: names a Chain's
    children cannot take (nn.Sequential's own attributes)."""
    blocks = {f.scope: f.block for n in network.layers for f in n.trace}
    root = Scope("", "", "network", input="input", output=network.output, outputs=tuple(network.outputs))
    index = {"": root}
    for n in network.layers:
        parts = n.name.split(".")
        scope = root
        scope.nodes.append(n)
        for i in range(1, len(parts)):
            name = ".".join(parts[:i])
            child = index.get(name)
            if child is None:
                child = index[name] = Scope(name, parts[i - 1], _kind(name, parts[i - 1], blocks), blocks.get(name, ""))
                scope.items.append(child)
            scope = child
            scope.nodes.append(n)
        scope.items.append(n)
    users = _users(network)
    for s in index.values():
        if s is not root:
            _interface(s, users, frozenset(network.outputs))
    _roles(root, chain_reserved, flat=False)
    return root


def _kind(name: str, part: str, blocks: dict[str, str]) -> str:
    if name in blocks:
        return "block"
    if re.fullmatch(r"shortcut[0-9]+", part):
        return "shortcut"
    if re.fullmatch(r"branch[0-9]+", part):
        return "branch"
    return "label"


def _users(network: Network) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {}
    for n in network.layers:
        for i in n.inputs:
            users.setdefault(i, []).append(n.name)
    return users


def _interface(s: Scope, users: dict[str, list[str]], outputs: frozenset[str]) -> None:
    inside = {n.name for n in s.nodes}
    outside_in = {i for n in s.nodes for i in n.inputs if i not in inside}
    outs = [n.name for n in s.nodes if n.name in outputs or any(u not in inside for u in users.get(n.name, ()))]
    if len(outside_in) == 1 and len(outs) == 1:
        s.input, s.output = next(iter(outside_in)), outs[0]
    else:
        s.role = FLAT


def _roles(s: Scope, chain_reserved: frozenset[str], flat: bool) -> None:
    if flat:
        s.role = FLAT
    for item in s.items:
        if isinstance(item, Scope):
            _roles(item, chain_reserved, flat or s.role == FLAT)
    if s.role == FLAT or s.kind in ("network", "block"):
        return
    s.role = CHAIN if _is_chain(s, chain_reserved) else CLASS


def _is_chain(s: Scope, chain_reserved: frozenset[str]) -> bool:
    previous = s.input
    for item in s.items:
        part = item.name.rsplit(".", 1)[-1] if isinstance(item, Node) else item.part
        if isinstance(item, Scope) and item.role == FLAT or part in chain_reserved:
            return False
        if tuple(item.inputs) != (previous,):
            return False
        previous = item_output(item)
    return previous == s.output


def walk(s: Scope):
    """Every scope under s, s first (pre-order)."""
    yield s
    for item in s.items:
        if isinstance(item, Scope):
            yield from walk(item)
