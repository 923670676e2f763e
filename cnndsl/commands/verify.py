"""`cnndsl verify`: every available backend computes the same function on the same weights and inputs."""

from __future__ import annotations

import sys
from itertools import combinations

from ..cli import EXIT_ERROR, EXIT_FAILED, EXIT_OK, add_spec_options, command, compile_spec, print_diagnostics

ALL = ("torch", "numba", "cuda")


def _setup(p):
    p.add_argument("spec", metavar="SPEC", help=".cnn file")
    p.add_argument(
        "--backends",
        metavar="LIST",
        default=None,
        help="comma-separated backends to compare (default: every available one of torch,numba,cuda); "
        "`reference`, the slow numpy oracle, always takes part",
    )
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="random weight/input draws (default 3)")
    p.add_argument("--batch", type=int, default=2, metavar="N", help="inputs per draw (default 2)")
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--atol", type=float, default=1e-5)
    add_spec_options(p)


def _reference(network):
    from .. import reference

    return lambda weights, x: reference.run(network, weights, x)


def _torch(network):
    import numpy as np
    import torch

    from ..backends import build

    model = build(network, "torch", train=False)

    def run(weights, x):
        model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
        with torch.no_grad():
            y = model(torch.from_numpy(x))
        return tuple(t.numpy() for t in y) if isinstance(y, tuple) else y.numpy()

    return run


def _numpy_api(backend):
    def make(network):
        from ..backends import build

        model = build(network, backend)

        def run(weights, x):
            model.load_state_dict(weights)
            return model(x)

        return run

    return make


RUNNERS = {"reference": _reference, "torch": _torch, "numba": _numpy_api("numba"), "cuda": _numpy_api("cuda")}


def compare(a, b, rtol: float, atol: float) -> tuple[float, float, bool]:
    """Max absolute error, max relative error (where |b| > atol), and whether |a - b| <= atol + rtol * |b| holds.
    For a network with several outputs `a` and `b` are tuples: the worst over the outputs, every one compared."""
    import numpy as np

    if isinstance(a, tuple) or isinstance(b, tuple):
        if not (isinstance(a, tuple) and isinstance(b, tuple)) or len(a) != len(b):
            return float("inf"), float("inf"), False
        each = [compare(i, j, rtol, atol) for i, j in zip(a, b)]
        return max(e[0] for e in each), max(e[1] for e in each), all(e[2] for e in each)

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf"), float("inf"), False
    diff = np.abs(a - b)
    big = np.abs(b) > atol
    rel = float((diff[big] / np.abs(b[big])).max()) if big.any() else 0.0
    ok = bool(np.all(diff <= atol + rtol * np.abs(b))) and bool(np.isfinite(a).all() == np.isfinite(b).all())
    return float(diff.max()) if diff.size else 0.0, rel, ok


@command("verify", "check that every available backend computes the same function (max abs/rel error per pair)", _setup)
def verify(args) -> int:
    import numpy as np

    result = compile_spec(args.spec, args)
    print_diagnostics(result)
    if result.errors:
        return EXIT_ERROR
    network = result.network
    explicit = args.backends is not None
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()] if explicit else list(ALL)
    unknown = [b for b in wanted if b not in RUNNERS]
    if unknown:
        print(f"cnndsl: error: unknown backend(s) {', '.join(unknown)}; choose from {', '.join(ALL)}", file=sys.stderr)
        return EXIT_ERROR
    if args.seeds < 1 or args.batch < 1:
        print("cnndsl: error: --seeds and --batch must be at least 1", file=sys.stderr)
        return EXIT_ERROR
    runners, missing = {"reference": RUNNERS["reference"](network)}, []
    for name in dict.fromkeys(wanted):
        if name == "reference":
            continue
        try:
            runners[name] = RUNNERS[name](network)
        except Exception as e:  # not installed, no GPU, or not merged yet: say which and why
            reason = f"{type(e).__name__}: {e}".splitlines()[0]
            print(
                f"{'error' if explicit else 'note'}: backend {name} is not available here ({reason})", file=sys.stderr
            )
            missing.append(name)
    if explicit and missing:
        return EXIT_ERROR
    if len(runners) < 2:
        print("cnndsl: error: no backend to compare with the reference", file=sys.stderr)
        return EXIT_ERROR
    print(
        f"{network.name}: {', '.join(runners)} on {args.seeds} seed(s), batch {args.batch}, "
        f"rtol {args.rtol:g}, atol {args.atol:g}"
    )
    from ..reference import random_weights

    failed = False
    for seed in range(args.seeds):
        weights = random_weights(network, seed)
        x = np.random.default_rng(10_000 + seed).standard_normal((args.batch, *network.input_shape)).astype(np.float32)
        outputs = {}
        for name, run in runners.items():
            try:
                outputs[name] = run(weights, x)
            except Exception as e:
                print(f"seed {seed}  {name}: failed to run ({type(e).__name__}: {e})")
                failed = True
        for a, b in combinations(outputs, 2):
            # the second of a pair is the one it is judged against: the reference when it takes part
            first, second = (b, a) if a == "reference" else (a, b)
            abs_err, rel_err, ok = compare(outputs[first], outputs[second], args.rtol, args.atol)
            failed |= not ok
            print(
                f"seed {seed}  {first:>9} vs {second:<9}  max abs {abs_err:.3e}  max rel {rel_err:.3e}  "
                f"{'ok' if ok else 'MISMATCH'}"
            )
    print("FAILED: outputs differ beyond tolerance" if failed else "all backends agree")
    return EXIT_FAILED if failed else EXIT_OK
