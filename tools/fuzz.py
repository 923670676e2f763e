"""Fuzz the front end, analysis and formatter with mutated copies of the spec library.

    python tools/fuzz.py --cases 100000 --jobs 2          # the run recorded in tools/README.md
    python tools/fuzz.py --case 31337                     # replay one case: print its text and outcome

Each case takes a spec from specs/ or the standard library, applies one to four random mutations (token
edits, extreme numbers, reserved names, hostile fragments, lines spliced from other specs, wrapping in
parentheses, repeats or conditionals), and runs what `cnndsl check` and `cnndsl fmt` run, in process:
compile, figures, lint, the table, JSON, every diagnostic rendered; then the formatter, which must be
idempotent and must not change the network (same nodes, ops, attributes, shapes, output) or turn an
invalid spec into a valid one. A case fails on any exception (an internal error: exit 3 in the CLI) or a
formatter violation. Cases are numbered and seeded by number, so every failure can be replayed.

Prints cases, failures by kind, the slowest case and the peak memory (max RSS of a worker).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import sys
import tempfile
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnndsl.analysis.figures import Figures  # noqa: E402
from cnndsl.analysis.lint import lint  # noqa: E402
from cnndsl.diagnostics import CnnError, render  # noqa: E402
from cnndsl.fmt import format_text  # noqa: E402
from cnndsl.frontend import compile_text  # noqa: E402
from cnndsl.report import network_json, text_table  # noqa: E402

CORPUS = sorted([*ROOT.glob("specs/*.cnn"), *ROOT.glob("cnndsl/stdlib/*.cnn")])
TOKEN = re.compile(r"\s+|[A-Za-z_][A-Za-z0-9_]*|\d[\d_.]*[eE]?[+-]?\d*[KMG]?|->|\*\*|//|==|!=|<=|>=|\]x|.", re.S)
NUMBERS = ["0", "-1", "1", "2", "3", "1.5", "5M", "0.0", "1e308", "4611686018427387903", "9" * 50, "7_7", "65537"]
NAMES = [
    "identity", "relu", "in_channels", "in_height", "class", "state_dict", "_x", "input", "network", "x",
    "conv999999999999", "maxpool0", "make_divisible", "max", "round", "residual", "concat", "add", "mul",
    "gap", "fc", "bn", "flatten", "softmax", "dropout", "if", "else", "true", "false", "not", "and", "or",
]  # fmt: skip
FRAGMENTS = [
    "]x4611686018427387903", "[identity]x1000000000", "[[relu]x0]x1000000000000", "(", ")", "[", "]x3",
    " if true else ", " as class", " as state_dict", " -> ", "\n", "\ufeff", "\x00", "import \"/proc/self/environ\"\n",
    "import \"/dev/zero\"\n", "import \"../x.cnn\"\n", "import resnet\n", "network a\nnetwork b\n", "input 1.5\n",
    "input 5M\n", "make_divisible(7, 0)", "0.5 ** -10000", "2 ** 2 ** 2 ** 2 ** 2", "relu(3, x=2)", "identity(3)",
    "let k = 3\n", "block b(c) = conv3x3(c) -> relu\n", "expect params == 1\n", "freeze x\n", "# comment\n",
    "residual(conv3x3(in_channels) -> bn)", "concat(relu, relu)", "[i: conv3x3(i + 1)]x3",
    "tensor t = relu\n", "tensor t = t -> relu\n", "output t\n", "output t, t\n", "tensor output = relu\n",
    "[i * 2 for i in range(3)]", "[[j for j in range(999999)] for i in range(999999)]", "range(10**7)", "w[3]",
    "from resnet import basic\n", "from resnet import nothing\n", ", align=crop", ", align=upsample",
    "concat(identity, maxpool2, align=crop)", "add(identity, maxpool2 -> upsample(2), align=upsample)",
]  # fmt: skip


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        tokens = TOKEN.findall(text)
        if not tokens:
            return text
        i = rng.randrange(len(tokens))
        kind = rng.randrange(9)
        if kind == 0:  # delete a token
            del tokens[i]
        elif kind == 1:  # duplicate a token
            tokens.insert(i, tokens[i])
        elif kind == 2:  # swap two neighbours
            j = min(i + 1, len(tokens) - 1)
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == 3:  # an extreme number where a number was
            numbers = [k for k, t in enumerate(tokens) if t[:1].isdigit()]
            if numbers:
                tokens[rng.choice(numbers)] = rng.choice(NUMBERS)
        elif kind == 4:  # a reserved, built-in or keyword name where a name was
            names = [k for k, t in enumerate(tokens) if t[:1].isalpha() or t[:1] == "_"]
            if names:
                tokens[rng.choice(names)] = rng.choice(NAMES)
        elif kind == 5:  # a hostile fragment
            tokens.insert(i, rng.choice(FRAGMENTS))
        elif kind == 6:  # a line from another spec
            lines = "".join(tokens).split("\n")
            donor = rng.choice(CORPUS).read_text(encoding="utf-8").split("\n")
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(donor))
            tokens = ["\n".join(lines)]
        else:  # wrap a run of tokens: parentheses, a repeat, a conditional
            j = min(len(tokens), i + rng.randint(1, 12))
            inner = "".join(tokens[i:j])
            wrapped = [f"({inner})", f"[{inner}]x{rng.choice([0, 1, 2, 3])}", f"{inner} if false else relu"][kind - 7]
            tokens[i:j] = [wrapped]
        text = "".join(tokens)
    return text


def case_text(number: int, seed: int) -> str:
    rng = random.Random(seed * 1_000_003 + number)
    return mutate(rng, rng.choice(CORPUS).read_text(encoding="utf-8"))


def _signature(network) -> tuple:
    return network.output, tuple((n.name, n.op, n.attrs, n.shape, n.inputs) for n in network.nodes)


def run_case(text: str, path: str) -> str | None:
    """None if the case passed, else the kind of failure."""
    c = compile_text(text, path)
    for d in c.diagnostics:
        render(d, c.sources)
    if c.network is not None:
        fig = Figures(c.network)
        for d in lint(fig, c.network.disabled):
            render(d, c.sources)
        text_table(c.network, fig)
        json.dumps(network_json(c.network, c.diagnostics, path, fig))
    try:
        once = format_text(text, path)
    except CnnError:
        return None  # does not parse: the formatter refuses it, as it should
    if format_text(once, path) != once:
        return "fmt not idempotent"
    after = compile_text(once, path)
    if (c.network is None) != (after.network is None):
        return "fmt changed validity"
    if c.network is not None and _signature(c.network) != _signature(after.network):
        return "fmt changed the network"
    return None


def run_range(args: tuple[int, int, int, str]) -> dict:
    start, stop, seed, folder = args
    path = os.path.join(folder, "fuzz.cnn")  # imports resolve inside an empty folder of its own
    failures: Counter = Counter()
    examples: dict[str, int] = {}
    slowest = (0.0, -1)
    for number in range(start, stop):
        text = case_text(number, seed)
        t0 = time.perf_counter()
        try:
            kind = run_case(text, path)
        except Exception as e:  # noqa: BLE001 - every escape is what we are looking for
            kind = f"internal error: {type(e).__name__}"
        elapsed = time.perf_counter() - t0
        slowest = max(slowest, (elapsed, number))
        if kind:
            failures[kind] += 1
            examples.setdefault(kind, number)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"cases": stop - start, "failures": failures, "examples": examples, "slowest": slowest, "rss_kb": rss}


def replay(number: int, seed: int) -> int:
    text = case_text(number, seed)
    print(f"--- case {number} (seed {seed}) ---\n{text}\n---")
    with tempfile.TemporaryDirectory() as folder:
        try:
            kind = run_case(text, os.path.join(folder, "fuzz.cnn"))
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            return 1
    print(kind or "passed")
    return 1 if kind else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--case", type=int, help="replay one case and show it")
    args = p.parse_args()
    if args.case is not None:
        return replay(args.case, args.seed)
    t0 = time.perf_counter()
    chunk = 500
    with tempfile.TemporaryDirectory() as folder, ProcessPoolExecutor(args.jobs) as pool:
        ranges = [(s, min(s + chunk, args.cases), args.seed, folder) for s in range(0, args.cases, chunk)]
        results = []
        for r in pool.map(run_range, ranges):  # in order, so progress lines are reproducible
            results.append(r)
            done = sum(x["cases"] for x in results)
            bad = sum(sum(x["failures"].values()) for x in results)
            print(f"  {done} cases, {bad} failures, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    failures: Counter = Counter()
    examples: dict[str, int] = {}
    for r in results:
        failures.update(r["failures"])
        for k, v in r["examples"].items():
            examples.setdefault(k, v)
    slowest = max(r["slowest"] for r in results)
    print(f"cases: {sum(r['cases'] for r in results)}  seed: {args.seed}  jobs: {args.jobs}")
    print(f"wall: {time.perf_counter() - t0:.1f} s")
    print(f"failures: {sum(failures.values())}")
    for kind, n in failures.most_common():
        print(f"  {n:6d}  {kind}  (e.g. --case {examples[kind]})")
    print(f"slowest case: {slowest[0] * 1000:.1f} ms (--case {slowest[1]})")
    print(f"peak memory of a worker (max RSS): {max(r['rss_kb'] for r in results) / 1024:.0f} MB")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
