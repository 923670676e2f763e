"""One binder for layer and block calls (binding.Signature.bind), in the spirit of inspect.Signature.bind."""

from __future__ import annotations

from cnndsl import ast
from cnndsl.binding import BlockWording, Parameter, Signature, Wording, bound_values
from cnndsl.frontend import compile_text
from cnndsl.source import Span

S = Span("t.cnn", 1, 1, 1, 2)


def arg(name, value=1):
    return ast.Arg(name, ast.Number(value, str(value), S), S)


def bind(signature, args):
    found = []
    values, accept = bound_values(lambda a: a.value.value)
    ok = signature.bind(args, S, accept, found.append)
    return ok, values, [d.message for d in found]


PARAMS = (Parameter("out"), Parameter("stride", positional=False, required=False))


def test_positional_then_keyword_like_inspect():
    ok, values, problems = bind(Signature(PARAMS, Wording("conv3x3", PARAMS)), [arg(None, 8), arg("stride", 2)])
    assert ok and values == {"out": 8, "stride": 2} and problems == []


def test_layer_and_block_wordings_of_the_same_mistakes():
    layer = Signature(PARAMS, Wording("conv3x3", PARAMS), frozenset({"kernel"}), {"k": "kernel"})
    block = Signature(PARAMS, BlockWording("stage", PARAMS))
    assert bind(layer, [arg(None), arg(None)])[2] == ["`conv3x3` takes 1 positional argument(s) (out), got 2"]
    assert bind(block, [arg(None), arg(None), arg(None)])[2] == ["block `stage` takes 2 arguments, got 3"]
    assert bind(layer, [arg(None), arg("strid")])[2] == ["`conv3x3` has no argument `strid`"]
    assert bind(block, [arg(None), arg("strid")])[2] == ["block `stage` has no parameter `strid`"]
    assert bind(layer, [arg(None), arg("out")])[2] == ["argument `out` given twice"]
    assert bind(block, [arg(None), arg("out")])[2] == ["parameter `out` given twice"]
    assert bind(layer, [arg(None), arg("k")])[2] == ["`kernel` is already given by the name `conv3x3`"]
    assert bind(layer, [])[2] == ["`conv3x3` needs `out`"]
    assert bind(block, [])[2] == ["block `stage` needs a value for `out`"]
    # a layer's missing argument is usually the misspelt one already reported; a block's is its own mistake
    assert bind(layer, [arg("outt")])[2] == ["`conv3x3` has no argument `outt`"]
    assert bind(block, [arg("outt")])[2] == [
        "block `stage` has no parameter `outt`",
        "block `stage` needs a value for `out`",
    ]


def test_the_front_end_binds_layers_and_blocks_through_it():
    text = "input 3x8x8\nblock stage(c, n=1) { [conv3x3(c)]xn }\nstage(4, 2, 3) -> conv3x3(4, 5)\n"
    messages = [d.message for d in compile_text(text, "t.cnn").errors]
    assert messages == [
        "block `stage` takes 2 arguments, got 3",
        "`conv3x3` takes 1 positional argument(s) (out), got 2",
    ]
