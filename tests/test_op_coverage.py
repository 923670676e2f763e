"""Every op in the op table reaches every backend, the reference evaluator and the docs.

A new op that misses one of them fails here, not in a user's build (the torch renderer once skipped
unknown ops silently, the numba one sent them down the activation path).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnndsl import reference, runtime
from cnndsl.backends import base, cuda_backend, lowering, numba_backend, torch_layers
from cnndsl.ops import AFFINE, COMPUTE, ELEMENTWISE, MERGE, OPS, VIEW

DOCS = Path(__file__).resolve().parent.parent / "docs" / "language.md"
LAYER_OPS = sorted(name for name in OPS if name != "input")


@pytest.mark.parametrize("op", LAYER_OPS)
def test_every_backend_and_the_reference_have_the_op(op):
    assert op in numba_backend.EMIT, f"numba backend: no emitter for {op}"
    assert op in cuda_backend._LAUNCH, f"cuda backend: no launcher for {op}"
    assert op in torch_layers.MODULES or op in torch_layers.MERGES, f"torch backend: no module for {op}"
    assert op in reference._OPS, f"reference evaluator: no function for {op}"


@pytest.mark.parametrize("op", lowering.elementwise_ops())
def test_every_activation_has_a_code_in_every_kernel_library(op):
    code = f"ACT_{op.upper()}"
    for library in ("numba_kernels.py", "cuda_kernels.py"):
        assert re.search(rf"\b{code}\b.*=", runtime.source(library)), f"{library} defines no {code}"


@pytest.mark.parametrize("op", LAYER_OPS)
def test_every_op_is_documented(op):
    assert f"`{op}" in DOCS.read_text(encoding="utf-8"), f"docs/language.md does not mention `{op}`"


def test_lowering_kinds_are_known():
    assert {op.lowering for op in OPS.values()} <= {VIEW, ELEMENTWISE, AFFINE, MERGE, COMPUTE}
    for op in OPS.values():
        assert op.scalar is None or op.param(op.scalar) is not None, op.name


def test_an_op_without_an_emitter_is_a_clear_error_not_a_wrong_kernel():
    class Step:
        op = "not_an_op"

    with pytest.raises(base.MissingEmitter, match="numba backend has no emitter for op `not_an_op`"):
        base.emit_all([Step()], numba_backend.EMIT, "numba", None)
