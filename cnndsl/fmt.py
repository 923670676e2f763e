"""The canonical formatter: AST → text, keeping every comment.

Layout rules: one statement per line; a chain that does not fit in WIDTH
columns, or has comments inside, gets one layer per line with a leading `->`;
calls with layer arguments (residual, concat, ...) that do not fit put one
argument per line; block bodies are indented by two spaces. Numbers keep the
spelling the author chose (`25_557_032`, `5M`). At most one blank line is kept
between statements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ast
from .syntax import parse_module

WIDTH = 100
INDENT = "  "

# Binding strength, loosest first; an operand printed where a tighter form is required gets parentheses.
COND, PIPE, LABEL, OR, AND, NOT, COMPARE, SUM, TERM, UNARY, POWER, ATOM = range(12)


def format_text(text: str, path: str = "<string>") -> str:
    """Format spec text; raises CnnError if it does not parse (a formatter never guesses)."""
    module = parse_module(text, path)
    code = [line.split("#", 1)[0] for line in text.splitlines()]
    return Formatter(module, statement_lines(text, module.statements), code).module()


def statement_lines(text: str, statements) -> list[tuple[int, int]]:
    """The first and last line of each statement, counting the lines of brackets around it.

    A body's span is its expression's, which leaves out enclosing parentheses: `(` and `)` on lines
    of their own (as a long conditional is printed) would otherwise count as gaps between
    statements, and a second formatting would add blank lines there.
    """
    code = [line.split("#", 1)[0] for line in text.splitlines()]  # between statements: brackets, comments
    out = []
    for i, s in enumerate(statements):
        prev_end = out[-1][1] if out else 0
        next_start = statements[i + 1].span.line if i + 1 < len(statements) else len(code) + 1
        first = next((n for n in range(prev_end + 1, s.span.line) if "(" in code[n - 1]), s.span.line)
        last = max((n for n in range(s.span.end_line + 1, next_start) if ")" in code[n - 1]), default=s.span.end_line)
        out.append((first, last))
    return out


def precedence(e: ast.Expr) -> int:
    if isinstance(e, ast.Pipe):
        return PIPE
    if isinstance(e, ast.Label):
        return LABEL
    if isinstance(e, ast.Cond):
        return COND
    if isinstance(e, ast.Chain):
        if e.kind == "arith":
            return SUM if any(op in "+-" for op in e.ops) else TERM
        return {"or": OR, "and": AND, "compare": COMPARE}[e.kind]
    if isinstance(e, ast.Unary):
        return NOT if e.op == "not" else UNARY
    if isinstance(e, ast.Power):
        return POWER
    return ATOM


def inline(e: ast.Expr, need: int = COND) -> str:
    """The one-line form of an expression, parenthesised if it binds looser than `need`."""
    text = _inline(e)
    return f"({text})" if precedence(e) < need else text


def _inline(e: ast.Expr) -> str:
    if isinstance(e, ast.Number):
        return e.text
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.String):
        return f'"{e.value}"'
    if isinstance(e, ast.Bool):
        return "true" if e.value else "false"
    if isinstance(e, ast.Call):
        return f"{e.func}({', '.join(_arg(a) for a in e.args)})"
    if isinstance(e, ast.Pipe):
        return " -> ".join(inline(i, LABEL) for i in e.items)
    if isinstance(e, ast.Label):
        return f"{inline(e.expr, OR)} as {e.name}"
    if isinstance(e, ast.Cond):
        then, orelse = branch_needs(e)
        return f"{inline(e.then, then)} if {inline(e.test, OR)} else {inline(e.orelse, orelse)}"
    if isinstance(e, ast.Chain):
        # Operators are printed flat, so a nested chain of the same strength must keep its parentheses:
        # `(a - b) - c` prints as written (same tree), `a - (b - c)` must not become `a - b - c`.
        need = precedence(e) + 1
        parts = [inline(e.first, need)]
        for op, operand in zip(e.ops, e.rest):
            parts += [op, inline(operand, need)]
        return " ".join(parts)
    if isinstance(e, ast.Unary):
        return f"not {inline(e.operand, NOT)}" if e.op == "not" else f"{e.op}{inline(e.operand, UNARY)}"
    if isinstance(e, ast.Power):
        return f"{inline(e.base, ATOM)}**{inline(e.exponent, UNARY)}"
    if isinstance(e, ast.TupleExpr):
        items = [inline(i) for i in e.items]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    if isinstance(e, ast.ListExpr):
        return f"[{', '.join(inline(i) for i in e.items)}]"
    if isinstance(e, ast.Repeat):
        var = f"{e.var}: " if e.var else ""
        return f"[{var}{inline(e.body)}]x{inline(e.count, ATOM)}"
    if isinstance(e, ast.Comprehension):
        return f"[{inline(e.item)} for {e.var} in {inline(e.items)}]"
    if isinstance(e, ast.Index):
        return f"{e.base.id}[{inline(e.index)}]"
    raise AssertionError(type(e))


def branch_needs(e: ast.Cond) -> tuple[int, int]:
    """What the branches of a conditional require: `then` must not be a conditional (the grammar),
    and a chain in either branch gets parentheses (not needed, but no reader has to wonder where it ends)."""
    return LABEL, LABEL if isinstance(e.orelse, ast.Pipe) else COND


def _arg(a: ast.Arg) -> str:
    return inline(a.value) if a.name is None else f"{a.name}={inline(a.value)}"


@dataclass
class Formatter:
    module_ast: ast.Module
    lines: list[tuple[int, int]]  # (first, last) line of each statement
    code: list[str]  # the source lines without their comments
    pending: dict[int, list[ast.Comment]] = field(default_factory=dict)  # line -> comments not yet printed

    def __post_init__(self):
        for c in self.module_ast.comments:  # trailing blanks are the only thing a comment loses
            self.pending.setdefault(c.span.line, []).append(ast.Comment(c.text.rstrip(), c.span))

    # -- comments -------------------------------------------------------------------------
    def take(self, first: int, last: int, own_line_only: bool = False) -> list[ast.Comment]:
        """Remove and return the pending comments on lines first..last."""
        out = []
        for line in sorted(k for k, v in self.pending.items() if v and first <= k <= last):
            out += self.pending.pop(line)
        return out

    def has_comments(self, first: int, last: int) -> bool:
        return any(v and first <= k <= last for k, v in self.pending.items())

    def places_comments(self, e: ast.Expr) -> bool:
        """Would laying `e` over several lines print a pending comment in place?

        Only chains place comments (between their items, or trailing one); other forms reach chains
        through what they lay out over lines. A comment anywhere else is printed above its statement
        whatever the layout, so it must not choose the layout: if it did, the next pass, with the
        comment already moved, would choose another one (fmt would not be idempotent).
        """
        stack = [e]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Pipe):
                for item, nxt in zip(node.items, node.items[1:]):
                    end = self.item_end(item, nxt)
                    if self.has_comments(end + 1, nxt.span.line - 1):
                        return True
                    if nxt.span.line > end and self.has_comments(end, end):
                        return True
                stack.extend(node.items)
            elif isinstance(node, ast.Call):
                stack.extend(a.value for a in node.args)
            elif isinstance(node, ast.Repeat):
                stack.append(node.body)
            elif isinstance(node, ast.Cond):
                stack.extend((node.then, node.orelse))
            elif isinstance(node, ast.Label) and isinstance(node.expr, (ast.Call, ast.Repeat)):
                stack.append(node.expr)  # a labelled chain stays on one line (see layout)
        return False

    # -- statements ------------------------------------------------------------------------
    def module(self) -> str:
        out: list[str] = []
        prev_end = 0
        for s, (first, last) in zip(self.module_ast.statements, self.lines):
            leading = self.take(prev_end + 1, first - 1)
            start = leading[0].span.line if leading else first
            if out and start > prev_end + 1:
                out.append("")
            last_line = prev_end
            for c in leading:
                if out and c.span.line > last_line + 1 and last_line > prev_end:
                    out.append("")
                out.append(c.text)
                last_line = c.span.line
            if leading and first > last_line + 1:
                out.append("")
            body = self.statement(s)
            interior = self.take(first, last)  # comments no layout could place
            trailing = [c for c in interior if c.span.line == last]
            for c in interior:
                if c not in trailing:
                    out.append(c.text)
            if trailing:
                body[-1] += "  " + "  ".join(c.text for c in trailing)
            out += body
            prev_end = last
        tail = self.take(prev_end + 1, 10**9)
        if tail:
            if out and tail[0].span.line > prev_end + 1:
                out.append("")
            out += [c.text for c in tail]
        return "\n".join(out) + "\n" if out else ""

    def statement(self, s: ast.Statement) -> list[str]:
        if isinstance(s, ast.Input):
            return ["input " + "x".join(map(str, s.dims))]
        if isinstance(s, ast.NetworkName):
            return [f"network {s.name}"]
        if isinstance(s, ast.Let):
            lines = self.layout(s.value, 0)
            lines[0] = f"let {s.name} = {lines[0]}"
            return lines
        if isinstance(s, ast.Import):
            target = f'"{s.target}"' if s.is_path else s.target
            if s.names is not None:
                return [f"from {target} import " + ", ".join(n.id for n in s.names)]
            return [f"import {target}"]
        if isinstance(s, ast.TensorDef):
            lines = self.layout(s.expr, 0)
            lines[0] = f"tensor {s.name} = {lines[0]}"
            return lines
        if isinstance(s, ast.Output):
            return ["output " + ", ".join(n.id for n in s.names)]
        if isinstance(s, ast.Expect):
            return [f"expect {s.metric} {s.op} {inline(s.value)}"]
        if isinstance(s, ast.Disable):
            return ["disable " + ", ".join(n.id for n in s.codes)]
        if isinstance(s, ast.Freeze):
            return ["freeze " + ", ".join(n.id for n in s.names)]
        if isinstance(s, ast.BlockDef):
            params = ", ".join(p.name if p.default is None else f"{p.name}={inline(p.default)}" for p in s.params)
            lines = [f"block {s.name}({params}) {{"]
            lines += self.layout(s.body, 1)
            lines.append("}")
            return lines
        if isinstance(s, ast.Body):
            return self.layout(s.expr, 0)
        raise AssertionError(type(s))

    # -- expressions over several lines -----------------------------------------------------
    def layout(self, e: ast.Expr, depth: int, need: int = COND) -> list[str]:
        """The lines of `e` at `depth`, where its context requires a form binding at least as tight as `need`.

        Every path honours `need`, whether `e` fits on one line or not: an expression that binds
        looser than its context is parenthesised (a conditional's own layout always is).
        """
        pad = INDENT * depth
        one = pad + inline(e, need)
        if len(one) <= WIDTH and not self.places_comments(e):
            return [one]
        if isinstance(e, ast.Cond):
            return self.layout_cond(e, depth)
        if precedence(e) < need:
            return [pad + "(", *self.layout(e, depth + 1), pad + ")"]
        if isinstance(e, ast.Pipe):
            return self.layout_pipe(e, depth)
        if isinstance(e, ast.Call) and e.args:
            lines = [f"{pad}{e.func}("]
            for a in e.args:
                sub = self.layout(a.value, depth + 1)
                if a.name is not None:
                    sub[0] = f"{INDENT * (depth + 1)}{a.name}={sub[0].lstrip()}"
                sub[-1] += ","
                lines += sub
            lines.append(pad + ")")
            return lines
        if isinstance(e, (ast.ListExpr, ast.TupleExpr)) and len(e.items) > 1:
            return self.layout_items(e, depth)
        if isinstance(e, ast.Repeat):
            var = f"{e.var}:" if e.var else ""
            return [f"{pad}[{var}", *self.layout(e.body, depth + 1), f"{pad}]x{inline(e.count, ATOM)}"]
        if isinstance(e, ast.Label) and isinstance(e.expr, (ast.Call, ast.Repeat)):
            # Only these split; a labelled chain stays on one line (the shipped specs' canonical form).
            lines = self.layout(e.expr, depth, OR)
            lines[-1] += f" as {e.name}"
            return lines
        return [one]

    def layout_pipe(self, e: ast.Pipe, depth: int) -> list[str]:
        """A chain over several lines, `->` leading each continuation line.

        Layers the author wrote on one line stay on one line while it fits (so
        `conv -> bn -> relu` keeps reading as a unit); a layer that needs several
        lines of its own, or a comment, starts a new line.
        """
        pad = INDENT * depth
        lines: list[str] = []
        group: list[str] = []  # items of the line being built
        prev = None

        def flush():
            if group:
                lines.append(pad + ("-> " if lines else "") + " -> ".join(group))
                group.clear()

        prev_end = 0
        for item, nxt in zip(e.items, [*e.items[1:], None]):
            end = self.item_end(item, nxt)
            if prev is not None:
                between = self.take(prev_end + 1, item.span.line - 1)
                if between:
                    flush()
                    lines.extend(pad + c.text for c in between)
            text = inline(item, LABEL)
            same_line = prev is not None and item.span.line == prev.span.end_line
            fits = len(pad) + 3 + len(" -> ".join([*group, text])) <= WIDTH
            multiline = len(pad) + 3 + len(text) > WIDTH or self.places_comments(item)
            if group and not (same_line and fits and not multiline):
                flush()
            if multiline:
                sub = self.layout(item, depth, LABEL)
                if lines:
                    sub[0] = pad + "-> " + sub[0][len(pad) :]
                lines.extend(sub)
            else:
                group.append(text)
            # A comment ending this item's line trails it only if the next item starts on a later line;
            # otherwise it belongs to whatever ends that line.
            trailing = self.take(end, end) if nxt is not None and nxt.span.line > end else []
            if trailing:
                flush()
                lines[-1] += "  " + "  ".join(c.text for c in trailing)
            prev, prev_end = item, end
        flush()
        return lines

    def item_end(self, item: ast.Expr, nxt: ast.Expr | None) -> int:
        """The last line of a chain item, counting the `)` lines its span leaves out: between two items
        there are only closing brackets (this item's), `->` and opening ones (the next item's)."""
        if nxt is None:
            return item.span.end_line
        closing = [
            n
            for n in range(item.span.end_line + 1, nxt.span.line + 1)
            if ")" in (self.code[n - 1][: nxt.span.column - 1] if n == nxt.span.line else self.code[n - 1])
        ]
        return max([item.span.end_line, *closing])

    def layout_items(self, e: ast.ListExpr | ast.TupleExpr, depth: int) -> list[str]:
        """A long list or tuple: its items packed greedily onto indented lines, each ending in a comma."""
        pad, inner = INDENT * depth, INDENT * (depth + 1)
        open_, close = ("[", "]") if isinstance(e, ast.ListExpr) else ("(", ")")
        lines, line = [pad + open_], ""
        for item in e.items:
            text = inline(item) + ","
            if line and len(inner) + len(line) + 1 + len(text) > WIDTH:
                lines.append(inner + line)
                line = ""
            line = f"{line} {text}" if line else text
        lines += [inner + line, pad + close]
        return lines

    def layout_cond(self, e: ast.Cond, depth: int) -> list[str]:
        """A long conditional, parenthesised so that it may span lines anywhere:

        (
          THEN
          if TEST
          else ELSE
        )
        """
        pad, inner = INDENT * depth, INDENT * (depth + 1)
        then_need, orelse_need = branch_needs(e)
        then = self.layout(e.then, depth + 1, then_need)
        orelse = self.layout(e.orelse, depth + 1, orelse_need)
        orelse[0] = inner + "else " + orelse[0].lstrip()
        return [pad + "(", *then, f"{inner}if {inline(e.test, OR)}", *orelse, pad + ")"]
