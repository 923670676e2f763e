"""Scale-out through torch's own launcher: `cnndsl train --nproc N` re-runs itself under torch.distributed.run.

The parent checks the spec, data and options first (so the user's mistakes get
one clean message, not N tracebacks), then runs

    python -m torch.distributed.run --nproc_per_node N --master_addr 127.0.0.1 --master_port PORT \
        -m cnndsl train ... --distributed-worker

Each worker joins the process group (gloo on CPU, nccl when CUDA is available),
trains a DistributedDataParallel model on its DistributedSampler shard, and
only rank 0 prints results and writes files. Loopback only: nothing listens
beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from .loop import Workers

WORKER_FLAG = "--distributed-worker"


def free_port() -> int:
    """A port free on loopback now (the launcher binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(argv: list[str], nproc: int, port: int) -> list[str]:
    """The torch.distributed.run command line re-running `cnndsl train ARGV --distributed-worker` in N workers."""
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", "1", "--nproc_per_node", str(nproc),
        "--master_addr", "127.0.0.1", "--master_port", str(port),
        "-m", "cnndsl", "train", *argv, WORKER_FLAG,
    ]  # fmt: skip


def launch(argv: list[str], nproc: int) -> int:
    """Run the workers and relay their output; return their exit code (2 if any failed)."""
    env = dict(os.environ)
    # workers set their own thread count (--threads); this only keeps torchrun from warning that it set one
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    cmd = launch_command(argv, nproc, free_port())
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    # Relay the workers' stderr (progress, errors) as it comes, but not the launcher's own failure
    # report: it is a Python traceback about the launcher, and the worker has already said what went wrong.
    hiding = False
    for line in proc.stderr:
        hiding = hiding or line.startswith("Traceback") or "torch.distributed.elastic" in line
        if not hiding and not _launcher_noise(line):
            sys.stderr.write(line)
            sys.stderr.flush()
    rc = proc.wait()
    if rc != 0:
        print(f"cnndsl: error: distributed training failed (torch.distributed.run exit status {rc})", file=sys.stderr)
        return 2
    return 0


def _launcher_noise(line: str) -> bool:
    """The launcher's own log lines (`W1121 ... torch/distributed/run.py:...`) and banners."""
    return line.startswith("*****") or (line[:1] in "WIE" and "torch/distributed/" in line)


def join() -> Workers:
    """Inside a worker: join the process group the launcher set up (gloo on CPU, nccl on GPU)."""
    import torch
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    # nccl needs a GPU per process; with fewer GPUs than processes, train on CPU over gloo instead
    cuda = torch.cuda.is_available() and torch.cuda.device_count() >= int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Workers(rank=dist.get_rank(), world=dist.get_world_size(), device=f"cuda:{local}" if cuda else "cpu")


def leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
