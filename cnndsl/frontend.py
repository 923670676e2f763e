"""Whole specs: read a file, compile its text to a Network with every diagnostic, never raise on bad input.

This is where a spec's statements meet: imports and constants (modules.py), the input shape, the one
network body (elaborate.py), expectations, `freeze` and `disable`, and the network's name.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from . import ast
from .diagnostics import CnnError, Diagnostic, Note, did_you_mean, error, warning
from .elaborate import Elaborator
from .evaluate import EvalError, Poisoned
from .files import FileProblem, read_text
from .graph import Aborted
from .ir import Expectation, Network, Shape
from .limits import MAX_CHANNELS, MAX_DIM, MAX_ELEMENTS, MAX_NODES, MAX_SOURCE_BYTES
from .modules import ModuleScope, load_program
from .source import Source, Span

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def read_spec(path: str) -> str:
    """The text of a spec file, or CnnError E003/E104 saying why it cannot be read.

    Only a regular file of at most MAX_SOURCE_BYTES is read (cnndsl.files.read_text): a FIFO,
    a device or /dev/zero named on the command line gets a diagnostic, never a hang.
    """
    span = Span(path, 1, 1, 1, 1)
    try:
        return read_text(path, MAX_SOURCE_BYTES)
    except FileProblem as e:
        if e.message == "no such file":
            raise CnnError([error("E003", f"no such file: {path}", span)]) from None
        hint = "use `cnndsl lint DIR` to check a directory" if e.message == "it is a directory" else e.hint
        raise CnnError([error(e.code, f"cannot read {path}: {e.message}", span, hint)]) from None


def compile_file(path: str, input_shape=None, max_nodes: int = MAX_NODES) -> Compilation:
    try:
        text = read_spec(path)
    except CnnError as e:
        return Compilation(None, list(e.diagnostics), {})
    return compile_text(text, path, input_shape, max_nodes)


@dataclass
class Compilation:
    """What the front end produced for one spec: the network (None on errors) and every diagnostic."""

    network: Network | None
    diagnostics: list[Diagnostic]
    sources: dict[str, Source]

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


def compile_text(
    text: str, path: str = "<string>", input_shape: Shape | None = None, max_nodes: int = MAX_NODES
) -> Compilation:
    program = load_program(text, path)
    if program.errors or program.main is None:
        return Compilation(None, program.errors, program.sources)
    el = Elaborator(max_nodes=max_nodes)
    main = program.main
    statements = main.module.statements
    el.diagnostics.extend(main.diagnostics)

    shape = _input_shape(statements, input_shape, path, el)
    names = [s for s in statements if isinstance(s, ast.NetworkName)]
    for extra in names[1:]:  # like `input` twice (E109): which name would the generated class take?
        el.report(
            error(
                "E106",
                "`network` is given twice",
                extra.span,
                "keep one name",
                [Note(names[0].span, "first given here")],
            )
        )
    bodies = [s for s in statements if isinstance(s, ast.Body)]
    listed = [s for s in statements if isinstance(s, ast.Output)]
    chains = [s for s in statements if isinstance(s, (ast.Body, ast.TensorDef))]
    _check_bodies(bodies, listed, chains, path, el)
    nodes_ok = shape is not None and len(bodies) == (0 if listed else 1)
    outputs: tuple[str, ...] | None = None
    if nodes_ok:
        wanted = list(listed[0].names) if listed else []
        outputs = el.network(chains, wanted, main, shape, Span(path, 1, 1, 1, 1))
        if outputs and not any(d.severity == "error" for d in el.diagnostics):
            el.unused(outputs)
    expectations = _expectations(statements, el, main)
    spec_inputs = [s.dims for s in statements if isinstance(s, ast.Input)]
    if expectations and input_shape is not None and spec_inputs and tuple(input_shape) != spec_inputs[0]:
        # The figures a spec pins are those at its own input; at another size they would all "fail".
        el.report(
            warning(
                "W304",
                f"`expect` lines are not checked: --input {'x'.join(map(str, input_shape))} "
                f"overrides the spec's input {'x'.join(map(str, spec_inputs[0]))}",
                expectations[0].span,
                "run without --input to check them",
            )
        )
        expectations = ()
    frozen = _frozen(statements, el)
    disabled = frozenset(n.id for s in statements if isinstance(s, ast.Disable) for n in s.codes)
    diagnostics = el.diagnostics
    if any(d.severity == "error" for d in diagnostics) or not nodes_ok or not outputs:
        return Compilation(None, diagnostics, program.sources)
    network = Network(
        name=_network_name(statements, path),
        input_shape=shape,
        nodes=tuple(el.nodes),
        output=outputs[0],
        outputs=outputs,
        expectations=expectations,
        disabled=disabled,
        frozen=frozen,
        diagnostics=tuple(diagnostics),
        path=path,
    )
    return Compilation(network, diagnostics, program.sources)


def _check_bodies(bodies, listed, chains, path: str, el: Elaborator) -> None:
    """One network body, or else `output` lines naming the outputs (E108)."""
    if not bodies and not listed:
        named = any(isinstance(c, ast.TensorDef) for c in chains)
        el.report(
            error(
                "E108",
                "the spec has no network body" if not named else "the spec names tensors but has no output",
                Span(path, 1, 1, 1, 1) if not named else chains[-1].span,
                "list the outputs, e.g. `output head`"
                if named
                else "add a chain of layers, e.g. `conv3x3(64) -> relu -> gap -> fc(10)`",
            )
        )
    if listed:
        for b in bodies:
            el.report(
                error(
                    "E108",
                    "a chain without a name in a network with `output` lines",
                    b.span,
                    "name it (`tensor head = ...`) and list it in `output`",
                    [Note(listed[0].span, "the outputs are listed here")],
                )
            )
        for extra in listed[1:]:
            el.report(
                error(
                    "E108",
                    "`output` is given twice",
                    extra.span,
                    "list every output on one line",
                    [Note(listed[0].span, "first given here")],
                )
            )
        return
    for extra in bodies[1:]:
        el.report(
            error(
                "E108",
                "the network body is written twice",
                extra.span,
                "join the two chains with `->` (a line may start or end with `->`); for several outputs, "
                "name each chain (`tensor head1 = ...`) and list them: `output head1, head2`",
                [Note(bodies[0].span, "the first body")],
            )
        )


def _input_shape(statements, override: Shape | None, path: str, el: Elaborator) -> Shape | None:
    inputs = [s for s in statements if isinstance(s, ast.Input)]
    for extra in inputs[1:]:
        el.report(error("E109", "`input` is given twice", extra.span, None, [Note(inputs[0].span, "first given here")]))
    if override is not None:
        dims, span = tuple(override), Span(path, 1, 1, 1, 1)
    elif inputs:
        dims, span = inputs[0].dims, inputs[0].span
    else:
        el.report(
            error(
                "E109",
                "the spec has no input shape",
                Span(path, 1, 1, 1, 1),
                "add a line like `input 3x224x224` (channels x height x width), or pass --input",
            )
        )
        return None
    problem = check_input_dims(dims)
    if problem:
        el.report(error("E109", problem, span, "write channels x height x width, e.g. `input 3x224x224`"))
        return None
    return dims


def check_input_dims(dims) -> str | None:
    if len(dims) not in (1, 3):
        return f"an input shape has 3 dimensions (CxHxW) or 1 (features), got {len(dims)}"
    if any(d < 1 for d in dims):
        return "input dimensions must be at least 1"
    if dims[0] > MAX_CHANNELS or any(d > MAX_DIM for d in dims[1:]):
        return f"input shape {'x'.join(map(str, dims))} is absurdly large"
    if math.prod(dims) > MAX_ELEMENTS:
        return "the input has too many elements"
    return None


def _expectations(statements, el: Elaborator, main: ModuleScope) -> tuple[Expectation, ...]:
    out = []
    for s in statements:
        if isinstance(s, ast.Expect):
            try:
                out.append(Expectation(s.metric, s.op, el.top_value(s.value, main), s.span))
            except EvalError as err:
                el.report(err.diagnostic)
            except Poisoned:
                pass
            except Aborted as abort:  # the body left too little of the work budget to evaluate this
                el.report(abort.args[0])
                break
    return tuple(out)


def _frozen(statements, el: Elaborator) -> tuple[str, ...]:
    names = [n.name for n in el.nodes]
    scopes = {n.rsplit(".", 1)[0] for n in names if "." in n}
    prefixes = {p for s in scopes for p in _prefixes(s)}
    frozen: list[str] = []
    for s in statements:
        if not isinstance(s, ast.Freeze):
            continue
        for target in s.names:
            hits = [n for n in names if n == target.id or n.startswith(target.id + ".")]
            if not hits and el.nodes:
                el.report(
                    error(
                        "E101",
                        f"`freeze`: no layer or block named `{target.id}`",
                        target.span,
                        did_you_mean(target.id, [*names, *prefixes]),
                    )
                )
            frozen += [h for h in hits if h not in frozen]
    return tuple(frozen)


def _prefixes(scope: str):
    parts = scope.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _network_name(statements, path: str) -> str:
    for s in statements:
        if isinstance(s, ast.NetworkName):
            return s.name
    stem = re.sub(r"\.cnn$", "", path.replace("\\", "/").rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    if not name or not _IDENT.fullmatch(name) or path.startswith("<"):
        name = "network" if not name or path.startswith("<") else f"net_{name}"
    return name


def raise_on_errors(c: Compilation) -> Network:
    if c.network is None:
        err = CnnError(c.diagnostics)
        err.sources = c.sources
        raise err
    return c.network
