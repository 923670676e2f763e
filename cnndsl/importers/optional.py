"""Two structures of one module class that differ only in one merge branch, computed in one and the
identity in the other (torchvision's BasicBlock with and without `downsample`), become one block:
`shortcut=identity if stride == 1 and in_channels == c else (conv1x1(c, stride=stride) -> bn)`."""

from __future__ import annotations

from .spelling import Slot
from .structure import Layer, Merge, Scoped


def unify(full: list, empty: list, writer):
    """(full, the Merge in full, the branch index) if `empty` is `full` with that one branch empty."""
    found: list = []

    def same(a: list, b: list) -> bool:
        if len(a) != len(b):
            return False
        return all(item(x, y) for x, y in zip(a, b))

    def item(x, y) -> bool:
        if type(x) is not type(y):
            return False
        if isinstance(x, Layer):
            return writer.structure([x]) == writer.structure([y])
        if isinstance(x, Scoped):
            return (
                x.block == y.block and x.path.rsplit(".", 1)[-1] == y.path.rsplit(".", 1)[-1] and same(x.items, y.items)
            )
        if x.node.op != y.node.op or len(x.branches) != len(y.branches):
            return False
        for k, (bx, by) in enumerate(zip(x.branches, y.branches)):
            if bx and not by and not found:
                found.append((x, k))
            elif not same(bx, by):
                return False
        return True

    if same(full, empty) and found:
        return full, found[0][0], found[0][1]
    return None


def unify_residual(full: list, plain: list, writer):
    """(full, its Merge, the body's index) if full is `residual(X)` and plain is X (MobileNetV2's block
    with and without its shortcut)."""
    if len(full) != 1 or not isinstance(full[0], Merge) or full[0].node.op != "add" or len(full[0].branches) != 2:
        return None
    branches = full[0].branches
    if sum(not b for b in branches) != 1:
        return None
    k = 0 if branches[0] else 1
    return (full, full[0], k) if writer.structure(branches[k]) == writer.structure(plain) else None


def _in_channels(s: Scoped, writer) -> int:
    from .structure import walk

    first = next(walk(s.items))
    return writer.nodes[first.inputs[0]].shape[0]


def condition(group: list[Scoped], params: list[Slot], identity: set[int], writer, flag: str = "project") -> str:
    """The condition true exactly for the instances in `identity` (whose branch is the identity, or
    which have the residual), from the block's own parameters if they decide it (torchvision's rule
    first), else a new boolean parameter: `not project` for a shortcut, `skip` for a residual."""
    names = {p.key for p in params}
    channels = [p.key for p in params if p.positional]

    def arg(s, name):
        return next(a.value for a in s.args if a.key == name)

    def stride1(s) -> bool:
        return arg(s, "stride") in (1, (1, 1))

    def keeps(c):
        return lambda s: _in_channels(s, writer) == arg(s, c)

    def strided_keeps(c):
        return lambda s: stride1(s) and _in_channels(s, writer) == arg(s, c)

    candidates = []
    if "stride" in names:
        candidates += [(f"stride == 1 and in_channels == {c}", strided_keeps(c)) for c in channels]
    candidates += [(f"in_channels == {c}", keeps(c)) for c in channels]
    if "stride" in names:
        candidates.append(("stride == 1", stride1))
    for text, test in candidates:
        if all(test(s) == (i in identity) for i, s in enumerate(group)):
            return text
    negate = flag == "project"
    params.append(Slot(flag, None, False))
    for i, s in enumerate(group):
        s.args.append(Slot(flag, (i not in identity) if negate else (i in identity), False))
    return f"not {flag}" if negate else flag
