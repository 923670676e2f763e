"""Diagnostics are values with spans until the CLI prints them.

Every code the compiler can emit is registered in CODES, with a one-line
summary; docs/diagnostics.md and the per-code tests are checked against it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from difflib import get_close_matches

from .source import Source, Span

CODES: dict[str, str] = {
    # Syntax and input
    "E001": "syntax error",
    "E002": "nesting too deep",
    "E003": "cannot read file (missing, not a regular file, not UTF-8)",
    "E004": "import not found or not allowed",
    "E005": "import cycle",
    # Names, arguments, values
    "E101": "unknown name",
    "E102": "bad arguments to a layer or block",
    "E103": "wrong type of value",
    "E104": "value out of range",
    "E105": "recursive block",
    "E106": "duplicate definition",
    "E107": "expansion limit exceeded",
    "E108": "missing or repeated network body, or bad `output` list",
    "E109": "missing or bad input shape",
    "E110": "arithmetic error",
    "E112": "name unusable in generated code (Python keyword, nn.Module attribute)",
    "E113": "a layer's result reaches no output",
    # Shapes
    "E201": "spatial size below 1",
    "E202": "channel mismatch at a merge",
    "E203": "spatial mismatch at a merge",
    "E204": "groups do not divide channels",
    "E205": "layer needs a feature map, got a flat vector",
    "E206": "invalid padding",
    "E207": "tensor too large",
    "E208": "bad connection table",
    "E209": "bad channel slice",
    "E210": "bad upsampling arguments",
    "E211": "crop larger than its input",
    # Warnings
    "W301": "fc flattens a feature map implicitly",
    "W302": "receptive fields of merged branches are misaligned",
    "W303": "unknown code in `disable`",
    "W304": "expectations not checked at an overridden input shape",
    "W305": "dwconv's channel multiplier equals its input channels (meant the output width?)",
    # Expectations and budgets (cnndsl/analysis/expect.py)
    "E401": "expectation failed",
    "E402": "unknown expectation metric",
    "E403": "bad expectation value",
    "E404": "budget exceeded",
    # Lint rules (cnndsl/analysis/lint.py; rationale in docs/lint.md)
    "L001": "one fc layer holds most of the parameters",
    "L002": "receptive field smaller than the input at the classifier head",
    "L003": "bias immediately before batch norm",
    "L004": "pooling or striding silently drops rows or columns",
    "L005": "stride larger than kernel: pixels never seen",
    "L006": "softmax not at the end of the network",
    "L007": "a layer whose output is never used",
    "L008": "a merge takes the same branch twice",
}


@dataclass(frozen=True, slots=True)
class Note:
    """A secondary location that explains a diagnostic (e.g. where the other shape came from)."""

    span: Span
    message: str


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: str  # "error" | "warning" | "note"
    code: str
    message: str
    span: Span
    hint: str | None = None
    notes: tuple[Note, ...] = field(default=())

    def to_json(self) -> dict:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.span.file,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "hint": self.hint,
        }


class CnnError(Exception):
    """Raised by the library when a spec cannot be compiled; carries every diagnostic found."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(f"{d.span}: {d.severity}[{d.code}]: {d.message}" for d in self.diagnostics))


def error(code: str, message: str, span: Span, hint: str | None = None, notes=()) -> Diagnostic:
    assert code in CODES, code
    return Diagnostic("error", code, message, span, hint, tuple(notes))


def warning(code: str, message: str, span: Span, hint: str | None = None, notes=()) -> Diagnostic:
    assert code in CODES, code
    return Diagnostic("warning", code, message, span, hint, tuple(notes))


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    matches = get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    if not matches:
        return None
    return "did you mean " + " or ".join(f"`{m}`" for m in matches) + "?"


def render(diag: Diagnostic, sources: dict[str, Source]) -> str:
    """`file:line:col: error[CODE]: message`, the source line with a caret, then hint and notes."""
    out = [f"{diag.span}: {diag.severity}[{diag.code}]: {diag.message}"]
    out += _excerpt(diag.span, sources)
    for note in diag.notes:
        out.append(f"  note: {note.span}: {note.message}")
        out += _excerpt(note.span, sources)
    if diag.hint:
        out.append(f"  = hint: {diag.hint}")
    return "\n".join(out)


def _excerpt(span: Span, sources: dict[str, Source]) -> list[str]:
    source = sources.get(span.file)
    if source is None:
        return []
    # One visible character per control character: the caret stays aligned, and no raw NUL,
    # escape sequence or carriage return from the spec reaches the terminal or the CI log.
    text = "".join(
        " " if ch == "\t" else "\ufffd" if ord(ch) < 32 or ord(ch) == 127 else ch for ch in source.line_text(span.line)
    )
    if not text.strip():
        return []
    width = 1
    if span.end_line == span.line and span.end_column > span.column:
        width = span.end_column - span.column
    gutter = f"{span.line:>4} | "
    caret = (
        " " * (len(gutter) - 2) + "| " + " " * (span.column - 1) + "^" * max(1, min(width, len(text) - span.column + 1))
    )
    return [gutter + text, caret]
