"""`pkg.module:ClassOrFactory` plus `--args 'num_classes=10, width=0.5'` -> a constructed module."""

from __future__ import annotations

import ast
import importlib
import sys

from .graph import ImportFailure


def parse_args(text: str) -> tuple[list, dict]:
    """Python call arguments of literals only (`10, num_classes=10, widths=(64, 128)`): never evaluated code."""
    if not text.strip():
        return [], {}
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        assert isinstance(call, ast.Call)
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg is not None}
    except (SyntaxError, ValueError, AssertionError):
        raise ImportFailure(f"--args must be Python literals, e.g. 'num_classes=10'; got {text!r}") from None
    return args, kwargs


def construct(target: str, args: str = ""):
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ImportFailure(f"MODEL must be `pkg.module:ClassOrFactory`, a .pt2 or an .onnx file; got {target!r}")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # as `python -m`: modules beside the working directory import
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise ImportFailure(f"cannot import module `{module_name}`: {type(e).__name__}: {e}") from None
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise ImportFailure(f"module `{module_name}` has no `{attr}`")
    pos, kw = parse_args(args)
    try:
        model = factory(*pos, **kw)
    except Exception as e:
        raise ImportFailure(f"`{target}({args})` failed: {type(e).__name__}: {e}") from None
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ImportFailure(f"`{target}({args})` returned a {type(model).__name__}, not a torch.nn.Module")
    return model
