"""Numba backend vs onnxruntime and torch eager, in one process, interleaved: latency, ratios, GFLOP/s, peak.

    python benchmarks/backends.py --spec specs/lenet5.cnn --batch 1
    python benchmarks/backends.py --spec specs/resnet18.cnn --batch 1 8 --layers

All contestants get the same random weights (batch norm statistics included) and the
same input; their outputs are checked to agree before anything is timed. onnxruntime
runs the torch backend's ONNX export (`pip install -e '.[bench]'`; skipped with a note
when onnxruntime or onnx is missing), with as many intra-op threads as the others. The machine
peak is the best of a few large sgemm calls (numpy and torch) in the same run.
`--layers` also times every 3x3 convolution on its own (numba kernel vs F.conv2d).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path


def _thread_env() -> None:
    """--threads N must reach OpenBLAS, OpenMP and Numba before numpy loads them."""
    for i, arg in enumerate(sys.argv):
        value = sys.argv[i + 1] if arg == "--threads" and i + 1 < len(sys.argv) else arg.partition("=")[2]
        if arg == "--threads" or arg.startswith("--threads="):
            for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
                os.environ[var] = value


_thread_env()

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cnndsl  # noqa: E402
from cnndsl.analysis.cost import macs as layer_macs  # noqa: E402
from cnndsl.analysis.params import node_weights  # noqa: E402
from cnndsl.cli import parse_dims  # noqa: E402
from cnndsl.commands.verify import compare  # noqa: E402
from cnndsl.reference import random_weights  # noqa: E402


def sgemm_peak(size: int = 2048, tries: int = 10) -> float:
    """Best GFLOP/s of a large float32 matrix product, numpy, torch and np.dot inside numba (the BLAS the
    numba backend runs, with its AVX-512 kernels where the kernel library asked for them): this machine's
    practical peak."""
    import numba
    import torch

    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    ta = torch.from_numpy(a)
    out = np.empty_like(a)
    numba_dot = numba.njit(lambda a, out: np.dot(a, a, out))
    numba_dot(a, out)
    best = 0.0
    for _ in range(tries):
        for f in (lambda: a @ a, lambda: ta @ ta, lambda: numba_dot(a, out)):
            t = time.perf_counter()
            f()
            best = max(best, 2 * size**3 / (time.perf_counter() - t) / 1e9)
    return best


def torch_model(network, weights):
    """The torch backend's module (eager), with the same weights as the numba model."""
    import torch

    model = cnndsl.build(network, backend="torch", train=False)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    return model, "torch backend (eager)"


def ort_session(model, batch: int, shape, threads: int):
    """onnxruntime on the torch backend's ONNX export (TorchScript exporter, opset 17, all graph
    optimisations), or None with the reason when onnxruntime or onnx is not installed."""
    import io

    import torch

    try:
        import onnxruntime as ort
    except ImportError as e:
        return None, f"onnxruntime not installed ({e}); pip install -e '.[bench]'"
    buf = io.BytesIO()
    x = torch.zeros((batch, *shape))
    try:
        with warnings.catch_warnings():  # the TorchScript exporter is deprecated; the dynamo one needs onnxscript
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=17, input_names=["x"])
    except Exception as e:  # noqa: BLE001 - a benchmark reports and goes on
        return None, f"ONNX export failed: {type(e).__name__}: {e}"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    return sess, f"onnxruntime {ort.__version__}, {threads} intra-op threads"


SETTLE_S = 0.15  # pause after each backend's block: long enough for spinning workers to go to sleep


def interleaved(fns: dict, repeats: int, budget_s: float, block: int = 5, settle_s: float = 0.0) -> dict:
    """Alternate the backends in blocks of `block` calls, timing each call; the first call of every block
    is dropped: it pays for the other library's thread pool still spinning on the cores (torch's OpenMP
    and onnxruntime's workers spin for a while after each run and would otherwise be billed to whichever
    backend runs next). With settle_s, each block is followed by that long a pause: OpenBLAS's threads
    busy-wait about 0.1 s after a call and onnxruntime's and OpenMP's spin too, and on a 2-core machine
    such spinners took the cores from the next backend's threads for whole scheduler slices (numba alone
    ran simple_cnn in 0.25 ms at two threads, beside the others in 29 ms)."""
    times = {k: [] for k in fns}
    start = time.perf_counter()
    for r in range(0, repeats, block):
        for name, f in fns.items():
            for i in range(block + 1):
                t = time.perf_counter()
                f()
                if i:
                    times[name].append(time.perf_counter() - t)
            if settle_s:
                time.sleep(settle_s)
        if r >= 5 and time.perf_counter() - start > budget_s:
            break
    return times


def layer_table(network, model_module, batch: int, peak: float, repeats: int) -> None:
    """Every 3x3 conv timed alone: the numba kernel (BN folded shapes) vs F.conv2d."""
    import torch
    import torch.nn.functional as F

    from cnndsl.backends.numba_backend import (
        CONV_GEMM,
        CONV_WINOGRAD,
        conv_method,
        conv_scratch,
        winograd_images,
        winograd_min_batch,
    )

    rng = np.random.default_rng(0)
    per_layer = layer_macs(network)
    rows, tot_macs, tot_nb, tot_t = [], 0, 0.0, 0.0
    for n in network.layers:
        a = n.attrs
        if n.op != "conv" or a["kernel"] != (3, 3) or a["groups"] != 1:
            continue
        cin = network.node(n.inputs[0]).shape
        x = rng.standard_normal((batch, *cin)).astype(np.float32)
        w = rng.standard_normal(node_weights(network, n)["weight"].shape).astype(np.float32)
        b = np.zeros(n.shape[0], np.float32)
        y = np.empty((batch, *n.shape), np.float32)
        method = conv_method(cin[0], n)  # the method the renderer picks for this layer (at this batch size)
        if method == CONV_WINOGRAD and batch < winograd_min_batch(cin[0], n):
            method = CONV_GEMM
        # the model's scratch (the largest layer's): with room for several images conv_gemm runs them as one GEMM
        scratch = np.empty(max(conv_scratch(cin[0], cin[1:], n, method), model_module.SCRATCH_FLOATS), np.float32)
        (sh, sw), (ph, pw), (dh, dw) = a["stride"], a["pad"], a["dilation"]
        if method == CONV_WINOGRAD:  # as the generated module calls it: weights transformed once, up front
            conv = model_module.conv_winograd
            u = model_module.winograd_weights(w)
            nb_args = (x, u, b, y, scratch, ph, pw, winograd_images(*n.shape[1:]), 1, 0.0)
        else:
            conv = model_module.conv2d
            nb_args = (x, w, b, y, scratch, 1, sh, sw, ph, pw, dh, dw, getattr(model_module, method), 1, 0.0)
        t_args = (torch.from_numpy(x), torch.from_numpy(w), None, a["stride"], a["pad"], a["dilation"])
        fns = {
            # as the model calls it: the thread count after the scratch, BLAS on one thread meanwhile
            "numba": lambda conv=conv, a=nb_args: model_module.threaded_call(lambda t: conv(*a[:5], t, *a[5:])),
            "torch": lambda t_args=t_args: F.conv2d(*t_args),
        }
        with torch.no_grad():
            for f in fns.values():
                f()
            times = interleaved(fns, repeats, 3.0, settle_s=SETTLE_S)
        macs = per_layer[n.name] * batch
        t_nb, t_t = statistics.median(times["numba"]), statistics.median(times["torch"])
        tot_macs, tot_nb, tot_t = tot_macs + macs, tot_nb + t_nb, tot_t + t_t
        shape = "x".join(map(str, n.shape))
        rows.append((n.name, shape, method.lower(), t_nb * 1e3, t_t * 1e3, 2 * macs / t_nb / 1e9))
    # GFLOP/s count a direct conv's multiplies (2 x MACs), whatever the method: Winograd's can pass the peak
    print(f"\n3x3 convolutions alone (batch {batch}), median ms:")
    print(f"{'layer':<24} {'output':<12} {'method':<11} {'numba':>8} {'torch':>8} {'GFLOP/s':>8} {'of peak':>8}")
    for name, shape, how, tn, tt, gf in rows:
        print(f"{name:<24} {shape:<12} {how:<11} {tn:8.3f} {tt:8.3f} {gf:8.1f} {gf / peak:8.0%}")
    if rows:
        gf = 2 * tot_macs / tot_nb / 1e9
        print(
            f"{'all 3x3 convs':<49} {tot_nb * 1e3:8.3f} {tot_t * 1e3:8.3f} {gf:8.1f} {gf / peak:8.0%}"
            f"   (torch {2 * tot_macs / tot_t / 1e9:.1f} GFLOP/s)"
        )


def run_batch(network, weights, batch: int, args, peak: float, threads: int) -> bool:
    """One batch size: agreement first, then the interleaved timing; prints a table. True if all agree."""
    import torch

    from cnndsl.backends import import_source, numba_backend

    x = np.random.default_rng(1).standard_normal((batch, *network.input_shape)).astype(np.float32)
    t = time.perf_counter()
    module = import_source(numba_backend.render(network), "numba")
    nb = numba_backend.instantiate(module)
    nb.load_state_dict(weights)
    y_nb = nb(x)
    first_call = time.perf_counter() - t
    tm, torch_kind = torch_model(network, weights)
    tx = torch.from_numpy(x)
    with torch.no_grad():
        y_t = tm(tx).numpy()
    fns = {"numba": lambda: nb(x), "onnxruntime": None, "torch": lambda: tm(tx)}
    results = {"numba": y_nb, "torch": y_t}
    sess, ort_kind = ort_session(tm, batch, network.input_shape, threads)
    if sess is None:
        del fns["onnxruntime"]
    else:
        feed = {"x": x}
        fns["onnxruntime"] = lambda: sess.run(None, feed)
        results["onnxruntime"] = sess.run(None, feed)[0]
    ok = True
    agree = []
    for name in ("numba", "onnxruntime"):
        if name in results:
            abs_err, rel_err, same = compare(results[name], y_t, 1e-4, 1e-5)
            ok = ok and same
            agree.append(f"{name} vs torch {'yes' if same else 'NO'} (max abs {abs_err:.2e}, max rel {rel_err:.2e})")
    with torch.no_grad():
        times = interleaved(fns, args.repeats, args.budget, block=10, settle_s=args.settle)
    macs = sum(layer_macs(network).values()) * batch
    med = {k: statistics.median(v) for k, v in times.items()}

    print(
        f"\n{network.name}: input {'x'.join(map(str, (batch, *network.input_shape)))}, "
        f"{macs / 1e6:.2f} M MACs; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(f"numba first call (compile or cache load + run): {first_call:.2f} s; torch: {torch_kind}; {ort_kind}")
    print("outputs agree: " + "; ".join(agree))
    print(
        f"{'backend':<12} {'median ms':>10} {'min ms':>8} {'GFLOP/s':>8} {'of peak':>8}   rounds {len(times['numba'])}"
    )
    for name, ts in times.items():
        gf = 2 * macs / med[name] / 1e9
        print(f"{name:<12} {med[name] * 1e3:10.3f} {min(ts) * 1e3:8.3f} {gf:8.2f} {gf / peak:8.1%}")
    for other in ("onnxruntime", "torch"):
        if other in med:
            r = med[other] / med["numba"]
            print(
                f"numba vs {other}: {r:.2f}x ({'faster' if r >= 1 else 'slower'}; ratio of medians, >1 = numba faster)"
            )
    if args.layers:
        layer_table(network, module, batch, peak, min(args.repeats, 30))
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", required=True)
    p.add_argument("--batch", type=int, nargs="+", default=[1], help="one or more batch sizes")
    p.add_argument("--input", type=parse_dims, default=None, metavar="CxHxW")
    p.add_argument("--repeats", type=int, default=200, help="at most this many interleaved rounds")
    p.add_argument("--budget", type=float, default=20.0, help="stop the rounds after this many seconds")
    p.add_argument("--layers", action="store_true", help="also time each 3x3 conv alone")
    p.add_argument(
        "--settle", type=float, default=SETTLE_S, help="seconds of pause after each backend's block (0: none)"
    )
    p.add_argument("--threads", type=int, default=None, help="threads for every backend (default: all cores)")
    args = p.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = args.threads or torch.get_num_threads()

    network = cnndsl.load(args.spec, input_shape=args.input)
    weights = random_weights(network, 0)
    peak = sgemm_peak()
    print(
        f"machine: {platform.processor() or platform.machine()} ({cpu_model()}), {os.cpu_count()} cores; "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads; sgemm peak {peak:.1f} GFLOP/s; "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}"
    )
    ok = True
    for batch in args.batch:
        ok = run_batch(network, weights, batch, args, peak, threads) and ok
    return 0 if ok else 1


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
