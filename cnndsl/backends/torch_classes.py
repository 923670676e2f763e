"""One `nn.Module` class per distinct block expansion, with constructor parameters where expansions differ.

Every scope that becomes a class (torch_scopes) is first drafted with each number that may vary
between expansions (a layer's input channels, `out`, a square stride, a child class's arguments) as a
placeholder `Param`. Expansions whose drafts are equal share a class; a residual whose shortcut is a
projection in some expansions and the identity in others shares one too, the shortcut made optional
(`if shortcut:`, as torchvision's `downsample`). Placeholders whose values agree in every expansion
are then merged into one constructor parameter (`in_channels`, `width`, `out_channels`, `stride`),
or written as the number where they never vary. Rendering a number as a name is safe only while the
op's rule merely formats it: a `Param` refuses arithmetic and comparison, and such a layer is
written with its numbers (expansions then share a class only where those agree).
"""

from __future__ import annotations

import dataclasses
import keyword
import re
from dataclasses import dataclass, field
from typing import Any

from ..ir import Attrs, Network, Node, format_shape
from .base import MissingEmitter, Namespace, literal
from .torch_layers import CALLS, MERGES, MODULES
from .torch_scopes import CHAIN, CLASS, FLAT, Scope, item_output, walk

INDENT = "        "  # statements inside a method
_FILE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.cnn")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class NotParametric(Exception):
    """An op's rule computed with a number that stands for a parameter."""


class Param(int):
    """A number standing for a constructor parameter: formats as its name, refuses arithmetic."""

    pname: str

    def __new__(cls, value: int, name: str) -> Param:
        obj = int.__new__(cls, value)
        obj.pname = name
        return obj

    def __repr__(self) -> str:
        return self.pname

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return self.pname

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        raise NotParametric

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return id(self)

    def _refuse(self, *args: Any) -> Any:
        raise NotParametric


for _m in (
    "add radd sub rsub mul rmul floordiv rfloordiv truediv rtruediv mod rmod pow rpow neg pos abs "
    "lt le gt ge bool index int float and or xor lshift rshift divmod round trunc floor ceil"
).split():
    setattr(Param, f"__{_m}__", Param._refuse)


@dataclass(frozen=True)
class Flag:
    """A bool standing for a constructor parameter (bool cannot be subclassed)."""

    pname: str

    def __repr__(self) -> str:
        return self.pname


@dataclass
class Call:
    """A constructor call as a tree, so a long one is laid out as ruff format would, level by level."""

    head: str
    args: list[tuple[str | None, Call | str]]

    def flat(self) -> str:
        return f"{self.head}({', '.join(_arg(k, v) for k, v in self.args)})"


def _arg(key: str | None, value: Call | str) -> str:
    text = value.flat() if isinstance(value, Call) else value
    return f"{key}={text}" if key else text


def lay(indent: str, prefix: str, e: Call | str, suffix: str, width: int) -> list[str]:
    one = f"{indent}{prefix}{e.flat() if isinstance(e, Call) else e}{suffix}"
    if len(one) <= width or isinstance(e, str) or not e.args:
        return [one]
    inner = indent + "    "
    joined = ", ".join(_arg(k, v) for k, v in e.args)
    if len(inner) + len(joined) <= width:
        return [f"{indent}{prefix}{e.head}(", inner + joined, f"{indent}){suffix}"]
    out = [f"{indent}{prefix}{e.head}("]
    for k, v in e.args:
        out += lay(inner, f"{k}=" if k else "", v, ",", width)
    return [*out, f"{indent}){suffix}"]


class Slots:
    """The numbers of one draft, by key: placeholders in a first draft; parameters or numbers (final) after."""

    def __init__(self, final: dict[tuple, Any] | None = None):
        self.final = final
        self.values: dict[tuple, Any] = {}
        self.hints: dict[tuple, str] = {}
        self.fixed: set[tuple] = set()
        self.concrete = False  # set while a layer is rendered with its numbers

    def take(self, key: tuple, value: Any, hint: str) -> Any:
        self.values[key], self.hints[key] = value, hint
        if self.concrete:
            return value
        if self.final is None:
            name = f"_s{len(self.values)}_"
            return Flag(name) if isinstance(value, bool) else Param(value, name)
        return self.final.get(key, value)

    def token(self, key: tuple) -> str:
        return f"_s{list(self.values).index(key) + 1}_"


def camel(name: str) -> str:
    """basic -> Basic, inverted_residual -> InvertedResidual, lenet5_1998 -> Lenet5_1998."""
    out = ""
    for p in (p for p in name.split("_") if p):
        if out and p[0].isdigit():
            out += "_"
        out += p[0].upper() + p[1:]
    return out if out[:1].isalpha() else "Net" + out


@dataclass(eq=False)
class Group:
    """One generated class: the scopes that share it, its parameters, its final draft."""

    name: str
    members: list[Scope]
    optional: Scope | None = None  # the shortcut present in some members only
    with_optional: set[int] = field(default_factory=set)  # ids of the members that have it
    params: list[tuple[str, str, list[Any]]] = field(default_factory=list)  # (name, type, value per member)
    draft: Any = None
    notes: list[dict] = field(default_factory=list)  # per member: key -> provenance


@dataclass
class Draft:
    init: list[tuple] = field(default_factory=list)
    # (key, code, the node to blame when the statement is too long to lay out, or "" when it can be)
    forward: list[tuple[str, list[str], str]] = field(default_factory=list)
    notes: dict[str, tuple] = field(default_factory=dict)
    result: str = "x"

    def signature(self) -> tuple:
        init = tuple(
            (s[0], s[1], s[2].flat() if isinstance(s[2], Call) else s[2], *map(repr, s[3:])) for s in self.init
        )
        forward = tuple((k, tuple(code)) for k, code, _ in self.forward)
        notes = tuple((k, n[1], n[2]) for k, n in self.notes.items())
        return init, forward, notes, self.result


class Locals(Namespace):
    """forward's local names from the one namespace helper; a value's name is free again after its last
    use (as torch.fx frees values), so each block reads `out = ...` like hand-written code."""

    def __init__(self, reserved: frozenset[str]):
        super().__init__(reserved)
        self.live: set[str] = set()

    def fresh(self, base: str) -> str:
        name = self.create(base)
        self.live.add(name)
        return name

    def free(self, names: list[str]) -> None:
        for name in names:
            if name in self.live:
                self.live.discard(name)
                self.taken.discard(name)


class Classes:
    """Drafts, groups and finally renders every class scope of one network."""

    def __init__(self, network: Network, root: Scope, root_name: str, tables: dict[str, str], reserved: frozenset[str]):
        self.network, self.root, self.root_name, self.tables = network, root, root_name, tables
        self.reserved = reserved  # module-level names (imports, classes, constants) and builtins
        self.assign: dict[int, tuple[Group, int]] = {}  # id(scope) -> (its group, its member index)
        self.groups: list[Group] = []
        self.class_names: set[str] = set()

    # -- drafting ---------------------------------------------------------------------------------------
    def shortcut_of(self, s: Scope) -> Scope | None:
        """The block's one callable shortcut, which may be optional in the block's class."""
        cuts = [i for i in s.items if isinstance(i, Scope) and i.kind == "shortcut" and i.role != FLAT]
        return cuts[0] if s.kind == "block" and len(cuts) == 1 else None

    def draft(self, s: Scope, slots: Slots, mode: str = "normal") -> Draft:
        """The class of scope s as drafted for one expansion. mode: "normal"; "reduced" (its shortcut taken
        as the identity, to find the expansions it may share a class with); "optional" (the shortcut optional)."""
        d = Draft()
        alias: dict[str, str] = {}
        steps = self.collect(s, "", slots, d, alias, self.shortcut_of(s) if mode != "normal" else None, mode)

        def resolve(ref: str) -> str:
            while ref in alias:
                ref = alias[ref]
            return ref

        self.name_values(s, steps, resolve, d)
        return d

    def collect(self, scope: Scope, prefix: str, slots: Slots, d: Draft, alias: dict, shortcut, mode: str) -> list:
        """The forward steps (kind, item, attribute path) of a scope, its modules' constructors into d.init;
        a plain container's layers join its parent's steps."""
        steps: list[tuple[str, Node | Scope, str]] = []
        for item in scope.items:
            if isinstance(item, Node):
                rel = prefix + item.name.rsplit(".", 1)[-1]
                if item.op in MERGES or item.op in CALLS:
                    steps.append(("merge" if item.op in MERGES else "call", item, rel))
                else:
                    d.init.append(("set", rel, self.module(item, rel, slots)))
                    steps.append(("module", item, rel))
            elif item.role == FLAT:
                d.init.append(("container", prefix + item.part, "nn.Module()"))
                steps += self.collect(item, prefix + item.part + ".", slots, d, alias, None, mode)
            elif item is shortcut and mode == "reduced":
                alias[item.output] = item.input
            else:
                rel = prefix + item.part
                expr = self.unit(item, rel, slots)
                if item is shortcut:
                    d.init.append(("optional", rel, expr, slots.take((rel, "flag"), True, "flag")))
                    steps.append(("optional", item, rel))
                else:
                    d.init.append(("set", rel, expr))
                    steps.append(("unit", item, rel))
        return steps

    def name_values(self, s: Scope, steps: list, resolve, d: Draft) -> None:
        """forward's statements, each value named for what it holds: `x` for the input and the network's
        trunk, `out` for a block's, `identity` for a shortcut, `branch2` for a branch."""
        results = s.outputs or (s.output,)  # the network's outputs, or a scope's one
        uses: dict[str, int] = {resolve(o): 1 for o in results}
        for _, item, _ in steps:
            for i in item.inputs:
                uses[resolve(i)] = uses.get(resolve(i), 0) + 1
        default = "x" if s.kind == "network" else "out"
        names = Locals(self.reserved | {"self"})
        names.fresh("x")
        var, named_after_scope = {s.input: "x"}, set()
        for kind, item, rel in steps:
            ins = [resolve(i) for i in item.inputs]
            args = [var[i] for i in ins]
            for i in ins:
                uses[i] -= 1
            dying = [var[i] for i in dict.fromkeys(ins) if uses[i] == 0]
            names.free(dying)
            if kind in ("unit", "optional") and item.kind in ("shortcut", "branch"):
                out = names.fresh("identity" if item.kind == "shortcut" else item.part)
                named_after_scope.add(out)
            elif kind == "merge":  # the trunk goes on (`out = out + identity`)
                plain = [v for v in dying if v not in named_after_scope]
                out = default if default in dying else plain[0] if plain else names.fresh(default)
            else:  # a chain goes on in its value's name; a fork opens `out` (`x` still being needed)
                out = dying[0] if dying else names.fresh(default if default not in names.live else "out")
            names.live.add(out)
            names.taken.add(out)
            var[item_output(item)] = out
            unsplittable = item.name if kind == "merge" else item_output(item) if kind == "optional" else ""
            d.forward.append((rel, self.statement(kind, item, rel, out, args), unsplittable))
            d.notes[rel] = self.provenance(item)
        d.result = ", ".join(var[resolve(o)] for o in results)

    def statement(self, kind: str, item: Node | Scope, rel: str, out: str, args: list[str]) -> list[str]:
        if kind == "merge":
            return [f"{INDENT}{out} = {MERGES[item.op](args)}"]
        if kind == "call":
            return [f"{INDENT}{out} = {CALLS[item.op](item, args[0])}"]
        if kind == "optional":
            return [f"{INDENT}{out} = {args[0]} if self.{rel} is None else self.{rel}({args[0]})"]
        return [f"{INDENT}{out} = self.{rel}({args[0]})"]

    def module(self, n: Node, rel: str, slots: Slots) -> Call:
        """The constructor of a layer's module, its varying numbers taken as slots."""
        ins = [self.network.node(i).shape for i in n.inputs]
        if n.op not in MODULES:
            raise MissingEmitter(f"the torch backend has no module for op `{n.op}`")
        if n.op == "conv" and n.attrs["table"] is not None:
            callee, args = MODULES[n.op](n, ins)
            args[1] = self.tables[n.name]
            return Call(callee, [(None, a) for a in args])
        before = set(slots.values)
        attrs, shapes = n.attrs.as_dict(), [tuple(s) for s in ins]
        if shapes and shapes[0]:
            shapes[0] = (slots.take((rel, "in"), shapes[0][0], "in"), *shapes[0][1:])
        for a in ("out", "groups"):
            if type(attrs.get(a)) is int:
                attrs[a] = slots.take((rel, a), attrs[a], a)
        for a in ("kernel", "stride", "pad"):  # square ones: one number for both sides
            v = attrs.get(a)
            if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1] and type(v[0]) is int:
                p = slots.take((rel, a), v[0], a)
                attrs[a] = (p, p)
        mine = [k for k in slots.values if k not in before]
        try:
            callee, args = MODULES[n.op](dataclasses.replace(n, attrs=Attrs.of(attrs)), shapes)
        except NotParametric:
            slots.fixed.update(mine)
            slots.concrete = True
            try:
                return self.module(n, rel, slots)
            finally:
                slots.concrete = False
        if slots.final is None:  # a number the op's rule did not write is no parameter
            text = ", ".join([callee, *args])
            for k in mine:
                if slots.token(k) not in text:
                    slots.fixed.add(k)
        return Call(callee, [(None, a) for a in args])

    def unit(self, s: Scope, rel: str, slots: Slots) -> Call:
        """The constructor of a callable scope: a Chain of its items, or its class with its arguments."""
        if s.role == CHAIN:
            members: list[tuple[str | None, Call | str]] = []
            for item in s.items:
                part = item.name.rsplit(".", 1)[-1] if isinstance(item, Node) else item.part
                sub = f"{rel}.{part}"
                members.append(
                    (part, self.module(item, sub, slots) if isinstance(item, Node) else self.unit(item, sub, slots))
                )
            return Call("Chain", members)
        group, k = self.assign[id(s)]
        args = [_source(slots.take((rel, p), values[k], p)) for p, _, values in group.params]
        return Call(group.name, [(None, a) for a in args])

    def provenance(self, item: Node | Scope) -> tuple:
        """(spec line, (file, line, spec file) inside a block or None, what, shape) of a statement."""
        if isinstance(item, Node):
            n, what, shape = item, item.op, item.shape
            if not n.trace:
                return n.span.line, None, what, shape
            return n.trace[0].call.line, (n.span.file, n.span.line, n.trace[0].call.file), what, shape
        first = item.nodes[0]
        shape = self.network.node(item.output).shape
        what = item.kind if item.kind in ("shortcut", "branch") else item.part
        if item.kind == "block":
            what = item.block if _IDENT.fullmatch(item.block) else "block"
        # the frames around the scope (its own, for a block); it is written in the body of the one before
        depth = sum(1 for f in first.trace if item.name == f.scope or item.name.startswith(f.scope + "."))
        body = depth - 2 if item.kind == "block" else depth - 1
        if body < 0:
            return (first.trace[0].call.line if first.trace else first.span.line), None, what, shape
        span = (
            first.trace[depth - 1 if item.kind == "block" else depth].call
            if len(first.trace) > body + 1
            else first.span
        )
        return first.trace[0].call.line, (span.file, span.line, first.trace[0].call.file), what, shape

    # -- grouping -----------------------------------------------------------------------------------------
    def height(self, s: Scope, memo: dict[int, int]) -> int:
        if id(s) not in memo:
            below = [c for c in s.items if isinstance(c, Scope) and c.role != FLAT]
            hs = [self.height(c, memo) + (1 if c.role == CLASS else 0) for c in below]
            memo[id(s)] = max(hs, default=0)
        return memo[id(s)]

    def build(self) -> None:
        memo: dict[int, int] = {}
        scopes = [s for s in walk(self.root) if s.role == CLASS and s is not self.root]
        for h in sorted({self.height(s, memo) for s in scopes}):
            self.group_level([s for s in scopes if memo[id(s)] == h])
        root = Group(self.root_name, [self.root])
        self.finish(root)
        self.groups.append(root)

    def group_level(self, scopes: list[Scope]) -> None:
        buckets: dict[tuple, list[Scope]] = {}
        for s in scopes:
            kind = ("block", s.block) if s.kind == "block" else ("scope", re.sub(r"[0-9]+$", "", s.part) or s.kind)
            buckets.setdefault((kind, self.draft(s, Slots()).signature()), []).append(s)
        absorbed: dict[tuple, tuple] = {}  # a bucket of identity-shortcut expansions -> the bucket it joins
        for key, members in buckets.items():
            if self.shortcut_of(members[0]) is not None:
                plain = (key[0], self.draft(members[0], Slots(), "reduced").signature())
                if plain in buckets and plain not in absorbed and self.shortcut_of(buckets[plain][0]) is None:
                    absorbed[plain] = key
        groups: list[Group] = []
        for key, members in buckets.items():
            if key in absorbed:
                continue
            group = Group("", members)
            plain = next((p for p, k in absorbed.items() if k == key), None)
            if plain is not None:  # expansions with the identity shortcut join this class, the shortcut optional
                group.optional, group.with_optional = self.shortcut_of(members[0]), {id(m) for m in members}
                group.members = sorted([*members, *buckets[plain]], key=scopes.index)
            groups.append(group)
        groups.sort(key=lambda g: scopes.index(g.members[0]))
        for group in groups:
            first = group.members[0]
            base = re.sub(r"[0-9]+$", "", camel(first.block if first.kind == "block" else first.part)) or "Layer"
            name, k = base, 1
            while name in self.reserved or name in self.class_names or keyword.iskeyword(name):
                k += 1
                name = f"{base}{k}"
            self.class_names.add(name)
            group.name = name
            self.finish(group)
            self.groups.append(group)

    def member_mode(self, group: Group, m: Scope) -> str:
        return "optional" if group.optional is not None and id(m) in group.with_optional else "normal"

    def finish(self, group: Group) -> None:
        """Parameters from the members' numbers, then the final draft of the first member with everything."""
        drafts = []
        for m in group.members:
            drafts.append(Slots())
            self.draft(m, drafts[-1], self.member_mode(group, m))
        rep_index = next((i for i, m in enumerate(group.members) if self.member_mode(group, m) == "optional"), 0)
        rep = group.members[rep_index]
        keys = list(drafts[rep_index].values)
        fixed = set().union(*(d.fixed for d in drafts))
        vectors = {k: [d.values.get(k) for d in drafts] for k in keys}
        if group.optional is not None:
            flag = next(k for k in keys if k[1] == "flag")
            vectors[flag] = [id(m) in group.with_optional for m in group.members]
        params: list[tuple[list[tuple], list[Any]]] = []  # (keys, merged vector)
        for k in sorted((k for k in keys if k not in fixed), key=lambda k: None in vectors[k]):
            v = vectors[k]
            for ks, merged in params:
                if _joins(v, merged):
                    ks.append(k)
                    merged[:] = [a if a is not None else b for a, b in zip(merged, v)]
                    break
            else:
                params.append(([k], list(v)))
        varying = [(ks, m) for ks, m in params if len({x for x in m if x is not None}) > 1]
        names = Namespace(self.reserved | {"self"})
        final: dict[tuple, Any] = {}
        named = []
        for ks, merged in varying:
            pname = names.create(self.param_name(group, ks, merged, drafts[rep_index].hints))
            filled = [x if x is not None else next(y for y in merged if y is not None) for x in merged]
            value = filled[rep_index]
            for k in ks:
                final[k] = Flag(pname) if isinstance(value, bool) else Param(value, pname)
            named.append((pname, "bool" if isinstance(value, bool) else "int", filled, min(map(keys.index, ks))))
        named.sort(key=lambda p: (p[0] != "in_channels", p[1] == "bool", p[0].startswith("stride"), p[3]))
        group.params = [(p, t, v) for p, t, v, _ in named]
        for i, m in enumerate(group.members):
            self.assign[id(m)] = (group, i)
        group.draft = self.draft(rep, Slots(final), self.member_mode(group, rep))
        group.notes = [self.draft(m, Slots(final), self.member_mode(group, m)).notes for m in group.members]

    def param_name(self, group: Group, keys: list[tuple], merged: list[Any], hints: dict[tuple, str]) -> str:
        kinds = [hints[k] for k in keys]
        if "flag" in kinds:
            return re.sub(r"[0-9]+$", "", keys[kinds.index("flag")][0].rsplit(".", 1)[-1]) or "flag"
        if any(isinstance(x, bool) for x in merged):
            return re.sub(r"_[0-9]+$", "", kinds[0])
        for hint, name in (("stride", "stride"), ("kernel", "kernel_size"), ("pad", "padding")):
            if any(h.startswith(hint) for h in kinds):
                return name
        chans_in = [self.network.node(m.input).shape[0] for m in group.members]
        chans_out = [self.network.node(m.output).shape[0] for m in group.members]
        if all(x is None or x == c for x, c in zip(merged, chans_in)):
            return "in_channels"
        if all(x is None or x == c for x, c in zip(merged, chans_out)):
            return "out_channels"
        named = [h for h in kinds if h not in ("in", "out", "groups", "in_channels", "out_channels")]
        return re.sub(r"_[0-9]+$", "", named[0]) if named else "width"


def _source(v: Any) -> str:
    return v.pname if isinstance(v, (Param, Flag)) else literal(v)


def _joins(v: list[Any], merged: list[Any]) -> bool:
    both = [(a, b) for a, b in zip(v, merged) if a is not None and b is not None]
    return bool(both) and all(type(a) is type(b) and a == b for a, b in both)


# -- rendering -----------------------------------------------------------------------------------------------


def lines_where(notes: list[tuple]) -> str:
    """The provenance of one statement over every member of its class: `line 8 (resnet.cnn line 11)` as
    base.where says it for one node, `lines 8-11 (resnet.cnn line 11)` for a class that serves the calls
    of four lines; numbers and a checked file name only, never spec text."""
    lines = sorted({n[0] for n in notes})
    runs: list[list[int]] = []
    for line in lines:
        if runs and line == runs[-1][1] + 1:
            runs[-1][1] = line
        else:
            runs.append([line, line])
    text = ("line " if len(lines) == 1 else "lines ") + ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
    inner = notes[0][1]
    if inner is not None:
        file, line, spec = inner
        base = re.split(r"[/\\]", file)[-1]
        label = "block" if file == spec else base if _FILE.fullmatch(base) else "imported file"
        text += f" ({label} line {line})"
    return text


def comment(notes: list[tuple]) -> str:
    shapes = {n[3] for n in notes}
    shape = f" -> {format_shape(notes[0][3])[2:]}" if len(shapes) == 1 else ""
    return f"# {lines_where(notes)}: {notes[0][2]}{shape}"
