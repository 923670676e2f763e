"""File-level entry points shared by the CLI and the API: read a spec, compile it, never raise on bad input."""

from __future__ import annotations

from .diagnostics import CnnError, error
from .elaborate import Compilation, compile_text
from .limits import MAX_NODES, MAX_SOURCE_BYTES
from .source import Source, Span


def read_spec(path: str) -> str:
    """The text of a spec file, or CnnError E003 saying why it cannot be read."""
    span = Span(path, 1, 1, 1, 1)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SOURCE_BYTES + 1)
    except FileNotFoundError:
        raise CnnError([error("E003", f"no such file: {path}", span)]) from None
    except IsADirectoryError:
        raise CnnError(
            [error("E003", f"{path} is a directory", span, "use `cnndsl lint DIR` to check a directory")]
        ) from None
    except OSError as e:
        raise CnnError([error("E003", f"cannot read {path}: {e.strerror}", span)]) from None
    if len(data) > MAX_SOURCE_BYTES:
        raise CnnError([error("E104", f"{path} is larger than {MAX_SOURCE_BYTES // 1024} KiB", span)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CnnError([error("E003", f"{path} is not UTF-8 text (byte {e.start})", span)]) from None


def compile_file(path: str, input_shape=None, max_nodes: int = MAX_NODES) -> Compilation:
    try:
        text = read_spec(path)
    except CnnError as e:
        return Compilation(None, list(e.diagnostics), {})
    return compile_text(text, path, input_shape, max_nodes)


__all__ = ["read_spec", "compile_file", "Compilation", "Source"]
