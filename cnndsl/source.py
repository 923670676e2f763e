"""Source text and spans: every diagnostic and every IR node points back here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A region of one source file; lines and columns count from 1."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def to(self, other: Span) -> Span:
        """The span from the start of self to the end of other."""
        return Span(self.file, self.line, self.column, other.end_line, other.end_column)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


UNKNOWN_SPAN = Span("<unknown>", 1, 1, 1, 1)


@dataclass(frozen=True, slots=True)
class Source:
    """A spec's text and the name it is reported under."""

    path: str
    text: str

    def line_text(self, line: int) -> str:
        # Split on "\n" only, as the lexer counts lines: str.splitlines would also split on
        # form feeds, U+2028 and others, and quote the wrong line for everything after one.
        lines = self.text.split("\n")
        return lines[line - 1].removesuffix("\r") if 0 < line <= len(lines) else ""
