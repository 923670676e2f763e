"""A tiny torch.nn.functional interpreter of the IR, for the analysis tests only.

It is independent of the torch backend on purpose: the receptive-field probe needs
positive weights, ReLU as identity and max pooling as average pooling, and the MACs
test needs nothing but the convolutions and matrix products torch counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnndsl.analysis.params import node_weights
from cnndsl.ir import Network


def run(network: Network, x: torch.Tensor, probe: bool = False) -> torch.Tensor:
    """Evaluate network on x; weights are all 1/fan-in (positive), so nothing cancels.

    probe=True: ReLU-like ops are the identity and max pooling is average pooling,
    so the input gradient is non-zero exactly where an output pixel looks.
    """
    values = {"input": x}
    for n in network.layers:
        ins = [values[i] for i in n.inputs]
        a = n.attrs
        if n.op == "conv":
            spec = node_weights(network, n)["weight"]
            w = torch.ones(spec.shape, dtype=x.dtype) / spec.init
            y = F.conv2d(ins[0], w, None, a["stride"], a["pad"], a["dilation"], a["groups"])
        elif n.op == "fc":
            w = torch.ones((a["out"], ins[0].shape[1]), dtype=x.dtype) / ins[0].shape[1]
            y = F.linear(ins[0], w)
        elif n.op in ("maxpool", "avgpool") and probe or n.op == "avgpool":
            y = F.avg_pool2d(ins[0], a["kernel"], a["stride"], a["pad"], a["ceil"])
        elif n.op == "maxpool":
            y = F.max_pool2d(ins[0], a["kernel"], a["stride"], a["pad"], ceil_mode=a["ceil"])
        elif n.op in ("gap", "adaptive_avgpool"):
            y = F.adaptive_avg_pool2d(ins[0], a["size"] if n.op != "gap" else 1)
        elif n.op == "flatten":
            y = ins[0].flatten(1)
        elif n.op == "add":
            y = sum(ins[1:], ins[0])
        elif n.op == "concat":
            y = torch.cat(ins, 1)
        elif n.op == "mul":
            y = ins[0] * ins[1]
        elif n.op == "slice":
            y = ins[0][:, a["start"] : a["end"]]
        elif n.op == "shuffle":
            y = F.channel_shuffle(ins[0], a["groups"])
        elif n.op == "crop":
            (top, left), (h, w) = a["offset"], a["size"]
            y = ins[0][:, :, top : top + h, left : left + w]
        elif n.op == "upsample":
            corners = a["align_corners"] if a["mode"] == "bilinear" else None
            y = F.interpolate(ins[0], size=a["size"], mode=a["mode"], align_corners=corners)
        elif n.op == "convt":
            spec = node_weights(network, n)["weight"]
            w = torch.ones(spec.shape, dtype=x.dtype) / spec.init
            y = F.conv_transpose2d(ins[0], w, None, a["stride"], a["pad"], a["output_pad"], a["groups"], a["dilation"])
        elif n.op in ("relu", "bn", "dropout", "layernorm", "layer_scale", "stochastic_depth") or probe:
            y = ins[0]
        else:
            raise NotImplementedError(n.op)
        values[n.name] = y
    return values[network.output]
