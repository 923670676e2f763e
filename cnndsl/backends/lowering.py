"""The lowering stage shared by the numba and cuda backends: IR nodes grouped into kernel steps.

Driven only by the op table's lowering fields (`OpDef.lowering`, `epilogue`, `absorbs_affine`,
`scalar`), never by op names, so a new op needs no change here:
- fusion: an AFFINE op (batch norm) right after an op that absorbs it folds into that op's weights;
  an ELEMENTWISE op (an activation) right after an op with an epilogue runs inside its kernel;
- views: a VIEW op (flatten, dropout) computes nothing, its output aliases its input;
- buffers: every other step's output gets a slot in one arena (per sample, in floats), reused once
  the value in it is dead; a step that maps its operand element-wise writes over it when it is the
  operand's last reader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..ir import Network, Node
from ..ops import AFFINE, ELEMENTWISE, MERGE, OPS, VIEW

NO_ACTIVATION = ("ACT_NONE", 0.0)


@dataclass(frozen=True)
class Step:
    """One kernel call: an IR node, with the affine op folded into it and the activation fused after it."""

    node: Node
    affine: Node | None = None  # folded into node's weights (conv/fc + batch norm)
    act: Node | None = None  # run in node's epilogue

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in (self.node, self.affine, self.act) if n is not None)

    @property
    def out(self) -> str:
        """The value this step produces: its last fused node's name."""
        return self.nodes[-1].name

    @property
    def op(self) -> str:
        return self.node.op

    @property
    def is_view(self) -> bool:
        return OPS[self.node.op].lowering == VIEW


def consumers(network: Network) -> dict[str, int]:
    """How many times each value is read (the network's outputs count as a read)."""
    counts = {n.name: 0 for n in network.nodes}
    for n in network.layers:
        for i in n.inputs:
            counts[i] += 1
    for out in network_outputs(network):
        counts[out] += 1
    return counts


def network_outputs(network: Network) -> tuple[str, ...]:
    return tuple(getattr(network, "outputs", None) or (network.output,))


def plan(network: Network) -> tuple[Step, ...]:
    """Group the layers into steps: node [+ folded affine] [+ fused element-wise op]."""
    uses = consumers(network)
    sole_reader: dict[str, Node] = {}
    for n in network.layers:
        if len(n.inputs) == 1 and uses[n.inputs[0]] == 1:
            sole_reader[n.inputs[0]] = n
    steps, taken = [], set()
    for node in network.layers:
        if node.name in taken:
            continue
        op = OPS[node.op]
        affine = act = None
        nxt = sole_reader.get(node.name)
        if op.absorbs_affine and nxt is not None and OPS[nxt.op].lowering == AFFINE:
            affine, nxt = nxt, sole_reader.get(nxt.name)
        if op.epilogue and nxt is not None and OPS[nxt.op].lowering == ELEMENTWISE:
            act = nxt
        step = Step(node, affine, act)
        taken.update(n.name for n in step.nodes)
        steps.append(step)
    return tuple(steps)


def activation(node: Node | None) -> tuple[str, float]:
    """An element-wise op as the kernel libraries take it: its code constant (`ACT_RELU`, defined in
    every runtime kernel library) and its one float parameter (0.0 when it has none)."""
    if node is None:
        return NO_ACTIVATION
    op = OPS[node.op]
    assert op.lowering == ELEMENTWISE, node.op
    return f"ACT_{op.name.upper()}", float(node.attrs[op.scalar]) if op.scalar else 0.0


def epilogue(step: Step) -> tuple[str, float]:
    """The activation a step applies at its end: the fused one, or the step's own for an element-wise op."""
    if OPS[step.node.op].lowering == ELEMENTWISE:
        return activation(step.node)
    return activation(step.act)


def elementwise_ops() -> tuple[str, ...]:
    """Every op with an activation code: what the runtime kernel libraries must define."""
    return tuple(name for name, op in OPS.items() if op.lowering == ELEMENTWISE)


# -- buffers --------------------------------------------------------------------------------------
@dataclass
class Arena:
    """Offsets (per sample, in floats) of buffers in one flat arena, a slot reused once it is free."""

    live: list[tuple[int, int]] = field(default_factory=list)  # (offset, size), sorted
    size: int = 0

    def alloc(self, size: int) -> int:
        start = 0
        for off, sz in self.live:
            if off - start >= size:
                break
            start = max(start, off + sz)
        self.live.append((start, size))
        self.live.sort()
        self.size = max(self.size, start + size)
        return start

    def free(self, offset: int) -> None:
        self.live = [b for b in self.live if b[0] != offset]


@dataclass(frozen=True)
class BufferPlan:
    """Where each value lives: an arena offset (per sample, in floats), or None for the network input."""

    offset: dict[str, int | None]
    inplace: frozenset[str]  # steps whose output overwrites their first operand's buffer
    arena_floats: int


def _writes_over_operand(step: Step) -> bool:
    """Steps whose output element i depends only on operand element i (and per-channel data) may share
    the operand's buffer: affine and element-wise ops, and element-wise merges (add, mul)."""
    op = OPS[step.node.op]
    return op.lowering in (AFFINE, ELEMENTWISE) or (op.lowering == MERGE and op.epilogue)


def plan_buffers(network: Network, steps: tuple[Step, ...]) -> BufferPlan:
    uses = consumers(network)
    arena = Arena()
    offset: dict[str, int | None] = {"input": None}
    pending: dict[int, int] = {}  # offset -> reads still to come of the value(s) held there
    inplace = set()

    def bind(value: str, off: int | None) -> None:
        offset[value] = off
        if off is not None:
            pending[off] = pending.get(off, 0) + uses[value]

    shape = {n.name: n.shape for n in network.nodes}
    for step in steps:
        node = step.node
        if step.is_view:
            bind(step.out, offset[node.inputs[0]])
        else:
            operand = _inplace_operand(step, offset, pending, shape)
            if operand is not None:
                inplace.add(step.out)
                bind(step.out, offset[operand])
            else:
                bind(step.out, arena.alloc(math.prod(shape[step.out])))
        for i in node.inputs:  # release what this step was the last to read
            off = offset[i]
            if off is None:
                continue
            pending[off] -= 1
            if pending[off] == 0:
                arena.free(off)
    return BufferPlan(offset, frozenset(inplace), arena.size)


def _inplace_operand(step: Step, offset, pending, shape) -> str | None:
    """The operand whose buffer this step may overwrite: its last reader, of the output's shape."""
    if not _writes_over_operand(step):
        return None
    for operand in step.node.inputs:
        off = offset[operand]
        if off is None or shape[operand] != shape[step.out]:
            continue
        reads = sum(1 for i in step.node.inputs if offset[i] == off)
        if pending[off] == reads:
            return operand
    return None
