"""Hypothesis: random small architectures, written as spec text, agree with the reference in the simulator."""

from __future__ import annotations

import pytest
from helpers import check_agrees
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_strategies import reach_layer

import cnndsl
from cnndsl.backends.lowering import elementwise_ops
from cnndsl.diagnostics import CnnError
from cnndsl.ops import OPS

ACTIVATIONS = [f"{op}(0.1)" if OPS[op].scalar else op for op in elementwise_ops()]  # every one the op table has


@st.composite
def layer(draw, channels: int) -> tuple[str, int]:
    """One chain element that keeps a small feature map valid, and the channels after it."""
    kind = draw(
        st.sampled_from(
            ["conv", "dwconv", "groups", "bn", "act", "pool", "residual", "concat", "mul", "add"] + ["reach"] * 3
        )
    )
    if kind == "reach":  # issue 14's ops; the spatial size is not tracked here, so no crop
        text, shape = draw(reach_layer((channels, 1, 1), crop=False))
        return text, shape[0]
    if kind == "conv":
        out, k = draw(st.integers(1, 5)), draw(st.sampled_from([1, 3]))
        stride, dilation, bias = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.booleans())
        return f"conv{k}x{k}({out}, stride={stride}, dilation={dilation}, bias={str(bias).lower()})", out
    if kind == "dwconv":
        return f"dwconv3x3(stride={draw(st.integers(1, 2))})", channels
    if kind == "groups" and channels % 2 == 0:
        return "conv3x3(4, groups=2)", 4
    if kind == "bn":
        return "bn", channels
    if kind == "act":
        return draw(st.sampled_from(ACTIVATIONS)), channels
    if kind == "pool":
        pool = draw(
            st.sampled_from(
                [
                    "maxpool2(ceil=true)",
                    "maxpool3(stride=1, pad=1)",
                    "avgpool3(stride=2, pad=1, include_pad=false)",
                    "avgpool2",
                ]
            )
        )
        return pool, channels
    if kind == "residual":
        return f"residual(conv3x3({channels}) -> bn -> {draw(st.sampled_from(ACTIVATIONS))})", channels
    if kind == "concat":
        return "concat(identity, conv1x1(2))", channels + 2
    if kind == "mul":
        return f"mul(identity, gap -> conv1x1({channels}) -> sigmoid)", channels
    return f"add(identity, conv3x3({channels})) -> {draw(st.sampled_from(ACTIVATIONS))}", channels


@st.composite
def architectures(draw) -> str:
    channels = draw(st.integers(1, 3))
    lines = [f"input {channels}x{draw(st.integers(3, 7))}x{draw(st.integers(3, 7))}"]
    chain = []
    for _ in range(draw(st.integers(1, 4))):
        text, channels = draw(layer(channels))
        chain.append(text)
    chain.append(draw(st.sampled_from(["gap -> fc(3)", "flatten -> fc(4) -> softmax", "gmp", "softmax", "bn"])))
    lines.append(" -> ".join(chain))
    return "\n".join(lines)


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(spec=architectures(), batch=st.integers(1, 2))
def test_random_architectures_agree_with_reference(spec, batch):
    try:
        cnndsl.parse(spec)
    except CnnError:  # e.g. a feature map pooled below its window: not what this test is about
        from hypothesis import reject

        reject()
    check_agrees(spec, batch=batch, rtol=1e-3, atol=1e-4)
