"""Module instances become blocks: group items by the module that computed them, then parameterise.

`scope_items` nests a chain's items under the module instances (`Scoped`) that computed them.
`make_blocks` gives every module class whose instances share a structure (the spec text with every
argument blanked) one block; an argument that differs between instances becomes a block parameter
(instances whose values agree everywhere share one), the rest stay literals. A container
(`nn.Sequential`) or a class that occurs once stays inline, labelled with its attribute name.
"""

from __future__ import annotations

import keyword
import re
from collections import Counter

from .spelling import Slot
from .structure import Layer, Merge, Scoped, walk

CONTAINERS = {"Sequential", "ModuleList", "ModuleDict"}
RESERVED = {
    *"if else and or not true false as block let import network expect disable freeze input".split(),
    *"residual concat add mul identity max min abs round int float ceil floor make_divisible".split(),
    *"train forward to eval cuda cpu type half double modules children".split(),
}


def valid_label(name: str) -> bool:
    return (
        bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name))
        and not keyword.iskeyword(name)
        and name not in RESERVED
        and not name.startswith("__")
    )


def _reserved_layer(name: str) -> bool:
    from ..ops import lookup

    return name in RESERVED or lookup(name) is not None


def _common_scope(it) -> tuple:
    scopes = [n.scope for n in walk([it])]
    if not scopes:
        return ()
    first = scopes[0]
    k = len(first)
    for s in scopes[1:]:
        k = min(k, len(s))
        while k and s[:k] != first[:k]:
            k -= 1
    return first[:k]


def scope_items(items: list, depth: int = 0) -> list:
    out: list = []
    i = 0
    while i < len(items):
        scope = _common_scope(items[i])
        if len(scope) <= depth:
            it = items[i]
            if isinstance(it, Merge):
                it = Merge(it.node, [scope_items(b, depth) for b in it.branches])
            out.append(it)
            i += 1
            continue
        key = scope[depth]
        j = i + 1
        while j < len(items) and len(s := _common_scope(items[j])) > depth and s[depth] == key:
            j += 1
        inner = scope_items(items[i:j], depth + 1)
        if len(inner) == 1 and isinstance(inner[0], Scoped):  # a module that only wraps another: one scope
            real = key[1] not in (None, "Module", *CONTAINERS)
            out.append(Scoped(key[0], key[1], inner[0].items) if real else inner[0])
        else:
            out.append(Scoped(key[0], key[1], inner))
        i = j
    return out


def _scoped(items: list):
    for it in items:
        if isinstance(it, Merge):
            for b in it.branches:
                yield from _scoped(b)
        elif isinstance(it, Scoped):
            yield from _scoped(it.items)
            yield it


def _height(s: Scoped) -> int:
    return 1 + max((_height(c) for c in _scoped(s.items)), default=0)


def _class_key(s: Scoped) -> str | None:
    if s.cls in CONTAINERS:
        return None
    if s.cls not in (None, "Module"):
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", s.cls).lower()
    return re.sub(r"_?\d+$", "", s.path.rsplit(".", 1)[-1]) or "block"


def make_blocks(items: list, writer) -> list[tuple[str, list, list[Slot], list]]:
    """Decide every Scoped (block call or group); returns the block definitions (name, params, body)."""
    everything = list(_scoped(items))
    definitions = []
    used_names: set[str] = set()
    for h in sorted({_height(s) for s in everything}):
        level = [s for s in everything if _height(s) == h]
        variants: dict[tuple, list[Scoped]] = {}
        for s in level:
            key = _class_key(s)
            if key is not None:
                variants.setdefault((key, writer.structure(s.items)), []).append(s)
        for (key, _), group in variants.items():
            if len(group) < 2:
                continue
            name = _fresh(key, used_names)
            params, template = _parameterise(group, writer)
            definitions.append((name, params, template, group[0].items))
            for s in group:
                s.block = name
    return definitions


def _fresh(key: str, used: set[str]) -> str:
    base = key if valid_label(key) and not _reserved_layer(key) else f"{key}_block"
    if not valid_label(base) or _reserved_layer(base):
        base = "block"
    name, k = base, 2
    while name in used:
        name, k = f"{base}{k}", k + 1
    used.add(name)
    return name


def _parameterise(group: list[Scoped], writer) -> tuple[list[Slot], list]:
    """Block parameters (as Slots with their defaults) and, per slot position, how the body writes it."""
    columns = list(zip(*(writer.slots(s.items) for s in group)))
    template: list = []  # per position: None (omit), ("lit", value) or ("param", name)
    by_values: dict[tuple, str] = {}
    params: list[Slot] = []
    names: set[str] = set()
    for col in columns:
        values = tuple(sl.value for sl in col)
        if all(_same(sl.value, sl.default) for sl in col):
            template.append(None)
        elif all(_same(v, values[0]) for v in values):
            template.append(("lit", values[0]))
        else:
            key = tuple(map(repr, values))
            if key not in by_values:
                base = re.sub(r"(?<=[a-z_])\d+$", "", col[0].key)
                base = {"out": "c", "multiplier": "m"}.get(base, base)
                name, k = base, 2
                while name in names:
                    name, k = f"{base}{k}", k + 1
                names.add(name)
                by_values[key] = name
                required = col[0].positional
                default = None if required else Counter(map(repr, values)).most_common(1)[0][0]
                default = next(v for v in values if repr(v) == default) if default is not None else None
                params.append(Slot(name, None, default, required))
            template.append(("param", by_values[key]))
    for s in group:
        vals = writer.slots(s.items)
        args = []
        for p in params:
            j = next(i for i, t in enumerate(template) if t == ("param", p.key))
            args.append(Slot(p.key, vals[j].value, p.default, p.positional))
        s.args = args
    params.sort(key=lambda p: not p.positional)
    for s in group:
        s.args.sort(key=lambda a: not a.positional)
    return params, template


def _same(a, b) -> bool:
    return (
        type(a) is type(b)
        and a == b
        or (
            isinstance(a, (int, float))
            and isinstance(b, (int, float))
            and not isinstance(a, bool)
            and not isinstance(b, bool)
            and a == b
        )
    )


__all__ = ["scope_items", "make_blocks", "valid_label", "Layer"]
