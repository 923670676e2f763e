"""`cnndsl train --nproc N`: torch's own launcher, DistributedDataParallel over gloo on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
import torch.distributed as dist  # noqa: E402

from cnndsl.cli import build_parser  # noqa: E402
from cnndsl.commands.train import _worker_argv  # noqa: E402
from cnndsl.training.distributed import WORKER_FLAG, launch_command  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LENET = str(ROOT / "specs" / "lenet5.cnn")

needs_gloo = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo in this torch")


def test_the_launcher_passes_every_option_through_to_the_workers():
    """torchrun's parser sees the workers' options too: none may be mistaken for one of its own."""
    from torch.distributed.run import get_args_parser

    args = build_parser().parse_args(
        [
            "train",
            LENET,
            "--data",
            "digits",
            "--epochs",
            "3",
            "--lr",
            "0.002",
            "--batch-size",
            "8",
            "--json",
            "--init",
            "a.safetensors",
            "--freeze",
            "conv1,fc1",
            "--nproc",
            "2",
            "--seed",
            "5",
            "--input",
            "1x32x32",
            "--out",
            "w.safetensors",
        ]
    )
    args.threads = 1
    worker = _worker_argv(args)
    cmd = launch_command(worker, 2, 29555)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    launcher = get_args_parser().parse_args(cmd[3:])
    assert launcher.nproc_per_node == "2" and launcher.master_addr == "127.0.0.1" and launcher.master_port == 29555
    assert launcher.module and launcher.training_script == "cnndsl"
    assert launcher.training_script_args == ["train", *worker, WORKER_FLAG]
    again = build_parser().parse_args(launcher.training_script_args)
    for name in ("data", "epochs", "lr", "batch_size", "json", "init", "freeze", "seed", "input", "out", "threads"):
        assert getattr(again, name) == getattr(args, name), name
    assert again.nproc == 1 and again.distributed_worker  # workers never launch workers


def run_distributed(tmp_path: Path, epochs: int) -> tuple[dict, subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "ddp.safetensors"
    proc = subprocess.run([sys.executable, "-m", "cnndsl", "train", LENET, "--data", "digits", "--epochs", str(epochs),
                           "--nproc", "2", "--json", "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    json_lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(json_lines) == 1, proc.stdout  # rank 0 alone reports
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.safetensors"]  # rank 0 alone writes, atomically
    assert "Traceback" not in proc.stderr
    return json.loads(json_lines[0]), proc


@needs_gloo
def test_two_processes_reach_the_single_process_accuracy_band(tmp_path):
    result, proc = run_distributed(tmp_path, epochs=10)
    assert result["processes"] == 2
    assert result["samples"] == {"train": 1437, "test": 360}  # each rank trains on half; the report is global
    assert result["test_accuracy"] >= 0.95, result  # as one process does (test_train.py)
    assert proc.stderr.count("epoch 10/10") == 1  # progress from rank 0 only


@needs_gloo
def test_bad_data_is_reported_once_before_any_worker_starts(tmp_path):
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "cnndsl", "train", LENET, "--data", str(tmp_path / "empty"), "--nproc", "2"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("no class sub-folders") == 1 and "Traceback" not in proc.stderr
    assert "torch.distributed" not in proc.stderr
