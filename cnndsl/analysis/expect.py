"""`expect METRIC OP VALUE` lines in a spec and `--max-*` budgets on the command line, judged
against the figures. A spec carries its own contract; CI pins it."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from ..diagnostics import Diagnostic, did_you_mean, error
from ..ir import Expectation
from ..source import Span
from .figures import MB, Figures


def _rf(fig: Figures) -> float:
    """Final receptive-field size (smaller axis); a global field is infinite: it covers any input."""
    f = fig.output_field
    return math.inf if f.size is None else min(f.size)


def _output(fig: Figures) -> int:
    return fig.network.output_shape[0]


METRICS: dict[str, tuple[str, Callable[[Figures], Any]]] = {
    "params": ("parameters (trainable and frozen; buffers excluded)", lambda f: f.total_params),
    "trainable_params": ("parameters not frozen by `freeze`", lambda f: f.total_trainable),
    "frozen_params": ("parameters frozen by `freeze`", lambda f: f.total_params - f.total_trainable),
    "macs": ("multiply-accumulates per sample", lambda f: f.total_macs),
    "rf": ("receptive-field size of the output in input pixels; global = infinite", _rf),
    "output": ("output channels or features (compare with a tuple for the whole shape)", _output),
    "activation_mb": ("MB (10^6 bytes) of all fp32 outputs per sample", lambda f: f.total_activation / MB),
    "peak_activation_mb": ("MB of fp32 activations live at once per sample", lambda f: f.peak_activation / MB),
    "layers": ("number of layers (IR nodes, input excluded)", lambda f: len(f.network.layers)),
    "outputs": (
        "number of outputs (compare with a tuple of shapes for every output's, in `output` order)",
        lambda f: len(f.network.outputs),
    ),
}
SHAPED = {"output": lambda f: tuple(f.network.output_shape), "outputs": lambda f: tuple(f.network.output_shapes)}

COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _show(v: Any) -> str:
    if isinstance(v, tuple) and v and all(isinstance(i, tuple) for i in v):
        return ", ".join(_show(i) for i in v)
    if isinstance(v, tuple):
        return "x".join(map(str, v))
    if isinstance(v, float):
        return "infinite (global)" if math.isinf(v) else f"{v:,.3f}".rstrip("0").rstrip(".")
    return f"{v:,}" if isinstance(v, int) else str(v)


def check_expectation(fig: Figures, e: Expectation) -> Diagnostic | None:
    """None if the expectation holds, else an error located at its line (E401 failed, E402/E403 malformed)."""
    if e.metric not in METRICS:
        known = ", ".join(METRICS)
        hint = did_you_mean(e.metric, METRICS) or f"known metrics: {known}"
        return error("E402", f"unknown metric `{e.metric}` in `expect`", e.span, hint)
    actual = METRICS[e.metric][1](fig)
    value = e.value
    if e.metric in SHAPED and isinstance(value, tuple):
        actual = SHAPED[e.metric](fig)
        if e.op not in ("==", "!="):
            return error("E403", f"a whole shape can only be compared with == or !=, not {e.op}", e.span)
        value = tuple(value)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        return error(
            "E403",
            f"`expect {e.metric}` needs a number, got {type(value).__name__}",
            e.span,
            "write e.g. `expect params < 25M`" if e.metric != "output" else "write e.g. `expect output == 1000`",
        )
    if COMPARE[e.op](actual, value):
        return None
    return error(
        "E401",
        f"expectation failed: {e.metric} {e.op} {_show(value)}, but it is {_show(actual)}",
        e.span,
        f"{METRICS[e.metric][0]}; update the network or the expectation",
    )


def check_expectations(fig: Figures) -> list[Diagnostic]:
    return [d for e in fig.network.expectations if (d := check_expectation(fig, e)) is not None]


# Command-line budgets: flag -> (metric, comparison that must hold) ------------------------------

BUDGETS = {
    "max_params": ("params", "<="),
    "max_macs": ("macs", "<="),
    "min_rf": ("rf", ">="),
    "max_activation_mb": ("activation_mb", "<="),
}


def check_budgets(fig: Figures, limits: dict[str, float | None]) -> list[Diagnostic]:
    """E404 for each budget given (not None) that the network exceeds, located at the top of the spec."""
    out = []
    span = Span(fig.network.path, 1, 1, 1, 1)
    for flag, limit in limits.items():
        if limit is None:
            continue
        metric, op = BUDGETS[flag]
        actual = METRICS[metric][1](fig)
        if not COMPARE[op](actual, limit):
            out.append(
                error(
                    "E404",
                    f"budget exceeded: --{flag.replace('_', '-')} {_show(limit)}, but {metric} is {_show(actual)}",
                    span,
                )
            )
    return out


_SUFFIX = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_amount(text: str) -> float:
    """`25M` -> 25e6, `5G` -> 5e9, `1.5k`, `11_689_512`; raises ValueError."""
    t = text.strip().replace("_", "").replace(",", "")
    scale = 1
    if t and t[-1].upper() in _SUFFIX:
        scale, t = _SUFFIX[t[-1].upper()], t[:-1]
    v = float(t) * scale
    if not math.isfinite(v) or v < 0:
        raise ValueError(text)
    return int(v) if v.is_integer() else v
