"""Receptive fields for DAGs (Araujo, Norris and Sim, "Computing Receptive Fields of
Convolutional Neural Networks", Distill 2019), one walk in execution order.

Per axis (h, w), a node's field is described by
- size r: how many input pixels one output pixel sees (the extent, gaps from dilation included),
- stride j (the "effective stride" or jump): input pixels between neighbouring output pixels,
- offset c: the input coordinate of the centre of output pixel 0's field (may be negative or x.5).

A window op with kernel k, stride s, padding p and dilation d (effective kernel
k' = d(k-1)+1) maps (r, j, c) to (r + (k'-1)j, j*s, c + ((k'-1)/2 - p)j).
At a merge the field is the extent that covers every branch's field; branches whose
centres or strides differ are reported (W302), because the merged pixels then do not
look at the same place.

Upsampling and transposed convolutions (`ops.Resample`) make the stride fractional (a
`fractions.Fraction`: 1/2 after a 2x upsampling) and the field depend on an output pixel's
phase: after a 2x nearest upsampling pixels 2k and 2k+1 both see input pixel k. From the
first such op on, each axis is tracked exactly as a phase table (`Axis`: the first and last
input pixel of output pixels 0 .. q-1, repeating with period q shifted by p = stride * q);
the size reported is then the largest field any output pixel has, the offset pixel 0's.
A period past MAX_PHASES is approximated, and every field computed from it says so (`exact` False).
Global ops (global pooling, flatten, fc, adaptive pooling to a
different size) see the whole input: their size is None ("global") from there on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from ..diagnostics import Diagnostic, warning
from ..ir import Network
from ..ops import GLOBAL, OPS, Resample, Window

MAX_PHASES = 1024  # beyond this period (odd sizes resampled to odd sizes, again and again) the table is dropped:
# the figures come from its first MAX_PHASES phases and later ops see a regular approximation


@dataclass(frozen=True, slots=True)
class Axis:
    """One axis of a field, exactly: output pixel phi + m*period sees input pixels lo[phi] + m*shift ..
    hi[phi] + m*shift (None for a phase that sees nothing, as a transposed conv's k < stride leaves)."""

    period: int
    shift: int
    lo: tuple[int | None, ...]
    hi: tuple[int | None, ...]

    def at(self, o: int) -> tuple[int, int] | None:
        m, phase = divmod(o, self.period)
        if self.lo[phase] is None:
            return None
        return self.lo[phase] + m * self.shift, self.hi[phase] + m * self.shift

    @staticmethod
    def of(period: int, shift: int, spans: list[tuple[int, int] | None]) -> Axis:
        """The table for these spans, folded to its shortest period (spans may stop at MAX_PHASES)."""
        for d in range(1, min(period, len(spans))):
            if period % d or (shift * d) % period:
                continue
            step = shift * d // period
            if all(_moved(spans[phi], step) == spans[phi + d] for phi in range(len(spans) - d)):
                return Axis.of(d, step, spans[:d])
        return Axis(period, shift, tuple(sp and sp[0] for sp in spans), tuple(sp and sp[1] for sp in spans))


def _moved(span, by: int):
    return None if span is None else (span[0] + by, span[1] + by)


@dataclass(frozen=True, slots=True)
class Field:
    size: tuple[int, int] | None  # None: the whole input (global)
    stride: tuple  # ints, or Fractions after upsampling
    offset: tuple[float, float]
    axes: tuple[Axis, Axis] | None = None  # the exact phase tables, once a resampling op made them needed
    exact: bool = True  # False from the first phase table cut at MAX_PHASES on: the figures are then approximate

    def axis(self, ax: int) -> Axis:
        if self.axes is not None:
            return self.axes[ax]
        j = Fraction(self.stride[ax]).limit_denominator(MAX_PHASES)
        half = (self.size[ax] - 1) / 2
        lo, hi = round(self.offset[ax] - half), round(self.offset[ax] + half)
        return Axis.of(
            j.denominator,
            j.numerator,
            [(lo + math.floor(phi * j), hi + math.floor(phi * j)) for phi in range(j.denominator)],
        )

    @property
    def is_global(self) -> bool:
        return self.size is None

    def to_json(self) -> dict:
        """Scalars for the smaller axis of size (the field covers at least this much both ways), plus per axis."""
        axis = 0 if self.size is None or self.size[0] <= self.size[1] else 1
        return {
            "size": None if self.size is None else self.size[axis],
            "stride": _num(self.stride[axis]),
            "offset": _num(self.offset[axis]),
            "size_hw": None if self.size is None else list(self.size),
            "stride_hw": [_num(s) for s in self.stride],
            "offset_hw": [_num(o) for o in self.offset],
            "exact": self.exact,
        }


def _num(x) -> int | float:
    """An int when whole, else a float (Fractions from fractional strides become floats in JSON)."""
    return int(x) if float(x).is_integer() else float(x)


def _exact(x):
    """A whole Fraction as an int, so fields without resampling keep the int strides they always had."""
    return int(x) if isinstance(x, Fraction) and x.denominator == 1 else x


def _from_axes(axes: tuple[Axis, Axis], exact: bool) -> Field:
    size, stride, offset = [], [], []
    if any(len(a.lo) < a.period for a in axes):  # truncated tables: figures from the phases computed
        for a in axes:
            spans = [(lo, hi) for lo, hi in zip(a.lo, a.hi) if lo is not None]
            size.append(max((hi - lo + 1 for lo, hi in spans), default=0))
            stride.append(_exact(Fraction(a.shift, a.period)))
            offset.append(sum(spans[0]) / 2 if a.lo[0] is not None else 0.0)
        return Field(tuple(size), tuple(stride), tuple(offset), exact=False)
    for a in axes:
        spans = [(lo, hi) for lo, hi in zip(a.lo, a.hi) if lo is not None]
        size.append(max(hi - lo + 1 for lo, hi in spans) if spans else 0)
        stride.append(_exact(Fraction(a.shift, a.period)))
        first = next(phi for phi in range(a.period) if a.lo[phi] is not None) if spans else 0
        lo, hi = a.at(first) or (0, 0)
        offset.append((lo + hi) / 2 - first * float(Fraction(a.shift, a.period)))
    if all(a.period == 1 for a in axes):  # the regular form: no table needed
        return Field(tuple(size), tuple(stride), tuple(offset), exact=exact)
    return Field(tuple(size), tuple(stride), tuple(offset), axes, exact)


def _through_resample(f: Field, r: Resample) -> Field:
    if f.size is None:
        return f
    axes = []
    for ax in (0, 1):
        a = f.axis(ax)
        # the output period after which the input index moves by a whole number of the field's periods
        t = a.period // math.gcd(r.shift[ax], a.period) if r.shift[ax] else 1
        period, moved = r.period[ax] * t, r.shift[ax] * t
        spans = []
        for o in range(min(period, MAX_PHASES)):
            reads = r.reads(ax, o)
            first, last = (a.at(reads[0]), a.at(reads[1])) if reads is not None else (None, None)
            spans.append(None if first is None or last is None else (first[0], last[1]))
        axes.append(Axis.of(period, a.shift * moved // a.period, spans))
    return _from_axes(tuple(axes), f.exact)


def _window_on_axes(f: Field, w: Window) -> Field:
    """A window op after a resampling one: output pixel o reads field pixels s*o - p .. s*o - p + d(k-1)."""
    axes = []
    for ax in (0, 1):
        a = f.axis(ax)
        s, span = w.stride[ax], w.dilation[ax] * (w.kernel[ax] - 1)
        g = math.gcd(s, a.period)
        period = a.period // g
        spans = []
        for o in range(min(period, MAX_PHASES)):
            first, last = a.at(s * o - w.pad[ax]), a.at(s * o - w.pad[ax] + span)
            spans.append(None if first is None or last is None else (first[0], last[1]))
        axes.append(Axis.of(period, a.shift * s // g, spans))
    return _from_axes(tuple(axes), f.exact)


def _through_window(f: Field, w: Window) -> Field:
    if f.size is None or (w.kernel == (1, 1) and w.stride == (1, 1) and w.pad == (0, 0)):
        return f  # global already, or a pointwise window: (r, j, c) stay as they are
    if _resampled(f):
        return _window_on_axes(f, w)
    size, stride, offset = [], [], []
    for ax in (0, 1):
        k = w.dilation[ax] * (w.kernel[ax] - 1) + 1
        j = f.stride[ax]
        size.append(f.size[ax] + (k - 1) * j)
        stride.append(j * w.stride[ax])
        offset.append(f.offset[ax] + ((k - 1) / 2 - w.pad[ax]) * j)
    return Field(tuple(size), tuple(stride), tuple(offset), exact=f.exact)


def _merge(fields: list[Field]) -> Field:
    if any(f.size is None for f in fields):
        return next(f for f in fields if f.size is None)
    if any(_resampled(f) for f in fields) and len({f.stride for f in fields}) == 1:
        axes = []
        for ax in (0, 1):
            tables = [f.axis(ax) for f in fields]
            period = math.lcm(*(a.period for a in tables))
            spans = []
            for o in range(min(period, MAX_PHASES)):
                each = [sp for sp in (a.at(o) for a in tables) if sp is not None]
                spans.append((min(sp[0] for sp in each), max(sp[1] for sp in each)) if each else None)
            axes.append(Axis.of(period, tables[0].shift * period // tables[0].period, spans))
        return _from_axes(tuple(axes), all(f.exact for f in fields))
    size, stride, offset = [], [], []
    for ax in (0, 1):
        lo = min(f.offset[ax] - (f.size[ax] - 1) / 2 for f in fields)
        hi = max(f.offset[ax] + (f.size[ax] - 1) / 2 for f in fields)
        size.append(int(hi - lo) + 1)
        stride.append(max(f.stride[ax] for f in fields))
        offset.append((lo + hi) / 2)
    return Field(tuple(size), tuple(stride), tuple(offset), exact=all(f.exact for f in fields))


def receptive_fields(network: Network) -> dict[str, Field]:
    """The receptive field of every node's output, with respect to the network input."""
    shape = network.input_shape
    whole = ((shape[1] - 1) / 2, (shape[2] - 1) / 2) if len(shape) == 3 else (0.0, 0.0)
    fields: dict[str, Field] = {}
    shapes = {n.name: n.shape for n in network.nodes}
    windows: dict[tuple, object] = {}  # (op, attributes, input shapes) -> window, computed once per kind
    for n in network.nodes:
        if n.op == "input":
            fields[n.name] = Field((1, 1), (1, 1), (0.0, 0.0))
            continue
        ins = [fields[i] for i in n.inputs]
        f = ins[0] if len(ins) == 1 else _merge(ins)
        key = (n.op, n.attrs, tuple([shapes[i] for i in n.inputs]))
        if key not in windows:
            windows[key] = OPS[n.op].window(n.attrs, list(key[2]))
        window = windows[key]
        if window == GLOBAL:
            f = Field(None, f.stride, whole)  # global: exact again, whatever came before
        elif isinstance(window, Window):
            f = _through_window(f, window)
        elif isinstance(window, Resample):
            f = _through_resample(f, window)
        fields[n.name] = f
    return fields


def misaligned_merges(network: Network, fields: dict[str, Field]) -> list[Diagnostic]:
    """W302 for each merge whose branches' fields are not centred on the same input pixel or differ in stride."""
    out = []
    for n in network.layers:
        ins = [fields[i] for i in n.inputs]
        if len(ins) < 2 or any(f.is_global for f in ins):
            continue
        resampled = any(_resampled(f) for f in ins)
        if resampled:  # compare where whole maps are centred: see _map_centre
            centre = {i: _map_centre(fields[i], network.node(i).shape) for i in n.inputs}
        else:
            centre = {i: fields[i].offset for i in n.inputs}
        if len(set(centre.values())) > 1:
            centres = ", ".join(f"`{i}` at ({_num(c[0])}, {_num(c[1])})" for i, c in centre.items())
            where = "maps" if resampled else "receptive fields"
            out.append(
                warning(
                    "W302",
                    f"`{n.name}` merges branches whose {where} are centred on different input pixels ({centres})",
                    n.span,
                    "give the branches symmetric padding (pad = dilation*(kernel-1)//2) so they line up",
                )
            )
        elif len({f.stride for f in ins}) > 1:
            strides = ", ".join(f"`{i}` every {fields[i].stride[0]}x{fields[i].stride[1]}" for i in n.inputs)
            out.append(
                warning(
                    "W302",
                    f"`{n.name}` merges branches with different effective strides ({strides})",
                    n.span,
                    "downsample every branch by the same total stride",
                )
            )
    return out


def _resampled(f: Field) -> bool:
    """Whether a resampling op came before: the field then has phase tables or a fractional stride."""
    return f.axes is not None or any(isinstance(j, Fraction) for j in f.stride)


def _map_centre(f: Field, shape) -> tuple[float, float]:
    """The midpoint of the first and last pixels' field centres, per axis. After a 2x upsampling pixels 2k and
    2k+1 both see pixel k, so the first pixel's field sits a quarter of the coarse stride off where a
    uniformly strided map's would: beside a skip connection (U-Net, FPN) the first pixels never line up,
    though both maps are centred on the same input pixel. Their centres are what must agree."""
    out = []
    for ax in (0, 1):
        a = f.axis(ax)
        first, last = a.at(0), a.at(shape[1 + ax] - 1)
        if first is None or last is None:  # a phase that sees nothing (transposed conv, kernel < stride)
            out.append(f.offset[ax] + float(f.stride[ax]) * (shape[1 + ax] - 1) / 2)
        else:
            out.append((first[0] + first[1] + last[0] + last[1]) / 4)
    return tuple(out)
