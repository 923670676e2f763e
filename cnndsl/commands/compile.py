"""`cnndsl compile`: a spec to the source of a standalone Python module for one backend."""

from __future__ import annotations

import sys

from ..cli import EXIT_ERROR, EXIT_OK, add_spec_options, command, compile_spec, print_diagnostics

BACKEND_NAMES = ("torch", "numba", "cuda")


def _setup(p):
    p.add_argument("spec", metavar="SPEC", help=".cnn file")
    p.add_argument("--backend", required=True, metavar="|".join(BACKEND_NAMES), help="which backend renders the module")
    p.add_argument("-o", "--output", metavar="FILE", help="write the module here (atomically) instead of to stdout")
    add_spec_options(p)


@command("compile", "generate a standalone Python module (torch, numba or cuda) from a spec", _setup)
def compile_(args) -> int:
    from ..backends import BACKENDS, BackendError, render, write_atomic
    from ..diagnostics import CnnError
    from ..diagnostics import render as render_diagnostic

    if args.backend not in BACKENDS:
        print(f"cnndsl: error: unknown backend {args.backend!r}; choose one of {', '.join(BACKENDS)}", file=sys.stderr)
        return EXIT_ERROR
    result = compile_spec(args.spec, args)
    print_diagnostics(result)
    if result.errors:
        return EXIT_ERROR
    try:
        source = render(result.network, args.backend)
    except CnnError as e:  # the IR is valid but this backend cannot express part of it (e.g. E112)
        for d in e.diagnostics:
            print(render_diagnostic(d, result.sources), file=sys.stderr)
        return EXIT_ERROR
    except (BackendError, ImportError) as e:
        print(f"cnndsl: error: the {args.backend} backend is not available: {e}", file=sys.stderr)
        return EXIT_ERROR
    if args.output is None:
        sys.stdout.write(source)
        return EXIT_OK
    try:
        write_atomic(args.output, source)
    except OSError as e:
        print(f"cnndsl: error: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote {args.output} ({args.backend} backend, network {result.network.name})", file=sys.stderr)
    return EXIT_OK
