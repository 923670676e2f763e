"""Evaluation of value expressions: numbers, booleans, tuples and lists in layer arguments.

Arithmetic is exact on integers and bounded (|x| < 2**62), so a spec cannot
make the compiler compute `2 ** 10 ** 10`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from . import ast
from .diagnostics import Diagnostic, did_you_mean, error
from .limits import MAX_INT
from .source import Span


class EvalError(Exception):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


class Poisoned(Exception):
    """A value depends on a tensor whose shape is unknown because of an earlier error."""


def make_divisible(value, divisor=8, min_value=None):
    """Channel rounding used by MobileNet and EfficientNet: nearest multiple, never below 90 %."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


BUILTINS: dict[str, Callable[..., Any]] = {
    "max": max,
    "min": min,
    "abs": abs,
    "round": round,
    "int": int,
    "float": float,
    "ceil": math.ceil,
    "floor": math.floor,
    "make_divisible": make_divisible,
    "log": math.log,  # log(x) or log(x, base)
    "exp": math.exp,
    "sqrt": math.sqrt,
    "range": range,
    "len": len,
    "sum": sum,
}
LIST_FUNCS = ("len", "sum")  # builtins that take one list or tuple
MAX_LIST = 1_000_000  # items in a computed list (range, a comprehension); the work budget bounds them too
CONSTANTS = {"same": "same", "valid": "valid", "nearest": "nearest", "bilinear": "bilinear"}


def _bounded(value: Any, span: Span) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) >= MAX_INT:
        raise EvalError(error("E110", "integer overflow: the value is beyond 2**62", span))
    if isinstance(value, float) and not math.isfinite(value):
        raise EvalError(error("E110", "the value is not a finite number", span))
    return value


def _number(v: Any, span: Span) -> int | float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise EvalError(error("E103", f"expected a number, got {describe(v)}", span))
    return v


def describe(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return f"the number {v}"
    if isinstance(v, str):
        return f"`{v}`"
    if isinstance(v, tuple):
        return "a tuple/list"
    return "a layer"


def _arith(op: str, a: Any, b: Any, span: Span) -> Any:
    a, b = _number(a, span), _number(b, span)
    if op in ("/", "//", "%") and b == 0:
        raise EvalError(error("E110", "division by zero", span))
    with arithmetic(span):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        if op == "//":
            return a // b
        return a % b


def _power(a: Any, b: Any, span: Span) -> Any:
    a, b = _number(a, span), _number(b, span)
    if a == 0 and b < 0:
        raise EvalError(error("E110", "zero to a negative power", span))
    if abs(a) > 1 and b > 0 and b * math.log2(abs(a)) >= 62:
        raise EvalError(error("E110", "integer overflow: the power is beyond 2**62", span))
    with arithmetic(span):  # `0.5 ** -10000` overflows a float
        result = a**b
    if isinstance(result, complex):
        raise EvalError(error("E110", "a negative number to a fractional power", span))
    return result


@contextmanager
def arithmetic(span: Span, what: str = "") -> Iterator[None]:
    """Every operation a spec can trigger runs in here: a Python arithmetic exception is a
    located E110, never an internal error. (ValueError: math domain errors and the like.)"""
    try:
        yield
    except ZeroDivisionError:
        raise EvalError(error("E110", f"division by zero{what}", span, "check the divisor")) from None
    except OverflowError:
        raise EvalError(error("E110", f"the result is too large{what}", span, "numbers are limited to 2**62")) from None
    except (ArithmeticError, ValueError) as exc:
        raise EvalError(error("E110", f"arithmetic error{what}: {exc}", span)) from None


_COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class Evaluator:
    """Evaluates value expressions. `lookup(name, span)` resolves names (params, constants, ...)."""

    def __init__(self, lookup: Callable[[str, Span], Any], charge: Callable[[int, Span], None] | None = None):
        self.lookup = lookup
        self.charge = charge or (lambda cost, span: None)  # work per computed list item (elaborate.py)
        self.local: dict[str, Any] = {}  # comprehension variables, innermost binding

    def value(self, e: ast.Expr) -> Any:
        if isinstance(e, ast.Number):
            return _bounded(e.value, e.span)
        if isinstance(e, (ast.Bool, ast.String)):
            return e.value
        if isinstance(e, ast.Name):
            return self.local[e.id] if e.id in self.local else self.lookup(e.id, e.span)
        if isinstance(e, ast.Chain):
            return self._chain(e)
        if isinstance(e, ast.Unary):
            v = self.value(e.operand)
            if e.op == "not":
                return not self.truth(v, e.operand.span)
            v = _number(v, e.span)
            return -v if e.op == "-" else v
        if isinstance(e, ast.Power):
            return _bounded(_power(self.value(e.base), self.value(e.exponent), e.span), e.span)
        if isinstance(e, ast.Cond):
            return self.value(e.then) if self.truth(self.value(e.test), e.test.span) else self.value(e.orelse)
        if isinstance(e, (ast.TupleExpr, ast.ListExpr)):
            return tuple(self.value(i) for i in e.items)
        if isinstance(e, ast.Call) and e.func in BUILTINS:
            return self._builtin(e)
        if isinstance(e, ast.Comprehension):
            return self._comprehension(e)
        if isinstance(e, ast.Index):
            return self._index(e)
        raise EvalError(
            error(
                "E103",
                "expected a value here, found a layer",
                e.span,
                "layers go in a chain with `->`; arguments take numbers, booleans and tuples",
            )
        )

    def truth(self, v: Any, span: Span) -> bool:
        if not isinstance(v, bool):
            raise EvalError(error("E103", f"expected `true` or `false`, got {describe(v)}", span))
        return v

    def _chain(self, e: ast.Chain) -> Any:
        if e.kind in ("and", "or"):
            for operand in (e.first, *e.rest):
                v = self.truth(self.value(operand), operand.span)
                if v == (e.kind == "or"):
                    return v
            return e.kind == "and"
        acc = self.value(e.first)
        if e.kind == "arith":
            for op, operand in zip(e.ops, e.rest):
                acc = _bounded(_arith(op, acc, self.value(operand), e.span), e.span)
            return acc
        left = acc
        for op, operand in zip(e.ops, e.rest):  # chained comparisons, as in Python
            right = self.value(operand)
            try:
                ok = _COMPARE[op](left, right)
            except TypeError:
                raise EvalError(
                    error("E103", f"cannot compare {describe(left)} with {describe(right)}", e.span)
                ) from None
            if not ok:
                return False
            left = right
        return True

    def _comprehension(self, e: ast.Comprehension) -> tuple:
        items = self.value(e.items)
        if not isinstance(items, tuple):
            raise EvalError(
                error(
                    "E103",
                    f"`for {e.var} in ...` needs a list, got {describe(items)}",
                    e.items.span,
                    "e.g. `[2 * i for i in range(4)]`",
                )
            )
        out = []
        saved = self.local.get(e.var, _UNBOUND)
        cost = ast.size(e.item)
        try:
            for v in items:
                self.charge(cost, e.span)
                self.local[e.var] = v
                out.append(self.value(e.item))
        finally:
            if saved is _UNBOUND:
                self.local.pop(e.var, None)
            else:
                self.local[e.var] = saved
        return tuple(out)

    def _index(self, e: ast.Index) -> Any:
        base, i = self.value(e.base), self.value(e.index)
        if not isinstance(base, tuple):
            raise EvalError(error("E103", f"`{e.base.id}` is {describe(base)}, not a list", e.base.span))
        if isinstance(i, bool) or not isinstance(i, int):
            raise EvalError(error("E103", f"a list index is an integer, got {describe(i)}", e.index.span))
        if not -len(base) <= i < len(base):
            raise EvalError(
                error(
                    "E104",
                    f"index {i} is out of range: `{e.base.id}` has {len(base)} items",
                    e.index.span,
                    f"use 0 to {len(base) - 1}" if base else "the list is empty",
                )
            )
        return base[i]

    def _builtin(self, e: ast.Call) -> Any:
        if any(a.name is not None and e.func != "make_divisible" for a in e.args):
            raise EvalError(error("E102", f"`{e.func}` takes positional arguments only", e.span))
        args = [self.value(a.value) for a in e.args if a.name is None]
        kwargs = {a.name: self.value(a.value) for a in e.args if a.name is not None}
        if e.func in LIST_FUNCS:
            return self._list_builtin(e, args)
        if e.func == "range":
            return self._range(e, args)
        for a in [*args, *kwargs.values()]:
            _number(a, e.span)
        if e.func == "round" and len(args) == 2 and (not isinstance(args[1], int) or abs(args[1]) > 30):
            # round(5, -10**12) computes 10**(10**12): a hang, not an error, so refuse it first
            raise EvalError(error("E104", "`round` takes a whole number of digits from -30 to 30", e.span))
        try:
            with arithmetic(e.span, f" in `{e.func}`"):
                return _bounded(BUILTINS[e.func](*args, **kwargs), e.span)
        except TypeError as exc:
            raise EvalError(error("E102", f"bad arguments to `{e.func}`: {exc}", e.span)) from None

    def _list_builtin(self, e: ast.Call, args: list) -> Any:
        if len(args) != 1 or not isinstance(args[0], tuple):
            got = describe(args[0]) if len(args) == 1 else f"{len(args)} arguments"
            raise EvalError(error("E102", f"`{e.func}` takes one list, got {got}", e.span, f"e.g. {e.func}([1, 2, 3])"))
        if e.func == "len":
            return len(args[0])
        for a in args[0]:
            _number(a, e.span)
        with arithmetic(e.span, " in `sum`"):
            return _bounded(sum(args[0]), e.span)

    def _range(self, e: ast.Call, args: list) -> tuple:
        if not 1 <= len(args) <= 3 or any(isinstance(a, bool) or not isinstance(a, int) for a in args):
            raise EvalError(
                error(
                    "E102", "`range` takes one to three integers", e.span, "e.g. range(4), range(1, 5), range(0, 8, 2)"
                )
            )
        if len(args) == 3 and args[2] == 0:
            raise EvalError(error("E104", "`range` step must not be zero", e.span))
        r = range(*args)
        if len(r) > MAX_LIST:
            raise EvalError(error("E104", f"`range` gives {len(r):,} items, beyond the limit of {MAX_LIST:,}", e.span))
        self.charge(len(r), e.span)
        return tuple(r)


_UNBOUND = object()


def unknown_name(name: str, span: Span, candidates) -> EvalError:
    return EvalError(error("E101", f"unknown name `{name}`", span, did_you_mean(name, candidates)))
