"""The pygls server: LSP messages in, cnndsl.lsp.features out. Imported only by `cnndsl lsp`."""

from __future__ import annotations

from lsprotocol import types as t
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from .. import __version__
from ..diagnostics import Diagnostic
from ..source import Span
from .features import Document, completions, definition, hover

server = LanguageServer("cnndsl", __version__)
KINDS = {
    "layer": t.CompletionItemKind.Function,
    "block": t.CompletionItemKind.Class,
    "constant": t.CompletionItemKind.Constant,
    "keyword": t.CompletionItemKind.Keyword,
    "argument": t.CompletionItemKind.Property,
    "module": t.CompletionItemKind.Module,
}


def document(ls: LanguageServer, uri: str) -> Document:
    doc = ls.workspace.get_text_document(uri)
    return Document(to_fs_path(uri) or uri, doc.source)


def to_range(span: Span) -> t.Range:
    end = (span.end_line, span.end_column) if (span.end_line, span.end_column) > (span.line, span.column) else None
    start = t.Position(span.line - 1, span.column - 1)
    return t.Range(start, t.Position(end[0] - 1, end[1] - 1) if end else t.Position(span.line - 1, span.column))


def to_diagnostic(d: Diagnostic, path: str) -> t.Diagnostic:
    here = d.span.file == path
    message = d.message if here else f"{d.span}: {d.message}"  # found in an imported module
    if d.hint:
        message += f"\nhint: {d.hint}"
    related = [
        t.DiagnosticRelatedInformation(
            t.Location(from_fs_path(n.span.file) or n.span.file, to_range(n.span)), n.message
        )
        for n in d.notes
        if n.span.file == path
    ]
    return t.Diagnostic(
        range=to_range(d.span) if here else t.Range(t.Position(0, 0), t.Position(0, 0)),
        message=message,
        severity=t.DiagnosticSeverity.Error if d.severity == "error" else t.DiagnosticSeverity.Warning,
        code=d.code,
        source="cnndsl",
        related_information=related or None,
    )


def publish(ls: LanguageServer, uri: str) -> None:
    doc = document(ls, uri)
    found = [to_diagnostic(d, doc.path) for d in doc.diagnostics]
    ls.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=uri, diagnostics=found))


@server.feature(t.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: LanguageServer, params: t.DidOpenTextDocumentParams) -> None:
    publish(ls, params.text_document.uri)


@server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: LanguageServer, params: t.DidChangeTextDocumentParams) -> None:
    publish(ls, params.text_document.uri)


@server.feature(t.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: LanguageServer, params: t.DidSaveTextDocumentParams) -> None:
    publish(ls, params.text_document.uri)


@server.feature(t.TEXT_DOCUMENT_HOVER)
def on_hover(ls: LanguageServer, params: t.HoverParams) -> t.Hover | None:
    pos = params.position
    text = hover(document(ls, params.text_document.uri), pos.line + 1, pos.character + 1)
    return t.Hover(t.MarkupContent(t.MarkupKind.Markdown, text)) if text else None


@server.feature(t.TEXT_DOCUMENT_DEFINITION)
def on_definition(ls: LanguageServer, params: t.DefinitionParams) -> t.Location | None:
    pos = params.position
    span = definition(document(ls, params.text_document.uri), pos.line + 1, pos.character + 1)
    return t.Location(from_fs_path(span.file) or span.file, to_range(span)) if span else None


@server.feature(t.TEXT_DOCUMENT_COMPLETION, t.CompletionOptions(trigger_characters=["(", ",", " "]))
def on_completion(ls: LanguageServer, params: t.CompletionParams) -> t.CompletionList:
    pos = params.position
    found = completions(document(ls, params.text_document.uri), pos.line + 1, pos.character + 1)
    items = [t.CompletionItem(c.label, kind=KINDS[c.kind], detail=c.detail or None) for c in found]
    return t.CompletionList(is_incomplete=False, items=items)


@server.feature(t.TEXT_DOCUMENT_FORMATTING)
def on_formatting(ls: LanguageServer, params: t.DocumentFormattingParams) -> list[t.TextEdit] | None:
    from ..diagnostics import CnnError
    from ..fmt import format_text

    doc = document(ls, params.text_document.uri)
    try:
        formatted = format_text(doc.text, doc.path)
    except CnnError:  # a spec that does not parse is left as it is; its diagnostics say why
        return None
    if formatted == doc.text:
        return []
    lines = doc.text.split("\n")
    whole = t.Range(t.Position(0, 0), t.Position(len(lines) - 1, len(lines[-1])))
    return [t.TextEdit(whole, formatted)]


def main() -> None:
    server.start_io()
