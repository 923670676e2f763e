"""A per-user cache of the compiled LALR tables, keyed on everything that shapes the parser.

Building the parser from the grammar costs about 0.2 s, a third of a cold `cnndsl check`. Lark's own
`cache=True` is not safe for us: it keys the file on the grammar and options but not on the post-lexer or
the callbacks, and keeps it in the shared temp directory, so a file left by another version of cnndsl
could be loaded and hide a bug (it did, once). Here the key hashes the grammar, the source of the module
that defines the post-lexer and the tree builder, lark's version and Python's; the file lives in the
user's cache directory, is written atomically, and anything wrong with it means "build afresh", never
an error.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from lark import Lark
from lark import __version__ as LARK_VERSION


def cache_dir() -> Path | None:
    """$CNNDSL_CACHE_DIR, else $XDG_CACHE_HOME/cnndsl, else ~/.cache/cnndsl; None turns caching off."""
    explicit = os.environ.get("CNNDSL_CACHE_DIR")
    if explicit is not None:
        return Path(explicit) if explicit else None  # CNNDSL_CACHE_DIR= (empty) disables the cache
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnndsl"


def parser_key(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in (*parts, LARK_VERSION.encode(), sys.version.encode()):
        h.update(len(part).to_bytes(8, "little"))  # length-prefixed: no two part lists hash alike
        h.update(part)
    return h.hexdigest()[:32]


def load_or_build(key: str, build: Callable[[], Lark], **runtime_options) -> Lark:
    """The parser from the cache file for `key`, or `build()` (then saved for next time).

    `runtime_options` are what a saved parser cannot hold (transformer, post-lexer, lexer callbacks);
    they are given back to it on loading, exactly as `build` gives them.
    """
    directory = cache_dir()
    path = directory / f"parser-{key}.pickle" if directory else None
    if path is not None:
        parser = _load(path, runtime_options)
        if parser is not None:
            return parser
    parser = build()
    if path is not None:
        _save(parser, path)
    return parser


def _load(path: Path, runtime_options: dict) -> Lark | None:
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            # Only a file this user wrote and nobody else can change (a pickle runs code as it loads).
            if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
                return None
            return Lark.__new__(Lark)._load(f, **runtime_options)
    except Exception:  # missing, truncated or from an incompatible lark: rebuild
        return None


def _save(parser: Lark, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".parser-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                parser.save(f, exclude_options={"transformer", "postlex", "lexer_callbacks"})
            os.replace(tmp, path)  # readers see the old file or the whole new one, never a part
        except BaseException:
            os.unlink(tmp)
            raise
    except Exception:  # a read-only home or a full disk costs speed, not correctness
        pass
