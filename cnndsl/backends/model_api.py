# ---- cnndsl model API (shared by the numba and cuda backends) -------------------------------
# This file is copied verbatim into generated modules, so that they need only numpy
# (and numba). It must not import cnndsl. A generated module defines, before it:
#   WEIGHTS: dict[str, tuple]  name -> (shape, dtype, "param"|"buffer", init), init being
#            a fan-in (torch's default uniform +-1/sqrt(fan_in)), "ones" or "zeros"
#   INPUT_SHAPE: tuple[int, ...]                         per-sample input shape
import math as _math
import os as _os

import numpy as _np


class WeightsError(ValueError):
    """Missing, unexpected or mis-shaped weights; the message lists every problem."""


class InputError(ValueError):
    """An input of the wrong shape or dtype."""


# torch keeps this bookkeeping counter in BatchNorm's state_dict; inference never reads it.
_OPTIONAL = ("num_batches_tracked",)


def dense_table_kernel(packed, table, in_channels):
    """A connection table's packed (connections, kh, kw) kernels as a dense (out, in, kh, kw) kernel."""
    dense = _np.zeros((len(table), in_channels, *packed.shape[1:]), _np.float32)
    k = 0
    for o, row in enumerate(table):
        for i in row:
            dense[o, i] = packed[k]
            k += 1
    return dense


def bn_scale_shift(weights, prefix, eps):
    """Batch norm's affine form y = x * scale + shift from running statistics, in float64 for accuracy."""
    scale = weights[prefix + ".weight"].astype(_np.float64) / _np.sqrt(
        weights[prefix + ".running_var"].astype(_np.float64) + eps
    )
    shift = weights[prefix + ".bias"] - weights[prefix + ".running_mean"] * scale
    return scale, shift


def folded_weights(weights, name, bn=None, eps=0.0, table=None, in_channels=0):
    """A conv's or fc's weight and bias (zeros without one) in float64, with the batch norm `bn` that
    follows it (a node name, or None) folded in: y = (w x + b) * scale + shift = (w * scale) x + b * scale + shift."""
    w = weights[name + ".weight"].astype(_np.float64)
    if table is not None:
        w = dense_table_kernel(w, table, in_channels).astype(_np.float64)
    b = weights[name + ".bias"].astype(_np.float64) if name + ".bias" in weights else _np.zeros(w.shape[0])
    if bn is not None:
        scale, shift = bn_scale_shift(weights, bn, eps)
        w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        b = b * scale + shift
    return w, b


class ModelBase:
    """Weights by their shared names, loading from torch state_dicts, .safetensors and .npz files."""

    WEIGHTS: dict = {}
    INPUT_SHAPE: tuple = ()

    def __init__(self, seed=0):
        self._weights = {}
        self.init_weights(seed)

    # -- weights ----------------------------------------------------------------------------
    def init_weights(self, seed=0):
        """Seeded random weights: Kaiming-uniform like torch's defaults, BN at identity."""
        rng = _np.random.default_rng(seed)
        weights = {}
        for name, (shape, dtype, _kind, init) in self.WEIGHTS.items():
            if init == "ones":
                weights[name] = _np.ones(shape, dtype)
            elif init == "zeros":
                weights[name] = _np.zeros(shape, dtype)
            else:
                bound = 1.0 / _math.sqrt(init)
                weights[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
        self._set_weights(weights)
        return self

    def state_dict(self):
        return {k: v.copy() for k, v in self._weights.items()}

    def load_state_dict(self, mapping, strict=True):
        """Load weights by their shared names; report every missing, unexpected or mis-shaped key at once."""
        problems = []
        arrays = {}
        for name, value in mapping.items():
            if name not in self.WEIGHTS:
                if name.rsplit(".", 1)[-1] not in _OPTIONAL or strict:
                    problems.append(f"unexpected key {name!r}")
                continue
            shape, dtype = self.WEIGHTS[name][:2]
            array = _np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
            if tuple(array.shape) != tuple(shape):
                problems.append(f"{name!r} has shape {tuple(array.shape)}, expected {tuple(shape)}")
                continue
            arrays[name] = _np.array(array, dtype=dtype, order="C")  # a copy; ascontiguousarray makes 0-d arrays 1-d
        # a mis-shaped key is reported once, as mis-shaped, not also as missing
        missing = [n for n in self.WEIGHTS if n not in mapping and n.rsplit(".", 1)[-1] not in _OPTIONAL]
        if strict:
            problems += [f"missing key {n!r}" for n in missing]
        if problems:
            raise WeightsError(f"{len(problems)} problem(s) loading weights:\n  " + "\n  ".join(problems))
        merged = dict(self._weights)
        merged.update(arrays)
        self._set_weights(merged)
        return self

    def load(self, path):
        """Load a `.safetensors` or `.npz` file written under the shared weight names."""
        path = _os.fspath(path)
        try:
            if path.endswith(".safetensors"):
                from safetensors.numpy import load_file

                mapping = load_file(path)
            elif path.endswith(".npz"):
                with _np.load(path, allow_pickle=False) as data:
                    mapping = {k: data[k] for k in data.files}
            else:
                raise WeightsError(f"{path}: weights must be a .safetensors or .npz file")
        except WeightsError:
            raise
        except Exception as e:  # a truncated or foreign file: say which, without a traceback
            raise WeightsError(f"{path}: cannot read weights ({type(e).__name__}: {e})") from None
        return self.load_state_dict(mapping)

    def _set_weights(self, weights):
        """Subclasses derive their packed kernels (folded batch norm, ...) here."""
        self._weights = weights

    # -- inputs -------------------------------------------------------------------------------
    def _check_input(self, x):
        if not isinstance(x, _np.ndarray):
            raise InputError(
                f"expected a numpy array of shape (N, {', '.join(map(str, self.INPUT_SHAPE))}), got {type(x).__name__}"
            )
        if x.dtype != _np.float32:
            raise InputError(f"expected float32 input, got {x.dtype}; use x.astype(numpy.float32)")
        if x.ndim != len(self.INPUT_SHAPE) + 1 or tuple(x.shape[1:]) != tuple(self.INPUT_SHAPE):
            expected = "x".join(["N", *map(str, self.INPUT_SHAPE)])
            raise InputError(f"expected input of shape {expected}, got {'x'.join(map(str, x.shape))}")
        return _np.ascontiguousarray(x)


# ---- end of cnndsl model API -------------------------------------------------------------
