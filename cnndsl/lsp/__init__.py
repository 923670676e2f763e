"""`cnndsl lsp`: a language server over stdio. features.py answers in cnndsl's own terms (spans, diagnostics,
figures) and imports no LSP library; server.py (pygls) only translates to and from the protocol."""
