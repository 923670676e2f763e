"""The shape arithmetic an ONNX exporter writes around reshapes, slices and resizes, folded to constants.

torch.onnx traces `x.view(n, g, c // g, h, w)` as Unsqueeze and Concat of constants, and
`F.interpolate(y, size=...)` as Concat(Slice(Shape(y)), sizes); with static shapes all of it is a
constant, so the importer reads a Reshape's target or a Resize's size as a value. Only these few ops
are evaluated, and only when every input is a constant (Shape: when its input's shape is static).
"""

from __future__ import annotations

import numpy as np
import onnx


def node_attrs(node) -> dict:
    """A node's attributes as Python values (the importer reads them the same way)."""
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _axes(node, ins: list, k: int):
    """Axes from input k (opset 13+) or the `axes` attribute (older opsets)."""
    if len(ins) > k and ins[k] is not None:
        return [int(a) for a in np.atleast_1d(ins[k])]
    return list(node_attrs(node).get("axes", []))


def _slice(node, ins):
    data, starts, ends = ins[0], ins[1], ins[2]
    axes = _axes(node, ins, 3) or list(range(len(starts)))
    steps = ins[4] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    index = [slice(None)] * data.ndim
    for a, s, e, st in zip(axes, starts, ends, steps):
        index[int(a)] = slice(int(s), int(e), int(st))
    return data[tuple(index)]


def _unsqueeze(node, ins):
    out = ins[0]
    for a in sorted(a % (out.ndim + len(_axes(node, ins, 1))) for a in _axes(node, ins, 1)):
        out = np.expand_dims(out, a)
    return out


FOLD = {
    "Unsqueeze": _unsqueeze,
    "Squeeze": lambda node, ins: np.squeeze(ins[0], axis=tuple(_axes(node, ins, 1)) or None),
    "Concat": lambda node, ins: np.concatenate([np.atleast_1d(i) for i in ins], axis=node_attrs(node)["axis"]),
    "Slice": _slice,
    "Gather": lambda node, ins: np.take(ins[0], ins[1], axis=node_attrs(node).get("axis", 0)),
    "Cast": lambda node, ins: ins[0].astype(onnx.helper.tensor_dtype_to_np_dtype(node_attrs(node)["to"])),
}


def fold(node, consts: dict[str, np.ndarray], full_shape) -> np.ndarray | None:
    """The node's output if it is shape arithmetic on constants, else None. full_shape(name) is a
    computed tensor's static shape with its batch dimension, or None."""
    if node.op_type == "Shape":
        shape = full_shape(node.input[0])
        if shape is None:
            return None
        a = node_attrs(node)
        return np.array(shape[a.get("start", 0) : a.get("end", len(shape))], dtype=np.int64)
    rule = FOLD.get(node.op_type)
    if rule is None or any(i and i not in consts for i in node.input):
        return None
    return rule(node, [consts[i] if i else None for i in node.input])
