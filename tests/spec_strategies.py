"""Hypothesis strategies that write spec text, following the grammar's productions.

They produce mostly valid specs (so properties about compiled networks get
exercised) with enough variety in layout, comments, repetition, blocks and
merges to reach every corner of the parser and the formatter.
"""

from __future__ import annotations

from hypothesis import strategies as st

ACTIVATIONS = [
    "relu",
    "relu6",
    "leaky_relu(0.2)",
    "sigmoid",
    "tanh",
    "gelu",
    "silu",
    "hardswish",
    "identity",
    "dropout(0.1)",
]


@st.composite
def numbers(draw, low=1, high=16):
    n = draw(st.integers(low, high))
    style = draw(st.sampled_from(["plain", "sum", "product", "var"]))
    if style == "sum" and n > 1:
        return f"{n - 1} + 1"
    if style == "product" and n % 2 == 0:
        return f"2 * {n // 2}"
    if style == "var":
        return f"max({n}, 1)"
    return str(n)


@st.composite
def conv(draw):
    k = draw(st.sampled_from(["1x1", "3x3", "1x3", "3", "5x5"]))
    args = [draw(numbers(1, 12))]
    if draw(st.booleans()):
        args.append(f"stride={draw(st.sampled_from(['1', '2', '(1, 2)']))}")
    if draw(st.booleans()):
        args.append(f"bias={draw(st.sampled_from(['true', 'false']))}")
    if draw(st.booleans()):
        args.append(f"pad={draw(st.sampled_from(['0', '1', 'valid', '(1, 0)']))}")
    return f"conv{k}({', '.join(args)})"


@st.composite
def layer(draw, depth=0):
    kinds = ["conv", "act", "bn", "pool"] + (["repeat", "merge", "label"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "conv":
        return draw(conv())
    if kind == "act":
        return draw(st.sampled_from(ACTIVATIONS))
    if kind == "bn":
        return draw(st.sampled_from(["bn", "batchnorm(eps=1e-3)"]))
    if kind == "pool":
        return draw(
            st.sampled_from(["maxpool2", "avgpool2(ceil=true)", "maxpool3(stride=1, pad=1)", "maxpool(kernel=2)"])
        )
    if kind == "repeat":
        var = draw(st.sampled_from(["", "i: "]))
        body = draw(chain(depth + 1))
        return f"[{var}{body}]x{draw(st.integers(1, 3))}"
    if kind == "label":
        inner = draw(st.one_of(conv(), st.sampled_from(ACTIVATIONS[:-1]), chain(depth + 1).map(lambda c: f"({c})")))
        return f"{inner} as {draw(st.sampled_from(['a', 'stem', 'head_1']))}"
    op = draw(st.sampled_from(["residual", "concat", "add"]))
    if op == "residual":
        return f"residual({draw(chain(depth + 1))})"
    branches = draw(st.lists(chain(depth + 1), min_size=2, max_size=3))
    return f"{op}({', '.join(branches)})"


@st.composite
def chain(draw, depth=0):
    items = draw(st.lists(layer(depth), min_size=1, max_size=4))
    seps = [draw(st.sampled_from([" -> ", "->", " ->\n  ", "\n-> "])) if depth == 0 else " -> " for _ in items[1:]]
    out = items[0]
    for sep, item in zip(seps, items[1:]):
        out += sep + item
    return out


@st.composite
def specs(draw):
    """A whole spec: input, maybe constants, a block, comments, a body, maybe expectations."""
    lines = []
    if draw(st.booleans()):
        lines.append("# " + draw(st.sampled_from(["a generated spec", "comment -> with arrows", ""])))
    c, h = draw(st.integers(1, 4)), draw(st.integers(4, 12))
    lines.append(f"input {c}x{h}x{draw(st.integers(4, 12))}")
    if draw(st.booleans()):
        lines.append(f"let w = {draw(numbers())}")
    use_block = draw(st.booleans())
    if use_block:
        lines.append("block unit(c, s=1) {")
        lines.append("  conv3x3(c, stride=s) -> bn" + draw(st.sampled_from(["", "  # trailing"])))
        lines.append("  -> relu\n}")
    body = draw(chain())
    if use_block:
        body += " -> unit(4) -> unit(c=6, s=2)"
    if draw(st.booleans()):
        body += " -> gap -> fc(3)"
    lines.append(body + draw(st.sampled_from(["", "  # end"])))
    if draw(st.booleans()):
        lines.append("expect output " + draw(st.sampled_from(["== 3", ">= 1"])))
    blank = draw(st.sampled_from(["\n", "\n\n"]))
    return blank.join(lines) + "\n"
