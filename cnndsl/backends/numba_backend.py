"""The Numba CPU backend: the IR rendered as a standalone module of numpy + numba.

The generated module holds three parts: the shared model API (runtime/model_api.py), the
generic kernel library (runtime/numba_kernels.py), both copied verbatim, and the network:
its WEIGHTS table, a `_forward` with one kernel call per layer (itself compiled into
one call for small networks), and a `Model` whose `_set_weights` packs every kernel
into one flat array (batch norm folded into the conv or fc before it). A planning
pass fuses batch norm and activations into the layer before them and gives every
intermediate a slot in one arena, preallocated per batch size and reused once dead.
Kernels read every shape at run time, so compile time does not grow with depth.
"""

from __future__ import annotations

import hashlib
import math
import os

from .. import runtime
from ..analysis.params import node_weights, weight_specs
from ..ir import Network, Node
from ..ops import ELEMENTWISE, VIEW
from .base import Namespace, emit_all, literal, ops_lowered_as, quoted, where
from .layout import LINE, fit_all, outputs_line
from .lowering import Step, epilogue, plan, plan_buffers
from .torch_layers import tuple_literal

# Up to this many steps the whole forward is one compiled function (no per-layer dispatch, which is what
# small nets at batch 1 pay for); beyond it compiling that function costs more than dispatch ever saves
# (ResNet-50: ~30 s more cold compile for < 1 ms of dispatch per call), so the forward is plain Python.
JIT_FORWARD_MAX_STEPS = 24


# -- convolution method per layer ------------------------------------------------------------------
CONV_DIRECT, CONV_GEMM, CONV_WGEMM = "CONV_DIRECT", "CONV_GEMM", "CONV_WGEMM"  # the kernel library's names
CONV_DW, CONV_DWB, CONV_PW = "CONV_DW", "CONV_DWB", "CONV_PW"
CONV_WINOGRAD = "winograd"  # conv_winograd, called on its own: its weights are packed transformed


# Wide-row im2col + BLAS pays only for short rows feeding few output channels (LeNet-5's second conv, 6 -> 16
# channels at 10x10: 17 us against 22 for banded im2col); from 32 output channels or 28-pixel rows the
# banded im2col + GEMM (conv_gemm) is faster, up to 2x on 3-channel stems (2 threads, 2026-12-02).
WGEMM_MAX_WIDTH = 24  # the kernel library's _LONG_ROW: rows shorter than this are copied by index
WGEMM_MAX_COUT = 16

# Winograd F(4x4, 3x3) pays from 16 channels in and out once its three phases run over the threads
# (2 threads, batch 1, against banded im2col + GEMM: 16 ch at 16x16 1.5x, 32 at 8x8 1.2x, 64 at 56x56 2.0x,
# 256 at 7x7 1.5x, 512 at 7x7 1.03x, and 2.5x at batch 8; on one thread 512 at 7x7 is 0.67x at batch 1, the
# transformed kernels being 4x the bytes for four tiles, but 1.6x at batch 8). Below 7x7 outputs (one or two
# tiles) its transforms are pure overhead; 3-channel inputs (stems) lose 2x.
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_PIXELS = 7 * 7
# Big kernels on small maps are bound by streaming the transformed kernels (512 channels: 38 MB a layer;
# in ResNet-18 at batch 1, 3.4 ms a layer against 1.8 for im2col + GEMM), which pays only when several
# images share the stream: such layers get both methods, picked by the batch size at run time.
WINOGRAD_BIG_KERNELS = 256 * 256  # cin * cout beyond which a map under 16x16 needs a batch
WINOGRAD_BIG_KERNEL_BATCH = 4
WINOGRAD_GEMM_COLUMNS = 64  # images share each GEMM until it has this many tile columns (at most 8 images)

# Depthwise convs with outputs up to 14x14 run 16 channels at a time (conv_depthwise_blocked: 1.3-1.8x the
# wide-row kernel there, 2 threads, MobileNet-v2's and EfficientNet-B0's layers); on bigger maps its
# interleaving copies cost more than it saves (0.8x at 56x56). 3x3 pad-1 ones at stride 1 or 2 go to
# conv_depthwise at every size, whose in-place 3x3 kernel beats the blocked one down to 7x7 (2 threads:
# 1.4x at 14x14, 1.9x at 28 -> 14, 1.1x on 960 channels at 7x7).
DWB_MAX_PIXELS = 14 * 14

# 1x1 convs down to a few channels on big maps are memory-bound: conv_pointwise's loops beat banded im2col +
# BLAS there (in MobileNet-v2, 2 threads: 32 -> 16 channels at 112x112 2.4x, 96 -> 24 and 144 -> 24 at 56x56
# 1.7-1.9x). Expansions (16 -> 96, 24 -> 144) ran 0.8-0.9x in the network (1.1-1.6x alone: their big
# outputs stream to memory either way), and from 64 output channels or on smaller maps BLAS wins.
PW_MIN_PIXELS = 56 * 56
PW_MAX_OUT_CHANNELS = 32


def winograd_images(oh: int, ow: int) -> int:
    """Images whose tiles go through one GEMM: small maps alone leave BLAS too few columns."""
    tiles = ((oh + 3) // 4) * ((ow + 3) // 4)
    return max(1, min(8, -(-WINOGRAD_GEMM_COLUMNS // tiles)))


def conv_method(cin: int, node: Node) -> str:
    """Which conv2d method a layer gets: depthwise convs (groups == channels in and out, one stride) the
    depthwise kernel (3x3 pad-1 ones its in-place 3x3 kernel; the others its wide-row one, 1.7-2x the direct
    kernel on MobileNet's and EfficientNet's planes at stride 1, 1.1-1.6x at stride 2, or on small maps the
    blocked one, DWB_MAX_PIXELS); other grouped convs the
    direct kernel; 1x1 convs to few channels on big maps their own loops (PW_MIN_PIXELS); stride-1 convs
    bigger than 1x1 with short rows and few output channels the wide-row im2col + BLAS (one contiguous
    window copy per im2col row instead of one short copy per output row); the rest banded im2col + BLAS.
    Before all these, stride-1 3x3 convs with enough channels and pixels get Winograd F(4x4, 3x3) (see
    WINOGRAD_MIN_CHANNELS)."""
    a = node.attrs
    (kh, kw) = a["kernel"]
    sh, sw = a["stride"]
    if _winograd_pays(cin, node):
        return CONV_WINOGRAD
    cout, oh, ow = node.shape
    if a["groups"] != 1:
        if a["groups"] != cin or cin != cout or sh != sw:
            return CONV_DIRECT
        return CONV_DWB if oh * ow <= DWB_MAX_PIXELS and not _depthwise3(node) else CONV_DW
    if (kh, kw) == (1, 1) and (sh, sw) == (1, 1) and a["pad"] == (0, 0) and a["table"] is None:
        if oh * ow >= PW_MIN_PIXELS and cout <= PW_MAX_OUT_CHANNELS:
            return CONV_PW
    if a["stride"] == (1, 1) and (kh, kw) != (1, 1):
        if ow < WGEMM_MAX_WIDTH and cout <= WGEMM_MAX_COUT:
            return CONV_WGEMM
    return CONV_GEMM


def _depthwise3(node: Node) -> bool:
    """Whether conv_depthwise's in-place 3x3 kernel takes this depthwise layer (as _dw3_applies decides)."""
    a = node.attrs
    return (a["kernel"], a["pad"], a["dilation"]) == ((3, 3), (1, 1), (1, 1)) and a["stride"] in ((1, 1), (2, 2))


def _winograd_pays(cin: int, node: Node) -> bool:
    a = node.attrs
    cout, oh, ow = node.shape
    if a["kernel"] != (3, 3) or a["stride"] != (1, 1) or a["dilation"] != (1, 1) or a["groups"] != 1:
        return False
    if a["table"] is not None or min(cin, cout) < WINOGRAD_MIN_CHANNELS:
        return False
    return oh * ow >= WINOGRAD_MIN_PIXELS


def winograd_min_batch(cin: int, node: Node) -> int:
    """The smallest batch at which a Winograd layer runs Winograd (below it, im2col + GEMM)."""
    cout, oh, ow = node.shape
    return WINOGRAD_BIG_KERNEL_BATCH if cin * cout > WINOGRAD_BIG_KERNELS and oh * ow < 16 * 16 else 1


def conv_scratch(cin: int, in_hw: tuple[int, int], node: Node, method: str) -> int:
    """Floats of scratch (one image) conv2d needs for a layer."""
    a = node.attrs
    cout, oh, ow = node.shape
    (kh, kw), (ph, pw) = a["kernel"], a["pad"]
    if method == CONV_WINOGRAD:
        # the transformed tiles (36, cin, tiles) and their products (36, cout, tiles) of `images` images
        wino = 36 * (cin + cout) * ((oh + 3) // 4) * ((ow + 3) // 4) * winograd_images(oh, ow)
        return wino if winograd_min_batch(cin, node) == 1 else max(wino, conv_scratch(cin, in_hw, node, CONV_GEMM))
    if method == CONV_WGEMM:  # padded planes, wide im2col columns, the wide product
        hp, wp = in_hw[0] + 2 * ph, in_hw[1] + 2 * pw
        wl = (oh - 1) * wp + ow
        return cin * hp * wp + (cin * kh * kw + cout) * wl
    if method == CONV_GEMM:  # every band's im2col columns (a 1x1 conv's input rows) and product
        return (cin // a["groups"] * kh * kw + cout) * oh * ow
    return 0


def _tuple(items) -> str:
    items = [str(i) for i in items]
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _dims(shape) -> str:
    return _tuple(["n", *shape])


class _Context:
    """What rendering collects while the emitters run: forward statements, weight-packing statements,
    the packed weights' size and the largest scratch a conv needs."""

    def __init__(self, network: Network, steps: tuple[Step, ...]):
        self.net = network
        self.buffers = plan_buffers(network, steps)
        self.names = Namespace({"x", "n", "A", "W", "S", "T"})
        self.var: dict[str, str] = {"input": "x"}
        self.fwd: list[str] = []
        self.pack: list[str] = []
        self.wsize = 0
        self.scratch = 0

    # values and buffers
    def shape(self, value: str):
        return self.net.node(value).shape

    def output(self, step: Step) -> str:
        """The variable of the step's output: a new view of the arena, or its operand's (written over)."""
        value = step.out
        ident = self.var[value] = self.names.create(value, "t_")
        off, shape = self.buffers.offset[value], self.shape(value)
        if value in self.buffers.inplace:
            operand = next(i for i in step.node.inputs if self.buffers.offset[i] == off)
            self.fwd.append(f"{ident} = {self.var[operand]}")
        else:
            self.fwd.append(f"{ident} = A[n * {off} : n * {off + math.prod(shape)}].reshape({_dims(shape)})")
        return ident

    def view3(self, value: str) -> str:
        """(N, C, H*W) view of a feature map, (N, F, 1) of a flat vector."""
        shape = self.shape(value)
        return f"{self.var[value]}.reshape((n, {shape[0]}, {math.prod(shape[1:])}))"

    def flat(self, value: str) -> str:
        return f"{self.var[value]}.reshape((n * {math.prod(self.shape(value))},))"

    # weights
    def weight(self, shape, expr: str) -> str:
        """Pack expr (computed when weights load) into the flat weight array; its view in the forward."""
        start, size = self.wsize, math.prod(shape)
        self.pack.append(f"packed[{start}:{start + size}] = ({expr}).ravel()")
        self.wsize += size
        view = f"W[{start}:{start + size}]"
        return view if len(shape) == 1 else f"{view}.reshape({_tuple(shape)})"

    def comment(self, step: Step) -> None:
        names = " -> ".join(f"{n.name} ({n.op})" for n in step.nodes)
        shape = "x".join(map(str, self.shape(step.out)))
        self.fwd += ["", f"# {where(step.node)}: {names}: {shape}"]
        if step.affine is not None:
            self.pack.append(f"# {where(step.node)}: {step.node.name}, {step.affine.name} folded in")
        elif node_weights(self.net, step.node):
            self.pack.append(f"# {where(step.node)}: {step.node.name}")


def _act(step: Step) -> str:
    code, scalar = epilogue(step)
    return f"{code}, {literal(scalar)}"


def _geometry(**values) -> str:
    """Integer layer geometry as keyword arguments (`sh=2, sw=2, ...`): a reader need not count positions."""
    return ", ".join(f"{k}={literal(v)}" for k, v in values.items())


def _act_kw(step: Step) -> str:
    code, scalar = epilogue(step)
    return f"act={code}, slope={literal(scalar)}"


def _fold_args(step: Step, table=None, cin: int = 0) -> str:
    """Keyword arguments of folded_weights(): the batch norm to fold in, the connection table."""
    bn = step.affine
    args = "" if bn is None else f", bn={quoted(bn.name)}, eps={literal(float(bn.attrs['eps']))}"
    return args if table is None else f"{args}, table={table}, in_channels={cin}"


def _conv_kernel(method: str, a) -> tuple[str, str]:
    """The kernel a conv method calls, and the geometry it takes as keywords. Each layer calls its method's
    kernel directly (not conv2d's run-time switch), so that a network compiles only the kernels it uses."""
    (sh, sw), (ph, pw), (dh, dw) = a["stride"], a["pad"], a["dilation"]
    if method == CONV_GEMM:
        return "conv_gemm", _geometry(sh=sh, sw=sw, ph=ph, pw=pw, dh=dh, dw=dw)
    if method == CONV_WGEMM:
        return "conv_wide_gemm", _geometry(ph=ph, pw=pw, dh=dh, dw=dw)
    if method == CONV_PW:
        return "conv_pointwise", ""
    if method in (CONV_DW, CONV_DWB):
        kernel = "conv_depthwise" if method == CONV_DW else "conv_depthwise_blocked"
        return kernel, _geometry(s=sh, ph=ph, pw=pw, dh=dh, dw=dw)
    return "conv_direct", _geometry(groups=a["groups"], sh=sh, sw=sw, ph=ph, pw=pw, dh=dh, dw=dw)


def _conv(r: _Context, step: Step) -> None:
    node, a = step.node, step.node.attrs
    src = node.inputs[0]
    cin = r.shape(src)[0]
    cout, oh, ow = node.shape
    kh, kw = a["kernel"]
    groups = a["groups"]
    table = None
    if a["table"] is not None:  # a statement of its own, one row per line when long (as ruff format would)
        rows = tuple(tuple(row) for row in a["table"])
        one = f"table = {rows!r}"
        r.pack += [one] if 8 + len(one) <= LINE else [t[8:] for t in tuple_literal(" " * 8, "table = ", rows)]
        table = "table"
    r.pack.append(f"w, b = folded_weights(weights, {quoted(node.name)}{_fold_args(step, table, cin)})")
    method = conv_method(cin, node)
    r.scratch = max(r.scratch, conv_scratch(cin, r.shape(src)[1:], node, method))
    min_batch = winograd_min_batch(cin, node) if method == CONV_WINOGRAD else 1
    u = r.weight((36, cout, cin), "winograd_weights(w)") if method == CONV_WINOGRAD else None
    w = r.weight((cout, cin // groups, kh, kw), "w") if u is None or min_batch > 1 else None
    b = r.weight((cout,), "b")
    y = r.output(step)
    if w is not None:
        kernel, geometry = _conv_kernel(CONV_GEMM if u is not None else method, a)
        geometry = f"{geometry}, " if geometry else ""  # conv_pointwise has none
        conv = f"{kernel}({r.var[src]}, {w}, {b}, {y}, S, T, {geometry}{_act_kw(step)})"
    if u is None:
        r.fwd.append(conv)
        return
    geometry = _geometry(ph=a["pad"][0], pw=a["pad"][1], images=winograd_images(oh, ow))
    wino = f"conv_winograd({r.var[src]}, {u}, {b}, {y}, S, T, {geometry}, {_act_kw(step)})"
    if min_batch == 1:
        r.fwd.append(wino)
    else:  # both kernels packed: the transformed ones pay only when this many images share their stream
        r.fwd += [f"if n >= {min_batch}:", f"    {wino}", "else:", f"    {conv}"]


def _fc(r: _Context, step: Step) -> None:
    node = step.node
    src = node.inputs[0]
    fin, fout = r.shape(src)[0], node.shape[0]
    r.pack.append(f"w, b = folded_weights(weights, {quoted(node.name)}{_fold_args(step)})")
    w = r.weight((fout, fin), "w")
    b = r.weight((fout,), "b")
    y = r.output(step)
    r.fwd.append(f"linear({r.var[src]}, {w}, {b}, {y}, {_act(step)}, T)")


def _affine(r: _Context, step: Step) -> None:
    node, src = step.node, step.node.inputs[0]
    c = r.shape(src)[0]
    r.pack.append(f"scale, shift = bn_scale_shift(weights, {quoted(node.name)}, {literal(float(node.attrs['eps']))})")
    scale = r.weight((c,), "scale")
    shift = r.weight((c,), "shift")
    r.output(step)
    r.fwd.append(f"scale_shift({r.view3(src)}, {scale}, {shift}, {r.view3(step.out)}, {_act(step)}, T)")


def _view(r: _Context, step: Step) -> None:
    src = step.node.inputs[0]
    ident = r.var[step.out] = r.names.create(step.out, "t_")
    view = r.var[src] if r.shape(src) == r.shape(step.out) else f"{r.var[src]}.reshape({_dims(r.shape(step.out))})"
    r.fwd.append(f"{ident} = {view}")


def _elementwise(r: _Context, step: Step) -> None:
    src = step.node.inputs[0]
    r.output(step)
    r.fwd.append(f"act_copy({r.flat(src)}, {r.flat(step.out)}, {_act(step)})")


def _softmax(r: _Context, step: Step) -> None:
    src = step.node.inputs[0]
    r.output(step)
    r.fwd.append(f"softmax({r.view3(src)}, {r.view3(step.out)})")


def _binary(kernel: str, view: str):
    """add(a, b, c) is ((a + b) + c): the activation runs in the last call only."""

    def emit(r: _Context, step: Step) -> None:
        inputs = step.node.inputs
        r.output(step)
        as_view = getattr(r, view)
        acc, y = as_view(inputs[0]), as_view(step.out)
        for k, other in enumerate(inputs[1:]):
            act = _act(step) if k == len(inputs) - 2 else "ACT_NONE, 0.0"
            r.fwd.append(f"{kernel}({acc}, {as_view(other)}, {y}, {act}, T)")
            acc = y

    return emit


def _concat(r: _Context, step: Step) -> None:
    r.output(step)
    c0 = 0
    for i in step.node.inputs:
        r.fwd.append(f"copy_channels({r.view3(i)}, {r.view3(step.out)}, {c0})")
        c0 += r.shape(i)[0]


def _pool(kernel: str):
    def emit(r: _Context, step: Step) -> None:
        a, src = step.node.attrs, step.node.inputs[0]
        y = r.output(step)
        (kh, kw), (sh, sw), (ph, pw) = a["kernel"], a["stride"], a["pad"]
        extra = f", include_pad={int(a['include_pad'])}" if "include_pad" in a.as_dict() else ""
        geometry = _geometry(kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw)
        threads = ", T" if kernel == "maxpool2d" else ""  # the one pool split over threads
        r.fwd.append(f"{kernel}({r.var[src]}, {y}{threads}, {geometry}{extra})")

    return emit


def _global_pool(is_max: int):
    def emit(r: _Context, step: Step) -> None:
        r.output(step)
        r.fwd.append(f"global_pool({r.view3(step.node.inputs[0])}, {r.view3(step.out)}, {is_max}, T)")

    return emit


def _adaptive_avgpool(r: _Context, step: Step) -> None:
    y = r.output(step)
    r.fwd.append(f"adaptive_avgpool2d({r.var[step.node.inputs[0]]}, {y})")


def _view4(r: _Context, value: str) -> str:
    """(N, C, H, W) view of a feature map, (N, F, 1, 1) of a flat vector."""
    shape = r.shape(value)
    return f"{r.var[value]}.reshape({_dims(shape if len(shape) == 3 else (shape[0], 1, 1))})"


def _gather(r: _Context, step: Step) -> None:
    """slice, shuffle and crop: one copying kernel with a channel map and a spatial offset."""
    a, src = step.node.attrs, step.node.inputs[0]
    c0 = a["start"] if step.op == "slice" else 0
    groups = a["groups"] if step.op == "shuffle" else 1
    h0, w0 = a["offset"] if step.op == "crop" else (0, 0)
    r.output(step)
    r.fwd.append(f"gather({_view4(r, src)}, {_view4(r, step.out)}, {c0}, {groups}, {h0}, {w0})")


def _upsample(r: _Context, step: Step) -> None:
    from ..ops import upsample_ratio

    a, src = step.node.attrs, step.node.inputs[0]
    rh, rw = upsample_ratio(a, r.shape(src)[1:])
    y = r.output(step)
    bilinear, corners = int(a["mode"] == "bilinear"), int(a["align_corners"])
    r.fwd.append(f"upsample2d({r.var[src]}, {y}, {literal(rh)}, {literal(rw)}, {bilinear}, {corners})")


def _layernorm(r: _Context, step: Step) -> None:
    node, src = step.node, step.node.inputs[0]
    c = r.shape(src)[0]
    w = r.weight((c,), f"weights[{quoted(node.name + '.weight')}]")
    b = r.weight((c,), f"weights[{quoted(node.name + '.bias')}]")
    r.output(step)
    r.fwd.append(f"layernorm({r.view3(src)}, {w}, {b}, {r.view3(step.out)}, {literal(float(node.attrs['eps']))})")


def _layer_scale(r: _Context, step: Step) -> None:
    node, src = step.node, step.node.inputs[0]
    c = r.shape(src)[0]
    scale = r.weight((c,), f"weights[{quoted(node.name + '.scale')}]")
    zero = r.weight((c,), f"_knp.zeros({c}, _knp.float32)")
    r.output(step)
    r.fwd.append(f"scale_shift({r.view3(src)}, {scale}, {zero}, {r.view3(step.out)}, {_act(step)}, T)")


def _convt(r: _Context, step: Step) -> None:
    node, a = step.node, step.node.attrs
    src = node.inputs[0]
    cin, h, w = r.shape(src)
    cout, g = node.shape[0], a["groups"]
    kh, kw = a["kernel"]
    rows = cout // g * kh * kw
    r.pack += [
        f"wt = weights[{quoted(node.name + '.weight')}]",
        f"wt = wt.reshape(({g}, {cin // g}, {rows})).transpose(0, 2, 1)",
    ]
    wt = r.weight((g, rows, cin // g), "wt")
    bias = f"weights[{quoted(node.name + '.bias')}]" if a["bias"] else f"_knp.zeros({cout}, _knp.float32)"
    b = r.weight((cout,), bias)
    r.scratch = max(r.scratch, rows * h * w)  # the columns of one image and group
    y = r.output(step)
    (sh, sw), (ph, pw), (dh, dw) = a["stride"], a["pad"], a["dilation"]
    geometry = _geometry(kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw, dh=dh, dw=dw)
    r.fwd.append(f"conv_transpose2d({r.var[src]}, {wt}, {b}, {y}, S, T, {geometry}, {_act_kw(step)})")


# What each op becomes: one entry per op (every VIEW and ELEMENTWISE op shares its kind's emitter).
EMIT = {
    **{op: _view for op in ops_lowered_as(VIEW)},
    **{op: _elementwise for op in ops_lowered_as(ELEMENTWISE)},
    "conv": _conv,
    "fc": _fc,
    "bn": _affine,
    "softmax": _softmax,
    "add": _binary("add2", "flat"),
    "mul": _binary("mul2", "view3"),
    "concat": _concat,
    "maxpool": _pool("maxpool2d"),
    "avgpool": _pool("avgpool2d"),
    "gap": _global_pool(0),
    "gmp": _global_pool(1),
    "adaptive_avgpool": _adaptive_avgpool,
    "layernorm": _layernorm,
    "layer_scale": _layer_scale,
    "slice": _gather,
    "shuffle": _gather,
    "crop": _gather,
    "upsample": _upsample,
    "convt": _convt,
}


def _render_network(network: Network) -> _Context:
    steps = plan(network)
    r = _Context(network, steps)
    for step in steps:
        r.comment(step)
        emit_all((step,), EMIT, "numba", r)
    r.steps = len(steps)
    return r


def _model_api() -> str:
    return runtime.source("model_api.py")


def _kernels() -> str:
    return runtime.source("numba_kernels.py")


def render(network: Network, inline_kernels: bool = True) -> str:
    """The generated module's source. inline_kernels=False imports the kernels from cnndsl instead of
    copying them: every network then shares one compiled kernel library (used by the test suite)."""
    r = _render_network(network)
    specs = weight_specs(network)
    weights = "\n".join(
        f'    {quoted(k)}: ({literal(tuple(s.shape))}, "{s.dtype}", "{s.kind}", {literal(s.init)}),'
        for k, s in specs.items()
    )
    api_imports, api = runtime.split_imports(_model_api())
    if inline_kernels:
        kernel_imports, kernels = runtime.split_imports(_kernels())
    else:
        # Numba's cache does not notice when a callee in another module changes, so the module
        # (and so its file name and cache) must change with the kernel library it was compiled against.
        kernel_imports = [
            "from cnndsl.runtime.numba_kernels import *  # noqa: F403",
            "from cnndsl.runtime.numba_kernels import _knp, _nb  # noqa: F401",
        ]
        kernels = f"# kernel library sha256 {hashlib.sha256(_kernels().encode()).hexdigest()[:16]}\n"
    imports = runtime.import_block(api_imports + kernel_imports)
    out_vars = ", ".join(f"{r.var[o]}.copy()" for o in network.outputs)
    if r.steps <= JIT_FORWARD_MAX_STEPS:
        decorator, forward_doc = "@_nb.njit(cache=True)", "The whole network in one compiled call"
    else:
        decorator = f"# {r.steps} steps: plain Python calling the compiled kernels keeps compile time bounded"
        forward_doc = "One compiled kernel call per layer"
    forward = "\n".join(fit_all([f"    {line}" if line else "" for line in r.fwd]))
    pack = "\n".join(fit_all([f"        {line}" for line in r.pack]))
    return f'''"""{network.name}: generated by cnndsl (numba backend). Do not edit; regenerate from the spec.

Needs only numpy and numba. model = Model(); model.load("weights.safetensors"); y = model(x)
with x a float32 array of shape (N, {", ".join(map(str, network.input_shape))}).
"""

{imports}

{api}

{kernels}

WEIGHTS = {{
{weights}
}}
INPUT_SHAPE = {tuple(network.input_shape)!r}
OUTPUT_SHAPE = {tuple(network.output_shape)!r}
{outputs_line(network)}
ARENA_FLOATS = {r.buffers.arena_floats}  # per sample: every intermediate, slots reused once dead
SCRATCH_FLOATS = {max(r.scratch, 1)}  # the largest conv's im2col columns or wide rows (one image)
PACKED_FLOATS = {max(r.wsize, 1)}  # every kernel and bias, batch norm folded in


{decorator}
def _forward(x, W, A, S, T):
    """{forward_doc}: x (N, ...) float32, W packed weights, A arena, S scratch, T threads."""
    n = x.shape[0]
{forward}
    return {out_vars}


class Model(ModelBase):
    """{network.name} for inference. Not thread-safe: calls share preallocated buffers."""

    WEIGHTS = WEIGHTS
    INPUT_SHAPE = INPUT_SHAPE

    def __init__(self, seed=0):
        self._arenas = {{}}
        self._scratch = _knp.empty(SCRATCH_FLOATS, _knp.float32)
        super().__init__(seed)

    def _set_weights(self, weights):
        """Pack every kernel into one flat array, folding each batch norm into the conv or fc before it."""
        packed = _knp.zeros(PACKED_FLOATS, _knp.float32)
{pack}
        self._weights = weights
        self._packed = packed

    def __call__(self, x):
        x = self._check_input(x)
        arena = self._arenas.get(x.shape[0])
        if arena is None:
            arena = self._arenas[x.shape[0]] = _knp.empty(max(x.shape[0] * ARENA_FLOATS, 1), _knp.float32)
        return threaded_call(_forward, x, self._packed, arena, self._scratch)

    forward = __call__
'''


def instantiate(module, seed: int = 0, weights=None, allow_nonfinite: bool = False, **options):
    """A Model of the generated module: seeded random weights, or weights from a file path or a mapping
    (anything else is a WeightsError from load_state_dict); NaN/inf weights only with allow_nonfinite."""
    if options:
        raise TypeError(f"unknown numba backend option(s): {', '.join(sorted(options))}")
    model = module.Model(seed)
    if isinstance(weights, (str, os.PathLike)):
        model.load(weights, allow_nonfinite=allow_nonfinite)
    elif weights is not None:
        model.load_state_dict(weights, allow_nonfinite=allow_nonfinite)
    return model
