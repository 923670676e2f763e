"""Hypothesis: random architectures, written as spec text over the whole op vocabulary, agree with the reference.

The generator tracks the feature-map shape so that every drawn spec is valid; a
failing example shrinks to a short spec that can be pasted into a file.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba_helpers import agrees
from spec_strategies import reach_layer

from cnndsl.ops import window_out

ACTS = ["relu", "relu6", "leaky_relu(0.1)", "sigmoid", "tanh", "gelu", "silu", "hardswish", "hardsigmoid"]


@st.composite
def layer(draw, shape):
    """One layer (or merge of branches) as text, and the shape it produces from `shape`."""
    c, h, w = shape
    kind = draw(
        st.sampled_from(
            ["conv", "conv", "dwconv", "table", "pool", "pool", "bn", "act", "dropout", "add", "concat", "mul"]
            + ["reach"] * 4
        )
    )
    if kind == "conv":
        k = draw(st.integers(1, 3))
        s, d = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        p = draw(st.integers(0, 1))
        g = draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0]))
        out = g * draw(st.integers(1, 3))
        oh, ow = window_out(h, k, s, p, d), window_out(w, k, s, p, d)
        if oh < 1 or ow < 1:
            return "relu", shape
        bias = draw(st.booleans())
        return f"conv({out}, kernel={k}, stride={s}, pad={p}, dilation={d}, groups={g}, bias={str(bias).lower()})", (
            out,
            oh,
            ow,
        )
    if kind == "dwconv":
        m = draw(st.integers(1, 2))
        return f"dwconv3x3({m})", (c * m, h, w)
    if kind == "table":
        out = draw(st.integers(1, 4))
        rows = [sorted(draw(st.sets(st.integers(0, c - 1), min_size=1, max_size=c))) for _ in range(out)]
        return f"conv3x3({out}, table={rows})", (out, h, w)
    if kind == "pool":
        op = draw(st.sampled_from(["maxpool", "avgpool"]))
        k, s = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        p = draw(st.integers(0, k // 2))
        ceil = draw(st.booleans())
        oh, ow = window_out(h, k, s, p, 1, ceil), window_out(w, k, s, p, 1, ceil)
        if oh < 1 or ow < 1:
            return "dropout(0.2)", shape
        extra = f", include_pad={str(draw(st.booleans())).lower()}" if op == "avgpool" else ""
        return f"{op}({k}, stride={s}, pad={p}, ceil={str(ceil).lower()}{extra})", (c, oh, ow)
    if kind == "reach":
        return draw(reach_layer(shape))
    if kind == "bn":
        return "bn", shape
    if kind == "act":
        return draw(st.sampled_from(ACTS + ["softmax"])), shape
    if kind == "dropout":
        return "dropout(0.3)", shape
    if kind == "add":
        return f"add(conv3x3({c}) -> {draw(st.sampled_from(ACTS))}, identity, conv1x1({c}))", shape
    if kind == "concat":
        extra = draw(st.integers(1, 3))
        return f"concat(identity, conv1x1({extra}), maxpool3(stride=1, pad=1))", (2 * c + extra, h, w)
    return f"mul(identity, gap -> conv1x1({c}) -> sigmoid)", shape


@st.composite
def spec_text(draw):
    shape = (draw(st.integers(1, 4)), draw(st.integers(3, 11)), draw(st.integers(3, 11)))
    lines = [f"input {shape[0]}x{shape[1]}x{shape[2]}"]
    parts = []
    for _ in range(draw(st.integers(2, 6))):
        text, shape = draw(layer(shape))
        parts.append(text)
    head = draw(
        st.sampled_from(
            [
                "",
                "gap -> fc(4)",
                "gmp -> fc(3) -> softmax",
                "adaptive_avgpool(2) -> fc(5)",
                "flatten -> fc(6) -> bn -> relu -> fc(2)",
            ]
        )
    )
    if head:
        parts.append(head)
    lines.append(" -> ".join(parts))
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec_text(), st.integers(0, 2**16))
def test_random_architectures_match_reference(text, seed):
    agrees(text, seed=seed, batch=2)
