"""Two structures of one module class that differ only in one merge branch, computed in one and the
identity in the other (torchvision's BasicBlock with and without `downsample`), become one block:
`shortcut=identity if stride == 1 and in_channels == c else (conv1x1(c, stride=stride) -> bn)`."""

from __future__ import annotations

from .spelling import Slot
from .structure import Layer, Scoped


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


def _in_channels(s: Scoped, writer) -> int:
    from .structure import walk

    first = next(walk(s.items))
    return writer.nodes[first.inputs[0]].shape[0]


def condition(group: list[Scoped], params: list[Slot], identity: set[int], writer) -> str:
    """The condition under which the branch is the identity, from the block's own parameters if they
    decide it (torchvision's rule first), else a new boolean parameter `project`."""
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
    params.append(Slot("project", None, False))
    for i, s in enumerate(group):
        s.args.append(Slot("project", i not in identity, False))
    return "not project"
