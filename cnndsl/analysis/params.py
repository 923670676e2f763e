"""Weights and parameter counts, straight from the op table's weight rules."""

from __future__ import annotations

import math

from ..ir import Network, Node
from ..ops import OPS, TensorSpec


def node_weights(network: Network, node: Node) -> dict[str, TensorSpec]:
    """The tensors a node owns, by local name (`weight`, `bias`, `running_mean`, ...)."""
    ins = [network.node(i).shape for i in node.inputs]
    return OPS[node.op].weights(node.attrs, ins)


def weight_specs(network: Network) -> dict[str, TensorSpec]:
    """Every tensor of the network under its shared name `<node>.<tensor>`, in execution order.

    This is the one weight naming: torch `state_dict()` keys, Numba and CUDA
    `load_state_dict` keys, and safetensors files all use it.
    """
    return {f"{n.name}.{k}": spec for n in network.layers for k, spec in node_weights(network, n).items()}


def param_counts(network: Network) -> dict[str, int]:
    """Trainable-parameter count per node (buffers such as running statistics excluded).

    Deep networks repeat a few kinds of layer many times: each (op, attributes, input shapes)
    is counted once.
    """
    shapes = {n.name: n.shape for n in network.nodes}
    memo: dict[tuple, int] = {}
    out = {}
    for n in network.layers:
        key = (n.op, n.attrs, tuple([shapes[i] for i in n.inputs]))
        count = memo.get(key)
        if count is None:
            weights = OPS[n.op].weights(n.attrs, list(key[2]))
            count = memo[key] = sum(math.prod(s.shape) for s in weights.values() if s.kind == "param")
        out[n.name] = count
    return out
