"""cnndsl: a declarative language for convolutional networks, and its compiler.

>>> import cnndsl
>>> net = cnndsl.parse("input 3x32x32\\nconv3x3(16) -> relu -> gap -> fc(10)")
>>> net.output_shape
(10,)
"""

from __future__ import annotations

from pathlib import Path

from .diagnostics import CnnError, Diagnostic
from .frontend import compile_text, raise_on_errors
from .ir import Network, Node
from .limits import MAX_NODES

__version__ = "0.1.0"
__all__ = ["parse", "load", "build", "load_foreign_state_dict", "CnnError", "Diagnostic", "Network", "Node"]


def parse(text: str, *, path: str = "<string>", input_shape=None, max_nodes: int = MAX_NODES) -> Network:
    """Compile spec text to the network IR; raise CnnError carrying every diagnostic."""
    return raise_on_errors(compile_text(text, path, input_shape, max_nodes))


def load(path, *, input_shape=None, max_nodes: int = MAX_NODES) -> Network:
    """Read and compile a `.cnn` file; raise CnnError (E003) if it cannot be read."""
    from .frontend import read_spec

    text = read_spec(str(path))
    return parse(text, path=str(path), input_shape=input_shape, max_nodes=max_nodes)


def build(spec, backend: str = "torch", **options):
    """A runnable model for spec (a path, spec text or a Network), from the backend's generated source."""
    from .backends import build as _build

    network = spec if isinstance(spec, Network) else load(spec) if Path(str(spec)).suffix == ".cnn" else parse(spec)
    return _build(network, backend, **options)


def load_foreign_state_dict(network: Network, state_dict, name_map=None):
    """(state dict under the network's weight names, report): a foreign model's tensors placed through
    `name_map` (from `cnndsl import`), or else by structure: op order and shapes (docs/weights.md)."""
    from .importers.names import load_foreign_state_dict as load

    return load(network, state_dict, name_map)
