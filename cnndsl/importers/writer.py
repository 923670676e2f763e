"""ImportGraph -> spec text: structure, blocks, repetitions, then `cnndsl.fmt` for the layout.

Rendering walks the item tree once per purpose; a *binder* decides how each argument slot is
written (a literal, omitted as a default, a block parameter, or recorded to compare instances),
so the structure of a block body and its values come from the same walk.
"""

from __future__ import annotations

import re
from dataclasses import replace

from .blocks import Scoped, _reserved_layer, _same, make_blocks, scope_items, valid_label
from .graph import ImportGraph
from .spelling import Slot, literal, spell
from .structure import Layer, Merge, Ref, to_statements, walk


class Literal:
    def __call__(self, slot: Slot) -> str | None:
        return None if _same(slot.value, slot.default) else literal(slot.value)


class Recorder:
    def __init__(self):
        self.slots: list[Slot] = []

    def __call__(self, slot: Slot) -> str:
        self.slots.append(slot)
        return "?"


class Template:
    def __init__(self, template: list):
        self.template, self.i = template, 0

    def __call__(self, slot: Slot) -> str | None:
        t = self.template[self.i]
        self.i += 1
        return None if t is None else literal(t[1]) if t[0] == "lit" else t[1]


class Writer:
    def __init__(self, graph: ImportGraph, labels: bool = True):
        self.graph, self.labels = graph, labels
        self.nodes = graph.by_name()
        self.tensors: dict[str, str] = {}  # named import node -> its `tensor` name in the spec
        self.shared_labels: set[str] = set()  # top-level labels two statements would both use

    # the three walks over an item tree
    def structure(self, items: list) -> str:
        return " -> ".join(self.chain(items, Recorder()))

    def slots(self, items: list) -> list[Slot]:
        rec = Recorder()
        self.chain(items, rec)
        return rec.slots

    def text(self, items: list, bind) -> str:
        return " -> ".join(self.chain(items, bind))

    def chain(self, items: list, bind, branch: bool = False) -> list[str]:
        names = [s.path.rsplit(".", 1)[-1] for s in items if isinstance(s, Scoped) and s.block is None]
        parts: list[str] = []
        for k, it in enumerate(items):
            if isinstance(it, Layer) and it.node.op == "flatten" and self._before_fc(items, k):
                continue  # `gap -> fc`: the language flattens a 1x1 map itself
            if isinstance(it, Scoped) and it.block is None:
                inner = self.chain(it.items, bind)
                label = it.path.rsplit(".", 1)[-1]
                whole = branch and len(items) == 1
                unique = names.count(label) == 1 and label not in self.shared_labels
                if self.labels and len(it.items) > 1 and valid_label(label) and unique and not whole:
                    parts.append(f"({chr(10).join(pack(compress(inner)))}) as {label}")
                else:
                    parts.extend(inner)
            else:
                parts.append(self.item(it, bind))
        return compress(parts)

    def _before_fc(self, items: list, k: int) -> bool:
        nxt = items[k + 1] if k + 1 < len(items) else None
        shape = self.nodes[items[k].node.inputs[0]].shape
        return isinstance(nxt, Layer) and nxt.node.op == "fc" and tuple(shape[1:]) == (1, 1)

    def item(self, it, bind) -> str:
        if isinstance(it, Ref):
            return self.tensors[it.name]
        if isinstance(it, Layer):
            sp = spell(it.node, self.nodes[it.node.inputs[0]].shape)
            return call(sp.name, sp.slots, bind)
        if isinstance(it, Scoped):
            return call(it.block, it.args, bind)
        return self.merge(it, bind)

    def merge(self, it: Merge, bind) -> str:
        if isinstance(bind, Recorder) and getattr(bind, "mark", (None,))[0] is it:
            return self._marked(it, bind)
        wraps = getattr(it, "wraps", None)
        if wraps is not None:  # residual in some instances of a block only: the body written once, used twice
            body = self.branch_text(next(b for b in it.branches if b), bind)
            return f"(residual({body}) if {wraps} else ({body}))"
        texts = [self.branch_text(b, bind) for b in it.branches]
        optional = getattr(it, "optional", None)
        if optional is not None:  # a block whose instances differ in this branch: written conditionally
            k, cond = optional
            texts[k] = f"identity if {cond} else ({texts[k]})"
            if k == 0 and len(texts) == 2 and it.node.op == "add":
                texts = texts[::-1]
        op = it.node.op
        from_named = any(b and isinstance(b[0], Ref) for b in it.branches)  # not the merge's input: no residual
        if op == "add" and len(texts) == 2 and not (texts[0] is None and texts[1] is None) and not from_named:
            body, short = texts if texts[0] is not None else texts[::-1]
            return f"residual({body})" if short is None else f"residual({body}, shortcut={short})"
        return f"{op}({', '.join('identity' if t is None else t for t in texts)})"

    def optional_span(self, items: list, merge: Merge, k: int) -> tuple[int, int]:
        """(first slot, number of slots) of branch k of merge, in the slot order of items."""
        rec = Recorder()
        rec.mark = (merge, k)
        self.chain(items, rec)
        return rec.span

    def _marked(self, it: Merge, rec: Recorder) -> str:
        for j, b in enumerate(it.branches):
            start = len(rec.slots)
            self.branch_text(b, rec)
            if j == rec.mark[1]:
                rec.span = (start, len(rec.slots) - start)
        return "?"

    def branch_text(self, items: list, bind) -> str | None:
        if not items:
            return None
        return " -> ".join(self.chain(items, bind, branch=True))


def call(name: str, slots, bind) -> str:
    args = []
    for s in slots:
        text = bind(s)
        if text is not None:
            args.append(text if s.positional else f"{s.key}={text}")
    return f"{name}({', '.join(args)})" if args else name


def compress(parts: list[str]) -> list[str]:
    """Runs of equal elements (or of equal windows of 2-4 elements) become `[...]xN`."""
    out: list[str] = []
    i = 0
    while i < len(parts):
        best = (1, 1)
        for k in range(1, 5):
            r = 1
            while parts[i + r * k : i + (r + 1) * k] == parts[i : i + k] and i + (r + 1) * k <= len(parts):
                r += 1
            if r > 1 and k * r > best[0] * best[1]:
                best = (k, r)
        k, r = best
        if r > 1:
            out.append(f"[{' -> '.join(parts[i : i + k])}]x{r}")
        else:
            out.append(parts[i])
        i += k * r
    return out


def pack(parts: list[str], width: int = 100) -> list[str]:
    """The body chain, several elements a line as a person writes it; cnndsl.fmt does the rest."""
    lines: list[str] = []
    alone = False  # labelled groups and merges get lines of their own
    for p in parts:
        big = " as " in p or p.startswith(("residual(", "concat(", "add(", "mul("))
        if lines and not big and not alone and len(lines[-1]) + 4 + len(p) <= width:
            lines[-1] += f" -> {p}"
        else:
            lines.append(f"-> {p}" if lines else p)
        alone = big
    return lines


def write_spec(graph: ImportGraph, header: list[str] = (), expects: list[str] = (), labels: bool = True) -> str:
    """The spec text (formatted by cnndsl.fmt) for graph; labels=False leaves out the `as` labels."""
    from ..fmt import format_text

    found = to_statements(graph)
    split = _split_scopes(found)
    if split:
        graph = _without_scopes(graph, split)
        found = to_statements(graph)
    writer = Writer(graph, labels)
    statements = [(st.target, scope_items(st.items)) for st in found]
    definitions = make_blocks([it for _, items in statements for it in items], writer)
    writer.tensors = tensor_names(graph, [t for t, _ in statements if t is not None], {d[0] for d in definitions})
    writer.shared_labels = _shared_labels([items for _, items in statements])
    lines = [f"# {h}" for h in header]
    lines += [f"network {network_name(graph.name)}", "input " + "x".join(map(str, graph.input_shape)), ""]
    for name, params, template, body in definitions:
        sig = ", ".join(p.key if p.positional else f"{p.key}={literal(p.default)}" for p in params)
        lines += [f"block {name}({sig}) {{", "  " + writer.text(body, Template(template)), "}", ""]
    for target, items in statements:
        chain = pack(writer.chain(items, Literal()))
        if target is not None:
            chain[0] = f"tensor {writer.tensors[target]} = {chain[0]}"
        lines += chain
    if statements[-1][0] is not None:
        lines.append("output " + ", ".join(writer.tensors[o] for o in graph.outputs))
    if expects:
        lines += ["", *expects]
    return format_text("\n".join(lines) + "\n")


def tensor_names(graph: ImportGraph, targets: list[str], blocks: set[str]) -> dict[str, str]:
    """A name for each named tensor: the source's own name for an output, else the module it is the
    result of (`layer1`), else the source node's name; never a name the spec's layers or blocks take."""
    last_in: dict[str, str] = {}  # module path -> the last node it computed
    for n in graph.nodes:
        for path, _ in n.scope:
            last_in[path] = n.name
    nodes, used, out = graph.by_name(), set(), {}

    def free(name) -> bool:
        stem = re.sub(r"\d+$", "", name or "")
        return (
            bool(name)
            and valid_label(name)
            and not _reserved_layer(name)
            and not (stem and _reserved_layer(stem))
            and name not in blocks
            and name not in used
        )

    for t in targets:
        called = [(path, cls) for path, cls in nodes[t].scope if cls not in ("ModuleList", "ModuleDict")]
        modules = [_module_label(path) for path, _ in called if last_in[path] == t]
        wanted = [graph.output_names.get(t), *modules, t]
        name = next((w for w in wanted if free(w)), None)
        k, stem = 1, ("out" if t in graph.outputs else "t")
        while name is None:
            name = f"{stem}{graph.outputs.index(t) + k if stem == 'out' else k}"
            name, k = (name if free(name) else None), k + 1
        used.add(name)
        out[t] = name
    return out


def _split_scopes(statements) -> set[str]:
    """Module paths whose nodes fall in more than one statement (a backbone whose stages are named
    tensors, an FPN computing every output): not one unit of the spec, so grouped by their children."""
    first: dict[str, int] = {}
    split = set()
    for k, st in enumerate(statements):
        for n in walk(st.items):
            for path, _ in n.scope:
                if first.setdefault(path, k) != k:
                    split.add(path)
    return split


def _without_scopes(graph: ImportGraph, paths: set[str]) -> ImportGraph:
    nodes = [replace(n, scope=tuple(s for s in n.scope if s[0] not in paths)) for n in graph.nodes]
    return replace(graph, nodes=nodes)


def _module_label(path: str) -> str:
    """`layer1` for `layer1`, `layer1_2` for `layer1.2` (a list item), `body` for `backbone.body`."""
    parts = path.split(".")
    return "_".join(parts[-2:]) if parts[-1].isdigit() and len(parts) > 1 else parts[-1]


def _shared_labels(statements: list[list]) -> set[str]:
    """Labels of top-level groups that more than one statement holds (a module split by a named
    tensor): written once they would clash, so they are written nowhere."""
    seen: dict[str, int] = {}
    for k, items in enumerate(statements):
        for it in items:
            if isinstance(it, Scoped):
                label = it.path.rsplit(".", 1)[-1]
                seen[label] = k if seen.get(label, k) == k else -1
    return {label for label, k in seen.items() if k == -1}


def network_name(name: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    snake = re.sub(r"[^a-z0-9_]", "_", snake).strip("_") or "imported"
    return snake if valid_label(snake) else f"net_{snake}"
