"""Properties of the front end over generated and mutated spec text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_strategies import specs

from cnndsl.diagnostics import CODES, CnnError
from cnndsl.fmt import format_text
from cnndsl.frontend import compile_text
from cnndsl.syntax import parse_module

SPEC_TEXTS = [p.read_text() for p in sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.cnn"))]


def codes(text: str) -> list[str]:
    return [d.code for d in compile_text(text).diagnostics]


@given(specs())
def test_fmt_is_idempotent_and_keeps_meaning(text):
    formatted = format_text(text)
    assert format_text(formatted) == formatted
    assert parse_module(formatted).statements == parse_module(text).statements
    before, after = compile_text(text), compile_text(formatted)
    assert before.network == after.network
    assert [d.code for d in before.diagnostics] == [d.code for d in after.diagnostics]


@given(specs())
def test_fmt_keeps_every_comment(text):
    comments = re.findall(r"#[^\n]*", text)
    formatted = format_text(text)
    assert sorted(re.findall(r"#[^\n]*", formatted)) == sorted(c.rstrip() for c in comments)


@pytest.mark.parametrize("text", SPEC_TEXTS, ids=[str(i) for i in range(len(SPEC_TEXTS))])
def test_fmt_round_trips_the_spec_library(text, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parent.parent / "specs")
    formatted = format_text(text)
    assert format_text(formatted) == formatted
    assert compile_text(formatted).network == compile_text(text).network


def only_own_diagnostics(text: str) -> None:
    """Whatever the text, the front end answers with its own diagnostics, never another exception."""
    result = compile_text(text, "fuzz.cnn")
    for d in result.diagnostics:
        assert d.code in CODES and d.span.line >= 1 and d.span.column >= 1
    try:
        format_text(text)
    except CnnError as e:
        assert all(d.code in CODES for d in e.diagnostics)


TOKENS = [
    "->",
    "[",
    "]x",
    "]x2",
    "(",
    ")",
    "{",
    "}",
    ",",
    "=",
    "==",
    ":",
    "\n",
    " ",
    "#",
    "conv3x3",
    "relu",
    "x",
    "input",
    "block",
    "let",
    "import",
    "expect",
    "as",
    "if",
    "else",
    "-",
    "**",
    "9" * 30,
    "1e308",
    "0",
    "residual",
    "concat",
    "add",
    "mul",
    "in_channels",
    '"',
    "\t",
    "\\\n",
    "×",
    "\x00",
    "é",
]


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=2000)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_random_token_soup(text):
    only_own_diagnostics(text)


@settings(deadline=2000)
@given(st.text(max_size=200))
def test_random_text(text):
    only_own_diagnostics(text)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=5000)
@given(
    st.sampled_from(SPEC_TEXTS),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 8), st.sampled_from(TOKENS)), min_size=1, max_size=4),
)
def test_mutated_specs(text, edits):
    for pos, cut, insert in edits:
        pos %= len(text) + 1
        text = text[:pos] + insert + text[pos + cut :]
    only_own_diagnostics(text)


@pytest.mark.parametrize(
    "text",
    [
        "input 3x8x8\n" + "(" * 5000 + "relu" + ")" * 5000,
        "input 3x8x8\nconv3x3(" + "-" * 5000 + "1)",
        "input 3x8x8\nconv3x3(" + "2**" * 3000 + "2)",
        "input 3x8x8\nconv3x3(" + " + ".join(["1"] * 20000) + ")",
        "input 3x8x8\n" + " -> ".join(["relu"] * 20000),
        "input 3x8x8\nconv3x3(2**2**2**2**2**2)",
        "input 3x8x8\nconv3x3(10**400)",
        "input 3x8x8\nconv3x3(1e400)",
    ],
)
def test_hostile_input_gets_a_diagnostic(text):
    only_own_diagnostics(text)
    assert compile_text(text).errors or compile_text(text).network is not None
