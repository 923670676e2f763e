"""What `cnndsl check` shows: a per-layer table for people, and the JSON contract for tools."""

from __future__ import annotations

from typing import Any

from .analysis import param_counts
from .ir import Network, format_shape


def layer_rows(network: Network) -> list[dict[str, Any]]:
    params = param_counts(network)
    return [
        {
            "name": n.name,
            "op": n.op,
            "output_shape": list(n.shape),
            "params": params[n.name],
            "line": n.span.line,
        }
        for n in network.layers
    ]


def network_json(network: Network | None, diagnostics, path: str) -> dict[str, Any]:
    """The `check --format json` object. Shapes are per sample (the batch dimension is left out)."""
    out: dict[str, Any] = {
        "file": path,
        "network": None,
        "input_shape": None,
        "output_shape": None,
        "params": None,
        "layers": [],
        "diagnostics": [d.to_json() for d in diagnostics],
    }
    if network is not None:
        rows = layer_rows(network)
        out.update(
            network=network.name,
            input_shape=list(network.input_shape),
            output_shape=list(network.output_shape),
            params=sum(r["params"] for r in rows),
            layers=rows,
        )
    return out


def text_table(network: Network) -> str:
    """A plain aligned table (rich would cost start-up time for no gain here)."""
    rows = layer_rows(network)
    header = ("layer", "op", "output", "params")
    body = [(r["name"], r["op"], format_shape(tuple(r["output_shape"])), f"{r['params']:,}") for r in rows]
    total = sum(r["params"] for r in rows)
    footer = ("total", "", format_shape(network.output_shape), f"{total:,}")
    widths = [max(len(row[i]) for row in [header, *body, footer]) for i in range(4)]

    def line(row):
        return "  ".join(c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    title = f"{network.name}: input {format_shape(network.input_shape)}"
    return "\n".join([title, line(header), rule, *map(line, body), rule, line(footer)])
