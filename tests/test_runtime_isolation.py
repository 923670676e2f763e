"""Code that ships inside generated modules (cnndsl/runtime/) must not import cnndsl: those modules run
where cnndsl is not installed. Every import is checked, relative ones included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cnndsl.runtime

RUNTIME = Path(cnndsl.runtime.__file__).parent
SHIPPED = sorted(p for p in RUNTIME.glob("*.py") if p.name != "__init__.py")


def cnndsl_imports(source: str) -> list[str]:
    """Every import of cnndsl in source: `import cnndsl...`, `from cnndsl... import`, and any relative import."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "cnndsl"]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 0 or (node.module or "").split(".")[0] == "cnndsl":
                found.append("." * node.level + (node.module or ""))
    return found


def test_the_runtime_ships_files():
    assert {p.name for p in SHIPPED} >= {"model_api.py", "numba_kernels.py", "cuda_kernels.py", "torch_table_conv.py"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_runtime_file_does_not_import_cnndsl(path):
    assert cnndsl_imports(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "import cnndsl",
        "import numpy, cnndsl.ir as ir",
        "from cnndsl.ir import Network",
        "from . import x",
        "from ..backends import render",
        "def f():\n    from cnndsl import parse\n",
        "try:\n    import cnndsl.runtime\nexcept ImportError:\n    pass\n",
    ],
)
def test_the_check_sees_every_form_of_import(source):
    assert cnndsl_imports(source)


def test_the_check_allows_other_packages():
    assert cnndsl_imports("import numpy as np\nfrom numba import cuda\nimport cnndslx\nfrom math import pi\n") == []
