# ---- cnndsl model API (shared by the numba and cuda backends) -------------------------------
# This file is copied verbatim into generated modules, so that they need only numpy
# (and numba). It must not import cnndsl. A generated module defines, before it:
#   WEIGHTS: dict[str, tuple]  name -> (shape, dtype, "param"|"buffer", init), init being
#            a fan-in (torch's default uniform +-1/sqrt(fan_in)), "ones", "zeros" or a float (a fill)
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
_NUMPY_FLOATS = ("torch.float16", "torch.float32", "torch.float64")


def _as_numpy(value):
    """A tensor (numpy array, torch tensor, nested list, scalar) as a numpy array, without converting values.

    numpy has no bfloat16 (or float8), so such torch tensors widen to float32 first: exact, and still floating.
    """
    if hasattr(value, "detach"):  # torch, imported only by whoever made the tensor
        value = value.detach().cpu()
        if value.dtype.is_floating_point and str(value.dtype) not in _NUMPY_FLOATS:
            value = value.float()
        return value.numpy()
    return _np.asarray(value)


def _kind(dtype):
    """What a dtype may convert to: "float", "int" or "other" (ml_dtypes' bfloat16 is floating, not kind "f")."""
    if dtype.kind == "f" or dtype.name == "bfloat16":
        return "float"
    return "int" if dtype.kind in "iu" else "other"


def checked_array(name, value, shape, dtype, allow_nonfinite=False):
    """`value` as a fresh C-ordered array of `dtype` and `shape`, or WeightsError naming the tensor.

    The one conversion policy of every backend: floating values (float16/32/64, bfloat16) convert to a
    floating target, integers to an integer target (the batch-norm counter); bool, complex, strings and
    objects never convert silently. NaN and inf are refused unless allow_nonfinite; a finite value that
    the target cannot hold (1e300 in float32) is always refused, since it would become inf unannounced.
    """
    target = _np.dtype(dtype)
    try:
        array = _as_numpy(value)
    except Exception as e:  # a ragged list, a sparse or meta tensor, a dtype numpy lacks
        raise WeightsError(f"{name!r} is not an array ({type(e).__name__}: {e})") from None
    if _kind(array.dtype) != _kind(target):
        accepted = "floating (float16/32/64, bfloat16)" if _kind(target) == "float" else "integer"
        raise WeightsError(f"{name!r} has dtype {array.dtype}; only {accepted} tensors convert to {target}")
    if tuple(array.shape) != tuple(shape):
        raise WeightsError(f"{name!r} has shape {tuple(array.shape)}, expected {tuple(shape)}")
    if _kind(target) == "int":
        info = _np.iinfo(target)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise WeightsError(f"{name!r} has values outside {target}")
        return _np.array(array, dtype=target, order="C")
    finite = _np.isfinite(array.astype(_np.float64))  # bfloat16 arrays have no isfinite of their own
    if not allow_nonfinite and not finite.all():
        bad = array.astype(_np.float64)[~finite].flat[0]
        raise WeightsError(
            f"{name!r} has {int((~finite).sum())} non-finite value(s) (first: {bad}); "
            "pass allow_nonfinite=True to load them anyway"
        )
    with _np.errstate(over="ignore"):  # overflow is reported below, naming the tensor, not warned about
        out = _np.array(array, dtype=target, order="C")  # a copy; ascontiguousarray makes 0-d arrays 1-d
    overflow = finite & ~_np.isfinite(out)
    if overflow.any():
        raise WeightsError(
            f"{name!r} has {int(overflow.sum())} value(s) too large for {target} "
            f"(first: {array.astype(_np.float64)[overflow].flat[0]:g})"
        )
    return out


def checked_weights(mapping, specs, strict=True, allow_nonfinite=False):
    """The arrays of `mapping` (name -> tensor) converted by checked_array against `specs` (name -> (shape,
    dtype)); WeightsError listing every problem at once: a non-mapping, a non-string, unexpected or (when
    strict) missing key, a bad dtype, shape or value. Only torch's batch-norm counter may be absent."""
    # duck-typed, as a Mapping ABC check would need another import in every generated module
    if not (hasattr(mapping, "items") and hasattr(mapping, "__contains__")):
        raise WeightsError(f"weights must be a mapping from tensor names to arrays, got {type(mapping).__name__}")
    problems = []
    arrays = {}
    for name, value in mapping.items():
        if not isinstance(name, str):
            problems.append(f"key {name!r} is not a string but {type(name).__name__}")
        elif name not in specs:
            if name.rsplit(".", 1)[-1] not in _OPTIONAL or strict:
                problems.append(f"unexpected key {name!r}")
        else:
            try:
                arrays[name] = checked_array(name, value, *specs[name], allow_nonfinite=allow_nonfinite)
            except WeightsError as e:
                problems.append(str(e))
    # a mis-shaped key is reported once, as mis-shaped, not also as missing
    if strict:
        problems += [f"missing key {n!r}" for n in specs if n not in mapping and n.rsplit(".", 1)[-1] not in _OPTIONAL]
    if problems:
        raise WeightsError(f"{len(problems)} problem(s) loading weights:\n  " + "\n  ".join(problems))
    return arrays


def read_weights_file(path):
    """A `.safetensors` or `.npz` file as a dict of numpy arrays, unchecked: checked_weights judges them."""
    path = _os.fspath(path)
    try:
        if path.endswith(".safetensors"):
            from safetensors.numpy import load_file

            return load_file(path)
        if path.endswith(".npz"):
            with _np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
    except Exception as e:  # a truncated or foreign file: say which, without a traceback
        raise WeightsError(f"cannot read weights ({type(e).__name__}: {e})") from None
    raise WeightsError("weights must be a .safetensors or .npz file")


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
            elif isinstance(init, float):  # a constant fill (layer_scale's init value)
                weights[name] = _np.full(shape, init, dtype)
            else:
                bound = 1.0 / _math.sqrt(init)
                weights[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
        self._set_weights(weights)
        return self

    def state_dict(self):
        return {k: v.copy() for k, v in self._weights.items()}

    def load_state_dict(self, mapping, strict=True, allow_nonfinite=False):
        """Load weights by their shared names; report every problem at once (see checked_weights)."""
        specs = {name: spec[:2] for name, spec in self.WEIGHTS.items()}
        merged = dict(self._weights)
        merged.update(checked_weights(mapping, specs, strict, allow_nonfinite))
        self._set_weights(merged)
        return self

    def load(self, path, allow_nonfinite=False):
        """Load a `.safetensors` or `.npz` file written under the shared weight names."""
        path = _os.fspath(path)
        try:
            return self.load_state_dict(read_weights_file(path), allow_nonfinite=allow_nonfinite)
        except WeightsError as e:
            raise WeightsError(f"{path}: {e}") from None

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
