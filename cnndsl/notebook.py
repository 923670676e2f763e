"""How a Network shows itself in Jupyter: the diagram (when a layout engine is installed) and the layer table."""

from __future__ import annotations

from html import escape

from .ir import Network, format_shape

OPEN_ROWS = 40  # a longer table starts folded, below the diagram


def svg(network: Network) -> str | None:
    """The diagram as SVG text, or None when no Graphviz engine is installed (Jupyter then shows the rest)."""
    from .draw import available, draw

    if not available("svg"):
        return None
    data = draw(network, fmt="svg").decode()
    return data[data.index("<svg") :]  # inline: no XML declaration or DOCTYPE inside HTML


def html(network: Network) -> str:
    from .analysis.figures import Figures
    from .report import field_text, human

    fig = Figures(network)
    head = ("layer", "op", "output", "params", "MACs", "RF /stride")
    rows = [
        (
            n.name,
            n.op,
            format_shape(n.shape),
            f"{fig.params[n.name]:,}",
            human(fig.macs[n.name]),
            field_text(fig.fields[n.name]),
        )
        for n in network.layers
    ]
    right = ' style="text-align:right"'

    def row(cells, tag="td"):
        return (
            "<tr>"
            + "".join(f"<{tag}{right if i >= 3 else ''}>{escape(c)}</{tag}>" for i, c in enumerate(cells))
            + "</tr>"
        )

    table = (
        '<table class="cnndsl-layers"><thead>'
        + row(head, "th")
        + "</thead><tbody>"
        + "".join(row(r) for r in rows)
        + "</tbody></table>"
    )
    title = (
        f"<p><b>{escape(network.name)}</b>: input {format_shape(network.input_shape)} → "
        f"{format_shape(network.output_shape)}, {fig.total_params:,} parameters, {human(fig.total_macs)} MACs, "
        f"{len(network.layers)} layers</p>"
    )
    picture = svg(network)
    parts = [title]
    if picture is not None:
        parts.append(f'<div class="cnndsl-diagram">{picture}</div>')
    if len(rows) > OPEN_ROWS:
        table = f"<details><summary>{len(rows)} layers</summary>{table}</details>"
    parts.append(table)
    return "\n".join(parts)
