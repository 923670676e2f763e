"""The typed syntax tree that the Lark parse becomes at once.

Every node keeps its span. Operator chains (`a + b - c`, `a -> b -> c`) stay
flat tuples rather than nested binary nodes, so walking them never recurses
deeper than the spec's bracket nesting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .source import Span

# `span` never takes part in equality: a spec and its formatted twin are equal.


def _span():
    return field(compare=False)


@dataclass(frozen=True, slots=True)
class Number:
    value: int | float
    text: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class String:
    value: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Arg:
    name: str | None  # None for a positional argument
    value: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple[Arg, ...]
    func_span: Span = _span()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Pipe:
    """`a -> b -> c`: sequential composition."""

    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Label:
    """`expr as name`: names a layer or block instance."""

    expr: Expr
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Cond:
    """`then if test else orelse`"""

    then: Expr
    test: Expr
    orelse: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Chain:
    """A flat left-to-right operator chain: arithmetic, comparison, `and`, `or`.

    `first (ops[0] rest[0]) (ops[1] rest[1]) ...`
    """

    kind: str  # "arith" | "compare" | "and" | "or"
    first: Expr
    ops: tuple[str, ...]
    rest: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "-", "+", "not"
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Power:
    base: Expr
    exponent: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TupleExpr:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Comprehension:
    """`[item for var in items]`: a list computed from another (a value, never a layer)."""

    item: Expr
    var: str
    items: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Index:
    """`widths[i]`: one item of a list or tuple value."""

    base: Name
    index: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Repeat:
    """`[var: body]xCOUNT`"""

    var: str | None
    body: Expr
    count: Expr
    span: Span = _span()


Expr = (
    Number
    | Name
    | String
    | Bool
    | Call
    | Pipe
    | Label
    | Cond
    | Chain
    | Unary
    | Power
    | TupleExpr
    | ListExpr
    | Repeat
    | Comprehension
    | Index
)


# Statements -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Input:
    dims: tuple[int, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class NetworkName:
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Let:
    name: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    default: Expr | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class BlockDef:
    name: str
    params: tuple[Param, ...]
    body: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Import:
    target: str
    is_path: bool  # "file.cnn" versus a standard-library module name
    span: Span = _span()
    names: tuple[Name, ...] | None = None  # `from M import a, b`: only these; None: everything


@dataclass(frozen=True, slots=True)
class Expect:
    metric: str
    op: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Disable:
    codes: tuple[Name, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Freeze:
    names: tuple[Name, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TensorDef:
    """`tensor name = chain`: the chain's result, usable later by name."""

    name: str
    expr: Expr
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Output:
    names: tuple[Name, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Body:
    expr: Expr
    span: Span = _span()


Statement = Input | NetworkName | Let | BlockDef | Import | Expect | Disable | Freeze | TensorDef | Output | Body


@dataclass(frozen=True, slots=True)
class Comment:
    text: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Module:
    path: str
    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...] = field(compare=False)


def size(e: Any) -> int:
    """AST nodes in an expression, found generically through the dataclass fields (spans excluded):
    the work of evaluating it once."""
    if isinstance(e, (tuple, list)):
        return sum(size(i) for i in e)
    if not dataclasses.is_dataclass(e) or isinstance(e, Span):
        return 0
    return 1 + sum(size(getattr(e, f.name)) for f in dataclasses.fields(e))
