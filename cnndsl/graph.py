"""The graph being built: its nodes, the names they take, and the limits that bound building it.

The interpreter (elaborate.py) decides what to add; this module adds it. It owns the three things
that bound elaboration whatever the spec: the node count (`max_nodes`), the work budget (`charge`:
every step that may repeat without adding a node), and the size of each tensor and weight.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from . import ast, ops
from .diagnostics import Diagnostic, Note, error
from .ir import Attrs, Frame, Node, Shape, format_shape
from .limits import MAX_DIM, MAX_ELEMENTS
from .source import Span


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: Shape
    span: Span  # where the producing layer was written


class Aborted(Exception):
    """Stops elaboration at once (expansion or work limit); args[0] is the located E107."""


class NameScope:
    """Hands out stable names: `conv1`, `conv2`, ... per base, inside a dotted prefix."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix
        self.used: dict[str, Span | None] = {}
        self.counters: dict[str, int] = {}

    def fresh(self, base: str) -> str:
        k = self.counters.get(base, 0)
        while True:
            k += 1
            if f"{base}{k}" not in self.used:
                break
        self.counters[base] = k
        self.used[f"{base}{k}"] = None
        return f"{base}{k}"

    def claim(self, label: str, span: Span) -> str | Diagnostic:
        if label in self.used:
            where = self.used[label]
            notes = [Note(where, "first used here")] if where else []
            return error(
                "E106",
                f"the name `{self.prefix}{label}` is already used in this scope",
                span,
                "choose another name",
                notes,
            )
        self.used[label] = span
        return label

    def child(self, name: str) -> NameScope:
        return NameScope(f"{self.prefix}{name}.")


class GraphBuilder:
    """Nodes in execution order, named through NameScopes, within a node limit and a work budget."""

    def __init__(self, max_nodes: int, max_work: int, report: Callable[[Diagnostic], None]):
        self.max_nodes = max_nodes
        self.max_work = max_work
        self.report = report
        self.nodes: list[Node] = []
        self.work = 0  # elaboration steps taken so far (see charge)
        self.repeats: list[ast.Repeat] = []  # repeats being iterated, outermost first: whom to blame

    # -- work -------------------------------------------------------------------------
    def charge(self, cost: int, span: Span) -> None:
        """Count `cost` elaboration steps; stop with a located E107 once the budget is spent.

        Every path that can be taken an unbounded number of times without adding a node (a repeat
        iteration, a block call, an evaluated expression) goes through here, so elaboration time is
        bounded by the budget whatever the spec, not only by the number of nodes it adds.
        """
        if self.work + cost > self.max_work:  # a step beyond the budget is refused, not taken
            raise Aborted(self.out_of_work(span))
        self.work += cost

    def out_of_work(self, span: Span) -> Diagnostic:
        # Blame the outermost repeat: it multiplies all the work inside it (usually the culprit).
        where = self.repeats[0].span if self.repeats else span
        notes = [Note(r.span, "repeated inside this") for r in self.repeats[1:4]]
        if where != span:
            notes.append(Note(span, "the work ran out here"))
        return error(
            "E107",
            f"the spec takes more than {self.max_work:,} elaboration steps to expand",
            where,
            "repeats of `identity`, zero-count repeats and empty blocks still cost work; "
            "lower the repeat counts (raising --max-nodes raises this limit too)",
            notes,
        )

    def admit_repeat(self, e: ast.Repeat, n: int, expected: int) -> None:
        """Refuse, before expanding anything, a repeat of `n` iterations adding at least `expected` nodes
        that cannot fit the node limit or the work budget (each iteration costs at least one step)."""
        if len(self.nodes) + expected > self.max_nodes:
            raise Aborted(
                error(
                    "E107",
                    f"this repeat expands to at least {expected:,} layers, beyond the limit of {self.max_nodes:,}",
                    e.span,
                    "lower the repeat count, or raise the limit with --max-nodes",
                )
            )
        if n > self.max_work - self.work:
            raise Aborted(
                self.out_of_work(e.span)
                if self.repeats
                else error(
                    "E107",
                    f"this repeat runs {n:,} times, beyond the limit of {self.max_work:,} elaboration steps",
                    e.span,
                    "a repeat costs work even when it adds no layers; lower the repeat count",
                )
            )

    # -- names ------------------------------------------------------------------------
    def claim_or_fresh(self, names: NameScope, label: tuple[str, Span] | None, base: str) -> str | None:
        if label is None:
            return names.fresh(base)
        claimed = names.claim(*label)
        if isinstance(claimed, Diagnostic):
            self.report(claimed)
            return None
        return claimed

    # -- nodes ------------------------------------------------------------------------
    def input(self, shape: Shape, span: Span, names: NameScope) -> Tensor:
        names.used["input"] = None
        self.nodes.append(Node("input", "input", Attrs(), (), shape, span))
        return Tensor("input", shape, span)

    def unused(self, outputs: tuple[str, ...]) -> None:
        """E113 for each layer whose result reaches no output (once per unused region, at its first layer)."""
        live = set(outputs)
        for node in reversed(self.nodes):
            if node.name in live:
                live.update(node.inputs)
        for node in self.nodes[1:]:
            if node.name not in live and all(i in live for i in node.inputs):
                self.report(
                    error(
                        "E113",
                        f"the result of `{node.name}` is not used by any output",
                        node.span,
                        "list the tensor it computes in `output`, use it in a later chain, or remove it",
                    )
                )

    def sizes_ok(self, op: ops.OpDef, attrs: dict, x: Tensor, shape: Shape, span: Span) -> bool:
        if math.prod(shape) > MAX_ELEMENTS or (len(shape) == 3 and max(shape[1:]) > MAX_DIM):
            self.report(
                error(
                    "E207",
                    f"the output {format_shape(shape)} is too large ({math.prod(shape):,} elements per sample)",
                    span,
                )
            )
            return False
        for wname, spec in op.weights(Attrs.of(attrs), [x.shape]).items():
            if math.prod(spec.shape) > MAX_ELEMENTS:
                self.report(
                    error(
                        "E207",
                        f"the {wname} tensor {spec.shape} is too large ({math.prod(spec.shape):,} elements)",
                        span,
                        "flatten a smaller feature map, e.g. pool it first",
                    )
                )
                return False
        return True

    def emit(
        self,
        op: str,
        attrs: Attrs | dict,
        inputs: list[Tensor],
        shape: Shape,
        span: Span,
        names: NameScope,
        trace: tuple[Frame, ...],
        base: str,
        label: tuple[str, Span] | None,
    ) -> Tensor | None:
        if len(self.nodes) >= self.max_nodes:
            raise Aborted(
                error(
                    "E107",
                    f"the network expands to more than {self.max_nodes:,} layers",
                    span,
                    "raise the limit with --max-nodes if this is intended",
                )
            )
        local = self.claim_or_fresh(names, label, base)
        if local is None:
            return None
        name = names.prefix + local
        attrs = attrs if isinstance(attrs, Attrs) else Attrs.of(attrs)
        ins = (inputs[0].name,) if len(inputs) == 1 else tuple([t.name for t in inputs])
        self.nodes.append(Node(name, op, attrs, ins, shape, span, trace))
        return Tensor(name, shape, span)
