"""Argument binding, written once for layers and blocks, in the spirit of `inspect.Signature.bind`.

A call's arguments (positional, then keyword) are matched to a signature's parameters; every
problem is reported, located at the argument that caused it. What a bound argument becomes is the
caller's business (`accept`): a layer evaluates it at once, a block keeps it as a lazy thunk.
Only the wording differs between a layer and a block, so it is a small strategy object.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import ast
from .diagnostics import Diagnostic, did_you_mean, error
from .source import Span


@dataclass(frozen=True)
class Parameter:
    name: str
    positional: bool = True
    required: bool = True


class Wording:
    """The messages of a layer call (`conv3x3(...)`); BlockWording words them for a block."""

    def __init__(self, written: str, params: Sequence[Parameter]):
        self.written = written
        self.names = [p.name for p in params]
        self.positional = [p for p in params if p.positional]

    def too_many(self, got: int, span: Span) -> Diagnostic:
        took = ", ".join(p.name for p in self.positional) or "no positional arguments"
        return error(
            "E102",
            f"`{self.written}` takes {len(self.positional)} positional argument(s) ({took}), got {got}",
            span,
            f"name the others, e.g. {self.names[-1] if self.names else 'stride'}=...",
        )

    def preset(self, name: str, span: Span) -> Diagnostic:
        return error("E102", f"`{name}` is already given by the name `{self.written}`", span)

    def unknown(self, name: str, span: Span) -> Diagnostic:
        hint = did_you_mean(name, self.names) or f"`{self.written}` takes: {', '.join(self.names) or 'no arguments'}"
        return error("E102", f"`{self.written}` has no argument `{name}`", span, hint)

    def twice(self, name: str, span: Span) -> Diagnostic:
        return error("E102", f"argument `{name}` given twice", span)

    def missing(self, p: Parameter, span: Span) -> Diagnostic:
        example = f"e.g. {self.written}({p.name}=...)" if not p.positional else f"e.g. {self.written}(64)"
        return error("E102", f"`{self.written}` needs `{p.name}`", span, example)

    # A layer's missing argument is usually the misspelt or mistyped one already reported.
    missing_after_problems = False


class BlockWording(Wording):
    def too_many(self, got: int, span: Span) -> Diagnostic:
        return error(
            "E102",
            f"block `{self.written}` takes {len(self.names)} arguments, got {got}",
            span,
            f"its parameters: {', '.join(self.names) or 'none'}",
        )

    def unknown(self, name: str, span: Span) -> Diagnostic:
        hint = did_you_mean(name, self.names) or f"its parameters: {', '.join(self.names) or 'none'}"
        return error("E102", f"block `{self.written}` has no parameter `{name}`", span, hint)

    def twice(self, name: str, span: Span) -> Diagnostic:
        return error("E102", f"parameter `{name}` given twice", span)

    def missing(self, p: Parameter, span: Span) -> Diagnostic:
        return error(
            "E102",
            f"block `{self.written}` needs a value for `{p.name}`",
            span,
            f"call it as {self.written}({', '.join(self.names)})",
        )

    missing_after_problems = True  # each is a separate mistake in the call


@dataclass
class Signature:
    """What a callee accepts: parameters in order, names its spelling already fixes, keyword aliases."""

    params: tuple[Parameter, ...]
    wording: Wording
    preset: frozenset[str] = frozenset()
    aliases: dict[str, str] = field(default_factory=dict)

    def bind(
        self,
        args: Sequence[ast.Arg],
        span: Span,
        accept: Callable[[str, ast.Arg], bool],
        report: Callable[[Diagnostic], None],
    ) -> bool:
        """Match `args` to the parameters; `accept(name, arg)` stores one (False: it failed, and said
        so). Returns whether every argument bound and nothing required is missing."""
        words = self.wording
        positional = [p for p in self.params if p.positional]
        names = {p.name for p in self.params}
        ok = True
        pos_args = [a for a in args if a.name is None]
        if len(pos_args) > len(positional):
            report(words.too_many(len(pos_args), pos_args[len(positional)].span))
            ok = False
        pairs = [(p.name, a) for p, a in zip(positional, pos_args)]
        pairs += [(self.aliases.get(a.name, a.name), a) for a in args if a.name is not None]
        given: set[str] = set()
        for name, a in pairs:
            if name in self.preset:
                problem = words.preset(name, a.span)
            elif name not in names:
                problem = words.unknown(name, a.span)
            elif name in given:
                problem = words.twice(name, a.span)
            else:
                if accept(name, a):  # a value that failed to evaluate is not given (nor given twice)
                    given.add(name)
                else:
                    ok = False
                continue
            report(problem)
            ok = False
        for p in self.params:
            if not (ok or words.missing_after_problems):
                break
            if p.required and p.name not in given:
                report(words.missing(p, span))
                ok = False
        return ok


def bound_values(accept_value: Callable[[ast.Arg], Any]) -> tuple[dict[str, Any], Callable[[str, ast.Arg], bool]]:
    """A dict to collect bound values in, and the `accept` that fills it with `accept_value(arg)`."""
    values: dict[str, Any] = {}

    def accept(name: str, a: ast.Arg) -> bool:
        values[name] = accept_value(a)
        return True

    return values, accept
