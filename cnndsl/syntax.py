"""Text → typed AST (cnndsl.ast), with every syntax error turned into a located diagnostic."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lark import PostLex

from . import ast, parser_cache
from .diagnostics import CnnError, error
from .limits import MAX_NESTING, MAX_SOURCE_BYTES
from .source import Span

_OPENERS = {"LPAR", "LSQB", "LBRACE"}
_CLOSERS = {"RPAR", "RSQB", "RBRACE", "REPEAT"}


def grammar_path() -> Path:
    """The grammar ships inside the wheel; in a source checkout it lives in grammars/."""
    packaged = Path(__file__).parent / "grammars" / "cnn.lark"
    return packaged if packaged.exists() else Path(__file__).parent.parent / "grammars" / "cnn.lark"


class _TooDeep(Exception):
    def __init__(self, token: Token):
        self.token = token


class _Newlines(PostLex):
    """Post-lexer: a newline ends a statement except inside brackets or next to `->`.

    It also collapses blank lines and guarantees a final newline, so the grammar
    can say simply `start: (_statement _NL)*`.
    """

    always_accept = ()  # lark's post-lexer interface: terminals the lexer must keep even if unused

    def process(self, stream):
        depth = 0
        pending = None  # a newline we may still drop, if `->` follows it
        last = None
        for tok in stream:
            if tok.type == "_NL":
                if depth == 0 and last is not None and last.type != "ARROW" and pending is None:
                    pending = tok
                continue
            if pending is not None and tok.type != "ARROW":
                yield pending
            pending = None
            if tok.type in _OPENERS:
                depth += 1
                if depth > MAX_NESTING:
                    raise _TooDeep(tok)
            elif tok.type in _CLOSERS:
                depth = max(0, depth - 1)
            last = tok
            yield tok
        if last is not None:
            yield pending if pending is not None else Token.new_borrow_pos("_NL", "\n", last)


def _tok_span(file: str, tok: Token) -> Span:
    return Span(file, tok.line, tok.column, tok.end_line, tok.end_column)


class _Builder(Transformer):
    """Runs inside the LALR parser (no recursion): each rule becomes an AST dataclass at once."""

    def __init__(self, file: str):
        super().__init__()
        self.reset(file)

    def reset(self, file: str) -> None:
        self.file = file
        self.comments: list[ast.Comment] = []
        self.depth: dict[int, int] = {}  # id(node) -> nesting depth, to refuse input that would overflow the stack

    def keep_comment(self, tok: Token) -> Token:
        self.comments.append(ast.Comment(tok.value, _tok_span(self.file, tok)))
        return tok

    # helpers -----------------------------------------------------------------
    def _span(self, children) -> Span:
        first, last = children[0], children[-1]
        a = _tok_span(self.file, first) if isinstance(first, Token) else first.span
        b = _tok_span(self.file, last) if isinstance(last, Token) else last.span
        return a.to(b)

    def _nodes(self, children):
        return [c for c in children if not isinstance(c, Token)]

    def _mark(self, node, children):
        d = 1 + max((self.depth.get(id(c), 0) for c in children if not isinstance(c, Token)), default=0)
        if d > MAX_NESTING * 2:
            raise CnnError(
                [
                    error(
                        "E002",
                        f"expression nested too deeply (more than {MAX_NESTING * 2} levels)",
                        node.span,
                        "split it into named constants or blocks",
                    )
                ]
            )
        self.depth[id(node)] = d
        return node

    # statements ----------------------------------------------------------------
    def start(self, children):
        return [c for c in children if not isinstance(c, Token)]

    def input_stmt(self, c):
        tok = c[1]
        parts = tok.value.split("x")
        if not all(p.isdigit() for p in parts):  # `input 1.5`, `input 5M`, `input 1_000`: NUMBER allows them
            raise CnnError(
                [
                    error(
                        "E109",
                        f"input dimensions are whole numbers, got `{tok.value}`",
                        _tok_span(self.file, tok),
                        "write channels x height x width, e.g. `input 3x224x224`",
                    )
                ]
            )
        if any(len(p.lstrip("0")) > _MAX_DIGITS for p in parts):  # int() would refuse 4,300 digits anyway
            raise CnnError(
                [
                    error(
                        "E109",
                        "an input dimension is absurdly large",
                        _tok_span(self.file, tok),
                        "write channels x height x width, e.g. `input 3x224x224`",
                    )
                ]
            )
        return ast.Input(tuple(int(p) for p in parts), self._span(c))

    def network_stmt(self, c):
        return ast.NetworkName(c[1].value, self._span(c))

    def let_stmt(self, c):
        return ast.Let(c[1].value, c[3], self._span(c))

    def block_def(self, c):
        params = tuple(x for x in c if isinstance(x, ast.Param))
        body = c[-2]
        return ast.BlockDef(c[1].value, params, body, self._span(c))

    def param(self, c):
        default = c[2] if len(c) > 2 else None
        return ast.Param(c[0].value, default, self._span(c))

    def dotted(self, c):
        return ast.Name(".".join(t.value for t in c if t.type == "NAME"), self._span(c))

    def import_stmt(self, c):
        target = c[1]
        if isinstance(target, Token):
            return ast.Import(target.value[1:-1], True, self._span(c))
        return ast.Import(target.id, False, self._span(c))

    def from_import_stmt(self, c):
        target = c[1]
        names = tuple(
            ast.Name(t.value, _tok_span(self.file, t)) for t in c[3:] if isinstance(t, Token) and t.type == "NAME"
        )
        if isinstance(target, Token):
            return ast.Import(target.value[1:-1], True, self._span(c), names)
        return ast.Import(target.id, False, self._span(c), names)

    def tensor_stmt(self, c):
        if c[0].value != "tensor":
            raise CnnError(
                [
                    error(
                        "E001",
                        f"unexpected `{c[1].value}`",
                        _tok_span(self.file, c[1]),
                        "name a tensor with `tensor NAME = ...`",
                    )
                ]
            )
        return ast.TensorDef(c[1].value, c[3], self._span(c), _tok_span(self.file, c[1]))

    def output_stmt(self, c):
        if c[0].value != "output":  # `a b`: two names where one statement was meant
            raise CnnError(
                [error("E001", f"unexpected `{c[1].value}`", _tok_span(self.file, c[1]), "join layers with `->`")]
            )
        return ast.Output(
            tuple(ast.Name(t.value, _tok_span(self.file, t)) for t in c[1:] if t.type == "NAME"), self._span(c)
        )

    def expect_stmt(self, c):
        return ast.Expect(c[1].value, c[2].value, c[3], self._span(c))

    def disable_stmt(self, c):
        return ast.Disable(
            tuple(ast.Name(t.value, _tok_span(self.file, t)) for t in c[1:] if t.type == "NAME"), self._span(c)
        )

    def freeze_stmt(self, c):
        return ast.Freeze(tuple(self._nodes(c)), self._span(c))

    def body_stmt(self, c):
        return ast.Body(c[0], c[0].span)

    # expressions -----------------------------------------------------------------
    def pipe(self, c):
        return self._mark(ast.Pipe(tuple(self._nodes(c)), self._span(c)), c)

    def label(self, c):
        return self._mark(ast.Label(c[0], c[2].value, self._span(c)), c)

    def conditional(self, c):
        return self._mark(ast.Cond(c[0], c[2], c[4], self._span(c)), c)

    def _chain(self, kind, c):
        if len(c) == 1:  # `?rule -> alias` still calls us for a lone child
            return c[0]
        nodes = self._nodes(c)
        ops = tuple(t.value for t in c if isinstance(t, Token))
        return self._mark(ast.Chain(kind, nodes[0], ops, tuple(nodes[1:]), self._span(c)), c)

    def or_(self, c):
        return self._chain("or", c)

    def and_(self, c):
        return self._chain("and", c)

    def compare(self, c):
        return self._chain("compare", c)

    def arith(self, c):
        return self._chain("arith", c)

    def not_(self, c):
        return self._mark(ast.Unary("not", c[1], self._span(c)), c)

    def unary(self, c):
        return self._mark(ast.Unary(c[0].value, c[1], self._span(c)), c)

    def pow(self, c):
        if len(c) == 1:
            return c[0]
        return self._mark(ast.Power(c[0], c[2], self._span(c)), c)

    def number(self, c):
        tok = c[0]
        digits = tok.value.replace("_", "").rstrip("KMG").split(".")[0].split("e")[0].split("E")[0]
        if len(digits.lstrip("0")) > _MAX_DIGITS:  # Python refuses int() of 4,300+ digits; 2**62 has 19
            raise CnnError(
                [
                    error(
                        "E110",
                        f"the number has {len(digits.lstrip('0')):,} digits: integers are limited to 2**62",
                        _tok_span(self.file, tok),
                        "write a smaller number",
                    )
                ]
            )
        return ast.Number(_number(tok), tok.value, self._span(c))

    def name(self, c):
        return ast.Name(c[0].value, self._span(c))

    def string(self, c):
        return ast.String(c[0].value[1:-1], self._span(c))

    def true(self, c):
        return ast.Bool(True, self._span(c))

    def false(self, c):
        return ast.Bool(False, self._span(c))

    def call(self, c):
        args = tuple(x for x in c if isinstance(x, ast.Arg))
        return self._mark(ast.Call(c[0].value, args, _tok_span(self.file, c[0]), self._span(c)), args)

    def group(self, c):
        return c[1]

    def tuple(self, c):
        return self._mark(ast.TupleExpr(tuple(self._nodes(c)), self._span(c)), c)

    def list(self, c):
        return self._mark(ast.ListExpr(tuple(self._nodes(c)), self._span(c)), c)

    def repeat(self, c):
        var = c[1].value if isinstance(c[1], Token) and c[1].type == "NAME" else None
        nodes = self._nodes(c)
        return self._mark(ast.Repeat(var, nodes[0], nodes[1], self._span(c)), c)

    def comprehension(self, c):
        nodes = self._nodes(c)
        var = next(t.value for t in c if isinstance(t, Token) and t.type == "NAME")
        return self._mark(ast.Comprehension(nodes[0], var, nodes[1], self._span(c)), c)

    def index(self, c):
        base = ast.Name(c[0].value, _tok_span(self.file, c[0]))
        return self._mark(ast.Index(base, self._nodes(c)[0], self._span(c)), c)

    def positional(self, c):
        return ast.Arg(None, c[0], c[0].span)

    def keyword(self, c):
        return ast.Arg(c[0].value, c[2], self._span(c))


_SUFFIX = {"K": 10**3, "M": 10**6, "G": 10**9}
# More digits than any value the evaluator accepts (|x| < 2**62 has at most 19), far fewer than
# the 4,300 at which Python's int() raises ValueError; fractions and exponents are floats, unbounded in length.
_MAX_DIGITS = 40


def _number(tok: Token) -> int | float:
    text = tok.value.replace("_", "")
    scale = 1
    if text[-1] in _SUFFIX:
        text, scale = text[:-1], _SUFFIX[text[-1]]
    if any(ch in text for ch in ".eE"):
        value = float(text) * scale
        return int(value) if scale != 1 and value.is_integer() else value
    return int(text) * scale


_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _parser() -> tuple[Lark, _Builder]:
    # The builder runs inside the LALR parser as its callbacks, so building the AST
    # never recurses; it is re-pointed at each file before parsing (under _lock).
    builder = _Builder("<string>")
    grammar = grammar_path().read_bytes()
    runtime = {"transformer": builder, "postlex": _Newlines(), "lexer_callbacks": {"COMMENT": builder.keep_comment}}

    def build() -> Lark:
        return Lark(
            grammar.decode("utf-8"),
            parser="lalr",
            lexer="basic",  # the post-lexer looks one token ahead, which a contextual lexer cannot
            keep_all_tokens=True,
            maybe_placeholders=False,
            **runtime,
        )

    # This file defines the post-lexer and the builder, so its text is part of what shapes the parser.
    key = parser_cache.parser_key(grammar, Path(__file__).read_bytes())
    return parser_cache.load_or_build(key, build, **runtime), builder


def parse_module(text: str, path: str = "<string>") -> ast.Module:
    """Parse spec text; raise CnnError with a located E001/E002 diagnostic on bad syntax."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise CnnError([error("E104", f"spec is larger than {MAX_SOURCE_BYTES // 1024} KiB", Span(path, 1, 1, 1, 1))])
    parser, builder = _parser()
    with _lock:
        builder.reset(path)
        try:
            statements = parser.parse(text)
        except _TooDeep as e:
            raise CnnError(
                [
                    error(
                        "E002",
                        f"brackets nested more than {MAX_NESTING} deep",
                        _tok_span(path, e.token),
                        "flatten the structure with named blocks",
                    )
                ]
            ) from None
        except UnexpectedInput as e:
            raise CnnError([_syntax_diagnostic(e, path)]) from None
        comments = tuple(builder.comments)
    return ast.Module(path, tuple(statements), comments)


_READABLE = {
    "NAME": "a name",
    "NUMBER": "a number",
    "DIMS": "dimensions like 3x224x224",
    "STRING": 'a "string"',
    "_NL": "end of line",
    "$END": "end of file",
    "ARROW": "`->`",
    "REPEAT": "`]x`",
    "COMP_OP": "a comparison",
    "ADD_OP": "`+` or `-`",
    "MUL_OP": "`*`, `/`, `//` or `%`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "COMMA": "`,`",
    "EQUAL": "`=`",
    "COLON": "`:`",
}


def _describe(token_type: str) -> str:
    return _READABLE.get(token_type, f"`{token_type.lower()}`")


def _syntax_diagnostic(e: UnexpectedInput, path: str):
    line, column = max(1, e.line or 1), max(1, e.column or 1)
    if isinstance(e, UnexpectedCharacters):
        ch = e.char
        hint = None
        if ch in "×✕*" and ch != "*":
            hint = "write dimensions with a plain `x`, e.g. `input 3x224x224`"
        elif ch == "'":
            hint = 'strings use double quotes: "blocks.cnn"'
        elif ch == "]" or ch == "x":
            hint = "repeat a chain with `[ ... ]xN`"
        return error("E001", f"unexpected character `{ch}`", Span(path, line, column, line, column + 1), hint)
    if isinstance(e, UnexpectedToken) and e.token.type != "$END":
        tok = e.token
        expected = sorted(e.expected - {"COMMENT"})
        shown = ", ".join(_describe(t) for t in expected[:8]) + (", ..." if len(expected) > 8 else "")
        hint = f"expected {shown}" if expected else None
        if tok.type in ("NAME", "NUMBER", "LSQB", "LPAR") and "RPAR" in expected and "COMMA" in expected:
            hint = "separate arguments with `,`, or close the call with `)`"
        elif tok.type in ("NAME", "LSQB", "LPAR") and "ARROW" in expected:
            hint = "join layers with `->`"
        elif tok.value == "as" and "BLOCK" in expected:  # at the start of a statement
            hint = (
                "a newline ended the statement before `as`: keep `as NAME` on the line of the layer it names, "
                "or end that line with `\\`"
            )
        elif tok.type == "EQUAL" and "COMP_OP" in expected:
            hint = "compare with `==`; `=` only binds constants and keyword arguments"
        value = "end of line" if tok.type == "_NL" else f"`{tok.value}`"
        end = tok.end_column if tok.end_line == tok.line and tok.end_column else column + 1
        return error("E001", f"unexpected {value}", Span(path, line, column, line, end), hint)
    return error(
        "E001",
        "unexpected end of file",
        Span(path, line, column, line, column + 1),
        "a bracket or statement is not closed",
    )
