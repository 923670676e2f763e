"""The CUDA backend on a real GPU: agreement with torch (cuDNN), then latency against it.

    python benchmarks/gpu.py                                    # resnet18 and resnet50, batch 1 and 64
    python benchmarks/gpu.py --specs specs/resnet18.cnn --batches 1 8 --repeats 50

For each spec it first checks, on the device, that the cnndsl CUDA module and torch compute the
same function on the same weights (batch 2; exit status 1 if not). Then it times both, input and
output on the device, and prints median latencies, the CUDA/torch ratio (above 1: the CUDA backend
is faster), the throughput each reaches and the GPU's FP32 peak. torch runs with TF32 off by default,
as the CUDA backend computes in plain FP32 (--tf32 to allow it).

torch is `cnndsl.build(spec, backend="torch")` (nn.Conv2d and friends: cuDNN). Needs an NVIDIA GPU,
torch with CUDA and numba-cuda; without a GPU it says so and exits 2.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# FP32 lanes per SM by compute capability, for the peak figure (NVIDIA's CUDA programming guide, arithmetic throughput table).
FP32_LANES_PER_SM = {
    (7, 0): 64,
    (7, 5): 64,
    (8, 0): 64,
    (8, 6): 128,
    (8, 7): 128,
    (8, 9): 128,
    (9, 0): 128,
    (10, 0): 128,
    (12, 0): 128,
}


def no_gpu_reason() -> str | None:
    """Why this machine cannot run the benchmark, or None."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "NUMBA_ENABLE_CUDASIM=1 is set: the simulator cannot be benchmarked; unset it and run on a GPU"
    try:
        import torch
    except ImportError:
        return "torch is not installed (pip install 'cnndsl[torch]' with a CUDA build of torch)"
    try:
        from numba import cuda
    except ImportError:
        return "numba-cuda is not installed (pip install 'cnndsl[cuda]')"
    if not torch.cuda.is_available() or not cuda.is_available():
        return "no CUDA GPU is available: run this on a machine with an NVIDIA GPU and its driver"
    return None


def total_macs(network) -> int:
    from cnndsl.analysis.cost import macs

    return sum(macs(network).values())


# ---- torch: the cnndsl torch backend -----------------------------------------------------------
def torch_model(network, weights: dict[str, np.ndarray], device: str):
    """The torch backend's module for the network, on `device`, in inference mode, with these weights."""
    import torch

    from cnndsl.backends import build

    model = build(network, "torch")
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return model.to(device).eval()


# ---- timing ----------------------------------------------------------------------------------
def median_ms(fn, x, sync, repeats: int, warmup: int) -> float:
    """Median wall milliseconds of fn(x), synchronised with the device before the clock stops."""
    for _ in range(warmup):
        fn(x)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def gpu_description() -> tuple[str, float]:
    """The GPU's name and its FP32 peak in GFLOP/s (0 when the architecture is not in the table)."""
    from numba import cuda

    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    lanes = FP32_LANES_PER_SM.get(dev.compute_capability, 0)
    peak = 2 * lanes * dev.MULTIPROCESSOR_COUNT * dev.CLOCK_RATE * 1e3 / 1e9  # CLOCK_RATE is in kHz
    return (
        f"{name} (compute capability {dev.compute_capability[0]}.{dev.compute_capability[1]}, {dev.MULTIPROCESSOR_COUNT} SMs)",
        peak,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--specs", nargs="+", default=[str(ROOT / "specs/resnet18.cnn"), str(ROOT / "specs/resnet50.cnn")])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--tf32", action="store_true", help="let torch use TF32 tensor cores (the CUDA backend stays FP32)")
    args = p.parse_args(argv)

    reason = no_gpu_reason()
    if reason:
        print(f"benchmarks/gpu.py: {reason}", file=sys.stderr)
        return 2

    import torch
    from numba import cuda

    import cnndsl
    from cnndsl.backends import build
    from cnndsl.reference import random_weights

    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    name, peak = gpu_description()
    print(
        f"GPU: {name}; FP32 peak {peak:,.0f} GFLOP/s; torch {torch.__version__} (cuDNN {torch.backends.cudnn.version()}), TF32 {'on' if args.tf32 else 'off'}"
    )

    failed = False
    rows = []
    for path in args.specs:
        net = cnndsl.load(path)
        weights = random_weights(net)
        ours = build(net, "cuda").load_state_dict(weights)
        theirs = torch_model(net, weights, "cuda")
        macs = total_macs(net)

        # agreement on the device, batch 2
        x = np.random.default_rng(1).normal(size=(2, *net.input_shape)).astype(np.float32)
        got = ours(cuda.to_device(x)).copy_to_host()
        with torch.no_grad():
            want = theirs(torch.from_numpy(x).cuda()).cpu().numpy()
        error = float(np.abs(got - want).max() / max(1e-6, np.abs(want).max()))
        ok = error <= (1e-2 if args.tf32 else 1e-3)
        failed |= not ok
        print(
            f"{net.name}: agreement with torch on the device: max |diff| / max |torch| = {error:.2e} {'ok' if ok else 'MISMATCH'}"
        )

        for batch in args.batches:
            x = np.random.default_rng(2).normal(size=(batch, *net.input_shape)).astype(np.float32)
            dx, tx = cuda.to_device(x), torch.from_numpy(x).cuda()
            ours_ms = median_ms(ours, dx, cuda.synchronize, args.repeats, args.warmup)
            with torch.no_grad():
                torch_ms = median_ms(theirs, tx, torch.cuda.synchronize, args.repeats, args.warmup)
            rows.append(
                (
                    net.name,
                    batch,
                    ours_ms,
                    torch_ms,
                    2 * macs * batch / ours_ms / 1e6,
                    2 * macs * batch / torch_ms / 1e6,
                )
            )

    print()
    print(
        f"{'network':<12} {'batch':>5} {'cuda ms':>9} {'torch ms':>9} {'ratio':>7} {'cuda GFLOP/s':>13} {'torch GFLOP/s':>14}"
    )
    for name, batch, ours_ms, torch_ms, ours_gf, torch_gf in rows:
        print(
            f"{name:<12} {batch:>5} {ours_ms:>9.2f} {torch_ms:>9.2f} {torch_ms / ours_ms:>6.2f}x {ours_gf:>13,.0f} {torch_gf:>14,.0f}"
        )
    print("ratio = torch ms / cuda ms: the CUDA backend's speed as a fraction of torch's (goal: >= 0.5x at batch 64)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
