"""What every backend needs for every op: identifiers, literals, provenance comments, the emit loop.

A backend is data over this base: an emit table (op name -> function giving the statements of one
step) plus the templates only it needs. Only validated identifiers and numbers reach generated
source: `Namespace` makes identifiers from IR names, `literal` formats numbers, bools and tuples,
and `where` names the spec file and line a node came from.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..ir import Node

_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")
_FILE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.cnn")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class MissingEmitter(Exception):
    """A backend's emit table has no entry for an op (tests/test_op_coverage.py keeps this from happening)."""


class Namespace:
    """Unique Python identifiers for generated code (as torch.fx's `_Namespace.create_name`): never a keyword,
    a builtin, a name the module defines itself (`reserved`) or one handed out before."""

    def __init__(self, reserved: Iterable[str] = ()):
        self.taken = {*reserved, *dir(builtins)}

    def create(self, candidate: str, prefix: str = "") -> str:
        base = prefix + _NOT_IDENT.sub("_", candidate)
        if not base or base[0].isdigit():
            base = "_" + base
        name, k = base, 1
        while name in self.taken or keyword.iskeyword(name):
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name


def literal(value: Any) -> str:
    """A Python literal for a number, bool, None, one of the init words, or a tuple of them: nothing else."""
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str) and value in ("ones", "zeros"):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "(" + ", ".join(literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    raise TypeError(f"not a literal: {value!r}")


def quoted(name: str) -> str:
    """A node or weight name as a string literal; only validated dotted identifiers get here."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a node name: {name!r}")
    return f'"{name}"'


def where(node: Node) -> str:
    """`line 12` of the spec, or `line 12 (resnet.cnn line 7)` for a node a block in another file made there,
    `line 12 (block line 7)` for one from a block in the same file.

    Only numbers and a file name that is an identifier plus `.cnn` appear: no spec text reaches the source.
    """
    if not node.trace:
        return f"line {node.span.line}"
    top = node.trace[0].call
    if node.span.file == top.file:
        return f"line {top.line} (block line {node.span.line})"
    base = re.split(r"[/\\]", node.span.file)[-1]
    return f"line {top.line} ({base if _FILE.fullmatch(base) else 'imported file'} line {node.span.line})"


def emit_all(steps: Iterable[Any], table: Mapping[str, Callable[[Any, Any], None]], backend: str, ctx: Any) -> None:
    """The one render loop: each step goes to the emitter its op has in the backend's table, with the
    backend's rendering context (which collects the statements)."""
    for step in steps:
        emitter = table.get(step.op)
        if emitter is None:
            raise MissingEmitter(f"the {backend} backend has no emitter for op `{step.op}`")
        emitter(ctx, step)


def ops_lowered_as(kind: str) -> tuple[str, ...]:
    """The ops of one lowering kind (a backend maps every VIEW, or every ELEMENTWISE op, to one emitter)."""
    from ..ops import OPS

    return tuple(name for name, op in OPS.items() if op.lowering == kind)
