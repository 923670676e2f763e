# ---- cnndsl numba kernels (copied verbatim into generated numba modules) --------------------
# Generic kernels: every shape is read from the arrays at run time, so one compiled kernel
# serves every layer of every network and compile time does not grow with depth.
# Layouts: feature maps are float32 C-contiguous NCHW; per-channel ops take (N, C, H*W)
# views; element-wise ops take flat 1-D views. Activation codes are the ACT_* constants.
# This file must not import cnndsl: generated modules need only numpy and numba.
import ctypes as _ctypes
import math as _kmath

import numba as _nb
import numpy as _knp


def _jit(**options):
    """numba.njit as every kernel here is compiled: cached, and with numpy's error model, where x / 0 is inf
    as in torch. Python's model checks every float division for zero, and that branch keeps loops from
    vectorising: tanh, sigmoid and SiLU ran 3.4x slower with it."""
    return _nb.njit(cache=True, error_model="numpy", **options)


# Activation codes: ACT_ and the op's name in the op table (the lowering stage emits them by that name);
# `slope` is the op's one float parameter (leaky_relu's slope, elu's alpha).
ACT_NONE, ACT_RELU, ACT_RELU6, ACT_LEAKY_RELU, ACT_SIGMOID, ACT_TANH = 0, 1, 2, 3, 4, 5
ACT_GELU, ACT_SILU, ACT_HARDSWISH, ACT_HARDSIGMOID, ACT_ELU = 6, 7, 8, 9, 10

# Below this many multiply-adds a parallel region costs more than it saves (OpenMP's: ~2 us).
PARALLEL_MACS = 1 << 20
_OC_BLOCK = 4  # output channels per register block of the direct convolution
CONV_DIRECT, CONV_GEMM, CONV_WGEMM, CONV_DW, CONV_DWB, CONV_PW = 0, 1, 2, 3, 4, 5  # conv2d's methods
_DW_CHUNK = 1024  # wide-row positions per pass of the depthwise kernel: the accumulator chunk stays in L1
_DW_TASKS = 64  # channel ranges per parallel depthwise conv (each allocates one scratch plane)
_LONG_ROW = 24  # rows at least this long are copied through views (vectorised); shorter ones by index
_BAND_FLOATS = 1 << 17  # im2col floats per band of output rows (512 KB: a band's columns stay in L2)
_BAND_COLUMNS = 512  # fewer output pixels per thread than this: conv_gemm splits output channels instead
_ACT_CHUNK = 1024  # floats per pass of an in-place activation through its buffer (stays in L1)
_ACT_BLOCK = 1 << 16  # a GEMM's product up to this many floats is activated in one call (256 KB, in L2)
_NO_BIAS = _knp.zeros(0, _knp.float32)  # gemm_bias_act's bias when there is none (and no activation)


# ---- threads ---------------------------------------------------------------------------------------
# A big layer runs as T tasks on numba's threads, and its GEMM tasks each call BLAS, so BLAS must run on
# one thread meanwhile: two pools on the same cores fight (OpenMP's workers spin after a region and starve
# BLAS's; a 64-channel 56x56 3x3 conv on 2 cores took 8.0 ms so, 1.4 ms with only BLAS threaded, 0.7 ms as
# one pool). threaded_call() sets that up for the length of one forward call.
_THREADING = {}  # filled on the first call: the BLAS thread-count functions, whether the pool is cheap


def _blas_thread_functions():
    """(get, set) of the thread count of the BLAS that numba's np.dot calls (scipy's: OpenBLAS in its
    wheels, its symbols prefixed since scipy 1.13), or None for a BLAS whose threads we cannot set."""
    try:
        import scipy.linalg.cython_blas as blas

        lib = _ctypes.CDLL(blas.__file__)  # dlsym searches the libraries it links too: its BLAS
    except (ImportError, OSError):
        return None
    for prefix in ("scipy_openblas", "openblas"):
        get = getattr(lib, prefix + "_get_num_threads", None)
        put = getattr(lib, prefix + "_set_num_threads", None)
        if get is not None and put is not None:
            get.restype, put.argtypes, put.restype = _ctypes.c_int, [_ctypes.c_int], None
            return get, put
    return None


def _cheap_parallel_regions():
    """Whether numba's threading layer is OpenMP or TBB (a few us a parallel region), not the workqueue
    fallback (70-140 us a region measured, more than splitting most layers saves)."""
    try:
        from numba.np.ufunc.parallel import _launch_threads

        _launch_threads()
        return _nb.threading_layer() in ("omp", "tbb")
    except Exception:  # an internal API: without it, run serially rather than guess
        return False


def threaded_call(forward, *args):
    """forward(*args, T) with T = numba's thread count and BLAS on one thread for the call; T = 1 (every
    kernel serial, BLAS keeping its threads) when parallel regions are expensive or BLAS's thread count
    cannot be set."""
    if not _THREADING:
        _THREADING["blas"] = _blas_thread_functions()
        _THREADING["cheap"] = _cheap_parallel_regions()
    blas, threads = _THREADING["blas"], _nb.get_num_threads()
    if threads == 1 or blas is None or not _THREADING["cheap"]:
        return forward(*args, 1)
    before = blas[0]()
    blas[1](1)
    try:
        return forward(*args, threads)
    finally:
        blas[1](before)


@_jit(inline="always")
def _tanh(v):
    """float32 tanh as a rational function (Eigen's): a few ulp, branch-free, so loops vectorise."""
    v = min(max(v, _knp.float32(-7.90531110763549805)), _knp.float32(7.90531110763549805))
    v2 = v * v
    p = _knp.float32(-2.76076847742355e-16)
    p = p * v2 + _knp.float32(2.00018790482477e-13)
    p = p * v2 + _knp.float32(-8.60467152213735e-11)
    p = p * v2 + _knp.float32(5.12229709037114e-08)
    p = p * v2 + _knp.float32(1.48572235717979e-05)
    p = p * v2 + _knp.float32(6.37261928875436e-04)
    p = p * v2 + _knp.float32(4.89352455891786e-03)
    q = _knp.float32(1.19825839466702e-06)
    q = q * v2 + _knp.float32(1.18534705686654e-04)
    q = q * v2 + _knp.float32(2.26843463243900e-03)
    q = q * v2 + _knp.float32(4.89352518554385e-03)
    return v * p / q


@_jit(inline="always")
def _sigmoid(v):
    return _knp.float32(0.5) + _knp.float32(0.5) * _tanh(_knp.float32(0.5) * v)


@_jit(inline="always")
def _act1(v, act, slope):
    if act == ACT_RELU:
        return max(v, _knp.float32(0.0))
    if act == ACT_RELU6:
        return min(max(v, _knp.float32(0.0)), _knp.float32(6.0))
    if act == ACT_LEAKY_RELU:
        return v if v > 0.0 else _knp.float32(v * slope)
    if act == ACT_ELU:
        return v if v > 0.0 else _knp.float32(slope * (_kmath.exp(v) - 1.0))
    if act == ACT_SIGMOID:
        return _sigmoid(v)
    if act == ACT_TANH:
        return _tanh(v)
    if act == ACT_GELU:
        return _knp.float32(0.5 * v * (1.0 + _kmath.erf(v * 0.7071067811865476)))
    if act == ACT_SILU:
        return v * _sigmoid(v)
    if act == ACT_HARDSWISH:
        return v * min(max(v + _knp.float32(3.0), _knp.float32(0.0)), _knp.float32(6.0)) / _knp.float32(6.0)
    if act == ACT_HARDSIGMOID:
        return min(max(v + _knp.float32(3.0), _knp.float32(0.0)), _knp.float32(6.0)) / _knp.float32(6.0)
    return v


@_jit(fastmath={"contract"})
def act_copy(x, y, act, slope):
    """y = act(x) on flat float32 arrays (y may be x). One loop per activation, so each vectorises. The
    common ones are written out rather than calls of _act1: numba inlines _act1 by copying its IR, which
    holds every activation, and seven copies of it took 2 s of every network's cold compile. Contracted
    into FMAs, the polynomials of tanh, sigmoid and SiLU run 1.7x faster (and round no worse)."""
    if act == ACT_RELU:
        for i in range(x.size):
            y[i] = max(x[i], _knp.float32(0.0))
    elif act == ACT_RELU6:
        for i in range(x.size):
            y[i] = min(max(x[i], _knp.float32(0.0)), _knp.float32(6.0))
    elif act == ACT_TANH:
        for i in range(x.size):
            y[i] = _tanh(x[i])
    elif act == ACT_SIGMOID:
        for i in range(x.size):
            y[i] = _sigmoid(x[i])
    elif act == ACT_SILU:
        for i in range(x.size):
            y[i] = x[i] * _sigmoid(x[i])
    elif act == ACT_HARDSWISH:
        for i in range(x.size):
            v = x[i]
            y[i] = v * min(max(v + _knp.float32(3.0), _knp.float32(0.0)), _knp.float32(6.0)) / _knp.float32(6.0)
    else:
        for i in range(x.size):
            y[i] = _act1(x[i], act, slope)


@_jit()
def activate(v, act, slope):
    """Apply an activation in place to a flat float32 array (the fused epilogue). Costly activations go
    through a small buffer: on act_copy(v, v) LLVM's check that the two arrays do not overlap fails, and
    its loops run scalar (SiLU 6x slower)."""
    if act == ACT_NONE:
        return
    if act == ACT_RELU or act == ACT_RELU6:  # bound by memory either way
        act_copy(v, v, act, slope)
        return
    buf = _knp.empty(min(v.size, _ACT_CHUNK), _knp.float32)
    for i0 in range(0, v.size, _ACT_CHUNK):
        chunk = v[i0 : i0 + _ACT_CHUNK]
        part = buf[: chunk.size]
        for i in range(chunk.size):  # not part[:] = chunk: see _copy_rows
            part[i] = chunk[i]
        act_copy(part, chunk, act, slope)


@_jit()
def _row_bias_act(src, s0, dst, d0, count, bias, act, slope):
    """dst[d0 : d0 + count] = act(src[s0 : s0 + count] + bias): relu and relu6 in the same pass, other
    activations by act_copy's vectorised loops over the row (through _act1's generic branch SiLU cost 8x the
    1x1 conv it ends; a loop per activation here as well doubled the kernels' cold compile). The loops index
    slices by their counter: indexed dst[d0 + i], numba cannot prove the index non-negative, wraps it per
    element, and the loop ran 3x slower (conv_gemm's epilogue of a 96-channel 112x112 layer: 0.62 ms)."""
    s, d = src[s0 : s0 + count], dst[d0 : d0 + count]
    if act == ACT_RELU:
        for i in range(count):
            d[i] = max(s[i] + bias, _knp.float32(0.0))
    elif act == ACT_RELU6:
        for i in range(count):
            d[i] = min(max(s[i] + bias, _knp.float32(0.0)), _knp.float32(6.0))
    else:
        for i in range(count):
            d[i] = s[i] + bias
        activate(d, act, slope)


@_jit()
def _bias_act(y2, b, act, slope):
    """y2[o] = act(y2[o] + b[o]) in place on a C-contiguous block; nothing for an empty b (_NO_BIAS). Row
    by row only where that pays: a view and a call per row cost ~70 ns, and an activation other than
    relu / relu6 allocates its buffer per call (an SE block's 1152 rows of one pixel: 84 us, 54 more for its
    sigmoid). Short rows add their biases in one flat pass, and blocks up to _ACT_BLOCK floats are
    activated in one call."""
    if b.size == 0:
        return
    rows, cols = y2.shape
    per_row = act == ACT_NONE or act == ACT_RELU or act == ACT_RELU6 or y2.size > _ACT_BLOCK
    f = y2.reshape(y2.size)
    if cols >= _LONG_ROW:
        for o in range(rows):
            _row_bias_act(y2[o], _int(0), y2[o], _int(0), cols, b[o], act if per_row else ACT_NONE, slope)
        if per_row:
            return
    else:
        for o in range(rows):
            bias = b[o]
            for i in range(o * cols, (o + 1) * cols):
                f[i] += bias
    activate(f, act, slope)


@_jit()
def _int(v):
    """v as a plain int64 argument: a literal (0, 1) passed to a kernel compiles it a second time, typed
    Literal[int], which cost ResNet-50's cold compile 8 s. The cast matters: `return v` is typed as the
    literal it was given, and the callee was compiled twice all the same (3 s of ResNet-50's 30)."""
    return _knp.int64(v)


@_jit()
def _copy_rows(src, dst, rows, count):
    """dst[r, :count] = src[r, :count] for r < rows, by loops: numba's slice assignment (dst[r] =
    src[r]) checks the shapes with a formatted error, whose first compile costs 1.5 s of every network's
    cold compile."""
    for r in range(rows):
        d, s = dst[r], src[r]
        for i in range(count):
            d[i] = s[i]


@_jit()
def _span(out, size, k, s, p, d):
    """The output positions [lo, hi) whose tap k reads inside the input."""
    off = k * d - p
    lo = 0 if off >= 0 else (-off + s - 1) // s
    hi = (size - 1 - off) // s + 1 if size - 1 - off >= 0 else 0
    return lo, max(lo, min(hi, out))


@_jit()
def _split(threads, work):
    """Whether a kernel with this many multiply-adds (or copies) goes over threads."""
    return threads > 1 and work >= PARALLEL_MACS


@_jit(parallel=True)
def _gemm_parallel(a, bm, c, bias, act, slope, tasks):
    """c = act(a @ bm + bias), c's rows (a's) in `tasks` contiguous blocks, each one BLAS call on one thread."""
    m = a.shape[0]
    for t in _nb.prange(tasks):
        m0, m1 = t * m // tasks, (t + 1) * m // tasks
        if m1 > m0:
            _knp.dot(a[m0:m1], bm, c[m0:m1])
            _bias_act(c[m0:m1], bias[m0:m1], act, slope)


@_jit()
def gemm_bias_act(a, bm, c, bias, act, slope, threads):
    """c = act(a @ bm + bias) (bias per row of c), over threads when big enough."""
    if _split(threads, a.shape[0] * a.shape[1] * bm.shape[1]) and a.shape[0] >= 2 * threads:
        _gemm_parallel(a, bm, c, bias, act, slope, threads)
    else:
        _knp.dot(a, bm, c)
        _bias_act(c, bias, act, slope)


@_jit()
def _direct_task(x, w, b, y, n, g, ob, sh, sw, ph, pw, dh, dw, act, slope):
    """One image, one block of up to 4 output channels of group g, accumulated in place in y.

    Loop order: input channel, tap, output row, then the contiguous output row innermost;
    each input pixel loaded feeds four output channels (register blocking)."""
    cin, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    h, wd = x.shape[2], x.shape[3]
    oh, ow = y.shape[2], y.shape[3]
    cout_g = y.shape[1] // (x.shape[1] // cin)
    o0 = g * cout_g + ob * _OC_BLOCK
    nb = min(_OC_BLOCK, (g + 1) * cout_g - o0)
    xf = x[n].reshape((x.shape[1] * h * wd,))
    yf = y[n].reshape((y.shape[1] * oh * ow,))
    plane = oh * ow
    for k in range(nb):
        bias = b[o0 + k]
        for i in range((o0 + k) * plane, (o0 + k + 1) * plane):
            yf[i] = bias
    y0 = o0 * plane
    for ci in range(cin):
        xc = (g * cin + ci) * h * wd
        for ky in range(kh):
            oy_lo, oy_hi = _span(oh, h, ky, sh, ph, dh)
            for kx in range(kw):
                lo, hi = _span(ow, wd, kx, sw, pw, dw)
                off = kx * dw - pw
                cnt = hi - lo
                if cnt <= 0:
                    continue
                # Loops below index views from 0: numba then drops its negative-index checks and they vectorise.
                if nb == _OC_BLOCK:
                    w0 = w[o0, ci, ky, kx]
                    w1 = w[o0 + 1, ci, ky, kx]
                    w2 = w[o0 + 2, ci, ky, kx]
                    w3 = w[o0 + 3, ci, ky, kx]
                    for oy in range(oy_lo, oy_hi):
                        xr = xc + (oy * sh - ph + ky * dh) * wd + off + lo * sw
                        yr = y0 + oy * ow + lo
                        r0 = yf[yr : yr + cnt]
                        r1 = yf[yr + plane : yr + plane + cnt]
                        r2 = yf[yr + 2 * plane : yr + 2 * plane + cnt]
                        r3 = yf[yr + 3 * plane : yr + 3 * plane + cnt]
                        if sw == 1:  # a contiguous view: unit-stride vector loads
                            xs = xf[xr : xr + cnt]
                            for i in range(cnt):
                                v = xs[i]
                                r0[i] += w0 * v
                                r1[i] += w1 * v
                                r2[i] += w2 * v
                                r3[i] += w3 * v
                        else:
                            xt = xf[xr : xr + (cnt - 1) * sw + 1 : sw]
                            for i in range(cnt):
                                v = xt[i]
                                r0[i] += w0 * v
                                r1[i] += w1 * v
                                r2[i] += w2 * v
                                r3[i] += w3 * v
                else:
                    for k in range(nb):
                        wk = w[o0 + k, ci, ky, kx]
                        for oy in range(oy_lo, oy_hi):
                            xr = xc + (oy * sh - ph + ky * dh) * wd + off + lo * sw
                            yr = y0 + k * plane + oy * ow + lo
                            xs = xf[xr : xr + (cnt - 1) * sw + 1 : sw]
                            r = yf[yr : yr + cnt]
                            for i in range(cnt):
                                r[i] += wk * xs[i]
    if act != ACT_NONE:
        act_copy(yf[y0 : y0 + nb * plane], yf[y0 : y0 + nb * plane], act, slope)


@_jit(parallel=True)
def _direct_parallel(x, w, b, y, groups, sh, sw, ph, pw, dh, dw, act, slope):
    blocks = (y.shape[1] // groups + _OC_BLOCK - 1) // _OC_BLOCK
    tasks = y.shape[0] * groups * blocks
    for t in _nb.prange(tasks):
        n, rest = t // (groups * blocks), t % (groups * blocks)
        _direct_task(x, w, b, y, n, rest // blocks, rest % blocks, sh, sw, ph, pw, dh, dw, act, slope)


@_jit()
def _im2col_band(x, n, col, kh, kw, sh, sw, ph, pw, dh, dw, oy0, oy1, ow):
    """col (cin kh kw, (oy1 - oy0) ow): row (c, ky, kx) holds, for output rows oy0..oy1-1, the input pixel
    each output pixel sees through that tap (0 in padding)."""
    _im2col_channels(x, n, col, _int(0), _int(x.shape[1]), kh, kw, sh, sw, ph, pw, dh, dw, oy0, oy1, ow, _int(0))


@_jit()
def _im2col_channels(x, n, col, c0, c1, kh, kw, sh, sw, ph, pw, dh, dw, oy0, oy1, ow, p0):
    """_im2col_band's rows for input channels c0..c1-1, written from column p0 of col on (col may hold
    several images' columns side by side, so that one GEMM serves them all). With a column stride, the
    input rows the band reads are first split into their sw column phases (once per channel), so that
    every tap's copy is a contiguous run of one phase instead of a strided gather."""
    h, wd = x.shape[2], x.shape[3]
    xf = x[n].reshape((x.shape[1] * h * wd,))
    cf = col.reshape((col.size,))
    stride = col.shape[1]
    r0, r1 = max(0, oy0 * sh - ph), min(h, (oy1 - 1) * sh - ph + (kh - 1) * dh + 1)
    wq = (wd + sw - 1) // sw
    # a stride-1 im2col reads x directly: no phase buffer to allocate
    phases = _knp.empty((sw, max(r1 - r0, 1), wq) if sw > 1 else (1, 1, 1), _knp.float32)
    for c in range(c0, c1):
        if sw > 1:
            for iy in range(r0, r1):
                row = xf[(c * h + iy) * wd : (c * h + iy + 1) * wd]
                for px in range(sw):
                    dst = phases[px, iy - r0]
                    for q in range((wd - px + sw - 1) // sw):
                        dst[q] = row[q * sw + px]
        for ky in range(kh):
            oy_lo, oy_hi = _span(oy1, h, ky, sh, ph, dh)
            oy_lo = max(oy_lo, oy0)
            for kx in range(kw):
                r = ((c * kh + ky) * kw + kx) * stride + p0
                lo, hi = _span(ow, wd, kx, sw, pw, dw)
                x0 = kx * dw - pw + lo * sw  # the input column of the first output pixel inside the input
                for oy in range(oy0, oy1):  # zeros only where the tap reads padding: each float written once
                    d = r + (oy - oy0) * ow
                    if oy < oy_lo or oy >= oy_hi:
                        for i in range(ow):
                            cf[d + i] = 0.0
                        continue
                    for i in range(lo):
                        cf[d + i] = 0.0
                    for i in range(hi, ow):
                        cf[d + i] = 0.0
                    d += lo
                    iy = oy * sh - ph + ky * dh
                    if hi - lo >= _LONG_ROW:  # views indexed from 0 vectorise; they cost ~10 ns to make
                        dst = cf[d : d + hi - lo]
                        if sw > 1:
                            xs = phases[x0 % sw, iy - r0, x0 // sw :]
                        else:
                            xs = xf[(c * h + iy) * wd + x0 :]
                        for i in range(hi - lo):
                            dst[i] = xs[i]
                    elif sw > 1:
                        xs = phases[x0 % sw, iy - r0, x0 // sw :]
                        for i in range(hi - lo):
                            cf[d + i] = xs[i]
                    else:
                        src = (c * h + iy) * wd + x0
                        for i in range(hi - lo):
                            cf[d + i] = xf[src + i]


@_jit()
def _gemm_band(x, w2, b, y, n, scratch, oy0, oy1, kh, kw, sh, sw, ph, pw, dh, dw, act, slope):
    """Output rows oy0..oy1-1 of image n by im2col + one GEMM, bias and activation written into y.
    scratch: the band's own (cin kh kw + cout) x (oy1 - oy0) ow floats, columns then product; a 1x1
    stride-1 conv copies its input rows instead (no columns at all for a whole image)."""
    cout, k = w2.shape
    plane, ow = y.shape[2] * y.shape[3], y.shape[3]
    p0, cols = oy0 * ow, (oy1 - oy0) * ow
    whole = cols == plane
    if kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0:
        if whole:
            col = x[n].reshape((k, plane))
        else:
            col = scratch[: k * cols].reshape((k, cols))
            src = x[n].reshape((k, plane))
            _copy_rows(src[:, p0:], col, k, cols)
    else:
        col = scratch[: k * cols].reshape((k, cols))
        _im2col_band(x, n, col, kh, kw, sh, sw, ph, pw, dh, dw, oy0, oy1, ow)
    if whole:  # the product lands in y itself
        y2 = y[n].reshape((cout, plane))
        _knp.dot(w2, col, y2)
        _bias_act(y2, b, act, slope)
        return
    acc = scratch[k * cols : (k + cout) * cols].reshape((cout, cols))
    _knp.dot(w2, col, acc)
    yf = y[n].reshape((cout * plane,))
    for o in range(cout):
        _row_bias_act(acc[o], _int(0), yf, o * plane + p0, cols, b[o], act, slope)


# conv_gemm's three kinds of task. One parallel function runs all three: each parallel function costs
# ~1.5 s of cold compile (numba outlines the loop body into a gufunc and links and optimises the callees
# once more for it), and three of them took 5 s of ResNet-50's.
_TASK_BANDS, _TASK_COLUMNS, _TASK_CHANNELS = 0, 1, 2


@_jit(parallel=True)
def _gemm_tasks(kind, x, w2, b, y, n, images, col, scratch, tasks, kh, kw, sh, sw, ph, pw, dh, dw, act, slope):
    """Images n..n+images-1 of conv_gemm in `tasks` parts over threads. _TASK_BANDS: bands of image n's
    output rows, each im2col and GEMM on its own region of scratch. _TASK_COLUMNS: the images' columns,
    side by side in `col` (cin kh kw x images oh ow), input channels split. _TASK_CHANNELS: one GEMM on
    those columns, output channels split; for several images the product lands in scratch after the
    columns, and each image's part of every row goes to y with the bias and activation."""
    cout, k = w2.shape
    oh, ow, cin = y.shape[2], y.shape[3], x.shape[1]
    plane = oh * ow
    for t in _nb.prange(tasks):
        if kind == _TASK_BANDS:
            oy0, oy1 = t * oh // tasks, (t + 1) * oh // tasks
            region = scratch[(cout + k) * oy0 * ow : (cout + k) * oy1 * ow]
            _gemm_band(x, w2, b, y, n, region, oy0, oy1, kh, kw, sh, sw, ph, pw, dh, dw, act, slope)
        elif kind == _TASK_COLUMNS:
            c0, c1 = t * cin // tasks, (t + 1) * cin // tasks
            for g in range(images):
                _im2col_channels(x, n + g, col, c0, c1, kh, kw, sh, sw, ph, pw, dh, dw, _int(0), oh, ow, g * plane)
        else:
            m0, m1 = t * cout // tasks, (t + 1) * cout // tasks
            if m1 > m0 and images == 1:
                y2 = y[n].reshape((cout, plane))
                _knp.dot(w2[m0:m1], col, y2[m0:m1])
                _bias_act(y2[m0:m1], b[m0:m1], act, slope)
            elif m1 > m0:
                acc = scratch[col.size : col.size + cout * col.shape[1]].reshape((cout, col.shape[1]))
                _knp.dot(w2[m0:m1], col, acc[m0:m1])
                for g in range(images):
                    yf = y[n + g].reshape((cout * plane,))
                    for o in range(m0, m1):
                        _row_bias_act(acc[o], g * plane, yf, o * plane, plane, b[o], act, slope)


@_jit()
def conv_gemm(x, w, b, y, scratch, threads, sh, sw, ph, pw, dh, dw, act, slope):
    """Ungrouped conv as im2col + GEMM, in bands of output rows: each band's columns stay in cache between
    im2col and GEMM, and the bands are the tasks over threads (each one BLAS call on its own columns: no
    GEMM packs the same columns twice). scratch: at least (cin kh kw + cout) x oh ow floats; room for more
    images lets the few-pixel branch run them as one GEMM."""
    cout, k, oh, ow = w.shape[0], w.shape[1] * w.shape[2] * w.shape[3], y.shape[2], y.shape[3]
    w2 = w.reshape((cout, k))
    kh, kw = w.shape[2], w.shape[3]
    bands = min(oh, max(1, k * oh * ow // _BAND_FLOATS))
    parallel = _split(threads, cout * k * oh * ow)
    if parallel and (oh < 2 * threads or oh * ow < _BAND_COLUMNS * threads):
        # Few pixels: every band's GEMM would pack all the kernels for a handful of columns (512 channels at
        # 7x7: 2.0 ms in two bands), so the threads split the output channels of one GEMM instead (1.5 ms).
        # At batch > 1 the images go in groups, as many as scratch holds, each group's columns side by side
        # for one GEMM: 49 or 196 columns per image are too few for BLAS's panels.
        one_by_one = kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
        columns, channels = _int(_TASK_COLUMNS), _int(_TASK_CHANNELS)
        group = max(1, scratch.size // ((k + cout) * oh * ow))
        for n in range(0, y.shape[0], group):  # not a while loop from n = 0: a literal n compiles all twice
            images = min(group, y.shape[0] - n)
            col = scratch[: k * images * oh * ow].reshape((k, images * oh * ow))
            if one_by_one and images == 1:
                col = x[n].reshape((k, oh * ow))
            else:  # columns over threads too: on one thread they took 40 % of the layer
                _gemm_tasks(
                    columns, x, w2, b, y, n, images, col, scratch, threads, kh, kw, sh, sw, ph, pw, dh, dw, act, slope
                )
            _gemm_tasks(
                channels, x, w2, b, y, n, images, col, scratch, threads, kh, kw, sh, sw, ph, pw, dh, dw, act, slope
            )
        return
    if parallel:
        bands = min(oh, threads * -(-bands // threads))
    rows, one, col = _int(_TASK_BANDS), _int(1), scratch[:0].reshape((0, 0))  # the bands build their own columns
    for n in range(y.shape[0]):
        if parallel:
            _gemm_tasks(rows, x, w2, b, y, n, one, col, scratch, bands, kh, kw, sh, sw, ph, pw, dh, dw, act, slope)
        else:
            for i in range(bands):
                oy0, oy1 = i * oh // bands, (i + 1) * oh // bands
                region = scratch[(cout + k) * oy0 * ow : (cout + k) * oy1 * ow]
                _gemm_band(x, w2, b, y, n, region, oy0, oy1, kh, kw, sh, sw, ph, pw, dh, dw, act, slope)


# ---- 1x1 convs down to few channels on big maps -----------------------------------------------------
# MobileNet's and EfficientNet's 1x1 convs down to 16-32 channels on 56x56 and 112x112 maps are bound by
# memory, not multiply-adds: BLAS runs them at a third of its peak and the banded epilogue writes every
# output twice. Here each output row chunk is accumulated where it lies in y, in L1, four output channels
# x four input channels per pass (16 multiply-adds per 4 loads of the input), and its activation applied
# while it is still there.
_PW_CHUNK = 512  # output pixels per chunk: four 2 KB accumulator rows and the input rows' chunks in L1/L2


@_jit(fastmath={"contract"})
def _pw_four(x2, w2, y2, o, p0, cl):
    """y2[o:o + 4, p0:p0 + cl] += w2[o:o + 4] @ x2[:, p0:p0 + cl], four input rows per pass."""
    a0, a1, a2, a3 = y2[o, p0 : p0 + cl], y2[o + 1, p0 : p0 + cl], y2[o + 2, p0 : p0 + cl], y2[o + 3, p0 : p0 + cl]
    k, c = x2.shape[0], 0
    while c + 4 <= k:
        x0, x1, x2_, x3 = x2[c, p0:], x2[c + 1, p0:], x2[c + 2, p0:], x2[c + 3, p0:]
        u0, u1, u2, u3 = w2[o, c], w2[o, c + 1], w2[o, c + 2], w2[o, c + 3]
        v0, v1, v2, v3 = w2[o + 1, c], w2[o + 1, c + 1], w2[o + 1, c + 2], w2[o + 1, c + 3]
        s0, s1, s2, s3 = w2[o + 2, c], w2[o + 2, c + 1], w2[o + 2, c + 2], w2[o + 2, c + 3]
        t0, t1, t2, t3 = w2[o + 3, c], w2[o + 3, c + 1], w2[o + 3, c + 2], w2[o + 3, c + 3]
        for i in range(cl):
            e0, e1, e2, e3 = x0[i], x1[i], x2_[i], x3[i]
            a0[i] += u0 * e0 + u1 * e1 + u2 * e2 + u3 * e3
            a1[i] += v0 * e0 + v1 * e1 + v2 * e2 + v3 * e3
            a2[i] += s0 * e0 + s1 * e1 + s2 * e2 + s3 * e3
            a3[i] += t0 * e0 + t1 * e1 + t2 * e2 + t3 * e3
        c += 4
    for r in range(c, k):
        xr = x2[r, p0:]
        u, v, sv, tv = w2[o, r], w2[o + 1, r], w2[o + 2, r], w2[o + 3, r]
        for i in range(cl):
            a0[i] += u * xr[i]
            a1[i] += v * xr[i]
            a2[i] += sv * xr[i]
            a3[i] += tv * xr[i]


@_jit(fastmath={"contract"})
def _pw_one(x2, w2, y2, o, p0, cl):
    """y2[o, p0:p0 + cl] += w2[o] @ x2[:, p0:p0 + cl] (the output channels past the last four)."""
    a = y2[o, p0 : p0 + cl]
    for c in range(x2.shape[0]):
        xr, u = x2[c, p0:], w2[o, c]
        for i in range(cl):
            a[i] += u * xr[i]


@_jit()
def _pw_pixels(x2, w2, b, y2, q0, q1, act, slope):
    """Pixels q0..q1 of a 1x1 conv, chunk by chunk: every output row chunk set to its bias, accumulated,
    then activated while it is in cache."""
    cout = w2.shape[0]
    for p0 in range(q0, q1, _PW_CHUNK):
        cl = min(_PW_CHUNK, q1 - p0)
        for o in range(cout):
            y2[o, p0 : p0 + cl] = b[o]
        for o in range(0, cout - 3, 4):
            _pw_four(x2, w2, y2, o, p0, cl)
        for o in range(cout - cout % 4, cout):
            _pw_one(x2, w2, y2, o, p0, cl)
        if act != ACT_NONE:
            for o in range(cout):
                _row_bias_act(y2[o], p0, y2[o], p0, cl, _knp.float32(0.0), act, slope)


@_jit(parallel=True)
def _pw_parallel(x2, w2, b, y2, act, slope, tasks):
    pixels = x2.shape[1]
    for t in _nb.prange(tasks):  # ranges of whole 16-pixel vectors
        q0 = t * pixels // tasks // 16 * 16
        q1 = pixels if t == tasks - 1 else (t + 1) * pixels // tasks // 16 * 16
        _pw_pixels(x2, w2, b, y2, q0, q1, act, slope)


@_jit()
def conv_pointwise(x, w, b, y, scratch, threads, act, slope):
    """A 1x1 stride-1 unpadded conv with few channels on a big map (see _PW_CHUNK), the pixels of each
    image split over threads. scratch: unused (the signature is every conv kernel's)."""
    cout, cin = w.shape[0], w.shape[1]
    pixels = y.shape[2] * y.shape[3]
    w2 = w.reshape((cout, cin))
    for n in range(y.shape[0]):
        x2, y2 = x[n].reshape((cin, pixels)), y[n].reshape((cout, pixels))
        if _split(threads, cout * cin * pixels):
            _pw_parallel(x2, w2, b, y2, act, slope, threads)
        else:
            _pw_pixels(x2, w2, b, y2, _int(0), pixels, act, slope)


@_jit()
def _pad_planes(x, n, src, ph, pw):
    """Image n of x into src, (cin, h + 2 ph, w + 2 pw) zero-padded planes."""
    cin, h, wd = x.shape[1], x.shape[2], x.shape[3]
    hp, wp = h + 2 * ph, wd + 2 * pw
    s3 = src.reshape((cin, hp, wp))
    for c in range(cin):
        p = s3[c]
        p[:ph] = 0.0
        p[ph + h :] = 0.0
        for r in range(h):
            row = p[ph + r]
            row[:pw] = 0.0
            row[pw + wd :] = 0.0
            xs = x[n, c, r]
            dst = row[pw : pw + wd]
            for i in range(wd):
                dst[i] = xs[i]


@_jit()
def _wide_cols(src, col, cin, kh, kw, wp, dh, dw):
    """Every row (c, ky, kx) of the wide im2col matrix: each one contiguous window of the padded plane c."""
    plane, wl = src.size // cin, col.shape[1]
    for c in range(cin):
        for ky in range(kh):
            for kx in range(kw):
                off = c * plane + ky * dh * wp + kx * dw
                xs = src[off : off + wl]
                dst = col[(c * kh + ky) * kw + kx]
                for i in range(wl):
                    dst[i] = xs[i]


@_jit()
def _wide_epilogue(acc, b, y, n, wp, act, slope):
    """y[n] = act(acc + b) on the valid columns of the wide rows (oy * wp + ox, ox < ow)."""
    oh, ow = y.shape[2], y.shape[3]
    yf = y[n].reshape((y.shape[1] * oh * ow,))
    for o in range(y.shape[1]):
        for oy in range(oh):
            _row_bias_act(acc[o], oy * wp, yf, (o * oh + oy) * ow, ow, b[o], act, slope)


@_jit()
def conv_wide_gemm(x, w, b, y, scratch, threads, ph, pw, dh, dw, act, slope):
    """Stride-1 ungrouped conv as one GEMM over wide rows: output (oy, ox) sits at oy * wp + ox of a
    "wide" row of L = (oh - 1) * wp + ow positions over the padded planes (wp wide), so im2col row
    (c, ky, kx) is one contiguous window of plane c (a long vectorised copy, not oh short ones), and the
    wp - ow junk columns per row are computed by BLAS and dropped by the epilogue, which adds the bias and
    applies the activation. scratch: padded planes, the (cin kh kw, L) columns, the (cout, L) product.
    Serial (threads unused): the renderer picks it only for layers too small to split (short rows, at most
    16 channels out)."""
    cin, h, wd = x.shape[1], x.shape[2], x.shape[3]
    cout, oh, ow = y.shape[1], y.shape[2], y.shape[3]
    kh, kw = w.shape[2], w.shape[3]
    hp, wp = h + 2 * ph, wd + 2 * pw
    wl = (oh - 1) * wp + ow
    k = cin * kh * kw
    psize = cin * hp * wp
    col = scratch[psize : psize + k * wl].reshape((k, wl))
    acc = scratch[psize + k * wl : psize + k * wl + cout * wl].reshape((cout, wl))
    w2 = w.reshape((cout, k))
    for n in range(x.shape[0]):
        if ph > 0 or pw > 0:
            src = scratch[:psize]
            _pad_planes(x, n, src, ph, pw)
        else:
            src = x[n].reshape((psize,))
        _wide_cols(src, col, cin, kh, kw, wp, dh, dw)
        _knp.dot(w2, col, acc)
        _wide_epilogue(acc, b, y, n, wp, act, slope)


@_jit()
def _dw_geometry(h, wd, oh, ow, s, ph, pw):
    """Phase planes of a depthwise conv with stride s: (h + 2 ph) x (w + 2 pw) padded input split into s x s
    planes of hs x ws (rows and columns by their index mod s); wide rows of wl positions; scratch floats."""
    hs, ws = (h + 2 * ph + s - 1) // s, (wd + 2 * pw + s - 1) // s
    wl = (oh - 1) * ws + ow
    return hs, ws, wl, s * s * hs * ws + wl


@_jit()
def _dw_tap(ry, rx, s, hs, ws):
    """Where tap (ry, rx) of a depthwise kernel (dilation applied) starts reading its phase plane."""
    return ((ry % s) * s + rx % s) * hs * ws + (ry // s) * ws + rx // s


@_jit(fastmath={"contract"})
def _dw_channel(x, w, b, y, n, c, buf, s, ph, pw, dh, dw, act, slope):
    """One channel of a depthwise conv by wide rows. The zero-padded input is split into s x s phase planes
    (padded row r and column q go to plane (r % s, q % s) at (r // s, q // s); for stride 1, the one padded
    plane), so output (oy, ox), at position oy * ws + ox of a wide row of L = (oh - 1) * ws + ow, reads tap
    (ky, kx) at one constant offset in one plane: every tap is one long vectorised loop over a chunk of the
    accumulator, at any stride (the ws - ow junk positions per row are computed and dropped). buf: the
    planes then the accumulator, zeroed once by the caller (the padding is never written, so it stays 0)."""
    h, wd = x.shape[2], x.shape[3]
    oh, ow = y.shape[2], y.shape[3]
    kh, kw = w.shape[2], w.shape[3]
    hs, ws, wl, size = _dw_geometry(h, wd, oh, ow, s, ph, pw)
    planes, acc = buf[: size - wl], buf[size - wl : size]
    xf = x[n, c].reshape((h * wd,))
    for r in range(h):  # flat indices, not a view per row: on 7x7 maps the views cost more than the copy
        pr = r + ph
        d0 = (pr % s) * s * hs * ws + (pr // s) * ws
        if s == 1:
            for i in range(wd):
                planes[d0 + pw + i] = xf[r * wd + i]
        else:
            for px in range(s):  # plane columns q hold input columns q * s + px - pw
                q0 = (pw - px + s - 1) // s if pw > px else 0
                q1 = min(ws, (wd - 1 + pw - px) // s + 1)
                d1 = d0 + px * hs * ws
                x0 = r * wd + px - pw
                for q in range(q0, q1):
                    planes[d1 + q] = xf[x0 + q * s]
    bias = b[c]
    for p0 in range(0, wl, _DW_CHUNK):
        cl = min(_DW_CHUNK, wl - p0)
        a = acc[p0 : p0 + cl]
        for i in range(cl):
            a[i] = bias
        for ky in range(kh):
            ry = ky * dh
            if kw == 3:  # a kernel row's three taps in one pass: a third of the accumulator traffic
                x0 = planes[_dw_tap(ry, _int(0), s, hs, ws) + p0 :]
                x1 = planes[_dw_tap(ry, dw, s, hs, ws) + p0 :]
                x2 = planes[_dw_tap(ry, 2 * dw, s, hs, ws) + p0 :]
                w0, w1, w2 = w[c, 0, ky, 0], w[c, 0, ky, 1], w[c, 0, ky, 2]
                for i in range(cl):
                    a[i] += w0 * x0[i] + w1 * x1[i] + w2 * x2[i]
                continue
            for kx in range(kw):
                wk = w[c, 0, ky, kx]
                xs = planes[_dw_tap(ry, kx * dw, s, hs, ws) + p0 :]
                for i in range(cl):
                    a[i] += wk * xs[i]
    yf = y[n, c].reshape((oh * ow,))
    simple = act == ACT_RELU or act == ACT_RELU6  # fused into the row copies; others once per plane
    for oy in range(oh):  # the bias is in acc already
        _row_bias_act(acc, oy * ws, yf, oy * ow, ow, _knp.float32(0.0), act if simple else ACT_NONE, slope)
    if not simple:
        activate(yf, act, slope)


# ---- 3x3 depthwise convs, pad 1, stride 1 or 2: taps read in place ---------------------------------
# MobileNet's and EfficientNet's 3x3 depthwise layers on big maps. Without the wide-row kernel's padded
# copy every output of the interior reads its nine taps at constant offsets from its own position, so one
# loop computes it in a single pass with one store (numba vectorises a loop of one expression over slices
# indexed by the loop counter; accumulating taps pass by pass, or indexing with an offset it cannot prove
# non-negative, kept it 2x slower). The border rows and columns, whose taps leave the plane, have exactly
# two valid kernel rows (columns) each and get loops of their own; the four corners, their valid taps.
# 2-3x the wide-row kernel on MobileNet-v2's 32-144 channel planes (1 and 2 threads, 2026-12-02).


@_jit(fastmath={"contract"})
def _dw3_corner(xf, x0, w, c, oy, ox, s, h, wd, bias):
    """Output (oy, ox) of channel c (its input plane at xf[x0:]) from its in-bounds taps only."""
    r0, q0 = oy * s - 1, ox * s - 1
    v = bias
    for ky in range(max(0, -r0), min(3, h - r0)):
        for kx in range(max(0, -q0), min(3, wd - q0)):
            v += w[c, 0, ky, kx] * xf[x0 + (r0 + ky) * wd + q0 + kx]
    return v


@_jit(fastmath={"contract"})
def _dw3_same(xf, x0, yo, w, c, h, wd, bias):
    """Stride 1: rows 1..h-2 as one flat loop, output p reading input p + (ky - 1) * wd + kx - 1 (the first
    and last column of each row read the neighbouring rows' ends and are redone by _dw3_column)."""
    p0, p1 = wd + 1, (h - 1) * wd - 1
    a0, a1, a2 = xf[x0:], xf[x0 + wd :], xf[x0 + 2 * wd :]  # output p0 + i reads a_ky[i + kx]
    out = yo[p0:p1]
    w00, w01, w02 = w[c, 0, 0, 0], w[c, 0, 0, 1], w[c, 0, 0, 2]
    w10, w11, w12 = w[c, 0, 1, 0], w[c, 0, 1, 1], w[c, 0, 1, 2]
    w20, w21, w22 = w[c, 0, 2, 0], w[c, 0, 2, 1], w[c, 0, 2, 2]
    for i in range(out.size):
        out[i] = (
            bias
            + w00 * a0[i] + w01 * a0[i + 1] + w02 * a0[i + 2]
            + w10 * a1[i] + w11 * a1[i + 1] + w12 * a1[i + 2]
            + w20 * a2[i] + w21 * a2[i + 1] + w22 * a2[i + 2]
        )  # fmt: skip


@_jit(fastmath={"contract"})
def _dw3_strided(xf, x0, yo, w, c, wd, ow, r1, c1, bias):
    """Stride 2: rows 1..r1, columns 1..c1, row by row (the stride a constant, the loads vectorise as
    interleaved ones)."""
    w00, w01, w02 = w[c, 0, 0, 0], w[c, 0, 0, 1], w[c, 0, 0, 2]
    w10, w11, w12 = w[c, 0, 1, 0], w[c, 0, 1, 1], w[c, 0, 1, 2]
    w20, w21, w22 = w[c, 0, 2, 0], w[c, 0, 2, 1], w[c, 0, 2, 2]
    for oy in range(1, r1):
        r = x0 + (2 * oy - 1) * wd - 1
        a0, a1, a2 = xf[r:], xf[r + wd :], xf[r + 2 * wd :]
        out = yo[oy * ow : (oy + 1) * ow]
        for ox in range(1, c1):
            i = 2 * ox
            out[ox] = (
                bias
                + w00 * a0[i] + w01 * a0[i + 1] + w02 * a0[i + 2]
                + w10 * a1[i] + w11 * a1[i + 1] + w12 * a1[i + 2]
                + w20 * a2[i] + w21 * a2[i + 1] + w22 * a2[i + 2]
            )  # fmt: skip


@_jit(fastmath={"contract"})
def _dw3_row(xf, x0, yo, w, c, oy, ky0, s, wd, ow, c1, bias):
    """Columns 1..c1 of border row oy from its two in-bounds kernel rows ky0 and ky0 + 1."""
    a = xf[x0 + (oy * s - 1 + ky0) * wd :]
    u0, u1, u2 = w[c, 0, ky0, 0], w[c, 0, ky0, 1], w[c, 0, ky0, 2]
    v0, v1, v2 = w[c, 0, ky0 + 1, 0], w[c, 0, ky0 + 1, 1], w[c, 0, ky0 + 1, 2]
    out = yo[oy * ow : (oy + 1) * ow]
    for ox in range(1, c1):
        i = ox * s
        out[ox] = (
            bias
            + u0 * a[i - 1] + u1 * a[i] + u2 * a[i + 1]
            + v0 * a[i + wd - 1] + v1 * a[i + wd] + v2 * a[i + wd + 1]
        )  # fmt: skip


@_jit(fastmath={"contract"})
def _dw3_column(xf, x0, yo, w, c, ox, kx0, s, wd, ow, r1, bias):
    """Rows 1..r1 of border column ox from its two in-bounds kernel columns kx0 and kx0 + 1."""
    u0, u1, u2 = w[c, 0, 0, kx0], w[c, 0, 1, kx0], w[c, 0, 2, kx0]
    v0, v1, v2 = w[c, 0, 0, kx0 + 1], w[c, 0, 1, kx0 + 1], w[c, 0, 2, kx0 + 1]
    for oy in range(1, r1):
        a = xf[x0 + (oy * s - 1) * wd + ox * s - 1 + kx0 :]
        yo[oy * ow + ox] = (
            bias
            + u0 * a[0] + v0 * a[1] + u1 * a[wd] + v1 * a[wd + 1] + u2 * a[2 * wd] + v2 * a[2 * wd + 1]
        )  # fmt: skip


@_jit()
def _dw3_channel(x, w, b, y, n, c, s, act, slope):
    """Channel c of image n of a 3x3 pad-1 depthwise conv at stride s (1 or 2; planes at least 2x2)."""
    h, wd = x.shape[2], x.shape[3]
    oh, ow = y.shape[2], y.shape[3]
    xf = x.reshape(x.size)
    x0 = (n * x.shape[1] + c) * h * wd
    yo = y[n, c].reshape(oh * ow)
    bias = b[c]
    r1, c1 = min(oh, (h - 2) // s + 1), min(ow, (wd - 2) // s + 1)  # rows and columns 1.. with all taps inside
    if s == 1:
        _dw3_same(xf, x0, yo, w, c, h, wd, bias)
    else:
        _dw3_strided(xf, x0, yo, w, c, wd, ow, r1, c1, bias)
    _dw3_row(xf, x0, yo, w, c, _int(0), _int(1), s, wd, ow, c1, bias)
    _dw3_column(xf, x0, yo, w, c, _int(0), _int(1), s, wd, ow, r1, bias)
    if r1 < oh:  # the last row (column) is a border one when its taps pass the plane's end
        _dw3_row(xf, x0, yo, w, c, oh - 1, _int(0), s, wd, ow, c1, bias)
    if c1 < ow:
        _dw3_column(xf, x0, yo, w, c, ow - 1, _int(0), s, wd, ow, r1, bias)
    for oy in range(0, oh, max(1, oh - 1)):
        for ox in range(0, ow, max(1, ow - 1)):
            if (oy == 0 or oy >= r1) and (ox == 0 or ox >= c1):
                yo[oy * ow + ox] = _dw3_corner(xf, x0, w, c, oy, ox, s, h, wd, bias)
    activate(yo, act, slope)


@_jit()
def _dw3_applies(x, w, s, ph, pw, dh, dw):
    """Whether _dw3_channel computes this layer: 3x3, pad 1, no dilation, stride 1 or 2, planes from 2x2."""
    shape = w.shape[2] == 3 and w.shape[3] == 3 and ph == 1 and pw == 1 and dh == 1 and dw == 1
    return shape and (s == 1 or s == 2) and x.shape[2] >= 2 and x.shape[3] >= 2


@_jit()
def _dw_range(x, w, b, y, t0, t1, s, ph, pw, dh, dw, act, slope):
    """Tasks t0..t1 (image t // C, channel t % C): by _dw3_channel where it applies, else by the wide-row
    kernel with one scratch buffer."""
    if _dw3_applies(x, w, s, ph, pw, dh, dw):
        for t in range(t0, t1):
            _dw3_channel(x, w, b, y, t // y.shape[1], t % y.shape[1], s, act, slope)
        return
    size = _dw_geometry(x.shape[2], x.shape[3], y.shape[2], y.shape[3], s, ph, pw)[3]
    buf = _knp.zeros(size, _knp.float32)
    for t in range(t0, t1):
        _dw_channel(x, w, b, y, t // y.shape[1], t % y.shape[1], buf, s, ph, pw, dh, dw, act, slope)


@_jit(parallel=True)
def _dw_parallel(x, w, b, y, s, ph, pw, dh, dw, act, slope):
    tasks = y.shape[0] * y.shape[1]
    chunks = min(tasks, _DW_TASKS)  # not get_num_threads(): a ctypes global would make it uncacheable
    for k in _nb.prange(chunks):
        _dw_range(x, w, b, y, k * tasks // chunks, (k + 1) * tasks // chunks, s, ph, pw, dh, dw, act, slope)


@_jit()
def conv_depthwise(x, w, b, y, scratch, threads, s, ph, pw, dh, dw, act, slope):
    """Depthwise conv (groups == channels in == channels out, the same stride both ways), channel by
    channel (_dw_channel), over threads when the work pays for the parallel region (counted 8x: per channel
    and per multiply-add it costs about 8x what a GEMM does, so its splits pay 8x earlier)."""
    if _split(threads, 8 * y.size * w.shape[2] * w.shape[3]):
        _dw_parallel(x, w, b, y, s, ph, pw, dh, dw, act, slope)
    else:
        _dw_range(x, w, b, y, _int(0), y.shape[0] * y.shape[1], s, ph, pw, dh, dw, act, slope)


# ---- depthwise convs on small maps: 16 channels side by side -------------------------------------
# On a 14x14 or 7x7 plane a channel is too short a loop for the wide-row kernel: its per-channel copies and
# passes cost more than the multiply-adds (MobileNet-v2's 960-channel 7x7 layer: 170 us, where the
# multiply-adds are 0.4 M). Here a tile holds 16 channels' padded input rows interleaved (position-major,
# the NCHW16c layout of MLAS and oneDNN), so every tap is one vectorised loop over 16 lanes x a run of
# output pixels, at any stride and dilation.
_DWB_LANES = 16  # channels per tile
_DWB_PIXELS = 16  # output pixels per accumulator run (x 16 lanes: 1 KB, in L1)
_DWB_TILE_FLOATS = 1 << 15  # input rows per tile band: 128 KB (bigger maps are cut into bands of rows)


@_jit(fastmath={"contract"})
def _dwb_block(x, w, b, y, n, c0, tile, wb, acc, s, ph, pw, dh, dw, act, slope):
    """Channels c0..c0 + 16 of image n. Tile row r, column phase px, position q, lane k holds input
    (r, q * s + px - pw) of channel c0 + k: stride-s taps then read contiguous runs (the padding is never
    written, so it stays zero). wb: each tap's 16 weights (then the biases) repeated for 16 pixels, so a
    tap's loop over lanes x pixels is one flat vectorised loop (LLVM unrolls a 16-trip loop before it could
    vectorise it, and then cannot prove the accumulator apart from the tile)."""
    L, P = _DWB_LANES, _DWB_PIXELS
    chans, h, wd = x.shape[1], x.shape[2], x.shape[3]
    oh, ow = y.shape[2], y.shape[3]
    kh, kw = w.shape[2], w.shape[3]
    lanes = min(L, chans - c0)
    xf, yf = x.reshape(x.size), y.reshape(y.size)
    wq = (wd + 2 * pw + s - 1) // s
    rowf = s * wq * L  # floats per tile row
    for lane in range(lanes):
        for t in range(kh * kw + 1):
            v = b[c0 + lane] if t == kh * kw else w[c0 + lane, 0, t // kw, t % kw]
            for p in range(min(P, ow)):
                wb[(t * P + p) * L + lane] = v
    band = max(1, (tile.size // rowf - (kh - 1) * dh - 1) // s + 1)  # output rows per tile
    for oy0 in range(0, oh, band):
        oy1 = min(oh, oy0 + band)
        for tr in range((oy1 - 1 - oy0) * s + (kh - 1) * dh + 1):
            r, t0 = oy0 * s - ph + tr, tr * rowf
            if r < 0 or r >= h:
                tile[t0 : t0 + rowf] = 0.0
                continue
            for px in range(s):
                q0 = (pw - px + s - 1) // s if pw > px else 0
                q1 = min(wq, (wd - 1 + pw - px) // s + 1)
                d = t0 + px * wq * L
                for lane in range(lanes):
                    src = ((n * chans + c0 + lane) * h + r) * wd + px - pw
                    for q in range(q0, q1):
                        tile[d + q * L + lane] = xf[src + q * s]
        for oy in range(oy0, oy1):
            for ox0 in range(0, ow, P):
                cp = min(P, ow - ox0)
                cl = cp * L
                bias = wb[kh * kw * P * L :]
                for j in range(cl):
                    acc[j] = bias[j]
                for ky in range(kh):
                    rb = ((oy - oy0) * s + ky * dh) * rowf
                    for kx in range(kw):
                        cx = kx * dw
                        src = tile[rb + ((cx % s) * wq + ox0 + cx // s) * L :]
                        wt = wb[(ky * kw + kx) * P * L :]
                        for j in range(cl):
                            acc[j] += wt[j] * src[j]
                for lane in range(lanes):
                    d = ((n * chans + c0 + lane) * oh + oy) * ow + ox0
                    for p in range(cp):
                        v = acc[p * L + lane]
                        if act == ACT_RELU:
                            v = max(v, _knp.float32(0.0))
                        elif act == ACT_RELU6:
                            v = min(max(v, _knp.float32(0.0)), _knp.float32(6.0))
                        yf[d + p] = v
    if act != ACT_NONE and act != ACT_RELU and act != ACT_RELU6:
        for lane in range(lanes):
            d = (n * chans + c0 + lane) * oh * ow
            activate(yf[d : d + oh * ow], act, slope)


@_jit()
def _dwb_range(x, w, b, y, t0, t1, s, ph, pw, dh, dw, act, slope):
    """Tiles t0..t1 (image t // blocks, channels from (t % blocks) * 16) with one set of buffers (zeroed:
    the lanes past the last channel compute on zeros, never on denormal garbage)."""
    L, kh = _DWB_LANES, w.shape[2]
    rowf = s * ((x.shape[3] + 2 * pw + s - 1) // s) * L
    rows = min((y.shape[2] - 1) * s + (kh - 1) * dh + 1, max(_DWB_TILE_FLOATS // rowf, (kh - 1) * dh + 1))
    tile = _knp.zeros(rows * rowf, _knp.float32)
    wb = _knp.zeros((kh * w.shape[3] + 1) * _DWB_PIXELS * L, _knp.float32)
    acc = _knp.empty(_DWB_PIXELS * L, _knp.float32)
    blocks = (y.shape[1] + L - 1) // L
    for t in range(t0, t1):
        _dwb_block(x, w, b, y, t // blocks, (t % blocks) * L, tile, wb, acc, s, ph, pw, dh, dw, act, slope)


@_jit(parallel=True)
def _dwb_parallel(x, w, b, y, s, ph, pw, dh, dw, act, slope, tasks):
    tiles = y.shape[0] * ((y.shape[1] + _DWB_LANES - 1) // _DWB_LANES)
    for k in _nb.prange(tasks):
        _dwb_range(x, w, b, y, k * tiles // tasks, (k + 1) * tiles // tasks, s, ph, pw, dh, dw, act, slope)


@_jit()
def conv_depthwise_blocked(x, w, b, y, scratch, threads, s, ph, pw, dh, dw, act, slope):
    """The depthwise conv of conv_depthwise (same arguments), 16 channels at a time (_dwb_block): 1.3-1.8x
    faster on two threads on maps up to 14x14, slower on big ones, where its interleaving copies cost more than the
    wide-row kernel's passes (2 threads, MobileNet-v2 and EfficientNet-B0 shapes, 2026-12-02)."""
    tiles = y.shape[0] * ((y.shape[1] + _DWB_LANES - 1) // _DWB_LANES)
    if tiles > 1 and _split(threads, 8 * y.size * w.shape[2] * w.shape[3]):
        _dwb_parallel(x, w, b, y, s, ph, pw, dh, dw, act, slope, min(threads, tiles))
    else:
        _dwb_range(x, w, b, y, _int(0), tiles, s, ph, pw, dh, dw, act, slope)


# ---- Winograd F(4x4, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) --
# A 3x3 stride-1 conv computes each 4x4 output tile from a 6x6 input tile as A^T [(G w G^T) . (B^T d B)] A:
# 36 multiplies per tile and channel pair instead of 144. The 36 element-wise products over all tiles and
# channels are 36 GEMMs (cout x cin) @ (cin x tiles). Points 0, +-1, +-2, as cuDNN and NNPACK use them;
# the transforms' coefficients (up to 8 in A, 5 in B) cost about 10x the rounding error of a direct
# conv, still ~4e-6 of the output's scale (tests/test_winograd.py).
_WINO_G = _knp.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ]
)
_F2, _F4, _F5, _F8 = _knp.float32(2), _knp.float32(4), _knp.float32(5), _knp.float32(8)


def winograd_weights(w):
    """(cout, cin, 3, 3) kernels -> (36, cout, cin): U[6 i + j] = (G w G^T)[i, j], computed in float64
    when weights load (plain numpy: no compiled code)."""
    u = _knp.einsum("ia,ocab,jb->ijoc", _WINO_G, _knp.asarray(w, _knp.float64), _WINO_G)
    return _knp.ascontiguousarray(u.reshape(36, w.shape[0], w.shape[1]), dtype=_knp.float32)


@_jit()
def _wino_input(x, n, c, v, t0, ph, pw, ty0, ty1, tw, r, z):
    """v[:, c, t0:] = B^T d B for the 6x6 input tiles d of tile rows ty0..ty1-1 of image n's channel c (tiles
    4 apart, zeros outside the map):
    first along the columns of a tile row (vectorised over its width), then along each tile's rows. B^T is
    written out in both loops: a variant with one helper returning the six values (and slice views of v)
    measured 8-15 % slower; so did taking a single tile row instead of the range (4-12 %, same loops)."""
    h, wd = x.shape[2], x.shape[3]
    wz = 4 * tw + 2
    for ty in range(ty0, ty1):
        for j in range(6):  # the tile row's six input rows, zero-padded to wz columns
            iy = 4 * ty - ph + j
            rj = r[j]
            rj[:] = 0.0
            if 0 <= iy < h:
                src = x[n, c, iy]
                for col in range(pw, min(wz, wd + pw)):
                    rj[col] = src[col - pw]
        r0, r1, r2, r3, r4, r5 = r[0], r[1], r[2], r[3], r[4], r[5]
        z0, z1, z2, z3, z4, z5 = z[0], z[1], z[2], z[3], z[4], z[5]
        for col in range(wz):
            d0, d1, d2, d3, d4, d5 = r0[col], r1[col], r2[col], r3[col], r4[col], r5[col]
            z0[col] = _F4 * d0 - _F5 * d2 + d4
            z1[col] = -_F4 * (d1 + d2) + d3 + d4
            z2[col] = _F4 * (d1 - d2) - d3 + d4
            z3[col] = _F2 * (d3 - d1) - d2 + d4
            z4[col] = _F2 * (d1 - d3) - d2 + d4
            z5[col] = _F4 * d1 - _F5 * d3 + d5
        base = t0 + (ty - ty0) * tw
        for i in range(6):
            zi = z[i]
            v0, v1, v2 = v[6 * i, c], v[6 * i + 1, c], v[6 * i + 2, c]
            v3, v4, v5 = v[6 * i + 3, c], v[6 * i + 4, c], v[6 * i + 5, c]
            for tx in range(tw):
                o, t = 4 * tx, base + tx
                d0, d1, d2, d3, d4, d5 = zi[o], zi[o + 1], zi[o + 2], zi[o + 3], zi[o + 4], zi[o + 5]
                v0[t] = _F4 * d0 - _F5 * d2 + d4
                v1[t] = -_F4 * (d1 + d2) + d3 + d4
                v2[t] = _F4 * (d1 - d2) - d3 + d4
                v3[t] = _F2 * (d3 - d1) - d2 + d4
                v4[t] = _F2 * (d1 - d3) - d2 + d4
                v5[t] = _F4 * d1 - _F5 * d3 + d5


@_jit()
def _wino_output(m, b, y, n, o, t0, ty0, ty1, tw, p, act, slope):
    """y[n, o] = act(A^T M A + b) for the 4x4 tiles of tile rows ty0..ty1-1 (from m[:, o, t0:]), clipped at
    the map's edge: first along each tile's
    rows (vectorised over the tile row), then along its columns."""
    oh, ow = y.shape[2], y.shape[3]
    bias = b[o]
    floor = _knp.float32(0.0) if act == ACT_RELU else _knp.float32(-_knp.inf)  # relu in the same loop
    for ty in range(ty0, ty1):
        lo = t0 + (ty - ty0) * tw
        hi = lo + tw
        for i in range(6):
            m0, m1, m2 = m[6 * i, o, lo:hi], m[6 * i + 1, o, lo:hi], m[6 * i + 2, o, lo:hi]
            m3, m4, m5 = m[6 * i + 3, o, lo:hi], m[6 * i + 4, o, lo:hi], m[6 * i + 5, o, lo:hi]
            p0, p1, p2, p3 = p[i, 0], p[i, 1], p[i, 2], p[i, 3]
            for tx in range(tw):
                a1, a2, a3, a4 = m1[tx], m2[tx], m3[tx], m4[tx]
                p0[tx] = m0[tx] + a1 + a2 + a3 + a4
                p1[tx] = a1 - a2 + _F2 * (a3 - a4)
                p2[tx] = a1 + a2 + _F4 * (a3 + a4)
                p3[tx] = a1 - a2 + _F8 * (a3 - a4) + m5[tx]
        for a in range(min(4, oh - 4 * ty)):
            row = y[n, o, 4 * ty + a]
            for q in range(4):
                nt = tw if 4 * (tw - 1) + q < ow else tw - 1  # the last tile column may stick out
                s0, s1, s2, s3, s4, s5 = p[0, q], p[1, q], p[2, q], p[3, q], p[4, q], p[5, q]
                if a == 0:
                    for tx in range(nt):
                        row[4 * tx + q] = max(s0[tx] + s1[tx] + s2[tx] + s3[tx] + s4[tx] + bias, floor)
                elif a == 1:
                    for tx in range(nt):
                        row[4 * tx + q] = max(s1[tx] - s2[tx] + _F2 * (s3[tx] - s4[tx]) + bias, floor)
                elif a == 2:
                    for tx in range(nt):
                        row[4 * tx + q] = max(s1[tx] + s2[tx] + _F4 * (s3[tx] + s4[tx]) + bias, floor)
                else:
                    for tx in range(nt):
                        row[4 * tx + q] = max(s1[tx] - s2[tx] + _F8 * (s3[tx] - s4[tx]) + s5[tx] + bias, floor)
            if act != ACT_NONE and act != ACT_RELU:
                activate(row, act, slope)


@_jit()
def _wino_inputs(x, v, n0, th, rows, c0, c1, ph, pw):
    """v[:, c0:c1] = the transformed input tiles of channels c0..c1-1, over `rows` tile rows of the images
    from n0 on (row = image * th + tile row)."""
    tw = v.shape[2] // rows
    r = _knp.empty((6, 4 * tw + 2), _knp.float32)
    z = _knp.empty((6, 4 * tw + 2), _knp.float32)
    for c in range(c0, c1):
        for row in range(rows):
            _wino_input(x, n0 + row // th, c, v, row * tw, ph, pw, row % th, row % th + 1, tw, r, z)


@_jit()
def _wino_outputs(m, b, y, n0, th, rows, o0, o1, act, slope):
    """y[:, o0:o1] of the images from n0 on, from the products m (laid out as _wino_inputs lays out v)."""
    tw = m.shape[2] // rows
    p = _knp.empty((6, 4, tw), _knp.float32)
    for o in range(o0, o1):
        for row in range(rows):
            _wino_output(m, b, y, n0 + row // th, o, row * tw, row % th, row % th + 1, tw, p, act, slope)


@_jit(parallel=True)
def _wino_parallel(x, u, v, m, b, y, n0, th, rows, ph, pw, act, slope, tasks):
    """conv_winograd's three phases, each in `tasks` parts: input channels, the 36 GEMMs, output channels."""
    cin, cout = v.shape[1], m.shape[1]
    for t in _nb.prange(tasks):
        _wino_inputs(x, v, n0, th, rows, t * cin // tasks, (t + 1) * cin // tasks, ph, pw)
    for t in _nb.prange(tasks):
        for e in range(t * 36 // tasks, (t + 1) * 36 // tasks):
            _knp.dot(u[e], v[e], m[e])
    for t in _nb.prange(tasks):
        _wino_outputs(m, b, y, n0, th, rows, t * cout // tasks, (t + 1) * cout // tasks, act, slope)


@_jit()
def conv_winograd(x, u, b, y, scratch, threads, ph, pw, images, act, slope):
    """y = act(conv3x3(x, w) + b), stride 1, by Winograd F(4x4, 3x3); u = winograd_weights(w). The tiles of
    `images` images go through each of the 36 GEMMs together (small maps give BLAS too few columns alone).
    With threads > 1 each phase is split over them (whole GEMMs per thread, BLAS on one thread each)."""
    cin, cout, tw, th = x.shape[1], y.shape[1], (y.shape[3] + 3) // 4, (y.shape[2] + 3) // 4
    for n0 in range(0, x.shape[0], images):
        rows = min(images, x.shape[0] - n0) * th
        cols = rows * tw
        v = scratch[: 36 * cin * cols].reshape((36, cin, cols))
        m = scratch[36 * cin * cols : 36 * (cin + cout) * cols].reshape((36, cout, cols))
        if threads > 1:
            _wino_parallel(x, u, v, m, b, y, n0, th, rows, ph, pw, act, slope, threads)
        else:
            _wino_inputs(x, v, n0, th, rows, _int(0), cin, ph, pw)
            for e in range(36):
                _knp.dot(u[e], v[e], m[e])
            _wino_outputs(m, b, y, n0, th, rows, _int(0), cout, act, slope)


@_jit()
def conv_direct(x, w, b, y, scratch, threads, groups, sh, sw, ph, pw, dh, dw, act, slope):
    """Any conv (grouped ones especially) by the direct kernel: blocks of four output channels per task."""
    n_img, cout = y.shape[0], y.shape[1]
    macs = n_img * cout * y.shape[2] * y.shape[3] * w.shape[1] * w.shape[2] * w.shape[3]
    if _split(threads, macs):
        _direct_parallel(x, w, b, y, groups, sh, sw, ph, pw, dh, dw, act, slope)
        return
    blocks = (cout // groups + _OC_BLOCK - 1) // _OC_BLOCK
    for n in range(n_img):
        for g in range(groups):
            for ob in range(blocks):
                _direct_task(x, w, b, y, n, g, ob, sh, sw, ph, pw, dh, dw, act, slope)


@_jit()
def conv2d(x, w, b, y, scratch, threads, groups, sh, sw, ph, pw, dh, dw, method, act, slope):
    """y = act(conv(x, w) + b) by any method, picked at run time (for tests and benchmarks: generated
    modules call each layer's kernel directly, so that only the kernels a network uses are compiled).
    method: CONV_GEMM banded im2col + BLAS (groups 1), CONV_WGEMM wide-row im2col + BLAS (stride 1,
    groups 1), CONV_DW depthwise by wide rows (groups == channels, sh == sw), CONV_DIRECT any conv."""
    if method == CONV_WGEMM:
        conv_wide_gemm(x, w, b, y, scratch, threads, ph, pw, dh, dw, act, slope)
    elif method == CONV_DW:
        conv_depthwise(x, w, b, y, scratch, threads, sh, ph, pw, dh, dw, act, slope)
    elif method == CONV_DWB:
        conv_depthwise_blocked(x, w, b, y, scratch, threads, sh, ph, pw, dh, dw, act, slope)
    elif method == CONV_PW:
        conv_pointwise(x, w, b, y, scratch, threads, act, slope)
    elif method == CONV_GEMM:
        conv_gemm(x, w, b, y, scratch, threads, sh, sw, ph, pw, dh, dw, act, slope)
    else:
        conv_direct(x, w, b, y, scratch, threads, groups, sh, sw, ph, pw, dh, dw, act, slope)


@_jit()
def _linear_block(x, w, b, y, o0, o1, act, slope):
    """y[:, o0:o1] = act(x @ w[o0:o1].T + b[o0:o1]): w's rows are contiguous, x.T is BLAS's transpose."""
    block = _knp.empty((o1 - o0, x.shape[0]), _knp.float32)
    _knp.dot(w[o0:o1], x.T, block)
    for n in range(y.shape[0]):
        row = y[n, o0:o1]
        for o in range(o1 - o0):
            row[o] = block[o, n] + b[o0 + o]
        activate(row, act, slope)


@_jit(parallel=True)
def _linear_parallel(x, w, b, y, act, slope, tasks):
    for t in _nb.prange(tasks):
        o0, o1 = t * w.shape[0] // tasks, (t + 1) * w.shape[0] // tasks
        if o1 > o0:
            _linear_block(x, w, b, y, o0, o1, act, slope)


@_jit()
def linear(x, w, b, y, act, slope, threads):
    """y = act(x @ w.T + b), w the (out, in) fc weight; big ones in blocks of outputs over threads."""
    if _split(threads, x.shape[0] * w.size):
        _linear_parallel(x, w, b, y, act, slope, threads)
    else:
        _linear_block(x, w, b, y, _int(0), w.shape[0], act, slope)


@_jit()
def _maxpool2x2(x, y, p0, p1):
    """2x2 windows, stride 2, no padding, all inside the input: the common case, without clipping."""
    for p in range(p0, p1):
        src, dst = x[p // y.shape[1], p % y.shape[1]], y[p // y.shape[1], p % y.shape[1]]
        for oy in range(y.shape[2]):
            r0, r1, out = src[2 * oy], src[2 * oy + 1], dst[oy]
            for ox in range(y.shape[3]):
                out[ox] = max(max(r0[2 * ox], r0[2 * ox + 1]), max(r1[2 * ox], r1[2 * ox + 1]))


@_jit()
def _maxpool_planes(x, y, kh, kw, sh, sw, ph, pw, p0, p1):
    h, wd = x.shape[2], x.shape[3]
    if (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0) and 2 * y.shape[2] <= h and 2 * y.shape[3] <= wd:
        _maxpool2x2(x, y, p0, p1)
        return
    if sh == 1 and sw == 1 and 2 * ph == kh - 1 and 2 * pw == kw - 1:
        vert = _knp.empty(h * wd, _knp.float32)
        for p in range(p0, p1):
            n, c = p // y.shape[1], p % y.shape[1]
            _maxpool_same_plane(x[n, c], y[n, c], ph, pw, vert)
        return
    colmax = _knp.empty(wd, _knp.float32)
    for p in range(p0, p1):
        n, c = p // y.shape[1], p % y.shape[1]
        _maxpool_plane(x[n, c], y[n, c], kh, kw, sh, sw, ph, pw, colmax)


@_jit()
def _maxpool_same_plane(src, dst, ph, pw, vert):
    """Stride-1 pooling padded to keep the size (GoogLeNet's 3x3 branch pools), on the flat plane: each
    shift of the window is one vectorised pass over all h x w pixels, down the rows, then across the
    columns; the pw columns at each row end are then redone, since the flat pass across mixed in the next
    or the previous row's end. Row by row, a 14x14 plane cost 5x more in loop set-ups than in maxima."""
    h, wd = src.shape
    hw = h * wd
    s, d = src.reshape(hw), dst.reshape(hw)
    if ph == 1 and pw == 1 and h >= 2 and wd >= 2:
        _maxpool3_same_plane(s, d, h, wd, vert)
        return
    for i in range(hw):
        vert[i] = s[i]
    for dy in range(1, min(ph, h - 1) + 1):
        for i in range(hw - dy * wd):
            vert[i] = max(vert[i], s[i + dy * wd])
        for i in range(dy * wd, hw):
            vert[i] = max(vert[i], s[i - dy * wd])
    for i in range(hw):
        d[i] = vert[i]
    for dx in range(1, min(pw, wd - 1) + 1):
        for i in range(hw - dx):
            d[i] = max(d[i], vert[i + dx])
        for i in range(dx, hw):
            d[i] = max(d[i], vert[i - dx])
    for r in range(h):
        for ox in range(min(pw, wd)):  # the first and last pw columns of the row, each window clipped
            for o in (ox, wd - 1 - ox):
                m = vert[r * wd + max(o - pw, 0)]
                for ix in range(max(o - pw, 0) + 1, min(o + pw + 1, wd)):
                    m = max(m, vert[r * wd + ix])
                d[r * wd + o] = m


@_jit()
def _maxpool3_same_plane(s, d, h, wd, vert):
    """_maxpool_same_plane's 3x3 windows (GoogLeNet's): one pass taking the max of three rows, one of
    three columns, each a single expression over slices (2.5x the pass-per-shift loops on 512 channels at
    14x14); the first and last row, then each row's ends, from their two in-bounds neighbours."""
    hw = h * wd
    up, mid, down = s[0:], s[wd:], s[2 * wd :]
    inner = vert[wd : hw - wd]
    for i in range(hw - 2 * wd):
        inner[i] = max(max(up[i], mid[i]), down[i])
    first, last, above, below = vert[:wd], vert[hw - wd :], s[hw - 2 * wd :], s[hw - wd :]
    for i in range(wd):
        first[i] = max(s[i], mid[i])
        last[i] = max(above[i], below[i])
    left, centre, right = vert[0:], vert[1:], vert[2:]
    out = d[1 : hw - 1]
    for i in range(hw - 2):
        out[i] = max(max(left[i], centre[i]), right[i])
    for r in range(h):
        e = r * wd
        d[e] = max(vert[e], vert[e + 1])
        d[e + wd - 1] = max(vert[e + wd - 2], vert[e + wd - 1])


@_jit(parallel=True)
def _maxpool_parallel(x, y, kh, kw, sh, sw, ph, pw, tasks):
    planes = y.shape[0] * y.shape[1]
    for t in _nb.prange(tasks):
        _maxpool_planes(x, y, kh, kw, sh, sw, ph, pw, t * planes // tasks, (t + 1) * planes // tasks)


@_jit()
def maxpool2d(x, y, threads, kh, kw, sh, sw, ph, pw):
    """Windows clipped to the input (padding never wins a max); ceil mode is in y's shape. The work counts
    each plane as 1024 more: on small maps its views and set-ups cost more than its maxima (832 channels
    at 7x7, serial: 0.11 ms)."""
    if _split(threads, 16 * x.size + 1024 * x.shape[0] * x.shape[1]):
        _maxpool_parallel(x, y, kh, kw, sh, sw, ph, pw, threads)
    else:
        _maxpool_planes(x, y, kh, kw, sh, sw, ph, pw, _int(0), y.shape[0] * y.shape[1])


@_jit()
def _maxpool_plane(src, dst, kh, kw, sh, sw, ph, pw, colmax):
    """Separably: the max down each window's rows over the whole width, then across each window's
    columns, one vectorised pass per tap (3x faster than window by window on ResNet's 3x3 stride-2 stem pool)."""
    h, wd = src.shape
    for oy in range(dst.shape[0]):
        y0, y1 = max(oy * sh - ph, 0), min(oy * sh - ph + kh, h)
        out = dst[oy]
        out[:] = -_knp.inf
        if y0 >= y1:
            continue
        first = src[y0]
        if y1 - y0 == 3:  # the common full window: one pass
            mid, last = src[y0 + 1], src[y0 + 2]
            for i in range(wd):
                colmax[i] = max(max(first[i], mid[i]), last[i])
        else:
            for i in range(wd):
                colmax[i] = first[i]
            for iy in range(y0 + 1, y1):
                row = src[iy]
                for i in range(wd):
                    colmax[i] = max(colmax[i], row[i])
        if kw == 3 and sw == 2:
            _maxpool3_across2(colmax, out, wd, pw)
            continue
        for kx in range(kw):
            lo, hi = _span(dst.shape[1], wd, kx, sw, pw, _int(1))
            off = kx - pw
            for ox in range(lo, hi):
                out[ox] = max(out[ox], colmax[ox * sw + off])


@_jit()
def _maxpool3_across2(colmax, out, wd, pw):
    """out[ox] = the max of colmax over columns 2 ox - pw .. 2 ox - pw + 2 inside the row (ResNet's and
    GoogLeNet's 3x3 stride-2 pools): the stride a constant, the windows inside the row are one vectorised
    loop of interleaved loads; the clipped ones at either end take their in-bounds columns."""
    ow = out.size
    lo, hi = (pw + 1) // 2, max((pw + 1) // 2, min(ow, (wd - 3 + pw) // 2 + 1))
    cs, inner = colmax[2 * lo - pw :], out[lo:hi]
    for j in range(hi - lo):
        inner[j] = max(max(cs[2 * j], cs[2 * j + 1]), cs[2 * j + 2])
    for ox in range(ow):
        if lo <= ox < hi:
            continue
        m = -_knp.inf
        for q in range(max(0, 2 * ox - pw), min(wd, 2 * ox - pw + 3)):
            m = max(m, colmax[q])
        out[ox] = m


@_jit()
def avgpool2d(x, y, kh, kw, sh, sw, ph, pw, include_pad):
    """torch's avg_pool2d divisor: windows clipped at input+padding, or at the input without include_pad."""
    h, wd = x.shape[2], x.shape[3]
    for n in range(y.shape[0]):
        for c in range(y.shape[1]):
            src = x[n, c]
            for oy in range(y.shape[2]):
                ys = oy * sh - ph
                ye = min(ys + kh, h + ph)
                y0, y1 = max(ys, 0), min(ye, h)
                dy = ye - ys if include_pad else y1 - y0
                for ox in range(y.shape[3]):
                    xs = ox * sw - pw
                    xe = min(xs + kw, wd + pw)
                    x0, x1 = max(xs, 0), min(xe, wd)
                    dx = xe - xs if include_pad else x1 - x0
                    s = 0.0
                    for iy in range(y0, y1):
                        for ix in range(x0, x1):
                            s += src[iy, ix]
                    y[n, c, oy, ox] = s / (dy * dx)


@_jit()
def adaptive_avgpool2d(x, y):
    h, wd = x.shape[2], x.shape[3]
    oh, ow = y.shape[2], y.shape[3]
    for n in range(y.shape[0]):
        for c in range(y.shape[1]):
            src = x[n, c]
            for oy in range(oh):
                y0, y1 = (oy * h) // oh, ((oy + 1) * h + oh - 1) // oh
                for ox in range(ow):
                    x0, x1 = (ox * wd) // ow, ((ox + 1) * wd + ow - 1) // ow
                    s = 0.0
                    for iy in range(y0, y1):
                        for ix in range(x0, x1):
                            s += src[iy, ix]
                    y[n, c, oy, ox] = s / ((y1 - y0) * (x1 - x0))


@_jit(fastmath={"reassoc"})
def _pool_planes(x, y, is_max, p0, p1):
    """Planes p0..p1-1 of global_pool (the sum reassociated, so that it vectorises)."""
    for p in range(p0, p1):
        src = x[p // x.shape[1], p % x.shape[1]]
        if is_max:
            m = -_knp.inf
            for i in range(src.size):
                m = max(m, src[i])
            y[p // x.shape[1], p % x.shape[1], 0] = m
        else:
            s = 0.0
            for i in range(src.size):
                s += src[i]
            y[p // x.shape[1], p % x.shape[1], 0] = s / src.size


@_jit(parallel=True)
def _pool_parallel(x, y, is_max, tasks):
    planes = x.shape[0] * x.shape[1]
    for t in _nb.prange(tasks):
        _pool_planes(x, y, is_max, t * planes // tasks, (t + 1) * planes // tasks)


@_jit()
def global_pool(x, y, is_max, threads):
    """(N, C, HW) -> (N, C, 1): mean or max over positions."""
    if _split(threads, 16 * x.size):
        _pool_parallel(x, y, is_max, threads)
    else:
        _pool_planes(x, y, is_max, _int(0), x.shape[0] * x.shape[1])


@_jit()
def _scale_shift_planes(x, scale, shift, y, act, slope, p0, p1):
    for p in range(p0, p1):
        n, c = p // x.shape[1], p % x.shape[1]
        src, dst = x[n, c], y[n, c]
        a, b = scale[c], shift[c]
        for i in range(src.size):
            dst[i] = src[i] * a + b
        activate(dst, act, slope)


@_jit(parallel=True)
def _scale_shift_parallel(x, scale, shift, y, act, slope, tasks):
    planes = x.shape[0] * x.shape[1]
    for t in _nb.prange(tasks):
        _scale_shift_planes(x, scale, shift, y, act, slope, t * planes // tasks, (t + 1) * planes // tasks)


@_jit()
def scale_shift(x, scale, shift, y, act, slope, threads):
    """Batch norm from running statistics, as y = x * scale[c] + shift[c], on (N, C, HW)."""
    if _split(threads, 16 * x.size):
        _scale_shift_parallel(x, scale, shift, y, act, slope, threads)
    else:
        _scale_shift_planes(x, scale, shift, y, act, slope, _int(0), x.shape[0] * x.shape[1])


@_jit()
def _add_range(a, b, y, act, slope, i0, i1):
    for i in range(i0, i1):
        y[i] = a[i] + b[i]
    activate(y[i0:i1], act, slope)


@_jit(parallel=True)
def _add_parallel(a, b, y, act, slope, tasks):
    for t in _nb.prange(tasks):
        _add_range(a, b, y, act, slope, t * y.size // tasks, (t + 1) * y.size // tasks)


@_jit()
def add2(a, b, y, act, slope, threads):
    """y = act(a + b) on flat arrays (y may alias a or b)."""
    if _split(threads, 16 * y.size):
        _add_parallel(a, b, y, act, slope, threads)
    else:
        _add_range(a, b, y, act, slope, _int(0), y.size)


@_jit()
def _mul_planes(a, b, y, act, slope, p0, p1):
    for p in range(p0, p1):
        n, c = p // y.shape[1], p % y.shape[1]
        ra, rb, dst = a[n, c], b[n, c], y[n, c]
        if rb.size == 1:  # a squeeze-and-excitation gate: one loop per case, so that each vectorises
            g = rb[0]
            for i in range(dst.size):
                dst[i] = ra[i] * g
        elif ra.size == 1:
            g = ra[0]
            for i in range(dst.size):
                dst[i] = g * rb[i]
        else:
            for i in range(dst.size):
                dst[i] = ra[i] * rb[i]
        activate(dst, act, slope)


@_jit(parallel=True)
def _mul_parallel(a, b, y, act, slope, tasks):
    planes = y.shape[0] * y.shape[1]
    for t in _nb.prange(tasks):
        _mul_planes(a, b, y, act, slope, t * planes // tasks, (t + 1) * planes // tasks)


@_jit()
def mul2(a, b, y, act, slope, threads):
    """y = act(a * b) on (N, C, HW) views; an operand with HW == 1 broadcasts over positions."""
    if _split(threads, 16 * y.size):
        _mul_parallel(a, b, y, act, slope, threads)
    else:
        _mul_planes(a, b, y, act, slope, _int(0), y.shape[0] * y.shape[1])


@_jit()
def copy_channels(x, y, c0):
    """Concatenation: x (N, C, HW) into channels c0.. of y (N, C', HW)."""
    for n in range(x.shape[0]):
        _copy_rows(x[n], y[n, c0:], x.shape[1], x.shape[2])


@_jit()
def softmax(x, y):
    """Softmax over dim 1 of (N, C, HW)."""
    for n in range(x.shape[0]):
        for i in range(x.shape[2]):
            m = -_knp.inf
            for c in range(x.shape[1]):
                m = max(m, x[n, c, i])
            s = 0.0
            for c in range(x.shape[1]):
                e = _kmath.exp(x[n, c, i] - m)
                y[n, c, i] = e
                s += e
            for c in range(x.shape[1]):
                y[n, c, i] = y[n, c, i] / s


# ---- channel rearrangement, resampling, normalisation (ConvNeXt, ShuffleNet, dense prediction) ----------
@_jit()
def gather(x, y, c0, groups, h0, w0):
    """y[n, c, i, j] = x[n, src(c), h0 + i, w0 + j] on NCHW arrays, where src(c) = c0 + (c % g) * (C' / g) + c // g:
    a channel slice (g = 1), a channel shuffle (c0 = 0) or a crop (offsets h0, w0)."""
    per = y.shape[1] // groups
    for n in range(y.shape[0]):
        for c in range(y.shape[1]):
            src = c0 + (c % groups) * per + c // groups
            _copy_rows(x[n, src, h0:, w0:], y[n, c], y.shape[2], y.shape[3])


@_jit(inline="always")
def _source_index(o, ratio, size, bilinear, align_corners):
    """torch's source index along one axis for output index o, in float32 as its CPU kernels: (i0, i1, w1)."""
    r, t = _knp.float32(ratio), _knp.float32(o)
    if not bilinear:
        return min(int(_kmath.floor(t * r)), size - 1), 0, _knp.float32(0.0)
    if align_corners:
        real = r * t
    else:
        real = max(r * (t + _knp.float32(0.5)) - _knp.float32(0.5), _knp.float32(0.0))
    i0 = int(real)
    i1 = i0 + 1 if i0 < size - 1 else i0
    return i0, i1, _knp.float32(real - _knp.float32(i0))


@_jit()
def upsample2d(x, y, rh, rw, bilinear, align_corners):
    """Nearest or bilinear upsampling of NCHW x into y (torch's F.interpolate); rh, rw input pixels per output."""
    h, w = x.shape[2], x.shape[3]
    for i in range(y.shape[2]):
        a0, a1, la = _source_index(i, rh, h, bilinear, align_corners)
        for j in range(y.shape[3]):
            b0, b1, lb = _source_index(j, rw, w, bilinear, align_corners)
            for n in range(y.shape[0]):
                for c in range(y.shape[1]):
                    if bilinear:
                        top = (1 - lb) * x[n, c, a0, b0] + lb * x[n, c, a0, b1]
                        bottom = (1 - lb) * x[n, c, a1, b0] + lb * x[n, c, a1, b1]
                        y[n, c, i, j] = (1 - la) * top + la * bottom
                    else:
                        y[n, c, i, j] = x[n, c, a0, b0]


@_jit()
def layernorm(x, w, b, y, eps):
    """Layer norm over the channels of each position of (N, C, HW) x (biased variance, as torch)."""
    c_n = x.shape[1]
    for n in range(x.shape[0]):
        for i in range(x.shape[2]):
            m = 0.0
            for c in range(c_n):
                m += x[n, c, i]
            m /= c_n
            v = 0.0
            for c in range(c_n):
                d = x[n, c, i] - m
                v += d * d
            inv = 1.0 / _kmath.sqrt(v / c_n + eps)
            for c in range(c_n):
                y[n, c, i] = (x[n, c, i] - m) * inv * w[c] + b[c]


@_jit()
def conv_transpose2d(x, wt, b, y, scratch, threads, kh, kw, sh, sw, ph, pw, dh, dw, act, slope):
    """Transposed convolution (torch's ConvTranspose2d) of NCHW x; wt (groups, Cout/g * kh * kw, Cin/g) is
    each group's kernel transposed. Per image and group one BLAS product gives every tap's contribution
    of every input pixel (columns), which col2im adds into the output; then the bias and the activation."""
    groups, rows, cin = wt.shape[0], wt.shape[1], wt.shape[2]
    og = rows // (kh * kw)
    h, w = x.shape[2], x.shape[3]
    oh, ow = y.shape[2], y.shape[3]
    cols = scratch[: rows * h * w].reshape((rows, h * w))
    for n in range(y.shape[0]):
        for o in range(y.shape[1]):
            y[n, o, :, :] = b[o]
        for g in range(groups):
            xg = x[n, g * cin : (g + 1) * cin].reshape((cin, h * w))
            gemm_bias_act(wt[g], xg, cols, _NO_BIAS, ACT_NONE, 0.0, threads)
            for k in range(og):
                dst = y[n, g * og + k]
                for ky in range(kh):
                    for kx in range(kw):
                        col = cols[(k * kh + ky) * kw + kx]
                        for ih in range(h):
                            oy = ih * sh - ph + ky * dh
                            if oy < 0 or oy >= oh:
                                continue
                            for iw in range(w):
                                ox = iw * sw - pw + kx * dw
                                if 0 <= ox < ow:
                                    dst[oy, ox] += col[ih * w + iw]
        for o in range(y.shape[1]):
            activate(y[n, o].reshape(oh * ow), act, slope)


# ---- end of cnndsl numba kernels --------------------------------------------------------------
