"""Hypothesis strategies that write spec text, following the grammar's productions.

They produce mostly valid specs (so properties about compiled networks get
exercised) with enough variety in layout, comments, repetition, blocks and
merges to reach every corner of the parser and the formatter.
"""

from __future__ import annotations

from hypothesis import strategies as st

from cnndsl.backends.lowering import elementwise_ops
from cnndsl.ops import OPS

# Every element-wise op the op table has (a new activation is generated without touching this file),
# then two that elaborate to views.
ACTIVATIONS = [f"{op}(0.2)" if OPS[op].scalar else op for op in elementwise_ops()] + ["identity", "dropout(0.1)"]


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


# Risky specs ----------------------------------------------------------------------------------
#
# Where a formatter can change a model: every construct whose meaning rests on precedence
# (conditionals, labels, sub-chains, repeats, unary minus, right-associative `**`, comparison
# chains, `not`/`and`/`or`, tuples), in every position, in chains long enough to wrap, with
# comments. Each generator returns (text, strength); `_wrap` parenthesises an operand where the
# grammar requires it, and sometimes where it does not (the formatter must keep both trees).

COND, PIPE, LABEL, OR, AND, NOT, COMPARE, SUM, TERM, UNARY, POWER, ATOM = range(12)


def _wrap(draw, part: tuple[str, int], need: int) -> str:
    text, strength = part
    if strength < need or draw(st.integers(0, 9)) == 0:
        return f"({text})"
    return text


@st.composite
def int_values(draw, names=("w",), depth=0):
    """Small integer expressions, with every arithmetic and conditional form."""
    kinds = ["leaf"] * 3 + (["sum", "term", "neg", "pow", "cond", "call"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    sub = lambda: draw(int_values(names, depth + 1))  # noqa: E731
    if kind == "leaf":
        return draw(st.sampled_from([str(n) for n in range(1, 10)] + list(names))), ATOM
    if kind == "sum":
        # the first operand may be a bare sum (left-nested), the others only in parentheses
        a, b = _wrap(draw, sub(), SUM), _wrap(draw, sub(), TERM)
        return f"{a} {draw(st.sampled_from(['+', '-']))} {b}", SUM
    if kind == "term":
        a = _wrap(draw, sub(), TERM)
        if draw(st.booleans()):
            return f"{a} * {_wrap(draw, sub(), UNARY)}", TERM
        return f"{a} {draw(st.sampled_from(['//', '%']))} {draw(st.integers(1, 3))}", TERM
    if kind == "neg":
        return f"-{_wrap(draw, sub(), UNARY)}", UNARY
    if kind == "pow":
        # right-associative: `2**2**1` is 2**(2**1); `(2**2)**1` needs its parentheses
        exponent = draw(st.sampled_from(["0", "1", "2", "1**2", "2**1", "(1 + 1)", "-(-1)"]))
        return f"{_wrap(draw, sub(), ATOM)}**{exponent}", POWER
    if kind == "cond":
        then = _wrap(draw, sub(), PIPE)
        return f"{then} if {_wrap(draw, draw(bool_values(names, depth + 1)), OR)} else {sub()[0]}", COND
    return f"{draw(st.sampled_from(['max', 'min']))}({sub()[0]}, {sub()[0]})", ATOM


@st.composite
def bool_values(draw, names=("w",), depth=0):
    """Conditions: comparison chains, `not`, `and`, `or`, nested in every order."""
    kinds = ["leaf", "compare"] + (["not", "and", "or"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "leaf":
        return draw(st.sampled_from(["true", "false"])), ATOM
    if kind == "compare":
        operands = [_wrap(draw, draw(int_values(names, 3)), SUM) for _ in range(draw(st.integers(2, 3)))]
        out = operands[0]
        for operand in operands[1:]:
            out += f" {draw(st.sampled_from(['<', '<=', '==', '!=', '>', '>=']))} {operand}"
        return out, COMPARE
    if kind == "not":
        return f"not {_wrap(draw, draw(bool_values(names, depth + 1)), NOT)}", NOT
    own, op = (AND, "and") if kind == "and" else (OR, "or")
    a = _wrap(draw, draw(bool_values(names, depth + 1)), own)
    b = _wrap(draw, draw(bool_values(names, depth + 1)), own + 1)
    return f"{a} {op} {b}", own


def _channels(draw, names):
    value = draw(int_values(names))
    # mostly clamped so that most specs compile and the networks can be compared
    return value[0] if draw(st.integers(0, 3)) == 0 else f"max(1, min({value[0]}, 12))"


@st.composite
def risky_layer(draw, names=("w",), depth=0):
    kinds = ["conv", "conv", "act", "pool"] + (["cond", "label", "sub", "repeat", "merge"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    sub_chain = lambda: draw(risky_chain(names, depth + 1))  # noqa: E731
    if kind == "conv":
        k = draw(st.sampled_from(["1x1", "3x3", "3", "1x3"]))
        args = [_channels(draw, names)]
        if draw(st.booleans()):
            stride = _wrap(draw, draw(int_values(names, 2)), OR)
            args.append(f"stride=(1, 1 if {_wrap(draw, draw(bool_values(names)), OR)} else max(1, min({stride}, 2)))")
        if draw(st.booleans()):
            args.append(f"bias={_wrap(draw, draw(bool_values(names)), COND)}")
        return f"conv{k}({', '.join(args)})", ATOM
    if kind == "act":
        return draw(st.sampled_from(ACTIVATIONS)), ATOM
    if kind == "pool":
        return draw(st.sampled_from(["maxpool2", "avgpool2(ceil=true)", "maxpool3(stride=1, pad=1)"])), ATOM
    if kind == "cond":
        then = _wrap(draw, sub_chain(), draw(st.sampled_from([PIPE, LABEL])))
        test = _wrap(draw, draw(bool_values(names)), OR)
        return f"{then} if {test} else {sub_chain()[0]}", COND
    if kind == "label":
        return (
            f"{_wrap(draw, draw(risky_layer(names, depth + 1)), OR)} as {draw(st.sampled_from(['a', 'b', 'c']))}",
            LABEL,
        )
    if kind == "sub":
        return f"({sub_chain()[0]})", ATOM
    if kind == "repeat":
        var = draw(st.sampled_from(["", "i: "]))
        body = draw(risky_chain((*names, "i") if var else names, depth + 1))[0]
        count = draw(st.sampled_from(["1", "2", "(1 + 1)", "max(1, 2)", "(2 if true else 1)", "(-(-2))", "(2**1)"]))
        return f"[{var}{body}]x{count}", ATOM
    op = draw(st.sampled_from(["residual", "concat"]))
    if op == "residual":
        return f"residual({sub_chain()[0]})", ATOM
    return f"{op}({sub_chain()[0]}, {sub_chain()[0]})", ATOM


@st.composite
def risky_chain(draw, names=("w",), depth=0):
    """A chain; at the top, long enough to wrap, with comments between and after its layers."""
    items = draw(st.lists(risky_layer(names, depth), min_size=1, max_size=8 if depth == 0 else 3))
    seps = [" -> ", " ->\n  ", "\n-> "]
    if depth == 0:
        seps += [" ->  # after an arrow\n  ", "  # before an arrow\n-> ", "\n# on its own line\n-> "]
    out = _wrap(draw, items[0], LABEL) if len(items) > 1 else items[0][0]
    for item in items[1:]:
        out += draw(st.sampled_from(seps)) + _wrap(draw, item, LABEL)
    return out, PIPE if len(items) > 1 else items[0][1]


@st.composite
def risky_specs(draw):
    """A whole spec whose body, constants and block are built from the risky constructs above."""
    lines = [f"input {draw(st.integers(1, 4))}x{draw(st.integers(8, 16))}x{draw(st.integers(8, 16))}"]
    lines.append(f"let w = {draw(int_values(('2',)))[0]}")
    use_block = draw(st.booleans())
    if use_block:
        lines.append("block unit(c, s=1) {")
        lines.append("  " + draw(risky_chain(("w", "c", "s"), 1))[0])
        lines.append("}")
    body = draw(risky_chain())[0]
    if use_block:
        body += " -> unit(4) -> unit(c=w, s=1 + 1)"
    lines.append(body + " -> gap -> fc(3)" + draw(st.sampled_from(["", "  # end"])))
    return "\n".join(lines) + "\n"


# Issue 14's ops, tracking the shape ------------------------------------------------------------


@st.composite
def reach_layer(draw, shape, crop: bool = True):
    """One of issue 14's ops (layer norm, layer scale, stochastic depth, slice, shuffle, upsample, crop,
    transposed conv) as valid spec text for a CxHxW input, and the shape it produces; spatial growth is
    capped so that the networks stay small. crop=False where a caller does not track H and W."""
    c, h, w = shape
    kinds = ["layernorm", "layer_scale", "stochastic_depth", "slice", "split_shuffle", "shuffle"]
    if h * w <= 100:
        kinds += ["upsample", "upsample", "convt", "convt"]
    if crop:
        kinds.append("crop")
    kind = draw(st.sampled_from(kinds))
    if kind == "layernorm":
        return draw(st.sampled_from(["layernorm", "layernorm(eps=1e-6)"])), shape
    if kind == "layer_scale":
        return f"layer_scale({draw(st.sampled_from(['0.5', '2.0', '-1.0']))})", shape
    if kind == "stochastic_depth":
        return "stochastic_depth(0.3)", shape
    if kind == "slice":
        start = draw(st.integers(0, c - 1))
        end = draw(st.integers(start + 1, c))
        return (f"slice({start})" if end == c else f"slice({start}, {end})"), (end - start, h, w)
    if kind == "shuffle":
        g = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
        return f"shuffle({g})", shape
    if kind == "split_shuffle":  # ShuffleNet's unit: split, one half through a conv, concat, shuffle
        if c < 2:
            return "layernorm", shape
        a, m = draw(st.integers(1, c - 1)), draw(st.integers(1, 4))
        g = draw(st.sampled_from([g for g in (1, 2, 3) if (a + m) % g == 0]))
        return f"concat(slice(0, {a}), slice({a}) -> conv1x1({m})) -> shuffle({g})", (a + m, h, w)
    if kind == "crop":
        th, tw = draw(st.integers(1, h)), draw(st.integers(1, w))
        return f"crop(({th}, {tw}))", (c, th, tw)
    if kind == "upsample":
        mode = draw(st.sampled_from(["nearest", "bilinear"]))
        extra = f", mode={mode}" if mode == "bilinear" or draw(st.booleans()) else ""
        if mode == "bilinear" and draw(st.booleans()):
            extra += f", align_corners={str(draw(st.booleans())).lower()}"
        if draw(st.booleans()):
            s = draw(st.sampled_from([1, 2, 3, 1.5, 2.5]))
            return f"upsample({s}{extra})", (c, int(h * s), int(w * s))
        oh, ow = draw(st.integers(1, 2 * h + 1)), draw(st.integers(1, 2 * w + 1))
        return f"upsample(size=({oh}, {ow}){extra})", (c, oh, ow)
    k, s, d = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    p = draw(st.integers(0, (d * (k - 1)) // 2))
    op = draw(st.integers(0, max(s, d) - 1))
    g = draw(st.sampled_from([g for g in (1, 2) if c % g == 0]))
    out = g * draw(st.integers(1, 3))
    size = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n in (h, w)]
    bias = str(draw(st.booleans())).lower()
    text = f"convt({out}, kernel={k}, stride={s}, pad={p}, output_pad={op}, dilation={d}, groups={g}, bias={bias})"
    return text, (out, *size)
