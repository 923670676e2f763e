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
from dataclasses import dataclass, field

from .. import runtime
from ..analysis.params import weight_specs
from ..ir import Network, Node
from .layout import LINE, fit_all, outputs_line
from .torch_layers import tuple_literal

ACTIVATIONS = {
    "relu": "ACT_RELU",
    "relu6": "ACT_RELU6",
    "leaky_relu": "ACT_LEAKY",
    "sigmoid": "ACT_SIGMOID",
    "tanh": "ACT_TANH",
    "gelu": "ACT_GELU",
    "silu": "ACT_SILU",
    "hardswish": "ACT_HARDSWISH",
    "hardsigmoid": "ACT_HARDSIGMOID",
}
ALIASES = ("dropout", "flatten")  # no computation: the output is a view of the input
# Up to this many steps the whole forward is one compiled function (no per-layer dispatch, which is what
# small nets at batch 1 pay for); beyond it compiling that function costs more than dispatch ever saves
# (ResNet-50: ~30 s more cold compile for < 1 ms of dispatch per call), so the forward is plain Python.
JIT_FORWARD_MAX_STEPS = 24


# -- convolution method per layer ------------------------------------------------------------------
CONV_DIRECT, CONV_GEMM, CONV_WIDE = "CONV_DIRECT", "CONV_GEMM", "CONV_WIDE"  # the kernel library's constants
_WIDE_BLOCK = 4  # output channels per block of the wide-row kernel (cnndsl.runtime.numba_kernels._OC_BLOCK)


# The wide-row kernel beats im2col + BLAS while the reduction per output (cin x kh x kw) is short: at 25 and
# 150 (LeNet-5) by 2-3x, at 27 (a 3-channel 3x3 stem) it ties; from 288 up BLAS wins (benchmarks/README.md).
WIDE_MAX_DEPTH = 200


def conv_method(cin: int, node: Node) -> str:
    """Which conv2d method a layer gets: grouped convs the direct kernel; stride-1 convs with a short
    reduction and kernel width 3 or 5 the wide-row kernel; the rest im2col + BLAS."""
    a = node.attrs
    (kh, kw) = a["kernel"]
    if a["groups"] != 1:
        return CONV_DIRECT
    if a["stride"] == (1, 1) and kw in (3, 5) and cin * kh * kw <= WIDE_MAX_DEPTH:
        return CONV_WIDE
    return CONV_GEMM


def conv_scratch(cin: int, in_hw: tuple[int, int], node: Node, method: str) -> int:
    """Floats of scratch (one image) conv2d needs for a layer."""
    a = node.attrs
    cout, oh, ow = node.shape
    (kh, kw), (ph, pw) = a["kernel"], a["pad"]
    if method == CONV_WIDE:  # padded input planes, then one block of four wide rows per output block
        wp = in_hw[1] + 2 * pw
        blocks = (cout + _WIDE_BLOCK - 1) // _WIDE_BLOCK
        return cin * (in_hw[0] + 2 * ph) * wp + blocks * _WIDE_BLOCK * ((oh - 1) * wp + ow)
    if method == CONV_GEMM and (kh, kw, *a["stride"], ph, pw) != (1, 1, 1, 1, 0, 0):
        return cin * kh * kw * oh * ow  # im2col columns
    return 0


# -- planning: fusion ----------------------------------------------------------------------------
@dataclass
class Step:
    """One kernel call: a layer, with the batch norm and activation fused into it."""

    node: Node
    bn: Node | None = None
    act: Node | None = None
    out: str = ""  # the name of the value the step produces (the last fused node)

    @property
    def nodes(self) -> list[Node]:
        return [n for n in (self.node, self.bn, self.act) if n is not None]


def _consumers(network: Network) -> dict[str, int]:
    counts = {n.name: 0 for n in network.nodes}
    for n in network.layers:
        for i in n.inputs:
            counts[i] += 1
    for o in network.outputs:  # an output is read once more, by the caller: never fused away or reused
        counts[o] += 1
    return counts


def plan(network: Network) -> list[Step]:
    """Group nodes into steps: conv/fc [+ bn] [+ activation], bn/add/mul [+ activation]."""
    uses = _consumers(network)
    only_reader = {}
    for n in network.layers:
        if len(n.inputs) == 1 and uses[n.inputs[0]] == 1:
            only_reader[n.inputs[0]] = n
    steps, taken = [], set()
    for node in network.layers:
        if node.name in taken:
            continue
        step = Step(node, out=node.name)
        nxt = only_reader.get(node.name)
        if node.op in ("conv", "fc") and nxt is not None and nxt.op == "bn":
            step.bn, step.out = nxt, nxt.name
            nxt = only_reader.get(nxt.name)
        if node.op in ("conv", "fc", "bn", "add", "mul") and nxt is not None and nxt.op in ACTIVATIONS:
            step.act, step.out = nxt, nxt.name
        taken.update(n.name for n in step.nodes)
        steps.append(step)
    return steps


# -- planning: memory ----------------------------------------------------------------------------
@dataclass
class Arena:
    """Offsets (per sample, in floats) of every buffer in one flat arena, reused once a buffer is dead."""

    live: list[tuple[int, int]] = field(default_factory=list)  # (offset, size), sorted
    size: int = 0

    def alloc(self, size: int) -> int:
        start = 0
        for off, sz in self.live:
            if off - start >= size:
                break
            start = max(start, off + sz)
        self.live.append((start, size))
        self.live.sort()
        self.size = max(self.size, start + size)
        return start

    def free(self, offset: int) -> None:
        self.live = [b for b in self.live if b[0] != offset]


def _ident(name: str, used: set[str]) -> str:
    base = "t_" + name.replace(".", "_")
    ident, k = base, 1
    while ident in used:
        k += 1
        ident = f"{base}_{k}"
    used.add(ident)
    return ident


def _tuple(items) -> str:
    items = [str(i) for i in items]
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _literal(init) -> str:
    """A weight's init: a fan-in (int) or "ones"/"zeros", written with double quotes like the rest."""
    return str(int(init)) if isinstance(init, int) else f'"{init}"' if init in ("ones", "zeros") else repr(init)


def _dims(shape) -> str:
    return _tuple(["n", *shape])


class _Renderer:
    """Walks the steps once, emitting forward statements and weight-packing statements."""

    def __init__(self, network: Network):
        self.net = network
        self.uses = _consumers(network)
        self.arena = Arena()
        self.pending: dict[int, int] = {}  # buffer offset -> reads still to come
        self.buffer: dict[str, int | None] = {"input": None}  # value -> arena offset (None: the input x)
        self.var: dict[str, str] = {"input": "x"}
        self.used_idents: set[str] = {"x", "n"}
        self.fwd: list[str] = []
        self.pack: list[str] = []
        self.wsize = 0
        self.scratch = 0

    # values and buffers
    def shape(self, value: str):
        return self.net.node(value).shape

    def bind(self, value: str, offset: int | None) -> str:
        ident = _ident(value, self.used_idents)
        self.var[value], self.buffer[value] = ident, offset
        if offset is not None:
            self.pending[offset] = self.pending.get(offset, 0) + self.uses[value]
        return ident

    def new_buffer(self, value: str) -> str:
        shape = self.shape(value)
        off = self.arena.alloc(math.prod(shape))
        ident = self.bind(value, off)
        self.fwd.append(f"{ident} = A[n * {off} : n * {off + math.prod(shape)}].reshape({_dims(shape)})")
        return ident

    def inplace_or_new(self, step: Step, operand: str) -> str:
        """Write over operand's buffer when this step is its last reader and the shapes agree."""
        off = self.buffer[operand]
        reads = sum(1 for i in step.node.inputs if self.buffer[i] == off)
        if off is not None and self.pending[off] == reads and self.shape(operand) == self.shape(step.out):
            ident = self.bind(step.out, off)
            self.fwd.append(f"{ident} = {self.var[operand]}")
            return ident
        return self.new_buffer(step.out)

    def release(self, step: Step) -> None:
        for i in step.node.inputs:
            off = self.buffer[i]
            if off is None:
                continue
            self.pending[off] -= 1
            if self.pending[off] == 0:
                self.arena.free(off)

    # views
    def view3(self, value: str) -> str:
        """(N, C, H*W) view of a feature map, (N, F, 1) of a flat vector."""
        shape = self.shape(value)
        c, rest = shape[0], math.prod(shape[1:])
        return f"{self.var[value]}.reshape((n, {c}, {rest}))"

    def flat(self, value: str) -> str:
        return f"{self.var[value]}.reshape((n * {math.prod(self.shape(value))},))"

    # weights
    def weight(self, shape) -> str:
        start, size = self.wsize, math.prod(shape)
        self.wsize += size
        view = f"W[{start}:{start + size}]"
        return view if len(shape) == 1 else f"{view}.reshape({_tuple(shape)})"

    def packing(self, shape, expr: str) -> None:
        start = self.wsize
        self.pack.append(f"packed[{start}:{start + math.prod(shape)}] = ({expr}).ravel()")

    # the program
    def render_steps(self) -> None:
        steps = plan(self.net)
        self.steps = len(steps)
        for step in steps:
            self.comment(step)
            if step.node.op in ALIASES:
                src = step.node.inputs[0]
                ident = self.bind(step.out, self.buffer[src])
                view = (
                    self.var[src]
                    if step.node.op == "dropout"
                    else f"{self.var[src]}.reshape({_dims(self.shape(step.out))})"
                )
                self.fwd.append(f"{ident} = {view}")
            else:
                getattr(self, "op_" + step.node.op, self.op_activation)(step)
            self.release(step)

    def comment(self, step: Step) -> None:
        names = " -> ".join(f"{n.name} ({n.op})" for n in step.nodes)
        shape = "x".join(map(str, self.shape(step.out)))
        self.fwd.append("")
        self.fwd.append(f"# line {step.node.line}: {names}: {shape}")
        if step.bn is not None:
            self.pack.append(f"# line {step.node.line}: {step.node.name}, {step.bn.name} folded in")
        elif step.node.op in ("conv", "fc", "bn"):
            self.pack.append(f"# line {step.node.line}: {step.node.name}")

    def act(self, step: Step) -> str:
        if step.act is None:
            return "ACT_NONE, 0.0"
        return f"{ACTIVATIONS[step.act.op]}, {float(step.act.attrs.get('slope', 0.0))!r}"

    def fold_args(self, step: Step, table=None, cin: int = 0) -> str:
        """Keyword arguments of folded_weights(): the batch norm to fold in, the connection table."""
        args = "" if step.bn is None else f', bn="{step.bn.name}", eps={float(step.bn.attrs["eps"])!r}'
        return args if table is None else f"{args}, table={table}, in_channels={cin}"

    def op_conv(self, step: Step) -> None:
        node, a = step.node, step.node.attrs
        src = node.inputs[0]
        cin = self.shape(src)[0]
        cout, oh, ow = node.shape
        kh, kw = a["kernel"]
        groups = a["groups"]
        wshape = (cout, cin // groups, kh, kw)
        table = None
        if a["table"] is not None:  # a statement of its own, one row per line when long (as ruff format would)
            rows = tuple(tuple(r) for r in a["table"])
            one = f"table = {rows!r}"
            self.pack += [one] if 8 + len(one) <= LINE else [t[8:] for t in tuple_literal(" " * 8, "table = ", rows)]
            table = "table"
        self.pack.append(f'w, b = folded_weights(weights, "{node.name}"{self.fold_args(step, table, cin)})')
        self.packing(wshape, "w")
        w = self.weight(wshape)
        self.packing((cout,), "b")
        b = self.weight((cout,))
        method = conv_method(cin, node)
        self.scratch = max(self.scratch, conv_scratch(cin, self.shape(src)[1:], node, method))
        y = self.new_buffer(step.out)
        (sh, sw), (ph, pw), (dh, dw) = a["stride"], a["pad"], a["dilation"]
        self.fwd.append(
            f"conv2d({self.var[src]}, {w}, {b}, {y}, S, {groups}, {sh}, {sw}, {ph}, {pw}, {dh}, {dw}, "
            f"{method}, {self.act(step)})"
        )

    def op_fc(self, step: Step) -> None:
        node = step.node
        src = node.inputs[0]
        fin, fout = self.shape(src)[0], node.shape[0]
        self.pack.append(f'w, b = folded_weights(weights, "{node.name}"{self.fold_args(step)})')
        self.packing((fin, fout), "w.T")
        wt = self.weight((fin, fout))
        self.packing((fout,), "b")
        b = self.weight((fout,))
        y = self.new_buffer(step.out)
        self.fwd.append(f"linear({self.var[src]}, {wt}, {b}, {y}, {self.act(step)})")

    def op_bn(self, step: Step) -> None:
        node = step.node
        c = self.shape(node.inputs[0])[0]
        self.pack.append(f'scale, shift = bn_scale_shift(weights, "{node.name}", {float(node.attrs["eps"])!r})')
        self.packing((c,), "scale")
        scale = self.weight((c,))
        self.packing((c,), "shift")
        shift = self.weight((c,))
        src = node.inputs[0]
        y = self.inplace_or_new(step, src)
        self.fwd.append(f"scale_shift({self.view3(src)}, {scale}, {shift}, {self.view3(step.out)}, {self.act(step)})")
        del y

    def op_activation(self, step: Step) -> None:
        node, src = step.node, step.node.inputs[0]
        self.inplace_or_new(step, src)
        if node.op == "softmax":
            self.fwd.append(f"softmax({self.view3(src)}, {self.view3(step.out)})")
        else:
            fused = Step(node, act=node)
            self.fwd.append(f"act_copy({self.flat(src)}, {self.flat(step.out)}, {self.act(fused)})")

    def op_add(self, step: Step) -> None:
        first, *rest = step.node.inputs
        self.inplace_or_new(step, first)
        acc, y = self.flat(first), self.flat(step.out)
        for k, other in enumerate(rest):
            act = self.act(step) if k == len(rest) - 1 else "ACT_NONE, 0.0"
            self.fwd.append(f"add2({acc}, {self.flat(other)}, {y}, {act})")
            acc = y

    def op_mul(self, step: Step) -> None:
        inputs = step.node.inputs
        same = [i for i in inputs if self.shape(i) == self.shape(step.out)]
        self.inplace_or_new(step, same[0])
        acc, y = self.view3(inputs[0]), self.view3(step.out)
        for k, other in enumerate(inputs[1:]):
            act = self.act(step) if k == len(inputs) - 2 else "ACT_NONE, 0.0"
            self.fwd.append(f"mul2({acc}, {self.view3(other)}, {y}, {act})")
            acc = y

    def op_concat(self, step: Step) -> None:
        self.new_buffer(step.out)
        c0 = 0
        for i in step.node.inputs:
            self.fwd.append(f"copy_channels({self.view3(i)}, {self.view3(step.out)}, {c0})")
            c0 += self.shape(i)[0]

    def pool(self, step: Step, kernel: str, extra: str = "") -> None:
        a, src = step.node.attrs, step.node.inputs[0]
        y = self.new_buffer(step.out)
        (kh, kw), (sh, sw), (ph, pw) = a["kernel"], a["stride"], a["pad"]
        self.fwd.append(f"{kernel}({self.var[src]}, {y}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw}{extra})")

    def op_maxpool(self, step: Step) -> None:
        self.pool(step, "maxpool2d")

    def op_avgpool(self, step: Step) -> None:
        self.pool(step, "avgpool2d", f", {int(step.node.attrs['include_pad'])}")

    def op_gap(self, step: Step, is_max: int = 0) -> None:
        src = step.node.inputs[0]
        self.new_buffer(step.out)
        self.fwd.append(f"global_pool({self.view3(src)}, {self.view3(step.out)}, {is_max})")

    def op_gmp(self, step: Step) -> None:
        self.op_gap(step, 1)

    def op_adaptive_avgpool(self, step: Step) -> None:
        y = self.new_buffer(step.out)
        self.fwd.append(f"adaptive_avgpool2d({self.var[step.node.inputs[0]]}, {y})")


def _model_api() -> str:
    return runtime.source("model_api.py")


def _kernels() -> str:
    return runtime.source("numba_kernels.py")


def render(network: Network, inline_kernels: bool = True) -> str:
    """The generated module's source. inline_kernels=False imports the kernels from cnndsl instead of
    copying them: every network then shares one compiled kernel library (used by the test suite)."""
    r = _Renderer(network)
    r.render_steps()
    specs = weight_specs(network)
    weights = "\n".join(
        f'    "{k}": ({tuple(s.shape)!r}, "{s.dtype}", "{s.kind}", {_literal(s.init)}),' for k, s in specs.items()
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
ARENA_FLOATS = {r.arena.size}  # per sample: every intermediate, slots reused once dead
SCRATCH_FLOATS = {max(r.scratch, 1)}  # the largest conv's im2col columns or wide rows (one image)
PACKED_FLOATS = {max(r.wsize, 1)}  # every kernel and bias, batch norm folded in


{decorator}
def _forward(x, W, A, S):
    """{forward_doc}: x (N, ...) float32, W packed weights, A arena, S scratch."""
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
        return _forward(x, self._packed, arena, self._scratch)

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
