"""`cnndsl fmt` never changes what a spec means, and formats its own output unchanged.

The risk is precedence: the printer drops the parentheses the author wrote, so it must put back
every pair the grammar needs, on one line and when a long chain wraps, with comments around.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from spec_strategies import risky_specs, specs

from cnndsl.diagnostics import CnnError
from cnndsl.fmt import WIDTH, format_text
from cnndsl.frontend import compile_text
from cnndsl.syntax import parse_module

REPRODUCER = """input 4x16x16
conv1x1(5) -> (conv5(10, pad=(1, 0)) -> (conv(max(10, 1), kernel=(5, 5)) -> conv3(in_channels) if false else conv2(4, pad=0, bias=true))) -> conv1x1(12) -> gap -> fc(6)
"""  # noqa: E501


def network_view(text: str):
    """What formatting must keep: the elaborated nodes (so the weight names), the output, the error codes."""
    result = compile_text(text)
    codes = [d.code for d in result.diagnostics]
    if result.network is None:
        return None, codes
    nodes = [(n.name, n.op, n.attrs, n.shape) for n in result.network.nodes]
    return (nodes, result.network.output), codes


def assert_formatting_keeps_meaning(text: str) -> str:
    formatted = format_text(text)
    assert format_text(formatted) == formatted, "fmt is not idempotent"
    # The strongest form: the same syntax tree (spans aside), so the same network whatever it is.
    assert parse_module(formatted).statements == parse_module(text).statements
    assert network_view(formatted) == network_view(text)
    assert sorted(re.findall(r"#[^\n]*", formatted)) == sorted(c.rstrip() for c in re.findall(r"#[^\n]*", text))
    return formatted


@given(risky_specs())
def test_fmt_keeps_the_meaning_of_risky_specs(text):
    assert_formatting_keeps_meaning(text)


@given(specs())
def test_fmt_keeps_the_meaning_of_plain_specs(text):
    assert_formatting_keeps_meaning(text)


def test_reproducer_keeps_its_four_convolutions():
    formatted = assert_formatting_keeps_meaning(REPRODUCER)
    assert len(REPRODUCER.splitlines()[1]) > WIDTH and len(formatted.splitlines()) > 3  # the wrapping path
    ops = [n.op for n in compile_text(formatted).network.nodes]
    assert ops == [n.op for n in compile_text(REPRODUCER).network.nodes]
    assert ops.count("conv") == 4


# Each case is a chain item or a whole chain where a printer that ignores precedence goes wrong.
CASES = [
    "conv3x3(8) -> (relu if true else gelu) -> bn",
    "identity if false else conv1x1(4) -> bn",
    "(identity if false else conv1x1(4)) -> bn",
    "((relu if true else gelu) if false else tanh) -> bn",
    "relu if (true if false else false) else gelu",
    "(conv3x3(8) -> relu) as a -> bn",
    "(relu if false else gelu) as a -> bn",
    "((relu as a) as b)",
    "relu -> (conv1x1(4) -> (bn -> relu)) -> (conv1x1(4) -> relu if true else gelu)",
    "[relu]x(1 + 1) -> [i: conv1x1(i + 1)]x(2 if true else 1) -> [relu]x(-(-2))",
    "conv3x3((1 + 2) * 3) -> conv3x3(8 - (4 - 2)) -> conv3x3((8 - 4) - 2) -> conv3x3(-(1 - 3))",
    "conv3x3(2**(1 + 1)) -> conv3x3((2**2)**1) -> conv3x3(2**2**1) -> conv3x3(2**-(-1)) -> conv3x3(-2**2 + 6)",
    "conv3x3(4, bias=(1 < 2) == true) -> conv3x3(4, bias=1 < 2 == true) -> conv3x3(4, bias=not (1 < 2))",
    "conv3x3(4, bias=(true or false) and false) -> conv3x3(4, bias=not not (true and false or true))",
    "conv(4, kernel=(1 + 2, 3 if true else 1)) -> conv(4, kernel=((3, 3) if false else (1, 1)))",
    "conv3x3(4 if 1 < 2 else 8, stride=(1 if not false else 2)) -> maxpool(k=(2**1))",
]
FILLER = " -> ".join(["conv3x3(6, stride=1, bias=true)"] * 3)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(
    "layout",
    [
        "{case}",  # fits on one line
        f"{FILLER} -> {{case}} -> gelu",  # the chain wraps around the case
        f"{FILLER} -> {{case}} -> gelu  # a trailing comment",
        f"conv3x3(6)  # before the case\n-> {{case}}\n# on its own line\n-> {FILLER}",
        f"conv1x1(6) -> ({{case}} -> {FILLER})",  # a sub-chain that must wrap by itself
    ],
    ids=["one-line", "wrapped", "wrapped-comment", "comments", "sub-chain"],
)
def test_precedence_cases(case, layout):
    text = "input 3x8x8\n" + layout.format(case=case) + " -> gap -> fc(2)\n"
    assert network_view(text)[0] is not None, "every case is a valid network"
    assert_formatting_keeps_meaning(text)


@pytest.mark.parametrize("case", CASES)
def test_precedence_cases_in_blocks_and_constants(case):
    long_case = f"{FILLER} -> {case}"
    text = f"input 3x8x8\nlet n = 1 + 1 if 2 > 1 else (3 if true else 4)\nblock b(c=4) {{\n  {long_case}\n}}\nb -> gap -> fc(n)\n"
    assert_formatting_keeps_meaning(text)


@pytest.mark.parametrize(
    "text",
    [
        "input 3x8x8\nconv3x3(0) -> gap -> fc(2)\n",  # E104, unchanged by formatting
        "input 3x8x8\nconv3x3(4) -> (residual(conv3x3(4, stride=2)) if true else relu) -> gap -> fc(2)\n",
        "input 3x8x8\nrleu if true else relu\n",  # E101 in the branch taken
    ],
)
def test_invalid_specs_stay_invalid_the_same_way(text):
    _, codes = network_view(text)
    assert any(c.startswith("E") for c in codes)
    assert network_view(assert_formatting_keeps_meaning(text))[1] == codes


def test_unparsable_text_is_refused_not_guessed():
    with pytest.raises(CnnError):
        format_text("input 3x8x8\nrelu if true\n")


@pytest.mark.parametrize(
    "inside",
    [
        "conv1x1(4 * 2,  # inside a call\n  bias=false)",
        "conv1x1(4 if true  # inside a conditional\n  else 2)",
        "[relu  # inside a repeat\n]x2",
    ],
    ids=["call", "conditional", "repeat"],
)
def test_a_comment_no_layout_places_does_not_choose_the_layout(inside):
    # Found by tools/fuzz.py: such a comment forced a multi-line layout, then moved above the statement,
    # so the second pass chose the one-line layout.
    text = f"input 3x8x8\nconv3x3(4) -> bn -> relu\n-> {inside}\n-> gap -> fc(2)\n"
    once = assert_formatting_keeps_meaning(text)
    assert "# inside" in once.splitlines()[1]  # kept, above the body
