"""The op table: everything the compiler knows about an op lives in its entry here.

An entry gives the op's signature (parameters, defaults, which are positional),
`resolve` (fill defaults that depend on the input, check arguments), its shape
rule, its weights (names and shapes: the one weight naming shared by every
backend), its MACs and its receptive-field window. Analysis passes and backends
read this table; none of them re-derives a shape.

Surface names map onto entries: `conv3x3(64)` is `conv` with kernel (3, 3),
`maxpool2` is `maxpool` with kernel (2, 2), `dwconv3x3` is a depthwise `conv`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .ir import Attrs, Shape
from .limits import MAX_CHANNELS, MAX_DIM

REQUIRED = object()


class OpError(Exception):
    """A shape or argument error inside an op rule; the elaborator locates it."""

    def __init__(self, code: str, message: str, hint: str | None = None, arg: str | None = None):
        super().__init__(message)
        self.code, self.message, self.hint, self.arg = code, message, hint, arg


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # see check_value
    default: Any = REQUIRED
    positional: bool = False
    doc: str = ""


@dataclass(frozen=True)
class TensorSpec:
    shape: Shape
    kind: str = "param"  # "param" (trainable) or "buffer"
    dtype: str = "float32"
    init: int | float | str = "zeros"  # fan-in for torch's uniform(+-1/sqrt(fan_in)), "ones"/"zeros", a float fill


@dataclass(frozen=True)
class Window:
    """What an op does to the receptive field, per axis (h, w)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)


GLOBAL = "global"  # the op sees its whole input (global pooling, fc)

# How an op lowers, for every backend (TVM's fusion patterns): the lowering stage
# (cnndsl/backends/lowering.py) reads these and the flags below, never op names.
VIEW = "view"  # no computation: the output is the input, or a reshape of it
ELEMENTWISE = "elementwise"  # y = f(x) per element: runs in the epilogue of the kernel before it
AFFINE = "affine"  # a per-channel y = scale * x + shift (batch norm at inference)
MERGE = "merge"  # several inputs combined element-wise or along channels
COMPUTE = "compute"  # a kernel of its own


def _no_weights(attrs: Attrs, ins: list[Shape]) -> dict[str, TensorSpec]:
    return {}


def _no_macs(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    return 0


def _pointwise_window(attrs: Attrs, ins: list[Shape]):
    return None  # kernel 1, stride 1: the field passes through unchanged


def _same_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    return ins[0]


def _keep(attrs: dict, ins: list[Shape]) -> dict:
    return attrs


@dataclass(frozen=True)
class OpDef:
    name: str
    doc: str
    params: tuple[Param, ...] = ()
    arity: int = 1  # -1: any number of inputs (merges)
    resolve: Callable[[dict, list[Shape]], dict] = _keep
    shape: Callable[[Attrs, list[Shape]], Shape] = _same_shape
    weights: Callable[[Attrs, list[Shape]], dict[str, TensorSpec]] = _no_weights
    macs: Callable[[Attrs, list[Shape], Shape], int] = _no_macs
    window: Callable[[Attrs, list[Shape]], Any] = _pointwise_window
    feature_map: bool = False  # needs a (C, H, W) input
    lowering: str = COMPUTE  # VIEW, ELEMENTWISE, AFFINE, MERGE or COMPUTE
    epilogue: bool = False  # an ELEMENTWISE op right after it runs inside its kernel
    absorbs_affine: bool = False  # an AFFINE op right after it folds into its weights (conv/fc + bn)
    scalar: str | None = None  # an ELEMENTWISE op's one float parameter, passed to kernels (`slope`)
    extra: dict = field(default_factory=dict)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


# Helpers for rules -----------------------------------------------------------------


def pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _require_map(op: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise OpError(
            "E205",
            f"`{op}` needs a CxHxW feature map, got a flat vector of {shape[0]}",
            "move the layer before `flatten` or the first `fc`",
        )
    return shape  # type: ignore[return-value]


def window_out(size: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> int:
    """O = floor((W + 2P - D(K-1) - 1) / S) + 1, or ceil with the last window starting inside the input."""
    span = size + 2 * p - d * (k - 1) - 1  # may be negative: floor division then says "no window fits"
    if not ceil:
        return span // s + 1
    out = (span + s - 1) // s + 1
    if (out - 1) * s >= size + p:  # torch: the last window must start inside the input or left padding
        out -= 1
    return out


def _spatial(op: str, attrs: Attrs, shape: Shape) -> tuple[int, int]:
    _, h, w = _require_map(op, shape)
    (kh, kw), (sh, sw), (ph, pw) = attrs["kernel"], attrs["stride"], attrs["pad"]
    dh, dw = attrs.get("dilation", (1, 1))
    ceil = attrs.get("ceil", False)
    oh, ow = window_out(h, kh, sh, ph, dh, ceil), window_out(w, kw, sw, pw, dw, ceil)
    if oh < 1 or ow < 1:
        eff = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
        raise OpError(
            "E201",
            f"`{op}` with kernel {eff[0]}x{eff[1]}, stride {sh}x{sw} and padding {ph}x{pw} "
            f"leaves a {oh}x{ow} output from a {h}x{w} input",
            "use a larger input, more padding, or fewer downsampling layers before this one",
        )
    return oh, ow


def _window(attrs: Attrs, ins: list[Shape]) -> Window:
    return Window(attrs["kernel"], attrs["stride"], attrs["pad"], attrs.get("dilation", (1, 1)))


# Convolution ------------------------------------------------------------------------


def _resolve_conv(a: dict, ins: list[Shape]) -> dict:
    c = _require_map("conv", ins[0])[0]
    kernel, dilation, stride = pair(a["kernel"]), pair(a["dilation"]), pair(a["stride"])
    if a.pop("depthwise", False):
        a["groups"] = c
        a["out"] = c * a.pop("multiplier", 1)
    pad = a["pad"]
    if pad in ("auto", "same"):
        if pad == "same" and stride != (1, 1):
            raise OpError(
                "E206",
                "`pad=same` needs stride 1",
                "use the default padding (k//2), which halves the size with stride 2",
                "pad",
            )
        if pad == "same" and any(d * (k - 1) % 2 for k, d in zip(kernel, dilation)):
            raise OpError(
                "E206", f"`pad=same` needs an odd kernel, got {kernel[0]}x{kernel[1]}", "give `pad` explicitly", "pad"
            )
        pad = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    elif pad == "valid":
        pad = (0, 0)
    a.update(kernel=kernel, stride=stride, dilation=dilation, pad=pair(pad))
    groups, out, table = a["groups"], a["out"], a["table"]
    if table is not None:
        if groups != 1:
            raise OpError("E208", "a connection table replaces groups; give one or the other", arg="table")
        if len(table) != out:
            raise OpError(
                "E208",
                f"the connection table has {len(table)} rows for {out} output maps",
                "give one list of input maps per output map",
                "table",
            )
        for row in table:
            if not row or any(not 0 <= i < c for i in row) or len(set(row)) != len(row):
                raise OpError(
                    "E208", f"connection table row {list(row)} must list distinct input maps 0..{c - 1}", arg="table"
                )
        a["table"] = tuple(tuple(r) for r in table)
    if c % groups or out % groups:
        raise OpError(
            "E204",
            f"groups={groups} must divide both the input channels ({c}) and the output channels ({out})",
            f"choose groups from the common divisors of {c} and {out}",
            "groups",
        )
    if any(2 * p > d * (k - 1) + 1 + 2 * MAX_DIM for p, k, d in zip(a["pad"], kernel, dilation)):
        raise OpError("E104", "padding is absurdly large", arg="pad")
    return a


def _conv_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    return (attrs["out"], *_spatial("conv", attrs, ins[0]))


def _conv_weights(attrs: Attrs, ins: list[Shape]) -> dict[str, TensorSpec]:
    kh, kw = attrs["kernel"]
    table = attrs["table"]
    if table is not None:  # one kernel per connection
        fan_in = max(len(r) for r in table) * kh * kw
        w = TensorSpec((sum(len(r) for r in table), kh, kw), init=fan_in)
    else:
        fan_in = ins[0][0] // attrs["groups"] * kh * kw
        w = TensorSpec((attrs["out"], ins[0][0] // attrs["groups"], kh, kw), init=fan_in)
    return {"weight": w, "bias": TensorSpec((attrs["out"],), init=fan_in)} if attrs["bias"] else {"weight": w}


def _conv_macs(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    kh, kw = attrs["kernel"]
    table = attrs["table"]
    per_pixel = sum(len(r) for r in table) if table is not None else out[0] * (ins[0][0] // attrs["groups"])
    return per_pixel * kh * kw * out[1] * out[2]


_CONV_PARAMS = (
    Param("out", "channels", positional=True, doc="output channels"),
    Param("kernel", "kernel", positional=True, doc="kernel size, int or (h, w); also written in the name: conv3x3"),
    Param("stride", "stride", 1),
    Param("pad", "padding", "auto", doc="int, (h, w), `same` or `valid`; default dilation*(k-1)//2"),
    Param("dilation", "stride", 1),
    Param("groups", "channels", 1),
    Param("bias", "bool", True),
    Param("table", "table", None, doc="sparse connection table: for each output map, the input maps it sees"),
)

CONV = OpDef(
    "conv",
    "2-D convolution (cross-correlation, as in every framework)",
    _CONV_PARAMS,
    resolve=_resolve_conv,
    shape=_conv_shape,
    weights=_conv_weights,
    macs=_conv_macs,
    window=_window,
    feature_map=True,
    epilogue=True,
    absorbs_affine=True,
)

# Pooling ---------------------------------------------------------------------------


def _resolve_pool(a: dict, ins: list[Shape]) -> dict:
    _require_map("pool", ins[0])
    kernel = pair(a["kernel"])
    stride = kernel if a["stride"] is None else pair(a["stride"])
    pad = pair(a["pad"])
    if any(2 * p > k for p, k in zip(pad, kernel)):
        raise OpError(
            "E206",
            f"pooling padding {pad[0]}x{pad[1]} is more than half the kernel {kernel[0]}x{kernel[1]}",
            "a window of only padding has no input; use pad <= kernel // 2",
            "pad",
        )
    a.update(kernel=kernel, stride=stride, pad=pad)
    return a


def _pool_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    return (ins[0][0], *_spatial("pool", attrs, ins[0]))


_POOL_PARAMS = (
    Param("kernel", "kernel", positional=True),
    Param("stride", "stride", None, doc="default: the kernel size"),
    Param("pad", "pair", 0),
    Param("ceil", "bool", False, doc="round the output size up (torch's ceil_mode)"),
)

MAXPOOL = OpDef(
    "maxpool", "max pooling", _POOL_PARAMS, resolve=_resolve_pool, shape=_pool_shape, window=_window, feature_map=True
)
AVGPOOL = OpDef(
    "avgpool",
    "average pooling",
    _POOL_PARAMS
    + (Param("include_pad", "bool", True, doc="count padding in the average (torch's count_include_pad)"),),
    resolve=_resolve_pool,
    shape=_pool_shape,
    window=_window,
    feature_map=True,
)


def _global_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    return (_require_map("global pool", ins[0])[0], 1, 1)


def _global_window(attrs: Attrs, ins: list[Shape]):
    return GLOBAL


GAP = OpDef("gap", "global average pooling to Cx1x1", shape=_global_shape, window=_global_window, feature_map=True)
GMP = OpDef("gmp", "global max pooling to Cx1x1", shape=_global_shape, window=_global_window, feature_map=True)


def _resolve_adaptive(a: dict, ins: list[Shape]) -> dict:
    _require_map("adaptive_avgpool", ins[0])
    a["size"] = pair(a["size"])
    return a


def _adaptive_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    return (ins[0][0], *attrs["size"])


def _adaptive_window(attrs: Attrs, ins: list[Shape]):
    # Adaptive pooling to the input's own size is the identity; otherwise its
    # windows vary in size, and we take it, like fc, to see the whole input.
    return None if tuple(ins[0][1:]) == attrs["size"] else GLOBAL


ADAPTIVE_AVGPOOL = OpDef(
    "adaptive_avgpool",
    "adaptive average pooling to a fixed output size (torch's AdaptiveAvgPool2d)",
    (Param("size", "stride", positional=True),),
    resolve=_resolve_adaptive,
    shape=_adaptive_shape,
    window=_adaptive_window,
    feature_map=True,
)

# Dense layers and reshaping ----------------------------------------------------------------


def _flatten_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    return (math.prod(ins[0]),)


FLATTEN = OpDef(
    "flatten",
    "CxHxW to a flat vector of C*H*W (channel-major, as torch)",
    shape=_flatten_shape,
    window=_global_window,
    lowering=VIEW,
)


def _fc_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    assert len(ins[0]) == 1, "the elaborator flattens before fc"
    return (attrs["out"],)


def _fc_weights(attrs: Attrs, ins: list[Shape]) -> dict[str, TensorSpec]:
    w = {"weight": TensorSpec((attrs["out"], ins[0][0]), init=ins[0][0])}
    if attrs["bias"]:
        w["bias"] = TensorSpec((attrs["out"],), init=ins[0][0])
    return w


def _fc_macs(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    return ins[0][0] * attrs["out"]


FC = OpDef(
    "fc",
    "fully connected (linear) layer",
    (Param("out", "channels", positional=True), Param("bias", "bool", True)),
    shape=_fc_shape,
    weights=_fc_weights,
    macs=_fc_macs,
    window=_global_window,
    epilogue=True,
    absorbs_affine=True,
)


def _bn_weights(attrs: Attrs, ins: list[Shape]) -> dict[str, TensorSpec]:
    c = ins[0][0]
    return {
        "weight": TensorSpec((c,), init="ones"),
        "bias": TensorSpec((c,)),
        "running_mean": TensorSpec((c,), "buffer"),
        "running_var": TensorSpec((c,), "buffer", init="ones"),
        "num_batches_tracked": TensorSpec((), "buffer", "int64"),
    }


BN = OpDef(
    "bn",
    "batch normalisation over channels (running statistics at inference)",
    (Param("eps", "positive", 1e-5), Param("momentum", "fraction", 0.1)),
    weights=_bn_weights,
    lowering=AFFINE,
    epilogue=True,
)

DROPOUT = OpDef(
    "dropout", "dropout (identity at inference)", (Param("p", "fraction", 0.5, positional=True),), lowering=VIEW
)


def _activation(name: str, doc: str, *params: Param) -> OpDef:
    """An element-wise op; its one float parameter, if any, is what kernels receive with its code."""
    return OpDef(name, doc, params, lowering=ELEMENTWISE, scalar=params[0].name if params else None)


ACTIVATIONS = [
    _activation("relu", "max(x, 0)"),
    _activation("relu6", "min(max(x, 0), 6)"),
    _activation("leaky_relu", "x if x > 0 else slope * x", Param("slope", "float", 0.01, positional=True)),
    _activation("sigmoid", "1 / (1 + exp(-x))"),
    _activation("tanh", "tanh(x)"),
    _activation("gelu", "x * Phi(x), the exact (erf) form"),
    _activation("silu", "x * sigmoid(x) (swish)"),
    _activation("hardswish", "x * relu6(x + 3) / 6"),
    _activation("hardsigmoid", "relu6(x + 3) / 6"),
    _activation("elu", "x if x > 0 else alpha * (exp(x) - 1)", Param("alpha", "float", 1.0, positional=True)),
]
SOFTMAX = OpDef("softmax", "softmax over channels (dim 1)")

# Merges ------------------------------------------------------------------------------


def _merge_shape(op: str, broadcast: bool):
    def rule(attrs: Attrs, ins: list[Shape]) -> Shape:
        out = ins[0]
        for s in ins[1:]:
            if broadcast and len(s) == len(out) == 3 and s[0] == out[0] and (s[1:] == (1, 1) or out[1:] == (1, 1)):
                out = out if s[1:] == (1, 1) else s
                continue
            if len(s) != len(out):
                raise OpError("E205", f"`{op}` cannot combine a feature map with a flat vector")
            if s[0] != out[0]:
                raise OpError("E202", f"`{op}` needs equal channels, got {out[0]} and {s[0]}")
            if s != out:
                raise OpError("E203", f"`{op}` needs equal spatial sizes, got {out[1]}x{out[2]} and {s[1]}x{s[2]}")
        return out

    return rule


def _concat_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    first = ins[0]
    for s in ins[1:]:
        if len(s) != len(first):
            raise OpError("E205", "`concat` cannot join a feature map and a flat vector")
        if s[1:] != first[1:]:
            raise OpError(
                "E203",
                f"`concat` needs equal spatial sizes, got {first[1]}x{first[2]} and {s[1]}x{s[2]}",
                "give every branch the same total stride and padding",
            )
    return (sum(s[0] for s in ins), *first[1:])


ADD = OpDef(
    "add",
    "element-wise sum of branches (residual connections)",
    arity=-1,
    shape=_merge_shape("add", False),
    lowering=MERGE,
    epilogue=True,
)
MUL = OpDef(
    "mul",
    "element-wise product of branches; a Cx1x1 branch broadcasts (squeeze-and-excitation)",
    arity=-1,
    shape=_merge_shape("mul", True),
    lowering=MERGE,
    epilogue=True,
)
CONCAT = OpDef(
    "concat",
    "concatenation of branches along channels (Inception)",
    arity=-1,
    shape=_concat_shape,
    lowering=MERGE,
)

# Normalisation and scaling over channels (ConvNeXt) ----------------------------------------


def _per_channel(shape: Shape) -> Shape:
    """The shape of a per-channel tensor that broadcasts over a value of this shape: (C, 1, 1) or (C,)."""
    return (shape[0], 1, 1) if len(shape) == 3 else (shape[0],)


def _ln_weights(attrs: Attrs, ins: list[Shape]) -> dict[str, TensorSpec]:
    c = ins[0][0]
    return {"weight": TensorSpec((c,), init="ones"), "bias": TensorSpec((c,))}


LAYERNORM = OpDef(
    "layernorm",
    "layer normalisation over the channels of each pixel (ConvNeXt's LayerNorm2d), with weight and bias",
    (Param("eps", "positive", 1e-5),),
    weights=_ln_weights,
)


def _layer_scale_weights(attrs: Attrs, ins: list[Shape]) -> dict[str, TensorSpec]:
    # torchvision's CNBlock.layer_scale: a (C, 1, 1) parameter filled with the init value
    return {"scale": TensorSpec(_per_channel(ins[0]), init=float(attrs["init"]))}


LAYER_SCALE = OpDef(
    "layer_scale",
    "a learned per-channel multiplier (ConvNeXt's layer scale), initialised to `init`",
    (Param("init", "float", 1e-6, positional=True),),
    weights=_layer_scale_weights,
)

STOCHASTIC_DEPTH = OpDef(
    "stochastic_depth",
    "drops a residual branch per sample with probability p in training (torchvision's StochasticDepth, "
    "row mode); the identity at inference",
    (Param("p", "fraction", 0.0, positional=True),),
    lowering=VIEW,
)

# Channel rearrangement (ShuffleNet) ----------------------------------------------------------


def _resolve_slice(a: dict, ins: list[Shape]) -> dict:
    c = ins[0][0]
    end = c if a["end"] is None else a["end"]
    if not 0 <= a["start"] < end <= c:
        raise OpError(
            "E209",
            f"`slice({a['start']}, {end})` does not take a non-empty range of the {c} channels",
            f"give 0 <= start < end <= {c}",
            "end" if a["end"] is not None and a["end"] > c else "start",
        )
    a["end"] = end
    return a


def _slice_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    return (attrs["end"] - attrs["start"], *ins[0][1:])


SLICE = OpDef(
    "slice",
    "channels start..end-1 of the input (torch's x[:, start:end]; ShuffleNet's channel split)",
    (Param("start", "index", positional=True), Param("end", "index", None, positional=True, doc="default: all")),
    resolve=_resolve_slice,
    shape=_slice_shape,
)


def _resolve_shuffle(a: dict, ins: list[Shape]) -> dict:
    c = _require_map("shuffle", ins[0])[0]
    if c % a["groups"]:
        raise OpError(
            "E204",
            f"`shuffle({a['groups']})` needs the groups to divide the {c} input channels",
            f"choose groups from the divisors of {c}",
            "groups",
        )
    return a


SHUFFLE = OpDef(
    "shuffle",
    "channel shuffle (ShuffleNet; torch's nn.ChannelShuffle): output channel i*g + j is input j*(C/g) + i",
    (Param("groups", "channels", positional=True),),
    resolve=_resolve_shuffle,
    feature_map=True,
)

# Resampling (dense prediction) ----------------------------------------------------------------


@dataclass(frozen=True)
class Resample:
    """A receptive-field rule for ops whose effective stride is fractional (upsampling, transposed conv),
    exact per output pixel: along axis ax, output pixel o reads input pixels reads(ax, o) = (first, last),
    or None (none), and the map repeats: reads(ax, o + period[ax]) = reads(ax, o) + shift[ax]. Like a
    window's padding, indices may lie outside the input."""

    period: tuple[int, int]
    shift: tuple[int, int]
    reads: Callable[[int, int], tuple[int, int] | None]


def _resolve_upsample(a: dict, ins: list[Shape]) -> dict:
    _, h, w = _require_map("upsample", ins[0])
    if (a["scale"] is None) == (a["size"] is None):
        raise OpError(
            "E210",
            "`upsample` takes a scale factor or an output size" + (", not both" if a["scale"] else ""),
            "give one, e.g. upsample(2) or upsample(size=(28, 28))",
            "size" if a["scale"] is not None else None,
        )
    if a["align_corners"] and a["mode"] != "bilinear":
        raise OpError(
            "E210",
            "`align_corners` applies to bilinear upsampling only (as in torch)",
            "add mode=bilinear, or drop align_corners",
            "align_corners",
        )
    if a["scale"] is not None:
        given = a["scale"] if isinstance(a["scale"], tuple) else (a["scale"], a["scale"])
        scale = tuple(float(s) for s in given)
        size = (int(h * scale[0]), int(w * scale[1]))  # torch: floor(input * scale_factor)
        if min(size) < 1:
            raise OpError(
                "E201",
                f"`upsample` by {a['scale']} leaves a {size[0]}x{size[1]} output from a {h}x{w} input",
                "upsample by a factor of at least 1, or pool to shrink",
                "scale",
            )
        a.update(scale=scale, size=size)
    else:
        a["size"] = pair(a["size"])
    return a


def _upsample_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    return (ins[0][0], *attrs["size"])


def upsample_ratio(attrs: Attrs, size_in: tuple[int, int]) -> tuple[float, float]:
    """Input pixels per output pixel, as torch computes the source index with (area_pixel_compute_scale):
    (in - 1) / (out - 1) with align_corners, else 1 / scale_factor when a factor was given, else in / out."""
    out = []
    for ax in (0, 1):
        n, o = size_in[ax], attrs["size"][ax]
        if attrs["align_corners"]:
            out.append((n - 1) / (o - 1) if o > 1 else 0.0)
        elif attrs["scale"] is not None:
            out.append(1.0 / attrs["scale"][ax])
        else:
            out.append(n / o)
    return tuple(out)


def _upsample_window(attrs: Attrs, ins: list[Shape]):
    from fractions import Fraction

    size_in = ins[0][1:]
    ratios = []  # input pixels per output pixel, exactly (torch computes them in float32)
    for ax in (0, 1):
        n, o = size_in[ax], attrs["size"][ax]
        if attrs["align_corners"]:
            ratios.append(Fraction(n - 1, o - 1) if o > 1 else Fraction(0))
        elif attrs["scale"] is not None:
            ratios.append(1 / Fraction(attrs["scale"][ax]).limit_denominator(1000))
        else:
            ratios.append(Fraction(n, o))
    bilinear, corners = attrs["mode"] == "bilinear", attrs["align_corners"]

    def reads(ax: int, o: int) -> tuple[int, int]:
        r = ratios[ax]
        if not bilinear:
            i = math.floor(o * r)
            return i, i
        real = o * r if corners else (o + Fraction(1, 2)) * r - Fraction(1, 2)  # left clamp: a border effect
        i = math.floor(real)
        return i, i + (real > i)  # the second tap only where its weight is not zero

    return Resample(tuple(r.denominator if r else 1 for r in ratios), tuple(r.numerator for r in ratios), reads)


UPSAMPLE = OpDef(
    "upsample",
    "nearest or bilinear upsampling by a scale factor or to a size (torch's nn.Upsample / F.interpolate)",
    (
        Param("scale", "scale", None, positional=True, doc="factor, number or (h, w); output floor(in * scale)"),
        Param("size", "size", None, doc="output size, int or (h, w), instead of a scale factor"),
        Param("mode", "mode", "nearest", doc="`nearest` or `bilinear`"),
        Param("align_corners", "bool", False, doc="bilinear only, as torch"),
    ),
    resolve=_resolve_upsample,
    shape=_upsample_shape,
    window=_upsample_window,
    feature_map=True,
    extra={"derived": lambda attrs: ("size",) if attrs["scale"] is not None else ()},  # for `cnndsl expand`
)


def _resolve_crop(a: dict, ins: list[Shape]) -> dict:
    _, h, w = _require_map("crop", ins[0])
    th, tw = pair(a["size"])
    if th > h or tw > w:
        raise OpError(
            "E211",
            f"`crop` to {th}x{tw} is larger than its {h}x{w} input",
            "crop to at most the input size (crop only removes pixels)",
            "size",
        )
    # torchvision's center_crop: the offset int(round((in - out) / 2)), Python's round (half to even)
    a.update(size=(th, tw), offset=(int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))))
    return a


def _crop_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    return (ins[0][0], *attrs["size"])


def _crop_window(attrs: Attrs, ins: list[Shape]):
    (oh, ow) = attrs["offset"]
    return None if (oh, ow) == (0, 0) else Window((1, 1), (1, 1), (-oh, -ow))


CROP = OpDef(
    "crop",
    "center crop to a size (torchvision's center_crop; U-Net's skip connections)",
    (Param("size", "size", positional=True, doc="output size, int or (h, w)"),),
    resolve=_resolve_crop,
    shape=_crop_shape,
    window=_crop_window,
    feature_map=True,
)


def _resolve_convt(a: dict, ins: list[Shape]) -> dict:
    c = _require_map("convt", ins[0])[0]
    a.update(
        kernel=pair(a["kernel"]),
        stride=pair(a["stride"]),
        pad=pair(a["pad"]),
        dilation=pair(a["dilation"]),
        output_pad=pair(a["output_pad"]),
    )
    for op_, s, d in zip(a["output_pad"], a["stride"], a["dilation"]):
        if op_ >= max(s, d):
            raise OpError(
                "E206",
                f"`output_pad` {op_} must be smaller than the stride or the dilation ({s}, {d})",
                "output_pad only picks among the sizes a stride could have come from: use 0..stride-1",
                "output_pad",
            )
    groups, out = a["groups"], a["out"]
    if c % groups or out % groups:
        raise OpError(
            "E204",
            f"groups={groups} must divide both the input channels ({c}) and the output channels ({out})",
            f"choose groups from the common divisors of {c} and {out}",
            "groups",
        )
    return a


def convt_out(size: int, k: int, s: int, p: int, d: int, op_: int) -> int:
    """torch's ConvTranspose2d: (W - 1) S - 2P + D (K - 1) + output_padding + 1."""
    return (size - 1) * s - 2 * p + d * (k - 1) + op_ + 1


def _convt_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    _, h, w = ins[0]
    hw = [
        convt_out(n, k, s, p, d, o)
        for n, k, s, p, d, o in zip(
            (h, w), attrs["kernel"], attrs["stride"], attrs["pad"], attrs["dilation"], attrs["output_pad"]
        )
    ]
    if min(hw) < 1:
        raise OpError(
            "E201",
            f"`convt` leaves a {hw[0]}x{hw[1]} output from a {h}x{w} input",
            "use less padding",
            "pad",
        )
    if max(hw) > MAX_DIM:
        raise OpError("E207", f"`convt` makes a {hw[0]}x{hw[1]} output, larger than {MAX_DIM}")
    return (attrs["out"], *hw)


def _convt_weights(attrs: Attrs, ins: list[Shape]) -> dict[str, TensorSpec]:
    kh, kw = attrs["kernel"]
    per_group = attrs["out"] // attrs["groups"]
    fan_in = per_group * kh * kw  # torch takes weight.size(1) * kh * kw as the fan-in here
    w = {"weight": TensorSpec((ins[0][0], per_group, kh, kw), init=fan_in)}
    if attrs["bias"]:
        w["bias"] = TensorSpec((attrs["out"],), init=fan_in)
    return w


def _convt_macs(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    c, h, w = ins[0]
    kh, kw = attrs["kernel"]
    return c * (attrs["out"] // attrs["groups"]) * kh * kw * h * w  # every input pixel meets every tap once


def _convt_window(attrs: Attrs, ins: list[Shape]):
    def reads(ax: int, o: int) -> tuple[int, int] | None:
        k, st, p, d = attrs["kernel"][ax], attrs["stride"][ax], attrs["pad"][ax], attrs["dilation"][ax]
        hit = [(o + p - t * d) // st for t in range(k) if (o + p - t * d) % st == 0]  # o = i*s - p + t*d
        return (min(hit), max(hit)) if hit else None

    return Resample(attrs["stride"], (1, 1), reads)


CONVT = OpDef(
    "convt",
    "transposed convolution (torch's ConvTranspose2d; the up-convolution of U-Net)",
    (
        Param("out", "channels", positional=True, doc="output channels"),
        Param("kernel", "kernel", positional=True, doc="kernel size; also written in the name: convt2x2"),
        Param("stride", "stride", 1),
        Param("pad", "pair", 0, doc="torch's padding: removed from each side of the output"),
        Param("output_pad", "pair", 0, doc="torch's output_padding: added to the bottom/right"),
        Param("dilation", "stride", 1),
        Param("groups", "channels", 1),
        Param("bias", "bool", True),
    ),
    resolve=_resolve_convt,
    shape=_convt_shape,
    weights=_convt_weights,
    macs=_convt_macs,
    window=_convt_window,
    feature_map=True,
    epilogue=True,
)

INPUT = OpDef("input", "the network input", arity=0)

OPS: dict[str, OpDef] = {
    op.name: op
    for op in [
        INPUT,
        CONV,
        MAXPOOL,
        AVGPOOL,
        GAP,
        GMP,
        ADAPTIVE_AVGPOOL,
        FLATTEN,
        FC,
        BN,
        DROPOUT,
        *ACTIVATIONS,
        SOFTMAX,
        LAYERNORM,
        LAYER_SCALE,
        STOCHASTIC_DEPTH,
        SLICE,
        SHUFFLE,
        UPSAMPLE,
        CROP,
        CONVT,
        ADD,
        MUL,
        CONCAT,
    ]
}

# Surface names ------------------------------------------------------------------------

ALIASES_KW = {"k": "kernel"}  # keyword spellings: conv(64, k=3) is conv(64, kernel=3)
ALIASES = {
    "deconv": "convt",
    "linear": "fc",
    "batchnorm": "bn",
    "swish": "silu",
    "global_avgpool": "gap",
    "global_maxpool": "gmp",
}
MERGES = tuple(op.name for op in OPS.values() if op.lowering == MERGE)
_SIZED = re.compile(r"^(conv|dwconv|convt|deconv|maxpool|avgpool)([0-9]+)(?:x([0-9]+))?$")


@dataclass(frozen=True)
class Surface:
    """What a layer name written in a spec means: an op, preset attributes, and the base for its IR name."""

    op: OpDef
    preset: dict
    base: str


def lookup(name: str) -> Surface | None:
    if name in ("dwconv",):
        return Surface(CONV, {"depthwise": True}, "dwconv")
    m = _SIZED.match(name)
    if m and max(len(m.group(2)), len(m.group(3) or "")) > 9:  # `conv999...9`: int() of 4,300 digits raises
        return None
    if m:
        family, kh, kw = m.group(1), int(m.group(2)), int(m.group(3) or m.group(2))
        if kh < 1 or kw < 1 or kh > MAX_DIM or kw > MAX_DIM:
            return None
        preset = {"kernel": (kh, kw)}
        if family == "dwconv":
            preset["depthwise"] = True
        op = {"dwconv": "conv", "deconv": "convt"}.get(family, family)
        return Surface(OPS[op], preset, "convt" if family == "deconv" else family)
    name = ALIASES.get(name, name)
    op = OPS.get(name)
    if op is None or op.name in ("input", *MERGES):
        return None
    return Surface(op, {}, name)


def surface_names() -> list[str]:
    """Every layer name a user can write (for `did you mean`)."""
    sized = (
        [f"{f}{k}x{k}" for f in ("conv", "dwconv") for k in (1, 3, 5, 7)]
        + ["convt2x2", "convt4x4"]
        + [f"{f}{k}" for f in ("maxpool", "avgpool") for k in (2, 3)]
    )
    plain = [n for n in OPS if n not in ("input", *MERGES)]
    return sorted({*sized, *plain, *ALIASES, "dwconv"})


# dwconv takes a channel multiplier instead of an output width.
DWCONV_PARAMS = (Param("multiplier", "channels", 1, positional=True),) + tuple(
    p for p in _CONV_PARAMS if p.name not in ("out", "groups", "table")
)


def signature(surface: Surface) -> tuple[Param, ...]:
    params = DWCONV_PARAMS if surface.preset.get("depthwise") else surface.op.params
    return tuple(p for p in params if p.name not in surface.preset)


def check_value(kind: str, value: Any) -> str | None:
    """None if value fits kind, else what was expected (for E103/E104 messages)."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_num = (is_int or isinstance(value, float)) and not isinstance(value, bool)
    if kind == "channels":
        return None if is_int and 1 <= value <= MAX_CHANNELS else f"an integer from 1 to {MAX_CHANNELS}"
    if kind == "kernel":
        ok = (is_int and 1 <= value <= MAX_DIM) or _is_pair(value, 1)
        return None if ok else "a positive integer or a pair (h, w)"
    if kind == "stride":
        return (
            None
            if value is None or (is_int and 1 <= value <= MAX_DIM) or _is_pair(value, 1)
            else "a positive integer or a pair (h, w)"
        )
    if kind == "pair":
        return (
            None
            if (is_int and 0 <= value <= MAX_DIM) or _is_pair(value, 0)
            else "a non-negative integer or a pair (h, w)"
        )
    if kind == "padding":
        return (
            None
            if value in ("same", "valid") or check_value("pair", value) is None
            else "an integer, a pair, `same` or `valid`"
        )
    if kind == "bool":
        return None if isinstance(value, bool) else "`true` or `false`"
    if kind == "float":
        return None if is_num and abs(value) < 1e6 else "a number"
    if kind == "positive":
        return None if is_num and 0 < value < 1 else "a number between 0 and 1"
    if kind == "fraction":
        return None if is_num and 0 <= value < 1 else "a number from 0 up to (not including) 1"
    if kind == "index":
        return None if value is None or (is_int and 0 <= value <= MAX_CHANNELS) else "a channel index from 0"
    if kind == "size":
        ok = value is None or (is_int and 1 <= value <= MAX_DIM) or _is_pair(value, 1)
        return None if ok else "a positive integer or a pair (h, w)"
    if kind == "scale":
        one = lambda v: not isinstance(v, bool) and isinstance(v, (int, float)) and 0 < v <= 64  # noqa: E731
        ok = value is None or one(value) or (isinstance(value, tuple) and len(value) == 2 and all(map(one, value)))
        return None if ok else "a positive number up to 64 or a pair of them"
    if kind == "mode":
        return None if value in ("nearest", "bilinear") else "`nearest` or `bilinear`"
    if kind == "table":
        ok = value is None or (
            isinstance(value, tuple)
            and all(
                isinstance(r, tuple) and all(isinstance(i, int) and not isinstance(i, bool) for i in r) for r in value
            )
        )
        return None if ok else "a list of lists of input-map indices"
    raise AssertionError(kind)


def _is_pair(value: Any, low: int) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= MAX_DIM for v in value)
    )
