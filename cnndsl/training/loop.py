"""The training loop: Adam on cross-entropy, a progress bar, held-out accuracy per epoch.

The loss is cross-entropy on logits. A spec that ends in `softmax` is trained
on the scores just before it (`logits_network`): softmax has no weights, so the
saved file is the same, and log-softmax + NLL on those scores is exactly
cross-entropy, without the underflow of taking log of a softmax output.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass

from ..ir import Network
from .data import Dataset, Split
from .transfer import hold_frozen_statistics


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 16  # the global batch: with N processes each takes batch_size // N
    seed: int = 0


@dataclass(frozen=True)
class Workers:
    """This process's place in a torch.distributed job (rank 0 of 1 when training alone)."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def leader(self) -> bool:
        return self.rank == 0


# Below this much work per batch, intra-op threads cost more in synchronisation than they save; on a
# busy machine, spinning OpenMP threads made LeNet-5 on digits 30x slower than one thread.
SMALL_BATCH_MACS = 1_000_000_000


def default_threads(network: Network, batch_size: int, nproc: int = 1) -> int:
    """Math threads per process: one for small models, else the cores shared out over the processes."""
    import os

    from ..analysis.cost import macs as layer_macs

    macs = sum(layer_macs(network).values())
    if macs * max(1, batch_size // nproc) < SMALL_BATCH_MACS:
        return 1
    return max(1, (os.cpu_count() or 1) // nproc)


def logits_network(network: Network) -> Network:
    """The network to train: without a final softmax, so the loss sees logits (see the module docstring)."""
    out = network.node(network.output)
    if out.op != "softmax" or any(out.name in n.inputs for n in network.layers):
        return network
    nodes = tuple(n for n in network.nodes if n.name != out.name)
    return dataclasses.replace(network, nodes=nodes, output=out.inputs[0])


def accuracy(model, data: Dataset, device: str = "cpu", batch: int = 512) -> float:
    """Fraction of data the model classifies correctly (eval mode, no gradients)."""
    import torch

    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(data), batch):
            x = data.images[i : i + batch].to(device)
            correct += int((model(x).argmax(1).cpu() == data.labels[i : i + batch]).sum())
    model.train(was_training)
    return correct / max(1, len(data))


def train(
    model, split: Split, config: TrainConfig, frozen: list[str], workers: Workers = Workers(), quiet: bool = False
) -> dict:
    """Train model in place; return the history and final figures (identical on every rank)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    model.to(workers.device)
    net = model
    if workers.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[workers.device] if workers.device != "cpu" else None)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr)
    train_set = TensorDataset(split.train.images, split.train.labels)
    per_rank = max(1, config.batch_size // workers.world)
    if workers.world > 1:
        sampler = DistributedSampler(train_set, workers.world, workers.rank, shuffle=True, seed=config.seed)
        loader = DataLoader(train_set, batch_size=per_rank, sampler=sampler)
    else:
        sampler = None
        loader = DataLoader(
            train_set, batch_size=per_rank, shuffle=True, generator=torch.Generator().manual_seed(config.seed)
        )

    bar = EpochBar(config.epochs, len(loader), enabled=workers.leader and not quiet)
    history = []
    start = time.perf_counter()
    with bar:
        for epoch in range(1, config.epochs + 1):
            if sampler is not None:
                sampler.set_epoch(epoch)
            net.train()
            hold_frozen_statistics(model, frozen)
            totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, samples
            for x, y in loader:
                x, y = x.to(workers.device), y.to(workers.device)
                logits = net(x)
                loss = F.cross_entropy(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                n = y.shape[0]
                totals += torch.tensor([loss.item() * n, (logits.argmax(1) == y).sum().item(), n], dtype=torch.float64)
                bar.step(epoch, totals[0].item() / totals[2].item())
            if workers.world > 1:
                import torch.distributed as dist

                dist.all_reduce(totals)
            stats = {
                "epoch": epoch,
                "train_loss": totals[0].item() / totals[2].item(),
                "train_accuracy": totals[1].item() / totals[2].item(),
                "test_accuracy": accuracy(model, split.test, workers.device),
            }
            history.append(stats)
            bar.epoch_done(stats)
    last = (
        history[-1]
        if history
        else {
            "train_loss": float("nan"),
            "train_accuracy": 0.0,
            "test_accuracy": accuracy(model, split.test, workers.device),
        }
    )
    return {
        "train_loss": last["train_loss"],
        "train_accuracy": last["train_accuracy"],
        "test_accuracy": last["test_accuracy"],
        "epochs": config.epochs,
        "seconds": round(time.perf_counter() - start, 3),
        "history": history,
    }


class EpochBar:
    """A rich progress bar over every batch, and one line per epoch with loss and accuracy, on stderr.

    The bar is drawn only on a terminal; the epoch lines are always printed (plain text when piped).
    """

    def __init__(self, epochs: int, batches: int, enabled: bool = True):
        self.epochs, self.batches, self.enabled = epochs, batches, enabled
        self.progress = None
        self.started = time.perf_counter()
        if enabled:
            from rich.console import Console

            self.console = Console(stderr=True, highlight=False)

    def __enter__(self):
        if self.enabled and self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("training", total=self.epochs * self.batches)
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()

    def step(self, epoch: int, loss: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=f"epoch {epoch}/{self.epochs} loss {loss:.4f}")

    def epoch_done(self, s: dict) -> None:
        if not self.enabled:
            return
        line = (
            f"epoch {s['epoch']:>{len(str(self.epochs))}}/{self.epochs}  loss {s['train_loss']:.4f}  "
            f"train acc {100 * s['train_accuracy']:5.1f}%  test acc {100 * s['test_accuracy']:5.1f}%  "
            f"({time.perf_counter() - self.started:.1f} s)"
        )
        if self.progress is not None:
            self.progress.console.print(line)
        else:
            print(line, file=sys.stderr, flush=True)
