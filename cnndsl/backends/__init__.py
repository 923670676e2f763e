"""Backends: each renders the IR to the source of a standalone Python module.

`render(network, backend)` returns source text; `build(...)` imports that same
text from a real file (so Numba's `cache=True` works) and returns a model.
Every backend module exposes `render(network) -> str` and `instantiate(module, **options)`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path

from ..ir import Network

BACKENDS = {
    "torch": "cnndsl.backends.torch_backend",
    "numba": "cnndsl.backends.numba_backend",
    "cuda": "cnndsl.backends.cuda_backend",
}


class BackendError(Exception):
    """A backend cannot run here (missing package, no GPU); the message says what to do."""


def backend_module(backend: str):
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[backend])


def render(network: Network, backend: str) -> str:
    return backend_module(backend).render(network)


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write text atomically; cnndsl.files.write_atomic keeps the mode, follows symlinks and fsyncs."""
    from ..files import write_atomic as write

    write(path, text)


def cache_dir() -> Path:
    root = os.environ.get("CNNDSL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "cnndsl"
    )
    path = Path(root) / "generated"
    path.mkdir(parents=True, exist_ok=True)
    return path


def import_source(source: str, backend: str):
    """Import generated source from a file named by its hash: identical specs share one file and Numba cache."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    name = f"cnndsl_{backend}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    path = cache_dir() / f"{name}.py"
    if not path.exists() or path.read_text(encoding="utf-8") != source:
        write_atomic(path, source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def build(network: Network, backend: str, **options):
    impl = backend_module(backend)
    module = import_source(impl.render(network), backend)
    return impl.instantiate(module, **options)
