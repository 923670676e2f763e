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
from .structure import Layer, Merge, Ref, Scoped, walk

CONTAINERS = {"Sequential", "ModuleList", "ModuleDict"}
# Classes that say nothing about what they compute: a plain nn.Module() container, and the chain
# classes cnndsl's own torch backend writes for labelled groups and shortcuts; named by attribute.
ANONYMOUS = re.compile(r"Module|Chain\d*")
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
                it = Merge(it.node, [_branch(scope_items(b, depth)) for b in it.branches])
            out.append(it)
            i += 1
            continue
        key = scope[depth]
        j = i + 1
        while j < len(items) and len(s := _common_scope(items[j])) > depth and s[depth] == key:
            j += 1
        inner = scope_items(items[i:j], depth + 1)
        if len(inner) == 1 and isinstance(inner[0], Scoped):  # a module that only wraps another: one scope
            real = key[1] is not None and key[1] not in CONTAINERS and not ANONYMOUS.fullmatch(key[1])
            out.append(Scoped(key[0], key[1], inner[0].items) if real else inner[0])
        else:
            out.append(Scoped(key[0], key[1], inner))
        i = j
    return out


def _anonymous(cls: str | None) -> bool:
    return cls is None or cls in CONTAINERS or bool(ANONYMOUS.fullmatch(cls))


def _branch(items: list) -> list:
    """A merge branch that is one anonymous scope (a `shortcut1` container) is just its items."""
    if len(items) == 1 and isinstance(items[0], Scoped) and _anonymous(items[0].cls):
        return items[0].items
    return items


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
    if s.cls is not None and not ANONYMOUS.fullmatch(s.cls):  # InvertedResidual2 -> inverted_residual
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", re.sub(r"\d+$", "", s.cls) or s.cls).lower()
    parts = s.path.split(".")
    stem = re.sub(r"_?\d+$", "", parts[-1])
    if not stem and len(parts) > 1:  # `layer1.0`: an item of a list of modules
        stem = re.sub(r"_?\d+$", "", parts[-2]) + "_block"
    return stem if stem and stem != "_block" else "unit"


def make_blocks(items: list, writer) -> list[tuple[str, list, list[Slot], list]]:
    """Decide every Scoped (block call or group); returns the block definitions (name, params, body)."""
    from .optional import condition

    everything = list(_scoped(items))
    definitions = []
    used_names: set[str] = set()
    heights: dict = {}
    for s in everything:  # a class is decided once for all its instances, after every class inside it
        heights[_class_key(s)] = max(heights.get(_class_key(s), 0), _height(s))
    for h in sorted(set(heights.values())):
        level = [s for s in everything if heights[_class_key(s)] == h]
        variants: dict[tuple, list[Scoped]] = {}
        for s in level:
            key = _class_key(s)
            if key is not None and not _reads_named(s.items):  # a block body cannot see named tensors
                variants.setdefault((key, writer.structure(s.items)), []).append(s)
        groups = [(key, g, None) for (key, _), g in variants.items()]
        by_class: dict[str, list[int]] = {}
        for i, (key, _, _) in enumerate(groups):
            by_class.setdefault(key, []).append(i)
        for key, idx in by_class.items():  # a class with and without one branch (a projection shortcut)
            for x in idx:
                for y in idx:
                    if x != y and groups[x][1] and groups[y][1] and groups[x][2] is None and groups[y][2] is None:
                        merged = _unified(groups[x][1], groups[y][1], writer)
                        if merged is not None:
                            groups[x] = (key, *merged)
                            groups[y] = (key, [], None)
        for key, group, optional in groups:
            if len(group) < 2:
                continue
            name = _fresh(key, used_names)
            pad = None
            if optional is not None and optional[3] == "shortcut":
                merge, k, n_full, _ = optional
                pad = (writer.optional_span(group[0].items, merge, k), set(range(n_full, len(group))))
            params, template = _parameterise(group, writer, pad)
            if pad is not None:
                merge.optional = (k, condition(group, params, pad[1], writer))
            elif optional is not None:  # residual(X) in some instances, X in the others
                merge, k, n_full, _ = optional
                merge.wraps = condition(group, params, set(range(n_full)), writer, flag="skip")
            definitions.append((name, params, template, group[0].items))
            for s in group:
                s.block = name
    return definitions


def _reads_named(items: list) -> bool:
    for it in items:
        if isinstance(it, Ref):
            return True
        if isinstance(it, Merge) and any(_reads_named(b) for b in it.branches):
            return True
        if isinstance(it, Scoped) and _reads_named(it.items):
            return True
    return False


def _unified(a: list[Scoped], b: list[Scoped], writer):
    """(instances, how they differ) when the instances of a and b can be one block, else None."""
    from .optional import unify, unify_residual

    for kind, rule in (("shortcut", unify), ("residual", unify_residual)):
        for full, other in ((a, b), (b, a)):
            found = rule(full[0].items, other[0].items, writer)
            if found is not None:
                return full + other, (found[1], found[2], len(full), kind)
    return None


def _fresh(key: str, used: set[str]) -> str:
    base = key if valid_label(key) and not _reserved_layer(key) else f"{key}_block"
    if not valid_label(base) or _reserved_layer(base):
        base = "block"
    name, k = base, 2
    while name in used:
        name, k = f"{base}{k}", k + 1
    used.add(name)
    return name


DONTCARE = Slot("?", None)


def _parameterise(group: list[Scoped], writer, pad=None) -> tuple[list[Slot], list]:
    """Block parameters (as Slots with their defaults) and, per slot position, how the body writes it.

    pad = ((start, count), instances): those instances lack the optional branch's `count` slots from
    `start` on; their values there are don't-cares.
    """
    rows = []
    for i, s in enumerate(group):
        row = writer.slots(s.items)
        if pad is not None and i in pad[1]:
            (start, count) = pad[0]
            row = row[:start] + [DONTCARE] * count + row[start:]
        rows.append(row)
    columns = list(zip(*rows))
    template: list = []  # per position: None (omit), ("lit", value) or ("param", name)
    vectors: list[tuple[str, list]] = []  # (param name, per-instance value or DONTCARE)
    params: list[Slot] = []
    names: set[str] = set()
    for col in columns:
        known = [sl for sl in col if sl is not DONTCARE]
        values = [sl.value if sl is not DONTCARE else DONTCARE for sl in col]
        if all(_same(sl.value, sl.default) for sl in known):
            template.append(None)
            continue
        match = next((n for n, vec in vectors if _agrees(vec, values)), None)
        if match is None and all(_same(sl.value, known[0].value) for sl in known):
            template.append(("lit", known[0].value))
            continue
        if match is None:
            base = re.sub(r"(?<=[a-z_])\d+$", "", known[0].key)
            base = {"out": "c", "multiplier": "m"}.get(base, base)
            match, k = base, 2
            while match in names:
                match, k = f"{base}{k}", k + 1
            names.add(match)
            vectors.append((match, values))
            required = known[0].positional
            reprs = Counter(repr(v) for v in values if v is not DONTCARE)
            default = (
                None
                if required
                else next(v for v in values if v is not DONTCARE and repr(v) == reprs.most_common(1)[0][0])
            )
            params.append(Slot(match, None, default, required))
        else:
            vec = next(vec for n, vec in vectors if n == match)
            for i, v in enumerate(values):
                if vec[i] is DONTCARE:
                    vec[i] = v
        template.append(("param", match))
    vec_of = dict(vectors)
    for i, s in enumerate(group):
        s.args = [
            Slot(p.key, p.default if vec_of[p.key][i] is DONTCARE else vec_of[p.key][i], p.default, p.positional)
            for p in params
        ]
        s.args.sort(key=lambda a: not a.positional)
    params.sort(key=lambda p: not p.positional)
    return params, template


def _agrees(vec: list, values: list) -> bool:
    return all(a is DONTCARE or b is DONTCARE or (repr(a) == repr(b)) for a, b in zip(vec, values)) and any(
        a is not DONTCARE and b is not DONTCARE for a, b in zip(vec, values)
    )


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
