"""`cnndsl check`: the shape, parameters, MACs, memory and receptive field of every layer, or precise errors."""

from __future__ import annotations

import argparse

from ..cli import add_spec_options, command, compile_spec, dump_json, print_diagnostics


def amount(text: str):
    from ..analysis.expect import parse_amount

    try:
        return parse_amount(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 25M, 5G or 1.5e6, got {text!r}") from None


def add_budget_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("budgets (exit 1 when exceeded)")
    g.add_argument("--max-params", type=amount, metavar="N", help="most parameters, e.g. 25M")
    g.add_argument("--max-macs", type=amount, metavar="N", help="most multiply-accumulates per sample, e.g. 5G")
    g.add_argument("--min-rf", type=amount, metavar="PIXELS", help="least receptive-field size of the output")
    g.add_argument(
        "--max-activation-mb",
        type=amount,
        metavar="MB",
        help="most activation memory per sample (all fp32 outputs, 10^6 bytes)",
    )


def budgets(args) -> dict:
    return {k: getattr(args, k, None) for k in ("max_params", "max_macs", "min_rf", "max_activation_mb")}


def _setup_check(p):
    p.add_argument("specs", nargs="+", metavar="SPEC", help=".cnn file(s)")
    add_spec_options(p)
    p.add_argument("--format", choices=("text", "json"), default="text")
    add_budget_options(p)


@command(
    "check", "show every layer's shape, parameters, MACs, memory and receptive field, or precise errors", _setup_check
)
def check(args) -> int:
    from ..analysis.figures import Figures
    from ..analysis.judge import exit_code, judge
    from ..report import network_json, text_table

    codes, objs = [], []
    for i, path in enumerate(args.specs):
        r = compile_spec(path, args)
        fig = Figures(r.network) if r.network is not None else None
        if fig is not None:
            r.diagnostics.extend(judge(fig, budgets(args)))
        codes.append(exit_code(r.diagnostics))
        if args.format == "json":
            objs.append(network_json(r.network, r.diagnostics, path, fig))
            continue
        print_diagnostics(r)
        if fig is not None:
            if i:
                print()
            print(text_table(r.network, fig))
    if args.format == "json":
        dump_json(objs[0] if len(objs) == 1 else objs)
    return max(codes)
