"""Architecture diagrams: the IR collapsed into boxes at a chosen depth (boxes.py), written as Graphviz DOT
(dot.py), laid out by a Graphviz engine when one is installed (engine.py)."""

from .boxes import Box, Diagram, auto_depth, collapse
from .dot import to_dot
from .engine import LayoutUnavailable, available, render

__all__ = ["Box", "Diagram", "collapse", "auto_depth", "to_dot", "render", "available", "LayoutUnavailable", "draw"]


def draw(network, depth: int | None = None, costs: bool = False, fmt: str = "svg") -> bytes:
    """The diagram of network as SVG, PNG or DOT bytes (LayoutUnavailable if no engine can lay it out).

    depth None picks the deepest level that still fits a page (boxes.auto_depth)."""
    dot = to_dot(collapse(network, depth or auto_depth(network)), costs)
    return dot.encode() if fmt == "dot" else render(dot, fmt)
