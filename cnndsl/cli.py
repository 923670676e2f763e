"""The `cnndsl` command. Thin: parse arguments, call the library, print.

Commands import what they need when they run, so `cnndsl check` never loads
torch or numba and starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2

COMMANDS: dict[str, tuple[Callable, Callable, str]] = {}


def command(name: str, help: str, setup: Callable[[argparse.ArgumentParser], None]):
    """Register `fn(args) -> exit code` as a subcommand; `setup` declares its arguments."""

    def deco(fn):
        COMMANDS[name] = (setup, fn, help)
        return fn

    return deco


def parse_dims(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CxHxW, e.g. 3x224x224, got {text!r}") from None
    from .frontend import check_input_dims

    problem = check_input_dims(dims)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return dims


def add_spec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=parse_dims, metavar="CxHxW", help="set or override the spec's input shape")
    p.add_argument("--max-nodes", type=int, default=None, metavar="N", help="expansion limit (default 100000)")


def compile_spec(path: str, args):
    from .frontend import compile_file
    from .limits import MAX_NODES

    return compile_file(path, getattr(args, "input", None), getattr(args, "max_nodes", None) or MAX_NODES)


def print_diagnostics(result, stream=None) -> None:
    from .diagnostics import render

    stream = stream or sys.stderr
    for d in result.diagnostics:
        print(render(d, result.sources), file=stream)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .commands import load_all

    load_all()

    parser = argparse.ArgumentParser(
        prog="cnndsl", description="A language for convolutional networks, and its compiler."
    )
    parser.add_argument("--version", action="version", version=f"cnndsl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (setup, _, help) in COMMANDS.items():
        setup(sub.add_parser(name, help=help, description=help))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _, fn, _ = COMMANDS[args.command]
    try:
        return fn(args)
    except KeyboardInterrupt:
        print("cnndsl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # a bug in cnndsl, never the user's fault: say so without a traceback
        print(
            f"cnndsl: internal error: {type(e).__name__}: {e}\n"
            "  this is a bug in cnndsl; please report it with the spec that caused it "
            "(set CNNDSL_TRACEBACK=1 to see the traceback)",
            file=sys.stderr,
        )
        import os

        if os.environ.get("CNNDSL_TRACEBACK"):
            raise
        return 3


def entry() -> None:
    sys.exit(main())


def dump_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")
