"""`cnndsl lsp`: the language server, over stdio (for editors: diagnostics, hover, definitions, completion,
formatting). Needs the `lsp` extra (pygls)."""

from __future__ import annotations

import sys

from ..cli import EXIT_ERROR, EXIT_OK, command


def _setup(p):
    p.add_argument("--stdio", action="store_true", help="speak over stdin and stdout (the default and only way)")


@command(
    "lsp", "run the language server over stdio (diagnostics, hover, go-to-definition, completion, formatting)", _setup
)
def lsp(args) -> int:
    try:
        from ..lsp.server import main
    except ImportError as e:
        print(f"cnndsl: error: the language server needs pygls ({e}): pip install 'cnndsl[lsp]'", file=sys.stderr)
        return EXIT_ERROR
    main()
    return EXIT_OK
