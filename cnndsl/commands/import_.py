"""`cnndsl import`: a torch module, a torch.export program or an ONNX file becomes a `.cnn` spec."""

from __future__ import annotations

import sys
from pathlib import Path

from ..cli import EXIT_ERROR, EXIT_OK, command, parse_dims


def _setup(p):
    p.add_argument(
        "model", metavar="MODEL", help="pkg.module:ClassOrFactory, a torch.export .pt2 file or an .onnx file"
    )
    p.add_argument("-o", "--output", metavar="SPEC", help="write the spec here (and SPEC's .weights.json name map)")
    p.add_argument("--input", type=parse_dims, metavar="CxHxW", help="the input shape to trace a Python model with")
    p.add_argument(
        "--args", default="", metavar="ARGS", help="constructor arguments, Python literals: 'num_classes=10'"
    )
    p.add_argument(
        "--weights-out", metavar="FILE", help="also save the model's weights under cnndsl names (.safetensors)"
    )


def map_path(spec: str) -> str:
    path = Path(spec)
    return str(path.with_name(path.stem + ".weights.json"))


@command("import", "turn a torch module, .pt2 program or .onnx file into a spec (weights map beside it)", _setup)
def import_(args) -> int:
    from ..importers import ImportFailure, import_target, write_map

    try:
        imported = import_target(args.model, args.input, args.args)
    except ImportFailure as e:
        print(f"cnndsl import: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except ImportError as e:  # torch or onnx missing
        print(f"cnndsl import: error: {e} (install cnndsl[torch] or onnx)", file=sys.stderr)
        return EXIT_ERROR
    if args.output is None:
        sys.stdout.write(imported.text)
    else:
        from ..files import write_atomic

        try:
            write_atomic(args.output, imported.text)
            write_map(map_path(args.output), imported.name_map, args.model, Path(args.output).name)
        except OSError as e:
            print(f"cnndsl import: error: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
            return EXIT_ERROR
        print(f"wrote {args.output} and {map_path(args.output)} ({len(imported.name_map)} tensors)", file=sys.stderr)
    if args.weights_out:
        _save_weights(imported, args.weights_out)
    return EXIT_OK


def _save_weights(imported, path: str) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    arrays = {}
    for k, v in imported.weights.items():
        arrays[k] = np.array(v.numpy() if hasattr(v, "numpy") else v)  # a C-ordered copy; 0-d stays 0-d
    save_file(arrays, path)
    print(f"wrote {path} ({len(arrays)} tensors under cnndsl names)", file=sys.stderr)
