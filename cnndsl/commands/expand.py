"""`cnndsl expand`: print the fully expanded chain of primitives (itself a valid spec)."""

from __future__ import annotations

import sys

from ..cli import EXIT_ERROR, EXIT_OK, add_spec_options, command, compile_spec, print_diagnostics


def _setup(p):
    p.add_argument("spec", metavar="SPEC", help="a .cnn file")
    add_spec_options(p)


@command("expand", "print the fully expanded primitive chain", _setup)
def expand(args) -> int:
    from ..expand import expand as render_expanded

    result = compile_spec(args.spec, args)
    print_diagnostics(result)
    if result.network is None:
        return EXIT_ERROR
    if len(result.network.outputs) > 1:  # one chain cannot say it; printing the first output's would drop the rest
        print(
            f"cnndsl: error: `expand` prints one chain, and {args.spec} has {len(result.network.outputs)} outputs; "
            "use `cnndsl check` to see every layer",
            file=sys.stderr,
        )
        return EXIT_ERROR
    sys.stdout.write(render_expanded(result.network))
    return EXIT_OK
