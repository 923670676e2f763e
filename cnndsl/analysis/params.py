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
    """Trainable-parameter count per node (buffers such as running statistics excluded)."""
    return {
        n.name: sum(math.prod(s.shape) for s in node_weights(network, n).values() if s.kind == "param")
        for n in network.layers
    }
