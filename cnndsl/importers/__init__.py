"""Importers: torch modules, torch.export programs and ONNX files become readable `.cnn` specs.

    imported = import_module(model, (3, 224, 224))      # or import_onnx(path), import_exported(path)
    imported.text                                       # the spec, formatted
    imported.name_map                                   # {source tensor name: cnndsl tensor name}
    weights = imported.rename(model.state_dict())       # loads into any backend built from the spec

torch and onnx are imported only by the importer that needs them. See docs/import.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..ir import Network
from .graph import ImportFailure, ImportGraph
from .names import load_foreign_state_dict, read_map, rename, write_map

__all__ = [
    "Imported",
    "ImportFailure",
    "import_module",
    "import_onnx",
    "import_exported",
    "import_target",
    "load_foreign_state_dict",
    "read_map",
    "write_map",
]


@dataclass
class Imported:
    graph: ImportGraph
    text: str
    network: Network
    name_map: dict[str, str]
    source_weights: dict[str, Any] = field(default_factory=dict)  # the source's tensors, by source name

    def rename(self, state_dict) -> dict[str, Any]:
        return rename(state_dict, self.name_map)

    @property
    def weights(self) -> dict[str, Any]:
        """The source's own weights under cnndsl names."""
        return rename(self.source_weights, self.name_map)


def finish(graph: ImportGraph, source_weights: dict[str, Any], source: str) -> Imported:
    """Write the spec, compile it back and check it computes the graph: same output shape, same tensors."""
    from .. import parse
    from ..analysis import weight_specs
    from ..diagnostics import CnnError
    from .names import name_map
    from .writer import write_spec

    header = [f"Imported by `cnndsl import` from {source}." if source else "Imported by `cnndsl import`."]
    labels = True
    try:
        text = write_spec(graph, header)
        network = parse(text)
    except CnnError as e:
        if e.diagnostics[0].code != "E106":  # the language refuses what the writer wrote: a bug, said plainly
            raise ImportFailure(f"internal: the written spec does not compile: {e.diagnostics[0].message}") from None
        labels = False  # an attribute name used as a label clashes with a layer's own name: go without
        text = write_spec(graph, header, labels=False)
        network = parse(text)
    mapping = name_map(network, graph)
    specs = weight_specs(network)
    for src, dst in mapping.items():
        if src in source_weights and tuple(getattr(source_weights[src], "shape", ())) != tuple(specs[dst].shape):
            raise ImportFailure(
                f"internal: `{src}` has shape {tuple(source_weights[src].shape)}, `{dst}` {specs[dst].shape}"
            )
    params = sum(_numel(s.shape) for s in specs.values() if s.kind == "param")
    expects = [f"expect params == {params:_}"]
    if len(network.outputs) > 1:
        expects.append(f"expect outputs == {tuple(network.output_shapes)}")
    elif len(network.output_shape) == 1:
        expects.append(f"expect output == {network.output_shape[0]}")
    text = write_spec(graph, header, expects, labels)
    return Imported(graph, text, parse(text), mapping, source_weights)


def _numel(shape) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def import_module(module, input_shape, name: str | None = None, source: str = "") -> Imported:
    """A torch.nn.Module (traced with torch.fx on a 1xinput_shape sample) as a spec."""
    from .torch_fx import import_module as trace

    graph = trace(module, tuple(input_shape), name)
    sd = {k: v.detach() for k, v in module.state_dict().items()}
    return finish(graph, sd, source or type(module).__name__)


def import_onnx(path: str) -> Imported:
    from .onnx_graph import import_onnx as read

    graph, weights = read(path)
    return finish(graph, weights, str(path))


def import_exported(path: str) -> Imported:
    from .torch_export import import_exported as read

    graph, weights = read(path)
    return finish(graph, weights, str(path))


def import_target(target: str, input_shape=None, args: str = "") -> Imported:
    """What `cnndsl import MODEL` imports: a .onnx file, a .pt2 program, or `pkg.module:ClassOrFactory`."""
    if target.endswith(".onnx"):
        return import_onnx(target)
    if target.endswith(".pt2"):
        return import_exported(target)
    from .target import construct

    if input_shape is None:
        raise ImportFailure(f"give the input shape of `{target}` with --input CxHxW")
    module = construct(target, args)
    factory = target.rpartition(":")[2].rsplit(".", 1)[-1]
    name = factory if not factory[:1].isupper() else None  # resnet18(), not ResNet
    return import_module(module, input_shape, name, source=target)
