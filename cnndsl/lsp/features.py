"""What the language server knows about one document, in cnndsl's terms: diagnostics, hover, definitions,
completions. Pure functions of the text (positions are 1-based lines and columns, as in Span)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .. import ast, ops
from ..analysis.figures import Figures
from ..analysis.judge import judge
from ..diagnostics import CnnError, Diagnostic
from ..frontend import Compilation, compile_text
from ..ir import Node, format_shape
from ..modules import STDLIB, load_program, stdlib_modules
from ..report import field_text, human
from ..source import Span
from ..syntax import parse_module

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
IMPORT = re.compile(r"""^\s*(?:import|from)\s+(?:"([^"]*)"|([A-Za-z_][A-Za-z0-9_.]*))""")
KEYWORDS = (
    "network", "input", "import", "from", "let", "tensor", "output", "block", "expect", "disable", "freeze",
    "as", "if", "else", "for", "in",
)  # fmt: skip
COMBINATORS = ("residual", "concat", "add", "mul", "identity")


@dataclass
class Document:
    path: str
    text: str

    @cached_property
    def compilation(self) -> Compilation:
        return compile_text(self.text, self.path)

    @cached_property
    def figures(self) -> Figures | None:
        net = self.compilation.network
        return Figures(net) if net is not None else None

    @cached_property
    def diagnostics(self) -> list[Diagnostic]:
        """Every E, W and L finding, as `cnndsl lint` reports it."""
        out = list(self.compilation.diagnostics)
        if self.figures is not None:
            out += judge(self.figures, run_lint=True)
        return out

    @cached_property
    def program(self):
        return load_program(self.text, self.path)

    def word_at(self, line: int, col: int) -> tuple[str, int] | None:
        """The identifier under the cursor and its first column, if any."""
        text = self.line(line)
        for m in WORD.finditer(text):
            if m.start() + 1 <= col <= m.end() + 1:
                return m.group(), m.start() + 1
        return None

    def line(self, line: int) -> str:
        lines = self.text.split("\n")
        return lines[line - 1] if 0 < line <= len(lines) else ""


# Hover ---------------------------------------------------------------------------------------------


def _inside(span: Span, path: str, line: int, col: int) -> bool:
    if span.file != path or not (span.line <= line <= span.end_line):
        return False
    return (line > span.line or col >= span.column) and (line < span.end_line or col < span.end_column)


def _size(span: Span) -> tuple[int, int]:
    return (span.end_line - span.line, span.end_column - span.column if span.end_line == span.line else 10**6)


def hover(doc: Document, line: int, col: int) -> str | None:
    """Markdown for the layer or block call under the cursor: output shape, params, MACs, receptive field;
    else for the constant or block named there (its value, its parameters)."""
    hit = doc.word_at(line, col)
    if hit is None:
        return None
    return _call_hover(doc, line, col) or _name_hover(doc, hit[0])


def _name_hover(doc: Document, name: str) -> str | None:
    main = doc.program.main
    if main is None:
        return None
    if name in main.consts:
        return f"**{name}** = `{main.consts[name]!r}`"
    if name in main.blocks:
        block, scope = main.blocks[name]
        return f"**block** `{name}({', '.join(p.name for p in block.params)})` — {scope.path}:{block.span.line}"
    return None


def _call_hover(doc: Document, line: int, col: int) -> str | None:
    net, fig = doc.compilation.network, doc.figures
    if net is None:
        return None
    layers = [n for n in net.layers if _inside(n.span, doc.path, line, col)]
    calls = [(f, n) for n in net.layers for f in n.trace if _inside(f.call, doc.path, line, col)]
    best_layer = min((_size(n.span) for n in layers), default=None)
    best_call = min((_size(f.call) for f, _ in calls), default=None)
    if best_call is not None and (best_layer is None or best_call <= best_layer):
        span = min((f.call for f, _ in calls), key=_size)
        nodes = [n for f, n in calls if f.call == span]
        block = next(f.block for f, _ in calls if f.call == span)
        return _block_hover(block, _instances(nodes), fig)
    if best_layer is None:
        return None
    nodes = [n for n in layers if _size(n.span) == best_layer]
    return _layer_hover(nodes, fig)


def _instances(nodes: list[Node]) -> list[list[Node]]:
    """Nodes of one block call, split per instance (a repeat calls a block once per repetition)."""
    out: dict[str, list[Node]] = {}
    depth = min(n.name.count(".") for n in nodes)  # the instance is the common scope of its shallowest node
    for n in nodes:
        out.setdefault(".".join(n.name.split(".")[:depth]), []).append(n)
    return list(out.values())


def _figures(nodes: list[Node], fig: Figures) -> list[str]:
    last = nodes[-1]
    return [
        f"output `{format_shape(last.shape)}`",
        f"params {sum(fig.params[n.name] for n in nodes):,}",
        f"MACs {human(sum(fig.macs[n.name] for n in nodes))}",
        f"receptive field {field_text(fig.fields[last.name])}",
    ]


def _block_hover(block: str, instances: list[list[Node]], fig: Figures) -> str:
    first = instances[0]
    scope = ".".join(first[0].name.split(".")[: min(n.name.count(".") for n in first)])
    more = f" (first of {len(instances)} instances)" if len(instances) > 1 else ""
    head = f"**{block}** `{scope}`{more} — {len(first)} layers"
    return head + "\n\n" + " · ".join(_figures(first, fig))


def _layer_hover(nodes: list[Node], fig: Figures) -> str:
    n = nodes[0]
    more = f" (first of {len(nodes)} instances)" if len(nodes) > 1 else ""
    return f"**{n.op}** `{n.name}`{more}\n\n" + " · ".join(_figures([n], fig))


# Definitions ---------------------------------------------------------------------------------------


def real_path(display: str) -> str:
    """A module's file: `<std>/resnet.cnn` is the standard library's."""
    return str(STDLIB / display[len("<std>/") :]) if display.startswith("<std>/") else display


def definition(doc: Document, line: int, col: int) -> Span | None:
    """Where the block, `let` constant or imported module under the cursor is defined."""
    m = IMPORT.match(doc.line(line))
    if m:
        target = m.group(1) or m.group(2)
        if m.group(1) is not None:
            path = Path(doc.path).parent / target
        else:
            path = STDLIB / (target.replace(".", "/") + ".cnn")
        return Span(str(path), 1, 1, 1, 1) if path.is_file() else None
    hit = doc.word_at(line, col)
    if hit is None:
        return None
    name = hit[0]
    main = doc.program.main
    if main is not None and name in main.blocks:
        block, scope = main.blocks[name]
        return _with_file(block.span, real_path(scope.path))
    sources = sorted(doc.program.sources.items(), key=lambda item: item[0] != doc.path)  # the document first
    for display, source in sources:
        span = _let_span(name, display, source.text)
        if span is not None:
            return _with_file(span, doc.path if display == doc.path else real_path(display))
    return None


def _let_span(name: str, display: str, text: str) -> Span | None:
    try:
        module = parse_module(text, display)
    except CnnError:  # a module that does not parse defines nothing
        return None
    for s in module.statements:
        if isinstance(s, ast.Let) and s.name == name:
            return s.span
    return None


def _with_file(span: Span, path: str) -> Span:
    return Span(path, span.line, span.column, span.end_line, span.end_column)


# Completion ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Completion:
    label: str
    kind: str  # "layer" | "block" | "constant" | "keyword" | "argument" | "module"
    detail: str = ""


def completions(doc: Document, line: int, col: int) -> list[Completion]:
    before = doc.line(line)[: col - 1]
    if re.match(r"^\s*import\s+\w*$", before):
        return [Completion(m, "module", "standard library") for m in stdlib_modules()]
    call = _open_call(doc, line, col)
    if call is not None and re.search(r"[(,]\s*\w*$", before):
        return _arguments(doc, call)
    out = [Completion(n, "layer", _layer_doc(n)) for n in ops.surface_names()]
    out += [Completion(c, "keyword", "graph combinator") for c in COMBINATORS]
    main = doc.program.main
    if main is not None:
        for name, (block, _) in sorted(main.blocks.items()):
            out.append(Completion(name, "block", f"block {name}({', '.join(p.name for p in block.params)})"))
        out += [Completion(name, "constant", f"= {value!r}") for name, value in sorted(main.consts.items())]
    out += [Completion(k, "keyword") for k in KEYWORDS]
    return out


def _layer_doc(name: str) -> str:
    surface = ops.lookup(name)
    if surface is None:
        return ""
    params = ", ".join(p.name for p in ops.signature(surface))
    return f"{name}({params}): {surface.op.doc}"


def _open_call(doc: Document, line: int, col: int) -> str | None:
    """The name of the innermost call whose parenthesis is open at the cursor."""
    lines = doc.text.split("\n")[: line - 1] + [doc.line(line)[: col - 1]]
    text = "\n".join(lines)
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        ch = text[i]
        if ch in ")]":
            depth += 1
        elif ch in "([":
            if depth == 0:
                m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", text[:i]) if ch == "(" else None
                return m.group(1) if m else None
            depth -= 1
    return None


def _arguments(doc: Document, name: str) -> list[Completion]:
    surface = ops.lookup(name)
    if surface is not None:
        return [
            Completion(
                f"{p.name}=", "argument", f"{p.kind}" + ("" if p.default is ops.REQUIRED else f" = {p.default!r}")
            )
            for p in ops.signature(surface)
        ]
    main = doc.program.main
    if main is not None and name in main.blocks:
        return [Completion(f"{p.name}=", "argument", f"{name} parameter") for p in main.blocks[name][0].params]
    if name == "residual":
        return [Completion("shortcut=", "argument", "the shortcut branch (default identity)")]
    return []
