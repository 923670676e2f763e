"""`cnndsl train`: train a spec with the torch backend (Adam, cross-entropy), optionally from other weights, on N processes."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..cli import EXIT_ERROR, EXIT_OK, add_spec_options, command, compile_spec, print_diagnostics


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _setup(p):
    p.add_argument("spec", metavar="SPEC", help=".cnn file")
    p.add_argument(
        "--data",
        required=True,
        metavar="digits|DIR",
        help="`digits` (scikit-learn's handwritten digits) or a folder with one sub-folder of images per class",
    )
    p.add_argument(
        "--epochs", type=_positive(int), default=10, metavar="N", help="passes over the training split (default 10)"
    )
    p.add_argument("--lr", type=_positive(float), default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument(
        "--batch-size",
        type=_positive(int),
        default=16,
        metavar="B",
        help="global batch size, shared out over --nproc processes (default 16)",
    )
    p.add_argument("--out", metavar="FILE", help="where to save weights (.safetensors; default NETWORK.safetensors)")
    p.add_argument("--json", action="store_true", help="end with one JSON line of results on stdout")
    p.add_argument("--init", metavar="FILE", help="start from these .safetensors weights, matched by name and shape")
    p.add_argument(
        "--allow-nonfinite",
        action="store_true",
        help="let --init load NaN or infinite values (refused by default: docs/weights.md)",
    )
    p.add_argument(
        "--freeze",
        type=_names,
        default=[],
        metavar="NAME,...",
        help="do not train these layers or blocks (name prefixes), besides the spec's `freeze`",
    )
    p.add_argument(
        "--nproc",
        type=_positive(int),
        default=1,
        metavar="N",
        help="train on N processes with torch.distributed (DistributedDataParallel, loopback)",
    )
    p.add_argument(
        "--threads",
        type=_positive(int),
        metavar="N",
        help="math threads per process (default: 1 for small models, else the cores over --nproc)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seeds weights, shuffling and the held-out split")
    add_spec_options(p)
    p.add_argument("--distributed-worker", action="store_true", help=argparse.SUPPRESS)


@command("train", "train a spec with the torch backend (Adam, cross-entropy) and save its weights", _setup)
def train_command(args) -> int:
    from ..training import TrainError

    network_result = compile_spec(args.spec, args)
    print_diagnostics(network_result)
    network = network_result.network
    if network is None:
        return EXIT_ERROR
    if not args.out:
        args.out = f"{network.name}.safetensors"
    if not args.out.endswith(".safetensors"):
        return _fail(f"--out {args.out}: weights are saved as .safetensors; name the file NAME.safetensors")
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        return _fail(f"--out {args.out}: folder {os.path.dirname(args.out)} does not exist")
    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    try:
        if args.nproc > 1 and not args.distributed_worker:
            _prepare(network, args)  # every user mistake is reported here, once, before any worker starts
            args.threads = _threads(network, args)
            from ..training.distributed import launch

            return launch(_worker_argv(args), args.nproc)
        return _run(network, args)
    except TrainError as e:
        return _fail(str(e))
    finally:  # called as a library (tests, notebooks): leave torch's thread count as it was
        if threads is not None:
            sys.modules["torch"].set_num_threads(threads)


def _prepare(network, args):
    """Load the data and model, apply --init and freezing: what both the launcher's checks and a worker need."""
    import torch

    from .. import build
    from ..backends import BackendError
    from ..diagnostics import CnnError
    from ..training import TrainError, data, transfer
    from ..training.loop import logits_network

    torch.set_num_threads(_threads(network, args))
    torch.manual_seed(args.seed)
    dataset = data.load(args.data, network)
    split = data.split(dataset, args.seed)
    try:
        model = build(logits_network(network), backend="torch")
    except (BackendError, CnnError) as e:  # no torch here, or a name torch cannot use (E112)
        raise TrainError(str(e)) from None
    report = transfer.load_matching(model, args.init, args.allow_nonfinite) if args.init else None
    frozen = transfer.frozen_nodes(network, args.freeze)
    transfer.freeze(model, frozen)
    return split, model, report, frozen


def _run(network, args) -> int:
    from ..training import distributed, transfer
    from ..training.loop import TrainConfig, Workers, train

    workers = distributed.join() if args.distributed_worker else Workers(device=_single_device())
    try:
        split, model, report, frozen = _prepare(network, args)
        if workers.leader and report is not None:
            for line in report.lines():
                print(line, file=sys.stderr)
        config = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
        result = train(model, split, config, frozen, workers)
        if not workers.leader:
            return EXIT_OK
        transfer.save_weights(model.cpu(), network, args.out)
    finally:
        if args.distributed_worker:
            distributed.leave()
    result.update(
        samples={"train": len(split.train), "test": len(split.test)},
        classes=list(split.train.classes),
        processes=workers.world,
        frozen=list(frozen),
        init=report.to_json() if report else None,
        out=args.out,
    )
    print(
        f"test accuracy {100 * result['test_accuracy']:.1f}% after {result['epochs']} epoch(s) "
        f"in {result['seconds']:.1f} s; weights saved to {args.out}",
        file=sys.stderr,
    )
    if args.json:
        print(json.dumps(result))
    return EXIT_OK


def _single_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _threads(network, args) -> int:
    from ..training.loop import default_threads

    return args.threads or default_threads(network, args.batch_size, args.nproc)


def _worker_argv(args) -> list[str]:
    """The `cnndsl train` arguments each worker gets: these options, the thread count fixed here, no --nproc.

    torch.distributed.run's parser sees these too and rejects any that abbreviate one of its own options
    (`--nproc` abbreviates `--nproc-per-node`), so workers learn their share of the cores from `--threads`.
    """
    argv = [
        args.spec,
        "--data",
        args.data,
        "--epochs",
        str(args.epochs),
        "--lr",
        repr(args.lr),
        "--batch-size",
        str(args.batch_size),
        "--out",
        args.out,
        "--seed",
        str(args.seed),
        "--threads",
        str(args.threads),
    ]
    if args.json:
        argv.append("--json")
    if args.init:
        argv += ["--init", args.init]
    if args.allow_nonfinite:
        argv.append("--allow-nonfinite")
    if args.freeze:
        argv += ["--freeze", ",".join(args.freeze)]
    if args.input:
        argv += ["--input", "x".join(map(str, args.input))]
    if args.max_nodes:
        argv += ["--max-nodes", str(args.max_nodes)]
    return argv


def _fail(message: str) -> int:
    print(f"cnndsl train: error: {message}", file=sys.stderr)
    return EXIT_ERROR
