"""Inferred shapes equal the shapes torch produces, for random conv/pool stacks (torch as an oracle only)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnndsl.frontend import compile_text

torch = pytest.importorskip("torch")
F = torch.nn.functional


@st.composite
def stacks(draw):
    """(spec text, a function applying the same layers with torch.nn.functional)."""
    c, h, w = draw(st.integers(1, 4)), draw(st.integers(1, 24)), draw(st.integers(1, 24))
    layers, steps = [], []
    channels = c
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "maxpool", "avgpool", "adaptive"]))
        kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        if kind == "conv":
            dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
            ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
            groups = draw(st.sampled_from([g for g in (1, 2, 3) if channels % g == 0]))
            out = groups * draw(st.integers(1, 3))
            layers.append(
                f"conv({out}, kernel=({kh}, {kw}), stride=({sh}, {sw}), pad=({ph}, {pw}), "
                f"dilation=({dh}, {dw}), groups={groups})"
            )
            weight = torch.zeros(out, channels // groups, kh, kw)
            steps.append(
                lambda x, weight=weight, s=(sh, sw), p=(ph, pw), d=(dh, dw), g=groups: F.conv2d(
                    x, weight, None, s, p, d, g
                )
            )
            channels = out
        elif kind == "adaptive":
            size = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
            layers.append(f"adaptive_avgpool({size})")
            steps.append(lambda x, size=size: F.adaptive_avg_pool2d(x, size))
        else:
            ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
            ceil = draw(st.booleans())
            args = f"kernel=({kh}, {kw}), stride=({sh}, {sw}), pad=({ph}, {pw}), ceil={str(ceil).lower()}"
            layers.append(f"{kind}({args})")
            fn = F.max_pool2d if kind == "maxpool" else F.avg_pool2d
            steps.append(lambda x, fn=fn, k=(kh, kw), s=(sh, sw), p=(ph, pw), ceil=ceil: fn(x, k, s, p, ceil_mode=ceil))
    return f"input {c}x{h}x{w}\n" + " -> ".join(layers) + "\n", (c, h, w), steps


@given(stacks())
def test_inferred_shapes_match_torch(case):
    text, shape, steps = case
    result = compile_text(text)
    x = torch.zeros(1, *shape)
    torch_shapes, torch_error = [], None
    try:
        for step in steps:
            x = step(x)
            if min(x.shape) < 1:
                raise RuntimeError("empty output")
            torch_shapes.append(tuple(x.shape[1:]))
    except RuntimeError as e:
        torch_error = e
    if result.network is None:
        assert torch_error is not None, (text, [d.message for d in result.diagnostics])
        assert {d.code for d in result.diagnostics} <= {"E201"}, text
    else:
        assert torch_error is None, (text, torch_error)
        assert [n.shape for n in result.network.layers] == torch_shapes
