"""Source weight names -> cnndsl weight names: by matching graphs, or by order and shape alone.

`match_graph` walks the compiled spec and the imported graph back from their outputs in lock-step
(inputs of add and mul paired by structure, since either order computes the same sum), so each
source module's tensors land on the IR node that computes the same thing. `by_structure` needs only a
state dict: it pairs tensor groups in order and reports whatever it had to guess. No torch here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..ir import Network
from .graph import ImportFailure, ImportGraph

COMMUTATIVE = ("add", "mul")


def _hashes(nodes: Mapping[str, Any], alias) -> dict[str, int]:
    out: dict[str, int] = {}

    def h(name: str) -> int:
        name = alias(name)
        if name not in out:
            n = nodes[name]
            kids = [h(i) for i in n.inputs]
            out[name] = hash((n.op, tuple(n.shape), tuple(sorted(kids)) if n.op in COMMUTATIVE else tuple(kids)))
        return out[name]

    for name in list(nodes):
        h(name)
    return out


def match_graph(network: Network, graph: ImportGraph) -> dict[str, str]:
    """{IR node name: import node name} for every IR node; ImportFailure if the two differ."""
    ir = network.by_name
    ig = graph.by_name()

    def alias(name: str) -> str:
        while ir[name].op == "identity":
            name = ir[name].inputs[0]
        return name

    ha = _hashes(ir, alias)
    hb = _hashes(ig, lambda x: x)
    pairs: dict[str, str] = {}
    if len(network.outputs) != len(graph.outputs):
        raise ImportFailure(f"internal: the spec has {len(network.outputs)} outputs, the source {len(graph.outputs)}")
    todo = [(alias(a), b) for a, b in zip(network.outputs, graph.outputs)]
    while todo:
        a, b = todo.pop()
        if a in pairs:
            if pairs[a] != b:
                raise ImportFailure(f"internal: spec node `{a}` matches both `{pairs[a]}` and `{b}`")
            continue
        na, nb = ir[a], ig[b]
        if na.op != nb.op or tuple(na.shape) != tuple(nb.shape) or len(na.inputs) != len(nb.inputs):
            raise ImportFailure(f"internal: spec node `{a}` ({na.op}) does not match source node `{b}` ({nb.op})")
        pairs[a] = b
        ins_a = [alias(i) for i in na.inputs]
        ins_b = list(nb.inputs)
        if na.op in COMMUTATIVE:
            ordered = []
            for x in ins_a:
                k = next((k for k, y in enumerate(ins_b) if hb[y] == ha[x]), 0)
                ordered.append(ins_b.pop(k))
            ins_b = ordered
        todo.extend(zip(ins_a, ins_b))
    return pairs


def name_map(network: Network, graph: ImportGraph) -> dict[str, str]:
    """{source tensor name: cnndsl tensor name} for every tensor the source carries."""
    from ..analysis import weight_specs

    specs = weight_specs(network)
    out = {}
    ir_of = {b: a for a, b in match_graph(network, graph).items()}
    for node in graph.nodes:  # in the source's order
        if node.name not in ir_of:
            if node.weights:
                raise ImportFailure(f"cannot import `{node.name}`: its result is never used, but it has weights")
            continue
        a = ir_of[node.name]
        for tensor, source in node.weights.items():
            name = f"{a}.{tensor}"
            if name not in specs:
                raise ImportFailure(f"internal: source tensor `{source}` has no place `{name}` in the spec")
            out[source] = name
    return out


def rename(state_dict: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """The state dict under cnndsl names; a key the map does not know raises KeyError naming it."""
    unknown = [k for k in state_dict if k not in mapping]
    if unknown:
        raise KeyError(f"{len(unknown)} tensors are not in the name map: {', '.join(unknown[:5])}")
    return {mapping[k]: v for k, v in state_dict.items()}


def write_map(path: str, mapping: Mapping[str, str], source: str, spec: str) -> None:
    from ..files import write_atomic

    doc = {"format": "cnndsl-weight-map/1", "source": source, "spec": spec, "weights": dict(mapping)}
    write_atomic(path, json.dumps(doc, indent=2) + "\n")


def read_map(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or doc.get("format") != "cnndsl-weight-map/1":
        raise ValueError(f"{path}: not a cnndsl weight map (format cnndsl-weight-map/1)")
    return dict(doc["weights"])


# By structure: a foreign state dict, no model ------------------------------------------------------

OPTIONAL = ("num_batches_tracked",)


def _shape(v) -> tuple[int, ...]:
    return tuple(int(d) for d in getattr(v, "shape", ()))


def _groups(items) -> list[tuple[str, dict[str, tuple]]]:
    groups: dict[str, dict[str, tuple]] = {}
    for key, shape in items:
        prefix, _, tensor = key.rpartition(".")
        groups.setdefault(prefix, {})[tensor] = shape
    return list(groups.items())


def _signature(tensors: dict[str, tuple]) -> tuple:
    return tuple(sorted((t, s) for t, s in tensors.items() if t not in OPTIONAL))


def _branch_of(name: str) -> str:
    """The dotted prefix up to the last merge-branch part (`branch2`, `shortcut1`), '' outside branches."""
    parts = name.split(".")
    idx = [i for i, p in enumerate(parts) if re.fullmatch(r"(branch|shortcut)\d+", p)]
    return ".".join(parts[: idx[-1] + 1]) if idx else ""


def by_structure(network: Network, state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Pair the state dict's modules with the spec's weighted layers in order, by tensor names and shapes.

    Returns (state dict under cnndsl names, report). The report lists every source module left unused,
    every layer that got no tensors, and every pairing that order alone decided between layers of
    equal shapes in parallel branches (swap those by hand if the source orders its branches otherwise).
    """
    from ..analysis import weight_specs

    targets = _groups((k, s.shape) for k, s in weight_specs(network).items())
    sources = _groups((k, _shape(v)) for k, v in state_dict.items())
    mapped: dict[str, Any] = {}
    report: list[str] = []
    j = 0
    placed: list[tuple[str, str]] = []
    for node, tensors in targets:
        sig = _signature(tensors)
        k = next((k for k in range(j, len(sources)) if _signature(sources[k][1]) == sig), None)
        if k is None:
            report.append(f"no source tensors fit `{node}` ({_describe(tensors)}); left unloaded")
            continue
        for skipped, t in sources[j:k]:
            report.append(f"source `{skipped or '<root>'}` ({_describe(t)}) fits no layer in order; not loaded")
        prefix, src = sources[k]
        for t in src:
            if t in tensors:
                mapped[f"{node}.{t}"] = state_dict[f"{prefix}.{t}" if prefix else t]
            else:
                report.append(f"source tensor `{prefix}.{t}` has no place in `{node}`; not loaded")
        placed.append((node, prefix))
        j = k + 1
    for skipped, t in sources[j:]:
        report.append(f"source `{skipped or '<root>'}` ({_describe(t)}) is left over; not loaded")
    sigs = {node: _signature(t) for node, t in targets}
    for node, prefix in placed:
        twins = [
            other
            for other, _ in placed
            if other != node
            and sigs[other] == sigs[node]
            and _branch_of(other) != _branch_of(node)
            and _branch_of(other).rpartition(".")[0] == _branch_of(node).rpartition(".")[0]
            and (_branch_of(other) or _branch_of(node))
        ]
        if twins:
            report.append(
                f"ambiguous: `{prefix}` -> `{node}` by order; `{twins[0]}` in a parallel branch has the same shapes"
            )
    return mapped, report


def _describe(tensors: dict[str, tuple]) -> str:
    return ", ".join(f"{t} {'x'.join(map(str, s)) or 'scalar'}" for t, s in tensors.items())


def load_foreign_state_dict(network: Network, state_dict: Mapping[str, Any], name_map: Mapping[str, str] | None = None):
    """(state dict under the network's weight names, report): through a name map when given, else by structure."""
    if name_map is not None:
        return rename(state_dict, name_map), []
    return by_structure(network, state_dict)
