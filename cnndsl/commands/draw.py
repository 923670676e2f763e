"""`cnndsl draw`: the network as a diagram (SVG, PNG or Graphviz DOT), blocks collapsed to a chosen depth."""

from __future__ import annotations

import sys

from ..cli import EXIT_ERROR, EXIT_OK, add_spec_options, command, compile_spec, print_diagnostics


def _setup(p):
    p.add_argument("spec", metavar="SPEC", help=".cnn file")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default: SPEC's name with the format's suffix)")
    p.add_argument("--format", choices=("svg", "png", "dot"), help="default: from -o's suffix, else svg")
    p.add_argument(
        "--depth",
        type=int,
        metavar="N",
        help="name levels shown before a block becomes one box (default: the deepest that fits a page, at most 60 boxes)",
    )
    p.add_argument("--costs", action="store_true", help="parameters and MACs in every box")
    add_spec_options(p)


@command("draw", "draw the network as a diagram (SVG, PNG or Graphviz DOT), blocks collapsed to --depth", _setup)
def draw(args) -> int:
    from pathlib import Path

    fmt = args.format or (Path(args.output).suffix.lstrip(".").lower() if args.output else "svg")
    if fmt not in ("svg", "png", "dot"):
        print(f"cnndsl: error: cannot tell the format from {args.output!r}: give --format svg|png|dot", file=sys.stderr)
        return EXIT_ERROR
    if args.depth is not None and args.depth < 1:
        print("cnndsl: error: --depth must be at least 1", file=sys.stderr)
        return EXIT_ERROR
    r = compile_spec(args.spec, args)
    print_diagnostics(r)
    if r.network is None:
        return EXIT_ERROR
    from ..draw import LayoutUnavailable, draw

    try:
        data = draw(r.network, args.depth, args.costs, fmt)
    except LayoutUnavailable as e:
        print(f"{args.spec}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    output = args.output or str(Path(args.spec).with_suffix("." + fmt).name)
    if output == "-":
        sys.stdout.buffer.write(data)
        return EXIT_OK
    from ..files import write_atomic

    try:
        write_atomic(output, data)
    except OSError as e:
        print(f"cnndsl: error: cannot write {output}: {e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote {output}", file=sys.stderr)
    return EXIT_OK
