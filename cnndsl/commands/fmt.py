"""`cnndsl fmt`: rewrite specs in canonical form, or `--check` that they already are."""

from __future__ import annotations

import sys

from ..cli import EXIT_ERROR, EXIT_FAILED, EXIT_OK, command


def _setup(p):
    p.add_argument(
        "specs", nargs="+", metavar="SPEC", help=".cnn files to format in place ('-' reads stdin, writes stdout)"
    )
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if any file is not formatted")


@command("fmt", "format specs canonically (comments kept)", _setup)
def fmt(args) -> int:
    from ..backends import write_atomic
    from ..diagnostics import CnnError, render
    from ..files import strip_bom
    from ..fmt import format_text
    from ..frontend import read_spec
    from ..modules import not_a_spec, quotable
    from ..source import Source

    status = EXIT_OK
    for path in args.specs:
        text = None
        try:
            text = strip_bom(sys.stdin.read()) if path == "-" else read_spec(path)
            formatted = format_text(text, path)
        except CnnError as e:
            diagnostics = list(e.diagnostics)
            if text is not None and not quotable(path):  # never echo a file that is not a spec
                diagnostics = [not_a_spec(path, diagnostics[0], None)]
            sources = {path: Source(path, text)} if text is not None and quotable(path) else {}
            for d in diagnostics:
                print(render(d, sources), file=sys.stderr)
            status = EXIT_ERROR
            continue
        if path == "-":
            sys.stdout.write(formatted)
        elif formatted != text:
            if args.check:
                print(f"would reformat {path}", file=sys.stderr)
                status = max(status, EXIT_FAILED)
            else:
                write_atomic(path, formatted)
                print(f"reformatted {path}", file=sys.stderr)
    return status
