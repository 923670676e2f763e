"""`cnndsl check`: the shape of every layer, or precise errors."""

from __future__ import annotations

import sys

from ..cli import EXIT_ERROR, EXIT_OK, add_spec_options, command, compile_spec, dump_json, print_diagnostics


def _specs(p, several=True):
    p.add_argument("specs", nargs="+" if several else None, metavar="SPEC", help=".cnn file(s)")
    add_spec_options(p)


def _setup_check(p):
    _specs(p)
    p.add_argument("--format", choices=("text", "json"), default="text")


@command("check", "show every layer's shape and parameters, or precise errors", _setup_check)
def check(args) -> int:
    from ..report import network_json, text_table

    results = [(path, compile_spec(path, args)) for path in args.specs]
    if args.format == "json":
        objs = [network_json(r.network, r.diagnostics, path) for path, r in results]
        dump_json(objs[0] if len(objs) == 1 else objs)
    else:
        for i, (path, r) in enumerate(results):
            print_diagnostics(r)
            if r.network is not None:
                if i:
                    print()
                print(text_table(r.network))
    return EXIT_ERROR if any(r.errors for _, r in results) else EXIT_OK
