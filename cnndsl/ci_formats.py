"""Diagnostics for CI: GitHub Actions workflow annotations and SARIF 2.1.0 for code scanning."""

from __future__ import annotations

import os
from collections.abc import Iterable

from .diagnostics import CODES, Diagnostic

DOCS = "https://github.com/cnndsl/cnndsl/blob/main/docs"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def github_annotations(diagnostics: Iterable[Diagnostic]) -> str:
    """One `::error file=…,line=…,col=…::…` workflow command per diagnostic (notes become `::notice`)."""
    lines = []
    for d in diagnostics:
        kind = {"error": "error", "warning": "warning"}.get(d.severity, "notice")
        s = d.span
        props = (
            f"file={_escape_property(s.file)},line={s.line},col={s.column},endLine={s.end_line},"
            f"endColumn={s.end_column},title={_escape_property(f'cnndsl {d.code}')}"
        )
        message = d.message + (f" ({d.hint})" if d.hint else "")
        lines.append(f"::{kind} {props}::{_escape_data(f'{d.code}: {message}')}")
    return "\n".join(lines) + ("\n" if lines else "")


def _help_uri(code: str) -> str:
    return f"{DOCS}/lint.md#{code.lower()}" if code.startswith("L") else f"{DOCS}/diagnostics.md#{code.lower()}"


def _level(code: str) -> str:
    if code.startswith("L"):
        from .analysis.lint import RULES

        return RULES[code].severity
    return "error" if code.startswith("E") else "warning"


def _uri(path: str) -> str:
    """A relative URI reference (SARIF resolves it against the checkout); `<std>/x.cnn` is percent-encoded."""
    from urllib.parse import quote

    rel = os.path.relpath(path) if os.path.isabs(path) else path
    return quote(rel.replace(os.sep, "/"), safe="/")


def sarif(diagnostics: Iterable[Diagnostic], version: str) -> dict:
    """A SARIF 2.1.0 log with one run; every code cnndsl can emit is described in the driver's rules."""
    codes = sorted(CODES)
    index = {c: i for i, c in enumerate(codes)}
    rules = [
        {
            "id": c,
            "name": "".join(w.capitalize() for w in CODES[c].replace("`", "").replace(":", "").split()[:8]),
            "shortDescription": {"text": CODES[c]},
            "helpUri": _help_uri(c),
            "defaultConfiguration": {"level": _level(c)},
        }
        for c in codes
    ]
    results = []
    for d in diagnostics:
        s = d.span
        text = d.message + (f"\nhint: {d.hint}" if d.hint else "")
        result = {
            "ruleId": d.code,
            "level": {"error": "error", "warning": "warning"}.get(d.severity, "note"),
            "message": {"text": text},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(s.file)},
                        "region": {
                            "startLine": s.line,
                            "startColumn": s.column,
                            "endLine": max(s.end_line, s.line),
                            "endColumn": max(s.end_column, s.column + 1) if s.end_line <= s.line else s.end_column,
                        },
                    }
                }
            ],
        }
        if d.code in index:
            result["ruleIndex"] = index[d.code]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "cnndsl",
                        "version": version,
                        "informationUri": f"{DOCS}/analysis.md",
                        "rules": rules,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
