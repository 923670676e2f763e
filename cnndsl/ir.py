"""The one IR: an immutable DAG of named nodes, in execution (topological) order.

Shapes are per sample, without the batch dimension, which stays symbolic:
(C, H, W) for a feature map and (F,) for a flat vector.
Node names are stable, unique and dotted by block instance (`basic2.conv1`);
every backend uses them, suffixed with `.weight`, `.bias`, ..., as weight names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .diagnostics import Diagnostic
from .source import Span

Shape = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Attrs:
    """A frozen, ordered attribute mapping (hashable, so nodes can be compared and cached)."""

    items: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def of(mapping: dict[str, Any]) -> Attrs:
        return Attrs(tuple(mapping.items()))

    def __getitem__(self, key: str) -> Any:
        for k, v in self.items:
            if k == key:
                return v
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        for k, v in self.items:
            if k == key:
                return v
        return default

    def as_dict(self) -> dict[str, Any]:
        return dict(self.items)


@dataclass(frozen=True, slots=True)
class Frame:
    """One block instantiation in a node's provenance: which block, called where, and the dotted name
    of the scope its nodes sit in (`layer1.basic2`), so backends can find block instances in the names."""

    block: str
    call: Span
    scope: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    op: str
    attrs: Attrs
    inputs: tuple[str, ...]
    shape: Shape
    span: Span = field(compare=False)
    trace: tuple[Frame, ...] = field(default=(), compare=False)

    @property
    def line(self) -> int:
        return self.span.line


@dataclass(frozen=True, slots=True)
class Expectation:
    """`expect METRIC OP VALUE` from the spec; judged by cnndsl.analysis."""

    metric: str
    op: str
    value: Any
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Network:
    name: str
    input_shape: Shape
    nodes: tuple[Node, ...]  # nodes[0] is the input node; the rest in execution order
    output: str  # the first of `outputs`: what a single-output user reads
    expectations: tuple[Expectation, ...] = ()
    disabled: frozenset[str] = frozenset()
    frozen: tuple[str, ...] = ()  # node names whose parameters are frozen (transfer learning)
    diagnostics: tuple[Diagnostic, ...] = field(default=(), compare=False)  # warnings from elaboration
    path: str = field(default="<string>", compare=False)
    outputs: tuple[str, ...] = ()  # every output node, in declaration order; () means (output,)

    def __post_init__(self) -> None:
        if not self.outputs or self.outputs[0] != self.output:
            # `output` is the first output, authoritative: dataclasses.replace(net, output=...) moves it.
            object.__setattr__(self, "outputs", (self.output, *self.outputs[1:]))

    @property
    def output_shapes(self) -> tuple[Shape, ...]:
        return tuple(self.by_name[o].shape for o in self.outputs)

    @cached_property
    def by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    def node(self, name: str) -> Node:
        return self.by_name[name]

    @property
    def output_shape(self) -> Shape:
        return self.by_name[self.output].shape

    @property
    def layers(self) -> tuple[Node, ...]:
        """Every node but the input."""
        return self.nodes[1:]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    # Jupyter: the diagram and the layer table (cnndsl.notebook; nothing is imported until shown).
    def _repr_html_(self) -> str:
        from .notebook import html

        return html(self)

    def _repr_svg_(self) -> str | None:
        from .notebook import svg

        return svg(self)


def format_shape(shape: Shape) -> str:
    return "x".join(["N", *map(str, shape)])
