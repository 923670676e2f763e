"""Cost passes: trainable/frozen parameters, MACs and activation memory, per node.

Each pass is one walk over the nodes in execution order (linear in node count)
and reads only the op table; none knows a backend exists.
"""

from __future__ import annotations

import math

from ..ir import Network
from ..ops import OPS
from .params import param_counts

BYTES_PER_ELEMENT = 4  # activations are counted at fp32


def trainable_params(network: Network, counts: dict[str, int] | None = None) -> dict[str, int]:
    """Parameters per node that training updates: all of them unless the node is listed by `freeze`.
    `counts` is param_counts(network) when the caller has it already."""
    frozen = set(network.frozen)
    if not frozen:
        return dict(counts or param_counts(network))
    return {name: 0 if name in frozen else n for name, n in (counts or param_counts(network)).items()}


def frozen_params(network: Network) -> dict[str, int]:
    """Parameters per node held fixed by a `freeze` statement."""
    frozen = set(network.frozen)
    return {name: n if name in frozen else 0 for name, n in param_counts(network).items()}


def macs(network: Network) -> dict[str, int]:
    """Multiply-accumulates per node for one sample, from the op table's `macs` rule.

    Convolution counts Cout*Hout*Wout*(Cin/groups)*kh*kw (with a connection table:
    connections*kh*kw*Hout*Wout), fc counts in*out, every other op 0: the convention
    behind torchvision's published GMACs (biases, batch norm, activations, pooling
    and merges are not counted).
    """
    shapes = {n.name: n.shape for n in network.nodes}
    memo: dict[tuple, int] = {}  # (op, attributes, input shapes): deep networks repeat a few kinds of layer
    out = {}
    for n in network.layers:
        ins = tuple([shapes[i] for i in n.inputs])
        key = (n.op, n.attrs, ins)
        m = memo.get(key)
        if m is None:
            m = memo[key] = OPS[n.op].macs(n.attrs, list(ins), n.shape)
        out[n.name] = m
    return out


def activation_bytes(network: Network) -> dict[str, int]:
    """Bytes of each node's output for one sample at fp32 (the input node included)."""
    return {n.name: BYTES_PER_ELEMENT * math.prod(n.shape) for n in network.nodes}


def peak_activation(network: Network) -> tuple[int, dict[str, int]]:
    """(peak bytes, live bytes while each node runs) for one sample, executing in IR order.

    While a node runs, its inputs and its output are live together; a tensor is
    freed right after its last reader has run, and the network's outputs are never freed.
    No op runs in place, so this is an upper bound for an executor that reuses
    buffers in place (e.g. ReLU) and the exact figure for one that does not.
    """
    sizes = activation_bytes(network)
    last_use = {n.name: i for i, n in enumerate(network.nodes)}
    for i, n in enumerate(network.nodes):
        for name in n.inputs:
            last_use[name] = i
    for name in network.outputs:
        last_use[name] = len(network.nodes)
    freed_at: dict[int, list[str]] = {}
    for name, i in last_use.items():
        freed_at.setdefault(i, []).append(name)
    live, peak, during = 0, 0, {}
    for i, n in enumerate(network.nodes):
        live += sizes[n.name]
        during[n.name] = live
        peak = max(peak, live)
        for name in freed_at.get(i, ()):
            live -= sizes[name]
    return peak, during
