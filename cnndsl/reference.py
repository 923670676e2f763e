"""A slow, obviously correct numpy evaluator of the IR: the oracle every backend is tested against.

Float64 throughout, one small function per op, no cleverness. Weights are a
mapping in the shared naming (`<node>.<tensor>`), e.g. a torch state_dict
converted with `{k: v.numpy() for k, v in sd.items()}`.
"""

from __future__ import annotations

import math

import numpy as np

from .ir import Network, Node


def run(network: Network, weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
    """Evaluate the network at inference (batch norm from running statistics, dropout off): its output,
    or a tuple of its outputs in declaration order when it has several."""
    values = {"input": np.asarray(x, dtype=np.float64)}
    for node in network.layers:
        args = [values[i] for i in node.inputs]
        w = {
            k[len(node.name) + 1 :]: np.asarray(v, np.float64)
            for k, v in weights.items()
            if k.startswith(node.name + ".") and "." not in k[len(node.name) + 1 :]
        }
        values[node.name] = _OPS[node.op](node, args, w)
    if len(network.outputs) > 1:
        return tuple(values[o] for o in network.outputs)
    return values[network.output]


def random_weights(network: Network, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded weights under the shared names, for agreement checks between backends.

    Kernels have variance 1/fan-in (LeCun), so activations stay near O(1) through deep residual nets
    (He scaling doubles them per block) and an element-wise tolerance means something; biases and
    batch-norm statistics are random too, so folding them is exercised.
    """
    from .analysis.params import weight_specs

    rng = np.random.default_rng(seed)
    out = {}
    for name, spec in weight_specs(network).items():
        local = name.rsplit(".", 1)[-1]
        if spec.dtype != "float32":
            out[name] = np.zeros(spec.shape, spec.dtype)
        elif local == "running_var":
            out[name] = rng.uniform(0.5, 2.0, spec.shape).astype(np.float32)
        elif spec.init == "ones":  # batch-norm scale
            out[name] = rng.uniform(0.5, 1.5, spec.shape).astype(np.float32)
        elif local == "weight" and isinstance(spec.init, int):
            out[name] = rng.normal(0.0, math.sqrt(1.0 / spec.init), spec.shape).astype(np.float32)
        else:  # biases, batch-norm shift and running mean
            out[name] = rng.uniform(-0.5, 0.5, spec.shape).astype(np.float32)
    return out


def full_kernel(node: Node, packed: np.ndarray, in_channels: int) -> np.ndarray:
    """A connection-table conv's packed (connections, kh, kw) kernels as a dense (out, in, kh, kw) kernel."""
    table = node.attrs["table"]
    dense = np.zeros((len(table), in_channels, *packed.shape[1:]), packed.dtype)
    k = 0
    for o, row in enumerate(table):
        for i in row:
            dense[o, i] = packed[k]
            k += 1
    return dense


def _windows(x: np.ndarray, kernel, stride, dilation, out_hw):
    """Yield (i, j, view): the input pixels seen by kernel tap (i, j) for every output pixel."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i, j, x[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw]


def _pad(x, pad, value=0.0, extra=(0, 0)):
    (ph, pw), (eh, ew) = pad, extra
    return np.pad(x, ((0, 0), (0, 0), (ph, ph + eh), (pw, pw + ew)), constant_values=value)


def _conv(node, args, w):
    x = args[0]
    a = node.attrs
    weight = w["weight"]
    if a["table"] is not None:
        weight = full_kernel(node, weight, x.shape[1])
    g = a["groups"]
    oh, ow = node.shape[1:]
    xp = _pad(x, a["pad"])
    n, c = x.shape[:2]
    out = np.zeros((n, a["out"], oh, ow))
    cin, cout = c // g, a["out"] // g
    for i, j, view in _windows(xp, a["kernel"], a["stride"], a["dilation"], (oh, ow)):
        for gi in range(g):
            xs = view[:, gi * cin : (gi + 1) * cin]
            ws = weight[gi * cout : (gi + 1) * cout, :, i, j]
            out[:, gi * cout : (gi + 1) * cout] += np.einsum("nchw,oc->nohw", xs, ws)
    if "bias" in w:
        out += w["bias"][None, :, None, None]
    return out


def _ceil_extra(node, size_hw):
    """Extra bottom/right padding so ceil-mode windows fit in the padded array."""
    a = node.attrs
    return tuple(
        max(0, (o - 1) * s + k - (n + 2 * p))
        for o, s, k, n, p in zip(node.shape[1:], a["stride"], a["kernel"], size_hw, a["pad"])
    )


def _maxpool(node, args, w):
    x = args[0]
    a = node.attrs
    xp = _pad(x, a["pad"], -np.inf, _ceil_extra(node, x.shape[2:]))
    views = [v for _, _, v in _windows(xp, a["kernel"], a["stride"], (1, 1), node.shape[1:])]
    return np.max(np.stack(views), axis=0)


def _divisors(n, o, k, s, p, include_pad):
    """torch's avg_pool2d divisor along one axis, for each output position."""
    out = []
    for i in range(o):
        start = i * s - p
        end = min(start + k, n + p)
        size = end - start
        if not include_pad:
            size = min(end, n) - max(start, 0)
        out.append(size)
    return np.array(out, np.float64)


def _avgpool(node, args, w):
    x = args[0]
    a = node.attrs
    xp = _pad(x, a["pad"], 0.0, _ceil_extra(node, x.shape[2:]))
    total = sum(v for _, _, v in _windows(xp, a["kernel"], a["stride"], (1, 1), node.shape[1:]))
    (oh, ow), (kh, kw), (sh, sw), (ph, pw) = node.shape[1:], a["kernel"], a["stride"], a["pad"]
    dh = _divisors(x.shape[2], oh, kh, sh, ph, a["include_pad"])
    dw = _divisors(x.shape[3], ow, kw, sw, pw, a["include_pad"])
    return total / (dh[:, None] * dw[None, :])


def _adaptive(node, args, w):
    x = args[0]
    (oh, ow), (h, wd) = node.attrs["size"], x.shape[2:]
    out = np.zeros((*x.shape[:2], oh, ow))
    for i in range(oh):
        h0, h1 = (i * h) // oh, math.ceil((i + 1) * h / oh)
        for j in range(ow):
            w0, w1 = (j * wd) // ow, math.ceil((j + 1) * wd / ow)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


def _bn(node, args, w):
    x = args[0]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    scale = w["weight"] / np.sqrt(w["running_var"] + node.attrs["eps"])
    return (x - w["running_mean"].reshape(shape)) * scale.reshape(shape) + w["bias"].reshape(shape)


def _fc(node, args, w):
    out = args[0] @ w["weight"].T
    return out + w["bias"] if "bias" in w else out


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


_erf = np.vectorize(math.erf)


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _layernorm(node, args, w):
    x = args[0]
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)  # biased, as torch's layer_norm
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean) / np.sqrt(var + node.attrs["eps"]) * w["weight"].reshape(shape) + w["bias"].reshape(shape)


def _shuffle(node, args, w):
    x = args[0]
    n, c = x.shape[:2]
    g = node.attrs["groups"]
    return x.reshape(n, g, c // g, *x.shape[2:]).swapaxes(1, 2).reshape(x.shape)


def _crop(node, args, w):
    (oh, ow), (th, tw) = node.attrs["offset"], node.attrs["size"]
    return args[0][:, :, oh : oh + th, ow : ow + tw]


def _source(o: int, ratio: float, size: int, mode: str, align_corners: bool):
    """torch's source coordinate of output index o along one axis (float32 arithmetic, as its CPU kernels):
    nearest: one index; bilinear: two indices and their weights."""
    r, t = np.float32(ratio), np.float32(o)
    if mode == "nearest":
        return [(min(int(np.floor(t * r)), size - 1), 1.0)]
    real = r * t if align_corners else max(r * (t + np.float32(0.5)) - np.float32(0.5), np.float32(0.0))
    i0 = int(real)
    i1 = i0 + (1 if i0 < size - 1 else 0)
    lam = np.float32(real - np.float32(i0))
    return [(i0, float(np.float32(1.0) - lam)), (i1, float(lam))]


def _upsample(node, args, w):
    from .ops import upsample_ratio

    x = args[0]
    a = node.attrs
    (h, wd), (oh, ow) = x.shape[2:], a["size"]
    rh, rw = upsample_ratio(a, (h, wd))
    out = np.zeros((*x.shape[:2], oh, ow))
    for i in range(oh):
        for j in range(ow):
            for ih, lh in _source(i, rh, h, a["mode"], a["align_corners"]):
                for iw, lw in _source(j, rw, wd, a["mode"], a["align_corners"]):
                    out[:, :, i, j] += lh * lw * x[:, :, ih, iw]
    return out


def _convt(node, args, w):
    """Every input pixel scatters its kernel-weighted value into the output (the definition of ConvTranspose2d)."""
    x, a = args[0], node.attrs
    n, c, h, wd = x.shape
    g, cout = a["groups"], a["out"]
    cin, og = c // g, cout // g
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = a["kernel"], a["stride"], a["pad"], a["dilation"]
    oh, ow = node.shape[1:]
    full = np.zeros(
        (
            n,
            cout,
            (h - 1) * sh + dh * (kh - 1) + 1 + a["output_pad"][0],
            (wd - 1) * sw + dw * (kw - 1) + 1 + a["output_pad"][1],
        )
    )
    for gi in range(g):
        xs = x[:, gi * cin : (gi + 1) * cin]
        for i in range(kh):
            for j in range(kw):
                ws = w["weight"][gi * cin : (gi + 1) * cin, :, i, j]  # (cin, og)
                contrib = np.einsum("nchw,co->nohw", xs, ws)
                full[
                    :,
                    gi * og : (gi + 1) * og,
                    i * dh : i * dh + (h - 1) * sh + 1 : sh,
                    j * dw : j * dw + (wd - 1) * sw + 1 : sw,
                ] += contrib
    out = full[:, :, ph : ph + oh, pw : pw + ow]
    if "bias" in w:
        out = out + w["bias"][None, :, None, None]
    return out


def _unary(f):
    return lambda node, args, w: f(args[0])


_OPS = {
    "conv": _conv,
    "maxpool": _maxpool,
    "avgpool": _avgpool,
    "gap": lambda node, args, w: args[0].mean(axis=(2, 3), keepdims=True),
    "gmp": lambda node, args, w: args[0].max(axis=(2, 3), keepdims=True),
    "adaptive_avgpool": _adaptive,
    "flatten": lambda node, args, w: args[0].reshape(args[0].shape[0], -1),
    "fc": _fc,
    "bn": _bn,
    "dropout": _unary(lambda x: x),
    "relu": _unary(lambda x: np.maximum(x, 0)),
    "relu6": _unary(lambda x: np.clip(x, 0, 6)),
    "leaky_relu": lambda node, args, w: np.where(args[0] > 0, args[0], node.attrs["slope"] * args[0]),
    "elu": lambda node, args, w: np.where(args[0] > 0, args[0], node.attrs["alpha"] * np.expm1(np.minimum(args[0], 0))),
    "sigmoid": _unary(_sigmoid),
    "tanh": _unary(np.tanh),
    "gelu": _unary(lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2)))),
    "silu": _unary(lambda x: x * _sigmoid(x)),
    "hardswish": _unary(lambda x: x * np.clip(x + 3, 0, 6) / 6),
    "hardsigmoid": _unary(lambda x: np.clip(x + 3, 0, 6) / 6),
    "softmax": _unary(_softmax),
    "layernorm": _layernorm,
    "layer_scale": lambda node, args, w: args[0] * w["scale"].reshape((1, *w["scale"].shape)),
    "stochastic_depth": _unary(lambda x: x),
    "slice": lambda node, args, w: args[0][:, node.attrs["start"] : node.attrs["end"]],
    "shuffle": _shuffle,
    "upsample": _upsample,
    "crop": _crop,
    "convt": _convt,
    "add": lambda node, args, w: sum(args[1:], args[0]),
    "mul": lambda node, args, w: math.prod(args[1:], start=args[0]),
    "concat": lambda node, args, w: np.concatenate(args, axis=1),
}
