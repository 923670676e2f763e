"""Generated statements laid out as ruff format would, so generated modules come out ruff-format clean.

The renderers emit simple statements (`call(args)`, `target = call(args)`, comments); a statement longer
than LINE is broken here the way ruff format breaks it. No ruff at compile time: the layout is plain text.
"""

from __future__ import annotations

import textwrap

LINE = 120  # ruff's line length (pyproject.toml)
_OPEN, _CLOSE = "([{", ")]}"


def split_args(text: str) -> list[str]:
    """Split text at its top-level commas (outside brackets and string literals)."""
    parts, depth, quote, start = [], 0, "", 0
    for i, c in enumerate(text):
        if quote:
            if c == quote and text[i - 1] != "\\":
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    last = text[start:].strip()
    return [*parts, last] if last else parts


def fit_call(indent: str, head: str, args: list[str], tail: str = "") -> list[str]:
    """`head(args)tail` laid out as ruff format would: one line, args on one indented line, or one per line."""
    joined = ", ".join(args)
    one = f"{indent}{head}({joined}){tail}"
    if len(one) <= LINE or not args:  # ruff leaves an empty call alone
        return [one]
    if len(indent) + 4 + len(joined) <= LINE:
        return [f"{indent}{head}(", f"{indent}    {joined}", f"{indent}){tail}"]
    return [f"{indent}{head}(", *(f"{indent}    {a}," for a in args), f"{indent}){tail}"]


def _call_parts(stmt: str) -> tuple[str, str] | None:
    """A statement ending in a call, `head(inner)`, as (head, inner); None when it does not end in one."""
    if not stmt.endswith(")"):
        return None
    depth, quote = 0, ""
    for i in range(len(stmt) - 1, -1, -1):
        c = stmt[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in _CLOSE:
            depth += 1
        elif c in _OPEN:
            depth -= 1
            if depth == 0:
                head = stmt[:i]
                return (head, stmt[i + 1 : -1]) if head and (head[-1].isalnum() or head[-1] == "_") else None
    return None


def _wrap_comment(indent: str, text: str) -> list[str]:
    """A long comment as lines of at most LINE: broken before each ` + ` (a fused layer's parts) where
    that is enough, else at words; continuation lines are indented two more spaces."""
    first, rest = f"{indent}# ", f"{indent}#   "
    pieces = text.split(" + ")
    out = [first + pieces[0]]
    for piece in pieces[1:]:
        if len(out[-1]) + 3 + len(piece) <= LINE:
            out[-1] += " + " + piece
        else:
            out.append(f"{rest}+ {piece}")
    if all(len(line) <= LINE for line in out):
        return out
    return textwrap.wrap(text, LINE, initial_indent=first, subsequent_indent=rest, break_long_words=False)


def fit(line: str) -> list[str]:
    """One generated line as ruff format lays it out: a long comment wrapped at words, a long statement
    ending in a call broken inside the call's parentheses; anything else as it is."""
    if len(line) <= LINE:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    stmt = line.strip()
    if stmt.startswith("#"):
        return _wrap_comment(indent, stmt[1:].strip())
    parts = _call_parts(stmt)
    if parts is None:
        return [line]
    return fit_call(indent, parts[0], split_args(parts[1]))


def fit_all(lines: list[str]) -> list[str]:
    return [out for line in lines for out in fit(line)]


def outputs_line(network) -> str:
    """`OUTPUTS = (...)`: the network's output node names, in the order a multi-output model returns them."""
    names = ", ".join(f'"{o}"' for o in network.outputs)
    return f"OUTPUTS = ({names},)" if len(network.outputs) == 1 else f"OUTPUTS = ({names})"
