"""Architecture diagrams: the IR collapsed into boxes at a chosen depth (boxes.py), written as Graphviz DOT
(dot.py), laid out by a Graphviz engine when one is installed (engine.py)."""

from .boxes import Box, Diagram, auto_depth, collapse
from .dot import to_dot
from .engine import LayoutUnavailable, available, render

MAX_LAYOUT_BOXES = 5000

__all__ = ["Box", "Diagram", "collapse", "auto_depth", "to_dot", "render", "available", "LayoutUnavailable", "draw"]


def draw(network, depth: int | None = None, costs: bool = False, fmt: str = "svg") -> bytes:
    """The diagram of network as SVG, PNG or DOT bytes (LayoutUnavailable if no engine can lay it out).

    depth None picks the deepest level that still fits a page (boxes.auto_depth)."""
    diagram = collapse(network, depth or auto_depth(network))
    dot = to_dot(diagram, costs)
    if fmt == "dot":
        return dot.encode()
    if len(diagram.boxes) > MAX_LAYOUT_BOXES:  # Graphviz would take minutes, and nobody reads such a figure
        raise LayoutUnavailable(
            f"the diagram has {len(diagram.boxes):,} boxes at depth {diagram.depth}, more than {MAX_LAYOUT_BOXES:,} "
            "are laid out: draw at a smaller --depth, or write --format dot"
        )
    return render(dot, fmt)
