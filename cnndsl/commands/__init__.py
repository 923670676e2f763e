"""One module per `cnndsl` subcommand; each registers itself with cli.command.

A module is imported only to declare its arguments: commands import their
heavy dependencies (torch, numba) inside the function that runs them.
"""

import importlib

MODULES = ["check", "lint", "fmt", "expand", "compile", "verify", "train", "draw", "lsp", "import_"]


def load_all() -> None:
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
