# ---- cnndsl CUDA kernel library (shared by every cuda-backend module) ----------------------
# This file is copied verbatim into generated modules, so that they need only numpy and
# numba-cuda. It must not import cnndsl. Tensors are float32, C-contiguous, NCHW (or NF).
# Each `*_kernel` is a @cuda.jit kernel; the plain function beside it picks the launch
# configuration from the array shapes and launches it once.
import math as _kmath

try:
    from numba import cuda
    from numba import float32 as _f32
except ImportError as _e:  # the base install: rendering needs no numba, running does
    raise ImportError("this module needs numba-cuda: pip install 'cnndsl[cuda]' (or numba-cuda)") from _e


class DeviceError(RuntimeError):
    """No CUDA device to run on; the message says the two ways out."""


def require_device():
    if not cuda.is_available():
        raise DeviceError(
            "no CUDA GPU is available to this process: run on a machine with an NVIDIA GPU and its driver, "
            "or set NUMBA_ENABLE_CUDASIM=1 before starting Python to use numba's (slow) CUDA simulator"
        )


def is_device_array(x):
    """A numba device array, or another library's GPU array (torch, CuPy) that numba can view without a copy."""
    return cuda.devicearray.is_cuda_ndarray(x) or hasattr(x, "__cuda_array_interface__")


def as_device_array(x):
    return x if cuda.devicearray.is_cuda_ndarray(x) else cuda.as_cuda_array(x)


THREADS = 256  # threads per block of the elementwise kernels
CONV_TILE = 8  # a conv block computes a CONV_TILE x CONV_TILE tile of output pixels ...
CONV_CHANNELS = 8  # ... for this many output channels, one output per thread
CONV_SHARED = 4096  # floats of input patch staged in shared memory per block (16 KiB)
FC_OUTPUTS = 32  # fc: a block computes FC_OUTPUTS features ...
FC_SAMPLES = 8  # ... for up to FC_SAMPLES samples
FC_DEPTH = 64  # ... staging FC_DEPTH input features of x and W in shared memory per step

# Activation codes, applied in every fused epilogue: ACT_ and the op's name in the op table (the lowering
# stage emits them by that name); alpha is the op's one float parameter (leaky_relu's slope, elu's alpha).
ACT_NONE, ACT_RELU, ACT_RELU6, ACT_LEAKY_RELU, ACT_SIGMOID, ACT_TANH = range(6)
ACT_GELU, ACT_SILU, ACT_HARDSWISH, ACT_HARDSIGMOID, ACT_ELU = range(6, 11)


@cuda.jit(device=True)
def activate(v, act, alpha):
    if act == ACT_RELU:
        return max(v, _f32(0.0))
    if act == ACT_RELU6:
        return min(max(v, _f32(0.0)), _f32(6.0))
    if act == ACT_LEAKY_RELU:
        return v if v > _f32(0.0) else alpha * v
    if act == ACT_ELU:
        return v if v > _f32(0.0) else alpha * (_kmath.exp(v) - _f32(1.0))
    if act == ACT_SIGMOID:
        return _f32(1.0) / (_f32(1.0) + _kmath.exp(-v))
    if act == ACT_TANH:
        return _kmath.tanh(v)
    if act == ACT_GELU:
        return _f32(0.5) * v * (_f32(1.0) + _kmath.erf(v * _f32(0.7071067811865476)))
    if act == ACT_SILU:
        return v / (_f32(1.0) + _kmath.exp(-v))
    if act == ACT_HARDSWISH:
        return v * min(max(v + _f32(3.0), _f32(0.0)), _f32(6.0)) / _f32(6.0)
    if act == ACT_HARDSIGMOID:
        return min(max(v + _f32(3.0), _f32(0.0)), _f32(6.0)) / _f32(6.0)
    return v


# ---- convolution -------------------------------------------------------------------------
@cuda.jit
def conv2d_kernel(x, w, shift, out, sh, sw, ph, pw, dh, dw, groups, tile_h, tile_w, chunk, act, alpha):
    """Direct convolution: out = act(conv(x, w) + shift), BN already folded into w and shift.

    Grid (spatial tiles, groups x channel tiles, batch); block (tile_h * tile_w pixels, output channels).
    The block stages the input patch its tile reads, `chunk` input channels at a time, in shared
    memory: every staged value is reused by all output channels and kernel taps of the block.
    Taps that fall in the padding are skipped, not multiplied by zero.
    """
    patch = cuda.shared.array(CONV_SHARED, _f32)
    n = cuda.blockIdx.z
    cin_g, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    cout_g = out.shape[1] // groups
    height, width = x.shape[2], x.shape[3]
    tiles_per_group = (cout_g + cuda.blockDim.y - 1) // cuda.blockDim.y
    g = cuda.blockIdx.y // tiles_per_group
    local_o = (cuda.blockIdx.y % tiles_per_group) * cuda.blockDim.y + cuda.threadIdx.y
    o = g * cout_g + local_o
    tiles_w = (out.shape[3] + tile_w - 1) // tile_w
    oh0 = (cuda.blockIdx.x // tiles_w) * tile_h
    ow0 = (cuda.blockIdx.x % tiles_w) * tile_w
    p = cuda.threadIdx.x
    oh, ow = oh0 + p // tile_w, ow0 + p % tile_w
    active = local_o < cout_g and oh < out.shape[2] and ow < out.shape[3]
    # The patch: input rows ih0 .. ih0 + patch_h - 1 and columns iw0 .. iw0 + patch_w - 1.
    ih0, iw0 = oh0 * sh - ph, ow0 * sw - pw
    patch_h = (tile_h - 1) * sh + (kh - 1) * dh + 1
    patch_w = (tile_w - 1) * sw + (kw - 1) * dw + 1
    plane = patch_h * patch_w
    threads = cuda.blockDim.x * cuda.blockDim.y
    tid = cuda.threadIdx.y * cuda.blockDim.x + p
    acc = _f32(0.0)
    for c0 in range(0, cin_g, chunk):
        channels = min(chunk, cin_g - c0)
        for k in range(tid, channels * plane, threads):  # cooperative, coalesced along rows
            c, r = k // plane, k % plane
            ih, iw = ih0 + r // patch_w, iw0 + r % patch_w
            inside = 0 <= ih < height and 0 <= iw < width
            patch[k] = x[n, g * cin_g + c0 + c, ih, iw] if inside else _f32(0.0)
        cuda.syncthreads()
        if active:
            for i in range(kh):
                py = (p // tile_w) * sh + i * dh
                if 0 <= ih0 + py < height:
                    for j in range(kw):
                        px = (p % tile_w) * sw + j * dw
                        if 0 <= iw0 + px < width:
                            for c in range(channels):
                                acc += patch[c * plane + py * patch_w + px] * w[o, c0 + c, i, j]
        cuda.syncthreads()
    if active:
        out[n, o, oh, ow] = activate(acc + shift[o], act, alpha)


def conv2d(x, w, shift, out, stride, pad, dilation, groups, act=ACT_NONE, alpha=0.0):
    """Launch conv2d_kernel once: w is (out, in / groups, kh, kw), shift is (out,)."""
    n, cout, oh, ow = out.shape
    cin_g, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    tile_h, tile_w = min(oh, CONV_TILE), min(ow, CONV_TILE)

    def plane():
        return ((tile_h - 1) * stride[0] + (kh - 1) * dilation[0] + 1) * (
            (tile_w - 1) * stride[1] + (kw - 1) * dilation[1] + 1
        )

    while plane() > CONV_SHARED and (tile_h > 1 or tile_w > 1):  # huge kernels or dilations: smaller tiles
        tile_h, tile_w = max(1, tile_h // 2), max(1, tile_w // 2)
    if plane() > CONV_SHARED:
        raise ValueError(
            f"a {kh}x{kw} kernel with dilation {dilation} needs more shared memory than this kernel stages"
        )
    chunk = min(cin_g, CONV_SHARED // plane())
    channels = min(CONV_CHANNELS, cout // groups)
    tiles = ((oh + tile_h - 1) // tile_h) * ((ow + tile_w - 1) // tile_w)
    grid = (tiles, groups * ((cout // groups + channels - 1) // channels), n)
    conv2d_kernel[grid, (tile_h * tile_w, channels)](
        x,
        w,
        shift,
        out,
        stride[0],
        stride[1],
        pad[0],
        pad[1],
        dilation[0],
        dilation[1],
        groups,
        tile_h,
        tile_w,
        chunk,
        act,
        _f32(alpha),
    )


# ---- fully connected ---------------------------------------------------------------------
@cuda.jit
def fc_kernel(x, w, shift, out, act, alpha):
    """Tiled matrix product out = act(x @ w.T + shift): x (N, K), w (F, K).

    Grid (feature tiles, sample tiles); block (FC_OUTPUTS features, up to FC_SAMPLES samples).
    Each step stages a FC_DEPTH-wide slice of x and of w in shared memory, loaded coalesced.
    """
    xs = cuda.shared.array((FC_SAMPLES, FC_DEPTH), _f32)
    ws = cuda.shared.array((FC_OUTPUTS, FC_DEPTH), _f32)
    f0, n0 = cuda.blockIdx.x * FC_OUTPUTS, cuda.blockIdx.y * cuda.blockDim.y
    f, s = f0 + cuda.threadIdx.x, n0 + cuda.threadIdx.y
    depth, features, samples = x.shape[1], w.shape[0], x.shape[0]
    threads = cuda.blockDim.x * cuda.blockDim.y
    tid = cuda.threadIdx.y * cuda.blockDim.x + cuda.threadIdx.x
    acc = _f32(0.0)
    for k0 in range(0, depth, FC_DEPTH):
        for k in range(tid, cuda.blockDim.y * FC_DEPTH, threads):
            r, c = k // FC_DEPTH, k % FC_DEPTH
            inside = n0 + r < samples and k0 + c < depth
            xs[r, c] = x[n0 + r, k0 + c] if inside else _f32(0.0)
        for k in range(tid, FC_OUTPUTS * FC_DEPTH, threads):
            r, c = k // FC_DEPTH, k % FC_DEPTH
            inside = f0 + r < features and k0 + c < depth
            ws[r, c] = w[f0 + r, k0 + c] if inside else _f32(0.0)
        cuda.syncthreads()
        for c in range(min(FC_DEPTH, depth - k0)):
            acc += xs[cuda.threadIdx.y, c] * ws[cuda.threadIdx.x, c]
        cuda.syncthreads()
    if f < features and s < samples:
        out[s, f] = activate(acc + shift[f], act, alpha)


def fc(x, w, shift, out, act=ACT_NONE, alpha=0.0):
    n, features = out.shape
    samples = min(n, FC_SAMPLES)
    grid = ((features + FC_OUTPUTS - 1) // FC_OUTPUTS, (n + samples - 1) // samples)
    fc_kernel[grid, (FC_OUTPUTS, samples)](x, w, shift, out, act, _f32(alpha))


# ---- pooling -----------------------------------------------------------------------------
@cuda.jit
def pool2d_kernel(x, out, kh, kw, sh, sw, ph, pw, is_max, include_pad):
    """Max or average pooling, one thread per output; ceil mode is in out's shape already.

    The average divides like torch: by the window clipped to the padded input, or, without
    include_pad, to the input itself.
    """
    i = cuda.grid(1)
    if i >= out.size:
        return
    n, c, oh, ow = _unravel4(i, out.shape)
    height, width = x.shape[2], x.shape[3]
    h0, w0 = oh * sh - ph, ow * sw - pw
    h1, w1 = min(h0 + kh, height + ph), min(w0 + kw, width + pw)
    divisor = (h1 - h0) * (w1 - w0)
    h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, height), min(w1, width)
    if not include_pad:
        divisor = (h1 - h0) * (w1 - w0)
    acc = _f32(-_kmath.inf) if is_max else _f32(0.0)
    for y in range(h0, h1):
        for z in range(w0, w1):
            acc = max(acc, x[n, c, y, z]) if is_max else acc + x[n, c, y, z]
    out[n, c, oh, ow] = acc if is_max else acc / divisor


def pool2d(x, out, kernel, stride, pad, is_max, include_pad=True):
    pool2d_kernel[_blocks(out.size), THREADS](
        x, out, kernel[0], kernel[1], stride[0], stride[1], pad[0], pad[1], is_max, include_pad
    )


@cuda.jit
def adaptive_pool_kernel(x, out, is_max):
    """Adaptive (global when out is Nx Cx1x1) average or max pooling, one thread per output."""
    i = cuda.grid(1)
    if i >= out.size:
        return
    n, c, oh, ow = _unravel4(i, out.shape)
    height, width, out_h, out_w = x.shape[2], x.shape[3], out.shape[2], out.shape[3]
    h0, h1 = (oh * height) // out_h, ((oh + 1) * height + out_h - 1) // out_h
    w0, w1 = (ow * width) // out_w, ((ow + 1) * width + out_w - 1) // out_w
    acc = _f32(-_kmath.inf) if is_max else _f32(0.0)
    for y in range(h0, h1):
        for z in range(w0, w1):
            acc = max(acc, x[n, c, y, z]) if is_max else acc + x[n, c, y, z]
    out[n, c, oh, ow] = acc if is_max else acc / ((h1 - h0) * (w1 - w0))


def adaptive_pool(x, out, is_max):
    adaptive_pool_kernel[_blocks(out.size), THREADS](x, out, is_max)


# ---- elementwise -------------------------------------------------------------------------
@cuda.jit
def affine_kernel(x, scale, shift, out, channels, spatial, act, alpha):
    """out = act(x * scale[c] + shift[c]) over flat arrays seen as (N, channels, spatial)."""
    i = cuda.grid(1)
    if i < out.size:
        c = (i // spatial) % channels
        out[i] = activate(x[i] * scale[c] + shift[c], act, alpha)


def affine(x, scale, shift, out, act=ACT_NONE, alpha=0.0):
    """Batch norm at inference (scale and shift folded from its statistics) with an activation."""
    channels = out.shape[1]
    spatial = out.size // (out.shape[0] * channels)
    affine_kernel[_blocks(out.size), THREADS](_flat(x), scale, shift, _flat(out), channels, spatial, act, _f32(alpha))


@cuda.jit
def activation_kernel(x, out, act, alpha):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = activate(x[i], act, alpha)


def activation(x, out, act, alpha=0.0):
    activation_kernel[_blocks(out.size), THREADS](_flat(x), _flat(out), act, _f32(alpha))


@cuda.jit
def binary_kernel(a, b, out, channels, spatial, a_spatial, b_spatial, is_mul, act, alpha):
    """out = act(a + b) or act(a * b) over (N, channels, spatial); an operand with spatial 1 broadcasts."""
    i = cuda.grid(1)
    if i < out.size:
        nc, s = i // spatial, i % spatial
        va = a[nc * a_spatial + (s if a_spatial > 1 else 0)]
        vb = b[nc * b_spatial + (s if b_spatial > 1 else 0)]
        out[i] = activate(va * vb if is_mul else va + vb, act, alpha)


def _binary(a, b, out, is_mul, act, alpha):
    channels = out.shape[1]
    spatial = out.size // (out.shape[0] * channels)
    a_spatial = a.size // (out.shape[0] * channels)
    b_spatial = b.size // (out.shape[0] * channels)
    binary_kernel[_blocks(out.size), THREADS](
        _flat(a), _flat(b), _flat(out), channels, spatial, a_spatial, b_spatial, is_mul, act, _f32(alpha)
    )


def add(a, b, out, act=ACT_NONE, alpha=0.0):
    _binary(a, b, out, False, act, alpha)


def multiply(a, b, out, act=ACT_NONE, alpha=0.0):
    """a * b, where a (N, C, 1, 1) operand broadcasts over the other's H x W."""
    _binary(a, b, out, True, act, alpha)


@cuda.jit
def copy_channels_kernel(src, dst, src_channels, dst_channels, offset, spatial):
    """Copy src (N, src_channels, spatial) into channels offset.. of dst (N, dst_channels, spatial)."""
    i = cuda.grid(1)
    if i < src.size:
        n, r = i // (src_channels * spatial), i % (src_channels * spatial)
        dst[(n * dst_channels + offset) * spatial + r] = src[i]


def copy_channels(src, dst, offset):
    spatial = src.size // (src.shape[0] * src.shape[1])
    copy_channels_kernel[_blocks(src.size), THREADS](
        _flat(src), _flat(dst), src.shape[1], dst.shape[1], offset, spatial
    )


@cuda.jit
def softmax_kernel(x, out, channels, spatial, rows):
    """Softmax over dim 1, one thread per (sample, position), max-subtracted for stability."""
    i = cuda.grid(1)
    if i >= rows:
        return
    n, s = i // spatial, i % spatial
    base = n * channels * spatial + s
    top = x[base]
    for c in range(1, channels):
        top = max(top, x[base + c * spatial])
    total = _f32(0.0)
    for c in range(channels):
        e = _kmath.exp(x[base + c * spatial] - top)
        out[base + c * spatial] = e
        total += e
    for c in range(channels):
        out[base + c * spatial] /= total


def softmax(x, out):
    channels = out.shape[1]
    spatial = out.size // (out.shape[0] * channels)
    rows = out.shape[0] * spatial
    softmax_kernel[_blocks(rows), THREADS](_flat(x), _flat(out), channels, spatial, rows)


# ---- channel rearrangement, resampling, normalisation (ConvNeXt, ShuffleNet, dense prediction) ----------
@cuda.jit
def gather_kernel(x, out, c0, groups, h0, w0):
    """out[n, c, i, j] = x[n, c0 + (c % g) * (C' / g) + c // g, h0 + i, w0 + j]: slice, shuffle or crop."""
    i = cuda.grid(1)
    if i < out.size:
        n, c, h, w = _unravel4(i, out.shape)
        per = out.shape[1] // groups
        out[n, c, h, w] = x[n, c0 + (c % groups) * per + c // groups, h0 + h, w0 + w]


def gather(x, out, c0, groups, h0, w0):
    x4 = x if len(x.shape) == 4 else x.reshape(x.shape[0], x.shape[1], 1, 1)
    out4 = out if len(out.shape) == 4 else out.reshape(out.shape[0], out.shape[1], 1, 1)
    gather_kernel[_blocks(out.size), THREADS](x4, out4, c0, groups, h0, w0)


@cuda.jit(device=True)
def _source_index(o, ratio, size, bilinear, align_corners):
    """torch's source index of output index o along one axis, in float32 as its kernels: (i0, i1, weight of i1)."""
    t = _f32(o)
    if not bilinear:
        return min(int(_kmath.floor(t * ratio)), size - 1), 0, _f32(0.0)
    if align_corners:
        real = ratio * t
    else:
        real = max(ratio * (t + _f32(0.5)) - _f32(0.5), _f32(0.0))
    i0 = int(real)
    i1 = i0 + 1 if i0 < size - 1 else i0
    return i0, i1, _f32(real - _f32(i0))


@cuda.jit
def upsample_kernel(x, out, rh, rw, bilinear, align_corners):
    i = cuda.grid(1)
    if i < out.size:
        n, c, h, w = _unravel4(i, out.shape)
        a0, a1, la = _source_index(h, rh, x.shape[2], bilinear, align_corners)
        b0, b1, lb = _source_index(w, rw, x.shape[3], bilinear, align_corners)
        if bilinear:
            one = _f32(1.0)
            top = (one - lb) * x[n, c, a0, b0] + lb * x[n, c, a0, b1]
            bottom = (one - lb) * x[n, c, a1, b0] + lb * x[n, c, a1, b1]
            out[n, c, h, w] = (one - la) * top + la * bottom
        else:
            out[n, c, h, w] = x[n, c, a0, b0]


def upsample(x, out, ratio, bilinear, align_corners):
    """Nearest or bilinear upsampling (torch's F.interpolate); ratio: input pixels per output pixel (h, w)."""
    upsample_kernel[_blocks(out.size), THREADS](x, out, _f32(ratio[0]), _f32(ratio[1]), bilinear, align_corners)


@cuda.jit
def layernorm_kernel(x, w, b, out, channels, spatial, rows, eps):
    """Layer norm over the channels of each (sample, position), one thread each (biased variance, as torch)."""
    i = cuda.grid(1)
    if i >= rows:
        return
    n, s = i // spatial, i % spatial
    base = n * channels * spatial + s
    m = _f32(0.0)
    for c in range(channels):
        m += x[base + c * spatial]
    m /= channels
    v = _f32(0.0)
    for c in range(channels):
        d = x[base + c * spatial] - m
        v += d * d
    inv = _f32(1.0) / _kmath.sqrt(v / channels + eps)
    for c in range(channels):
        out[base + c * spatial] = (x[base + c * spatial] - m) * inv * w[c] + b[c]


def layernorm(x, w, b, out, eps):
    channels = out.shape[1]
    spatial = out.size // (out.shape[0] * channels)
    rows = out.shape[0] * spatial
    layernorm_kernel[_blocks(rows), THREADS](_flat(x), w, b, _flat(out), channels, spatial, rows, _f32(eps))


@cuda.jit
def conv_transpose2d_kernel(x, w, shift, out, sh, sw, ph, pw, dh, dw, groups, act, alpha):
    """One thread per output: the sum over the input pixels and taps that scatter into it (ConvTranspose2d)."""
    i = cuda.grid(1)
    if i >= out.size:
        return
    n, o, oy, ox = _unravel4(i, out.shape)
    og = w.shape[1]
    cin = x.shape[1] // groups
    g, k = o // og, o % og
    acc = shift[o]
    for ky in range(w.shape[2]):
        ty = oy + ph - ky * dh
        if ty < 0 or ty % sh != 0 or ty // sh >= x.shape[2]:
            continue
        iy = ty // sh
        for kx in range(w.shape[3]):
            tx = ox + pw - kx * dw
            if tx < 0 or tx % sw != 0 or tx // sw >= x.shape[3]:
                continue
            ix = tx // sw
            for c in range(g * cin, (g + 1) * cin):
                acc += x[n, c, iy, ix] * w[c, k, ky, kx]
    out[n, o, oy, ox] = activate(acc, act, alpha)


def conv_transpose2d(x, w, shift, out, stride, pad, dilation, groups, act=ACT_NONE, alpha=0.0):
    conv_transpose2d_kernel[_blocks(out.size), THREADS](
        x, w, shift, out, stride[0], stride[1], pad[0], pad[1], dilation[0], dilation[1], groups, act, _f32(alpha)
    )


# ---- helpers -----------------------------------------------------------------------------
@cuda.jit(device=True)
def _unravel4(i, shape):
    w = i % shape[3]
    i //= shape[3]
    h = i % shape[2]
    i //= shape[2]
    return i // shape[1], i % shape[1], h, w


def _blocks(size):
    return max(1, (size + THREADS - 1) // THREADS)


def _flat(a):
    return a.reshape(a.size)


# ---- end of cnndsl CUDA kernel library -----------------------------------------------------
