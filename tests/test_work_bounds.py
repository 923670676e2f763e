"""Every spec is accepted or refused within a work bound that does not depend on the machine.

The elaborator counts its steps (`Elaborator.work`); these tests count work, never seconds, so
they mean the same on a loaded CI runner as on a laptop. Timings live in benchmarks/check_speed.py.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from unittest.mock import patch

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from cnndsl import frontend
from cnndsl.diagnostics import CODES, render
from cnndsl.elaborate import Elaborator
from cnndsl.frontend import compile_text
from cnndsl.limits import MAX_NODES, WORK_PER_NODE, work_budget

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.cnn"))

# Blocks that expand to nothing, at several depths: calling them costs work but adds no layer.
SMALL = 1000  # nodes: a budget of 116,000 steps keeps each example quick
PRELUDE = """input 3x8x8
block empty() { [relu]x0 }
block nothing() { empty -> identity -> empty }
block none4() { nothing -> nothing -> nothing -> nothing }
"""


@contextmanager
def recording():
    """The elaborators compile_text creates meanwhile, to read their work counters after the fact."""
    made: list[Elaborator] = []

    class Recording(Elaborator):
        def __post_init__(self):
            super().__post_init__()
            made.append(self)

    with patch.object(frontend, "Elaborator", Recording):
        yield made


@pytest.fixture
def elaborators():
    with recording() as made:
        yield made


def located_e107(text: str, max_nodes: int = MAX_NODES):
    c = compile_text(text, "hostile.cnn", max_nodes=max_nodes)
    assert c.network is None
    [d] = [d for d in c.errors if d.code == "E107"]
    shown = render(d, c.sources)
    assert shown.startswith(f"hostile.cnn:{d.span.line}:{d.span.column}: error[E107]")
    assert "^" in shown and "= hint:" in shown  # a caret under the source line, and a hint
    return d


# The reproducers, and the others of the class -------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[identity]x4611686018427387903",
        "[[relu]x0]x1000000000000",
        "[[[[identity]x1000]x1000]x1000]x1000",
        "[i: identity]x3000000",
        "[[(identity as a)]x1000]x10000",
        "[i: relu if i < 0 else identity]x100000000",
        "[[relu if false else identity]x5000]x5000",
        "[none4]x1000000",
        "[[none4]x1000]x1000",
    ],
)
def test_work_that_adds_no_layers_is_refused_at_the_repeat(body, elaborators):
    # A small node limit gives a small budget (116,000 steps), so each case stays quick.
    d = located_e107(PRELUDE + body + " -> gap -> fc(2)\n", max_nodes=SMALL)
    assert (d.span.line, d.span.column) == (5, 1)  # the outermost repeat, where the work multiplies
    assert elaborators[-1].work <= elaborators[-1].max_work


@pytest.mark.parametrize("count", ["4611686018427387903", "1000000000000"])
def test_a_huge_count_is_refused_before_any_iteration(count, elaborators):
    d = located_e107(f"input 3x8x8\n[[relu]x0]x{count} -> gap -> fc(2)\n")
    assert f"{int(count):,} times" in d.message
    assert elaborators[-1].work < 10  # refused up front, not after spending the budget


def test_nested_block_calls_that_expand_to_nothing_are_refused():
    # 4**10 calls of an empty block and no repeat at all: the budget still runs out, at a block call.
    blocks = ["block b0() { identity }"]
    blocks += [f"block b{k}() {{ b{k - 1} -> b{k - 1} -> b{k - 1} -> b{k - 1} }}" for k in range(1, 11)]
    d = located_e107("input 3x8x8\n" + "\n".join(blocks) + "\nb10 -> gap -> fc(2)\n")
    assert d.span.line > 1


def test_the_budget_follows_max_nodes(elaborators):
    text = "input 3x8x8\n[i: identity]x50000 -> gap -> fc(2)\n"
    assert compile_text(text).network is not None  # within the default budget
    located_e107(text, max_nodes=1000)  # 16 * 1,000 + 100,000 steps do not reach 50,000 iterations x 3
    assert elaborators[-1].max_work == work_budget(1000)


def test_zero_and_small_repeats_of_identity_are_still_accepted():
    c = compile_text(PRELUDE + "[[identity]x0]x1000 -> [none4]x100 -> [relu]x3 -> gap -> fc(2)\n")
    assert [n.op for n in c.network.layers] == ["relu"] * 3 + ["gap", "flatten", "fc"]


def test_many_distinct_errors_in_a_repeat_are_all_reported_once():
    # Reporting used to scan the whole list per report: quadratic in distinct diagnostics.
    c = compile_text("input 3x8x8\n[i: conv3x3(i - 20000)]x20000\n")
    assert len(c.errors) == 20000 and len(set(c.errors)) == 20000


# Real networks sit far inside the budget -------------------------------------------------------


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_real_networks_spend_well_under_the_work_per_node(path, elaborators):
    c = compile_text(path.read_text(), str(path))
    assert c.network is not None
    el = elaborators[-1]
    assert el.work <= WORK_PER_NODE / 2 * len(el.nodes)  # at least 2x headroom before 100k layers


def test_100k_layers_fit_the_budget():
    c = compile_text("input 3x8x8\n[conv1x1(3) -> relu]x49990 -> gap -> fc(2)\n")
    assert c.network is not None and len(c.network.layers) == 2 * 49_990 + 3  # and gap, flatten, fc


# The property: hostile specs of any shape ------------------------------------------------------

COUNTS = st.sampled_from([0, 1, 2, 3, 17, 1000, 10**6, 10**12, 2**62 - 1])
LEAVES = st.sampled_from(
    ["identity", "relu", "empty", "nothing", "none4", "(identity as a)", "(relu if false else identity)"]
)


def _repeat(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    plain = st.builds(lambda body, n: f"[{body}]x{n}", inner, COUNTS)
    indexed = st.builds(lambda body, n: f"[i: ({body}) if i % 2 == 0 else identity]x{n}", inner, COUNTS)
    return plain | indexed


HOSTILE = st.recursive(
    LEAVES,
    lambda inner: _repeat(inner) | st.builds(lambda a, b: f"{a} -> {b}", inner, inner),
    max_leaves=8,
)


@given(HOSTILE)
def test_every_spec_is_accepted_or_refused_within_the_work_bound(body):
    with recording() as made:
        c = compile_text(PRELUDE + body + " -> gap -> fc(2)\n", "hostile.cnn", max_nodes=SMALL)
    [el] = made
    event("accepted" if c.network is not None else f"refused: {sorted({d.code for d in c.errors})}")
    assert el.work <= work_budget(SMALL)  # a step that would pass the budget is refused, not taken
    if c.network is None:
        assert c.errors
        for d in c.errors:
            assert d.code in CODES and d.span.file == "hostile.cnn" and d.span.line >= 1 and d.span.column >= 1
    else:
        assert 2 <= len(c.network.layers) <= SMALL


def test_expectations_evaluated_after_a_body_that_spent_the_budget_are_refused_not_crashed():
    # Found by tools/fuzz.py (case 49967): a poisoned chain (`stride=0`) repeated spends work without
    # adding layers and stopped just under the budget; evaluating the `expect` lines then ran out of work
    # outside the elaborator's guard, an internal error. Here `[identity]xN` (one step an iteration, no
    # layers) leaves fewer steps than the expectation needs.
    body = "input 3x8x8\nconv3x3(4) -> [identity]x{n} -> gap -> fc(2)\n"
    with recording() as made:
        compile_text(body.format(n=0), "fixed.cnn", max_nodes=SMALL)
    fixed = made[-1].work  # the steps the spec takes besides the repeat's
    n = work_budget(SMALL) - fixed - 5
    text = body.format(n=n) + "expect params == " + " + ".join(["1"] * 20) + "\n"
    with recording() as made:
        c = compile_text(text, "spent.cnn", max_nodes=SMALL)
    assert made[-1].work <= work_budget(SMALL)
    assert c.network is None
    assert [d.code for d in c.diagnostics] == ["E107"]


def test_a_repeat_of_blocks_is_sized_through_the_block_body_before_it_expands():
    # Found by tools/fuzz.py (case 25923): `[mbconv(...)]x65537` expanded 6,500 blocks before the node
    # limit stopped it; sized through its body, the repeat is refused before its first iteration.
    text = "input 3x8x8\nblock two(c) { conv3x3(c) -> relu }\nconv3x3(4) -> [two(4)]x60000 -> gap -> fc(2)\n"
    with recording() as made:
        c = compile_text(text, "blocks.cnn")
    [d] = c.errors
    assert d.code == "E107" and "at least 120,000 layers" in d.message
    assert made[-1].work < 100  # refused up front


@pytest.mark.parametrize(
    "body",
    [
        "block maybe(c) { conv3x3(c) -> relu -> relu if c > 0 else identity }\nconv3x3(4) -> [maybe(0)]x50000",
        "block use(f) { f -> f -> f }\nconv3x3(4) -> [use(identity)]x50000",
        "block use(f) { f -> f }\nblock twice(f) { use(f) -> use(f) }\nconv3x3(4) -> [twice(identity)]x26000",
    ],
    ids=["conditional", "layer-parameter", "nested"],
)
def test_block_sizes_are_lower_bounds_that_never_refuse_a_valid_spec(body):
    # A block whose expansion depends on its arguments counts the least it can expand to. These add no
    # layers at all and compile; counting a parameter, or a conditional's larger branch, as a layer
    # would size each repeat past 100,000 layers and refuse it.
    c = compile_text(f"input 3x8x8\n{body} -> gap -> fc(2)\n", "lower.cnn")
    assert c.network is not None, [d.message for d in c.errors]


@pytest.mark.parametrize("merge", ["concat", "add", "residual", "mul"])
def test_a_bare_merge_inside_a_repeat_is_an_error_not_a_crash(merge):
    # Found by tools/fuzz.py (case 9429): sizing a repeat met `concat` written without arguments.
    c = compile_text(f"input 3x8x8\n[conv3x3(4) -> {merge} -> relu]x3 -> gap -> fc(2)\n", "bare.cnn")
    assert c.network is None and c.errors
