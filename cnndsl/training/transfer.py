"""Transfer learning: load matching weights by their shared names, freeze parts of the network, save weights.

Weights are matched by the one shared naming (`<node>.<tensor>`, see
cnndsl.analysis.params.weight_specs), so a file saved from one spec loads into
another wherever the layers have the same names and shapes: a replaced head
with a different class count loads everything else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..diagnostics import did_you_mean
from ..ir import Network
from . import TrainError


@dataclass
class InitReport:
    """What `--init` loaded, and what it could not."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the spec, not in the file: keep their fresh values
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the spec: ignored
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (name, file shape, spec shape)

    def lines(self) -> list[str]:
        out = [f"init: loaded {len(self.loaded)} tensor(s) from {self.path}"]
        out += [
            f"init: shape mismatch {n}: file {_dims(a)}, spec {_dims(b)} (kept fresh)" for n, a, b in self.mismatched
        ]
        out += [f"init: missing from file {n} (kept fresh)" for n in self.missing]
        out += [f"init: unexpected in file {n} (ignored)" for n in self.unexpected]
        return out

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "loaded": len(self.loaded),
            "missing": self.missing,
            "unexpected": self.unexpected,
            "mismatched": [{"name": n, "file": list(a), "spec": list(b)} for n, a, b in self.mismatched],
        }


def read_weights(path: str) -> dict:
    """A .safetensors file as a dict of CPU tensors, or a TrainError saying why not."""
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise TrainError(f"{path}: no such weights file")
    try:
        return load_file(path)
    except Exception as e:  # truncated or foreign file: name it, no traceback
        raise TrainError(f"{path}: cannot read safetensors weights ({type(e).__name__}: {e})") from None


def load_matching(model, path: str, allow_nonfinite: bool = False) -> InitReport:
    """Copy every tensor of the file whose name and shape match the model; report the rest.

    Matching tensors must pass the backends' one weights policy (model_api.checked_array): a bool, integer
    or non-finite tensor under a matching name is an error, not a silent cast into the model."""
    import torch

    from ..backends.torch_backend import numpy_dtype
    from ..runtime.model_api import WeightsError, checked_array

    weights = read_weights(path)
    own = model.state_dict()
    report = InitReport(path)
    usable, problems = {}, []
    for name, tensor in weights.items():
        if name not in own:
            report.unexpected.append(name)
        elif tuple(tensor.shape) != tuple(own[name].shape):
            report.mismatched.append((name, tuple(tensor.shape), tuple(own[name].shape)))
        else:
            try:
                array = checked_array(name, tensor, own[name].shape, numpy_dtype(own[name].dtype), allow_nonfinite)
            except WeightsError as e:
                problems.append(str(e))
                continue
            usable[name] = torch.from_numpy(array).to(own[name].dtype)
            report.loaded.append(name)
    if problems:
        raise TrainError(f"{path}: {len(problems)} problem(s) loading weights:\n  " + "\n  ".join(problems))
    report.missing = [n for n in own if n not in weights]
    if not usable:
        raise TrainError(f"{path}: none of its {len(weights)} tensor(s) match the spec's weight names and shapes")
    model.load_state_dict(usable, strict=False)
    return report


def frozen_nodes(network: Network, prefixes: list[str]) -> list[str]:
    """Node names frozen by the spec's `freeze` statement plus the --freeze block/layer name prefixes."""
    names = [n.name for n in network.layers]
    frozen = list(network.frozen)
    for prefix in prefixes:
        hits = [n for n in names if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            scopes = {".".join(n.split(".")[: i + 1]) for n in names for i in range(n.count(".") + 1)}
            hint = did_you_mean(prefix, scopes)
            raise TrainError(f"--freeze: no layer or block named {prefix!r}" + (f"; {hint}" if hint else ""))
        frozen += [h for h in hits if h not in frozen]
    return frozen


def freeze(model, nodes: list[str]) -> list[str]:
    """Stop gradients to the parameters of the given nodes; return the frozen parameter names."""
    node_set = set(nodes)
    frozen = []
    for name, param in model.named_parameters():
        if name.rsplit(".", 1)[0] in node_set:
            param.requires_grad_(False)
            frozen.append(name)
    if nodes and not any(p.requires_grad for p in model.parameters()):
        raise TrainError("every parameter is frozen: nothing is left to train (freeze fewer blocks)")
    return frozen


def hold_frozen_statistics(model, nodes: list[str]) -> None:
    """Put frozen batch-norm layers in eval mode so training leaves their running statistics alone.

    Call after every `model.train()`, which switches every submodule back to training mode.
    """
    node_set = set(nodes)
    for name, module in model.named_modules():
        if name in node_set and "running_mean" in dict(module.named_buffers(recurse=False)):
            module.eval()


def save_weights(model, network: Network, path: str) -> None:
    """Write the model's state_dict as .safetensors under the shared names; atomically (temp file + rename)."""
    from safetensors.torch import save

    from ..analysis.params import weight_specs

    state = model.state_dict()
    names = list(weight_specs(network))
    missing = [n for n in names if n not in state]
    if missing:  # the model and the naming disagree: a bug, not the user's fault
        raise RuntimeError(f"torch model lacks shared weight names: {missing[:5]}")
    blob = save({n: state[n].detach().cpu().contiguous() for n in names}, metadata={"network": network.name})
    write_bytes_atomic(path, blob)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Readers never see half a file, failures leave nothing, an existing file keeps its mode (cnndsl.files)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise TrainError(f"{path}: folder {path.parent} does not exist")
    from ..files import write_atomic

    write_atomic(path, data)


def _dims(shape) -> str:
    return "x".join(map(str, shape)) or "scalar"
