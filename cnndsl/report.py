"""What `cnndsl check` shows: a per-layer table for people, and the JSON contract for tools."""

from __future__ import annotations

from typing import Any

from .analysis.figures import Figures
from .analysis.receptive import Field
from .ir import Network, format_shape


def layer_rows(network: Network, fig: Figures | None = None) -> list[dict[str, Any]]:
    fig = fig or Figures(network)
    return [
        {
            "name": n.name,
            "op": n.op,
            "output_shape": list(n.shape),
            "params": fig.params[n.name],
            "trainable_params": fig.trainable[n.name],
            "macs": fig.macs[n.name],
            "activation_bytes": fig.activation[n.name],
            "receptive_field": fig.fields[n.name].to_json(),
            "line": n.span.line,
        }
        for n in network.layers
    ]


def network_json(network: Network | None, diagnostics, path: str, fig: Figures | None = None) -> dict[str, Any]:
    """The `check --format json` object. Shapes and figures are per sample (the batch dimension is left out).

    Top level: `params`, `trainable_params`, `macs` are totals; `activation_bytes` is the sum of every
    layer's fp32 output and `peak_activation_bytes` the most live at once; `receptive_field` is the
    output layer's (the first output's: `outputs` lists every output in declaration order, with its node
    name, shape and receptive field).
    """
    out: dict[str, Any] = {
        "file": path,
        "network": None,
        "input_shape": None,
        "output_shape": None,
        "params": None,
        "trainable_params": None,
        "macs": None,
        "activation_bytes": None,
        "peak_activation_bytes": None,
        "receptive_field": None,
        "outputs": [],
        "layers": [],
        "diagnostics": [d.to_json() for d in diagnostics],
    }
    if network is not None:
        fig = fig or Figures(network)
        out.update(
            network=network.name,
            input_shape=list(network.input_shape),
            output_shape=list(network.output_shape),
            params=fig.total_params,
            trainable_params=fig.total_trainable,
            macs=fig.total_macs,
            activation_bytes=fig.total_activation,
            peak_activation_bytes=fig.peak_activation,
            receptive_field=fig.output_field.to_json(),
            outputs=[
                {"name": o, "output_shape": list(network.node(o).shape), "receptive_field": fig.fields[o].to_json()}
                for o in network.outputs
            ],
            layers=layer_rows(network, fig),
        )
    return out


def human(n: float, unit: str = "") -> str:
    """1234567 -> 1.23M; bytes with unit='B' -> 4.82MB (powers of 1000, as the budgets read them)."""
    for scale, suffix in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}{unit}"
    return f"{n:g}{unit}"


def field_text(f: Field) -> str:
    if f.size is None:
        return "global"
    size = f"{f.size[0]}" if f.size[0] == f.size[1] else f"{f.size[0]}x{f.size[1]}"
    sh, sw = (_stride_text(s) for s in f.stride)
    stride = sh if sh == sw else f"{sh}x{sw}"
    return f"{size} /{stride}"


def _stride_text(s) -> str:
    """An int, or a fractional stride (after upsampling) as a short decimal: 0.5, 0.25, else 0.333."""
    return str(s) if float(s).is_integer() else f"{float(s):.3g}"


def text_table(network: Network, fig: Figures | None = None) -> str:
    """A plain aligned table (rich would cost start-up time for no gain here)."""
    fig = fig or Figures(network)
    header = ("layer", "op", "output", "params", "MACs", "memory", "RF /stride")
    frozen = set(network.frozen)
    cells: dict[tuple, tuple[str, ...]] = {}  # deep networks repeat a few kinds of row: format each once

    def row(n):
        key = (n.op, n.shape, fig.params[n.name], n.name in frozen, fig.macs[n.name], fig.fields[n.name])
        if key not in cells:
            cells[key] = (
                n.op,
                format_shape(n.shape),
                f"{key[2]:,}" + ("*" if key[3] else ""),
                human(key[4]),
                human(fig.activation[n.name], "B"),  # a function of the shape, in the key
                field_text(key[5]),
            )
        return (n.name, *cells[key])

    body = [row(n) for n in network.layers]
    footer = (
        "total",
        "",
        format_shape(network.output_shape),
        f"{fig.total_params:,}",
        human(fig.total_macs),
        f"peak {human(fig.peak_activation, 'B')}",
        field_text(fig.output_field),
    )
    widths = [max(map(len, column)) for column in zip(header, *body, footer, strict=True)]
    # One format string for every row: 100k rows are formatted at C speed, not cell by cell.
    template = "  ".join(f"{{:{'>' if 3 <= i <= 5 else '<'}{w}}}" for i, w in enumerate(widths))

    def line(row):
        return template.format(*row).rstrip()

    rule = "  ".join("-" * w for w in widths)
    title = f"{network.name}: input {format_shape(network.input_shape)}"
    notes = []
    if len(network.outputs) > 1:
        shown = [f"{o} {format_shape(network.node(o).shape)} RF {field_text(fig.fields[o])}" for o in network.outputs]
        notes.append(f"{len(network.outputs)} outputs: " + "; ".join(shown))
    if fig.total_params != fig.total_trainable:
        notes.append(f"trainable {fig.total_trainable:,}, frozen {fig.total_params - fig.total_trainable:,} (* frozen)")
    notes.append(
        f"activations {human(fig.total_activation, 'B')} per sample at fp32 (all outputs), "
        f"peak live {human(fig.peak_activation, 'B')}"
    )
    return "\n".join([title, line(header), rule, *map(line, body), rule, line(footer), *notes])
