"""`cnndsl lint PATH...`: check, judge and lint every `.cnn` file under the paths, for people or for CI."""

from __future__ import annotations

import os

from ..cli import EXIT_ERROR, add_spec_options, command, compile_spec
from .check import add_budget_options, budgets


def _setup_lint(p):
    p.add_argument("paths", nargs="+", metavar="PATH", help=".cnn files or directories (searched recursively)")
    p.add_argument("--format", choices=("text", "json", "github", "sarif"), default="text")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report here instead of stdout (atomically)")
    p.add_argument(
        "--disable", default="", metavar="L003,L004", help="lint codes to turn off (adds to `disable` in specs)"
    )
    p.add_argument("--strict", action="store_true", help="exit 1 on lint warnings too")
    add_spec_options(p)
    add_budget_options(p)


def spec_files(paths: list[str]) -> list[str]:
    """The files named, and every `.cnn` file under the directories named, in a stable order."""
    out = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out += [os.path.join(root, f) for f in sorted(files) if f.endswith(".cnn")]
        else:
            out.append(path)  # a missing file is reported by the front end (E003)
    return out


@command(
    "lint", "lint .cnn files (and directories of them) for CI: text, JSON, GitHub annotations or SARIF", _setup_lint
)
def lint(args) -> int:
    import sys

    from .. import __version__
    from ..analysis.figures import Figures
    from ..analysis.judge import exit_code, judge
    from ..cli import print_diagnostics

    disabled = frozenset(c.strip().upper() for c in args.disable.split(",") if c.strip())
    files = spec_files(args.paths)
    results, codes, objs = [], [], []
    for path in files:
        r = compile_spec(path, args)
        fig = Figures(r.network) if r.network is not None else None
        if fig is not None:
            r.diagnostics.extend(judge(fig, budgets(args), run_lint=True, disabled=disabled))
        code = exit_code(r.diagnostics)
        if args.strict and code == 0 and any(d.severity == "warning" for d in r.diagnostics):
            code = 1
        codes.append(code)
        results.append(r)
        if args.format == "json":
            from ..report import network_json

            objs.append(network_json(r.network, r.diagnostics, path, fig))
    every = [d for r in results for d in r.diagnostics]
    if args.format == "text":
        import io

        buf = io.StringIO()
        for r in results:
            print_diagnostics(r, buf)
        errors = sum(d.severity == "error" for d in every)
        warnings = sum(d.severity == "warning" for d in every)
        buf.write(f"{len(files)} file(s): {errors} error(s), {warnings} warning(s)\n")
        text = buf.getvalue()
    elif args.format == "json":
        import json

        text = json.dumps(objs, indent=2) + "\n"
    elif args.format == "github":
        from ..ci_formats import github_annotations

        text = github_annotations(every)
    else:
        import json

        from ..ci_formats import sarif

        text = json.dumps(sarif(every, __version__), indent=2) + "\n"
    if args.output:
        from ..backends import write_atomic

        try:
            write_atomic(args.output, text)
        except OSError as e:  # a missing folder or a read-only file is the user's to fix, not a crash
            print(f"cnndsl: error: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
            return EXIT_ERROR
    else:
        (sys.stderr if args.format == "text" else sys.stdout).write(text)
    return max(codes, default=0)
