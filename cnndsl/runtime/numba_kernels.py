# ---- cnndsl numba kernels (copied verbatim into generated numba modules) --------------------
# Generic kernels: every shape is read from the arrays at run time, so one compiled kernel
# serves every layer of every network and compile time does not grow with depth.
# Layouts: feature maps are float32 C-contiguous NCHW; per-channel ops take (N, C, H*W)
# views; element-wise ops take flat 1-D views. Activation codes are the ACT_* constants.
# This file must not import cnndsl: generated modules need only numpy and numba.
import math as _kmath

import numba as _nb
import numpy as _knp

# The OpenMP threading layer's workers spin after each parallel region and starve the BLAS threads of
# the GEMM that follows (a 64x56x56 3x3 conv: 8.0 ms under omp, 1.7 ms under workqueue on 2 cores).
# Respect a layer the user chose (NUMBA_THREADING_LAYER); otherwise take workqueue.
if _nb.config.THREADING_LAYER == "default":
    _nb.config.THREADING_LAYER = "workqueue"


# Activation codes: ACT_ and the op's name in the op table (the lowering stage emits them by that name);
# `slope` is the op's one float parameter (leaky_relu's slope, elu's alpha).
ACT_NONE, ACT_RELU, ACT_RELU6, ACT_LEAKY_RELU, ACT_SIGMOID, ACT_TANH = 0, 1, 2, 3, 4, 5
ACT_GELU, ACT_SILU, ACT_HARDSWISH, ACT_HARDSIGMOID, ACT_ELU = 6, 7, 8, 9, 10

# Below this many multiply-adds a parallel region costs more than it saves.
PARALLEL_MACS = 1 << 20
_OC_BLOCK = 4  # output channels per register block of the direct convolution
CONV_DIRECT, CONV_GEMM, CONV_WIDE = 0, 1, 2  # conv2d's methods (the renderer picks one per layer)
_WIDE_CHUNK = 512  # wide-row positions per pass: four accumulator rows of 2 KB stay in L1
_LONG_ROW = 24  # rows at least this long are copied through views (vectorised); shorter ones by index


@_nb.njit(cache=True, inline="always")
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


@_nb.njit(cache=True, inline="always")
def _sigmoid(v):
    return _knp.float32(0.5) + _knp.float32(0.5) * _tanh(_knp.float32(0.5) * v)


@_nb.njit(cache=True, inline="always")
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


@_nb.njit(cache=True)
def act_copy(x, y, act, slope):
    """y = act(x) on flat float32 arrays (y may be x). One loop per activation, so each vectorises."""
    if act == ACT_RELU:
        for i in range(x.size):
            y[i] = _act1(x[i], ACT_RELU, slope)
    elif act == ACT_RELU6:
        for i in range(x.size):
            y[i] = _act1(x[i], ACT_RELU6, slope)
    elif act == ACT_TANH:
        for i in range(x.size):
            y[i] = _act1(x[i], ACT_TANH, slope)
    elif act == ACT_SIGMOID:
        for i in range(x.size):
            y[i] = _act1(x[i], ACT_SIGMOID, slope)
    elif act == ACT_SILU:
        for i in range(x.size):
            y[i] = _act1(x[i], ACT_SILU, slope)
    elif act == ACT_HARDSWISH:
        for i in range(x.size):
            y[i] = _act1(x[i], ACT_HARDSWISH, slope)
    else:
        for i in range(x.size):
            y[i] = _act1(x[i], act, slope)


@_nb.njit(cache=True)
def activate(v, act, slope):
    """Apply an activation in place to a flat float32 array (the fused epilogue)."""
    if act != ACT_NONE:
        act_copy(v, v, act, slope)


@_nb.njit(cache=True)
def _span(out, size, k, s, p, d):
    """The output positions [lo, hi) whose tap k reads inside the input."""
    off = k * d - p
    lo = 0 if off >= 0 else (-off + s - 1) // s
    hi = (size - 1 - off) // s + 1 if size - 1 - off >= 0 else 0
    return lo, max(lo, min(hi, out))


@_nb.njit(cache=True)
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


@_nb.njit(cache=True, parallel=True)
def _direct_parallel(x, w, b, y, groups, sh, sw, ph, pw, dh, dw, act, slope):
    blocks = (y.shape[1] // groups + _OC_BLOCK - 1) // _OC_BLOCK
    tasks = y.shape[0] * groups * blocks
    for t in _nb.prange(tasks):
        n, rest = t // (groups * blocks), t % (groups * blocks)
        _direct_task(x, w, b, y, n, rest // blocks, rest % blocks, sh, sw, ph, pw, dh, dw, act, slope)


@_nb.njit(cache=True)
def _im2col_channel(x, n, c, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """Rows (c, ky, kx) of col: the input pixel each output pixel sees through that tap (0 in padding)."""
    h, wd = x.shape[2], x.shape[3]
    xf = x[n].reshape((x.shape[1] * h * wd,))
    cf = col.reshape((col.size,))
    plane = oh * ow
    for ky in range(kh):
        oy_lo, oy_hi = _span(oh, h, ky, sh, ph, dh)
        for kx in range(kw):
            r = ((c * kh + ky) * kw + kx) * plane
            lo, hi = _span(ow, wd, kx, sw, pw, dw)
            off = kx * dw - pw
            cf[r : r + plane] = 0.0
            for oy in range(oy_lo, oy_hi):
                d = r + oy * ow
                src = (c * h + oy * sh - ph + ky * dh) * wd + off + lo * sw
                if sw == 1 and hi - lo >= _LONG_ROW:  # views indexed from 0 vectorise; they cost ~10 ns to make
                    dst = cf[d + lo : d + hi]
                    xs = xf[src : src + hi - lo]
                    for i in range(hi - lo):
                        dst[i] = xs[i]
                else:
                    for i in range(hi - lo):
                        cf[d + lo + i] = xf[src + i * sw]


@_nb.njit(cache=True, parallel=True)
def _im2col_parallel(x, n, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    for c in _nb.prange(x.shape[1]):
        _im2col_channel(x, n, c, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


@_nb.njit(cache=True)
def _im2col(x, n, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """im2col is memory-bound and, left serial, costs a third of a big 3x3 conv: split big ones over
    channels; small ones stay serial, clear of the parallel runtime's per-call cost."""
    if x.shape[1] * kh * kw * oh * ow < PARALLEL_MACS:
        for c in range(x.shape[1]):
            _im2col_channel(x, n, c, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    else:
        _im2col_parallel(x, n, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


@_nb.njit(cache=True, fastmath={"contract"})
def _wide_block(src, w, b, acc, y, n, o0, wp, dh, dw, act, slope):
    """Output channels o0..o0+3 of image n by the wide-row direct method (stride 1, groups 1).

    src holds the (padded) input planes, each wp wide. Output position (oy, ox) lives at oy * wp + ox of a
    "wide" row of length L = (oh - 1) * wp + ow; tap (c, ky, kx) then reads src at one constant offset from
    it, so each tap is one contiguous, vectorised loop over the whole plane (the wp - ow junk columns per
    row are computed and dropped). A whole kernel row (kw = 3 or 5 taps) is summed per load/store of the
    four accumulator rows, which is what makes it faster than im2col + BLAS for few channels."""
    cin, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    oh, ow = y.shape[2], y.shape[3]
    wl = (oh - 1) * wp + ow
    plane = src.size // cin
    nb = min(_OC_BLOCK, y.shape[1] - o0)
    for k in range(nb):
        bias = b[o0 + k]
        r = acc[k * wl : (k + 1) * wl]
        for i in range(wl):
            r[i] = bias
    if nb == _OC_BLOCK and (kw == 3 or kw == 5):
        for p0 in range(0, wl, _WIDE_CHUNK):
            cl = min(_WIDE_CHUNK, wl - p0)
            r0 = acc[p0 : p0 + cl]
            r1 = acc[wl + p0 : wl + p0 + cl]
            r2 = acc[2 * wl + p0 : 2 * wl + p0 + cl]
            r3 = acc[3 * wl + p0 : 3 * wl + p0 + cl]
            for c in range(cin):
                for ky in range(kh):
                    off = c * plane + ky * dh * wp + p0
                    t = w[o0 : o0 + 4, c, ky]
                    xa = src[off : off + cl]
                    xb = src[off + dw : off + dw + cl]
                    xc = src[off + 2 * dw : off + 2 * dw + cl]
                    if kw == 3:
                        a0, b0, c0 = t[0, 0], t[0, 1], t[0, 2]
                        a1, b1, c1 = t[1, 0], t[1, 1], t[1, 2]
                        a2, b2, c2 = t[2, 0], t[2, 1], t[2, 2]
                        a3, b3, c3 = t[3, 0], t[3, 1], t[3, 2]
                        for i in range(cl):
                            va, vb, vc = xa[i], xb[i], xc[i]
                            r0[i] += a0 * va + b0 * vb + c0 * vc
                            r1[i] += a1 * va + b1 * vb + c1 * vc
                            r2[i] += a2 * va + b2 * vb + c2 * vc
                            r3[i] += a3 * va + b3 * vb + c3 * vc
                    else:
                        xd = src[off + 3 * dw : off + 3 * dw + cl]
                        xe = src[off + 4 * dw : off + 4 * dw + cl]
                        a0, b0, c0, d0, e0 = t[0, 0], t[0, 1], t[0, 2], t[0, 3], t[0, 4]
                        a1, b1, c1, d1, e1 = t[1, 0], t[1, 1], t[1, 2], t[1, 3], t[1, 4]
                        a2, b2, c2, d2, e2 = t[2, 0], t[2, 1], t[2, 2], t[2, 3], t[2, 4]
                        a3, b3, c3, d3, e3 = t[3, 0], t[3, 1], t[3, 2], t[3, 3], t[3, 4]
                        for i in range(cl):
                            va, vb, vc, vd, ve = xa[i], xb[i], xc[i], xd[i], xe[i]
                            r0[i] += a0 * va + b0 * vb + c0 * vc + d0 * vd + e0 * ve
                            r1[i] += a1 * va + b1 * vb + c1 * vc + d1 * vd + e1 * ve
                            r2[i] += a2 * va + b2 * vb + c2 * vc + d2 * vd + e2 * ve
                            r3[i] += a3 * va + b3 * vb + c3 * vc + d3 * vd + e3 * ve
    else:  # any other kernel width, or fewer than four channels: one tap, one channel at a time
        for k in range(nb):
            r = acc[k * wl : (k + 1) * wl]
            for c in range(cin):
                for ky in range(kh):
                    for kx in range(kw):
                        off = c * plane + ky * dh * wp + kx * dw
                        xs = src[off : off + wl]
                        wk = w[o0 + k, c, ky, kx]
                        for i in range(wl):
                            r[i] += wk * xs[i]
    # The epilogue: one activation pass over the whole block (short per-row calls cost more than the junk
    # columns), then the valid columns copied out.
    activate(acc[: nb * wl], act, slope)
    for k in range(nb):
        for oy in range(oh):
            row = acc[k * wl + oy * wp : k * wl + oy * wp + ow]
            dst = y[n, o0 + k, oy]
            for i in range(ow):
                dst[i] = row[i]


@_nb.njit(cache=True, parallel=True)
def _wide_parallel(src, w, b, accs, y, n, wp, dh, dw, act, slope):
    blocks = accs.shape[0]
    for t in _nb.prange(blocks):
        o0 = min(t * _OC_BLOCK, y.shape[1] - _OC_BLOCK)  # the last block overlaps: it rewrites equal values
        _wide_block(src, w, b, accs[t], y, n, o0, wp, dh, dw, act, slope)


@_nb.njit(cache=True)
def conv_wide(x, w, b, y, scratch, ph, pw, dh, dw, act, slope):
    """Stride-1 ungrouped conv by wide rows (see _wide_block). scratch: the padded input planes, then one
    accumulator block of four wide rows per task (the renderer sizes it, numba_backend.wide_scratch)."""
    cin, h, wd = x.shape[1], x.shape[2], x.shape[3]
    cout, oh, ow = y.shape[1], y.shape[2], y.shape[3]
    hp, wp = h + 2 * ph, wd + 2 * pw
    wl = (oh - 1) * wp + ow
    blocks = (cout + _OC_BLOCK - 1) // _OC_BLOCK
    padded = ph > 0 or pw > 0
    accs = scratch[cin * hp * wp : cin * hp * wp + blocks * _OC_BLOCK * wl].reshape((blocks, _OC_BLOCK * wl))
    for n in range(x.shape[0]):
        if padded:
            src = scratch[: cin * hp * wp]
            src[:] = 0.0
            s3 = src.reshape((cin, hp, wp))
            for c in range(cin):
                for r in range(h):
                    s3[c, ph + r, pw : pw + wd] = x[n, c, r]
        else:
            src = x[n].reshape((cin * h * wd,))
        if cout * cin * w.shape[2] * w.shape[3] * oh * ow >= PARALLEL_MACS and blocks > 1:
            _wide_parallel(src, w, b, accs, y, n, wp, dh, dw, act, slope)
        else:
            for t in range(blocks):
                o0 = max(min(t * _OC_BLOCK, cout - _OC_BLOCK), 0)  # the last block overlaps: always four channels
                _wide_block(src, w, b, accs[0], y, n, o0, wp, dh, dw, act, slope)


@_nb.njit(cache=True)
def _bias_act(y2, b, act, slope):
    for o in range(y2.shape[0]):
        row = y2[o]
        bias = b[o]
        for i in range(row.size):
            row[i] += bias
        activate(row, act, slope)


@_nb.njit(cache=True)
def conv2d(x, w, b, y, scratch, groups, sh, sw, ph, pw, dh, dw, method, act, slope):
    """y = act(conv(x, w) + b). method: CONV_GEMM im2col + BLAS (groups 1), CONV_WIDE wide rows (stride 1,
    groups 1), CONV_DIRECT the direct blocked kernel (any conv)."""
    n_img, cout = y.shape[0], y.shape[1]
    oh, ow = y.shape[2], y.shape[3]
    if method == CONV_WIDE:
        conv_wide(x, w, b, y, scratch, ph, pw, dh, dw, act, slope)
        return
    if method == CONV_GEMM:
        cin, kh, kw = w.shape[1], w.shape[2], w.shape[3]
        k = cin * kh * kw
        w2 = w.reshape((cout, k))
        pointwise = kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
        for n in range(n_img):
            y2 = y[n].reshape((cout, oh * ow))
            if pointwise:
                _knp.dot(w2, x[n].reshape((cin, oh * ow)), y2)
            else:
                col = scratch[: k * oh * ow].reshape((k, oh * ow))
                _im2col(x, n, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
                _knp.dot(w2, col, y2)
            _bias_act(y2, b, act, slope)
        return
    macs = n_img * cout * oh * ow * w.shape[1] * w.shape[2] * w.shape[3]
    if macs >= PARALLEL_MACS:
        _direct_parallel(x, w, b, y, groups, sh, sw, ph, pw, dh, dw, act, slope)
        return
    blocks = (cout // groups + _OC_BLOCK - 1) // _OC_BLOCK
    for n in range(n_img):
        for g in range(groups):
            for ob in range(blocks):
                _direct_task(x, w, b, y, n, g, ob, sh, sw, ph, pw, dh, dw, act, slope)


@_nb.njit(cache=True)
def linear(x, wt, b, y, act, slope):
    """y = act(x @ wt + b) with wt the (in, out) transposed fc weight."""
    _knp.dot(x, wt, y)
    for n in range(y.shape[0]):
        row = y[n]
        for o in range(row.size):
            row[o] += b[o]
        activate(row, act, slope)


@_nb.njit(cache=True)
def _maxpool2x2(x, y):
    """2x2 windows, stride 2, no padding, all inside the input: the common case, without clipping."""
    for n in range(y.shape[0]):
        for c in range(y.shape[1]):
            src, dst = x[n, c], y[n, c]
            for oy in range(y.shape[2]):
                r0, r1, out = src[2 * oy], src[2 * oy + 1], dst[oy]
                for ox in range(y.shape[3]):
                    out[ox] = max(max(r0[2 * ox], r0[2 * ox + 1]), max(r1[2 * ox], r1[2 * ox + 1]))


@_nb.njit(cache=True)
def maxpool2d(x, y, kh, kw, sh, sw, ph, pw):
    """Windows clipped to the input (padding never wins a max); ceil mode is in y's shape."""
    h, wd = x.shape[2], x.shape[3]
    if (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0) and 2 * y.shape[2] <= h and 2 * y.shape[3] <= wd:
        _maxpool2x2(x, y)
        return
    for n in range(y.shape[0]):
        for c in range(y.shape[1]):
            src = x[n, c]
            for oy in range(y.shape[2]):
                y0, y1 = max(oy * sh - ph, 0), min(oy * sh - ph + kh, h)
                for ox in range(y.shape[3]):
                    x0, x1 = max(ox * sw - pw, 0), min(ox * sw - pw + kw, wd)
                    m = -_knp.inf
                    for iy in range(y0, y1):
                        for ix in range(x0, x1):
                            m = max(m, src[iy, ix])
                    y[n, c, oy, ox] = m


@_nb.njit(cache=True)
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


@_nb.njit(cache=True)
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


@_nb.njit(cache=True)
def global_pool(x, y, is_max):
    """(N, C, HW) -> (N, C, 1): mean or max over positions."""
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            src = x[n, c]
            if is_max:
                m = -_knp.inf
                for i in range(src.size):
                    m = max(m, src[i])
                y[n, c, 0] = m
            else:
                s = 0.0
                for i in range(src.size):
                    s += src[i]
                y[n, c, 0] = s / src.size


@_nb.njit(cache=True)
def scale_shift(x, scale, shift, y, act, slope):
    """Batch norm from running statistics, as y = x * scale[c] + shift[c], on (N, C, HW)."""
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            src, dst = x[n, c], y[n, c]
            a, b = scale[c], shift[c]
            for i in range(src.size):
                dst[i] = src[i] * a + b
            activate(dst, act, slope)


@_nb.njit(cache=True)
def add2(a, b, y, act, slope):
    """y = act(a + b) on flat arrays (y may alias a or b)."""
    for i in range(y.size):
        y[i] = a[i] + b[i]
    activate(y, act, slope)


@_nb.njit(cache=True)
def mul2(a, b, y, act, slope):
    """y = act(a * b) on (N, C, HW) views; an operand with HW == 1 broadcasts over positions."""
    for n in range(y.shape[0]):
        for c in range(y.shape[1]):
            ra, rb, dst = a[n, c], b[n, c], y[n, c]
            for i in range(dst.size):
                dst[i] = ra[i if ra.size > 1 else 0] * rb[i if rb.size > 1 else 0]
            activate(dst, act, slope)


@_nb.njit(cache=True)
def copy_channels(x, y, c0):
    """Concatenation: x (N, C, HW) into channels c0.. of y (N, C', HW)."""
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            y[n, c0 + c, :] = x[n, c, :]


@_nb.njit(cache=True)
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
@_nb.njit(cache=True)
def gather(x, y, c0, groups, h0, w0):
    """y[n, c, i, j] = x[n, src(c), h0 + i, w0 + j] on NCHW arrays, where src(c) = c0 + (c % g) * (C' / g) + c // g:
    a channel slice (g = 1), a channel shuffle (c0 = 0) or a crop (offsets h0, w0)."""
    per = y.shape[1] // groups
    for n in range(y.shape[0]):
        for c in range(y.shape[1]):
            src = c0 + (c % groups) * per + c // groups
            for i in range(y.shape[2]):
                y[n, c, i, :] = x[n, src, h0 + i, w0 : w0 + y.shape[3]]


@_nb.njit(cache=True, inline="always")
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


@_nb.njit(cache=True)
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


@_nb.njit(cache=True)
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


@_nb.njit(cache=True)
def conv_transpose2d(x, wt, b, y, scratch, kh, kw, sh, sw, ph, pw, dh, dw, act, slope):
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
            _knp.dot(wt[g], x[n, g * cin : (g + 1) * cin].reshape((cin, h * w)), cols)
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
