"""Code that ships inside generated modules, copied verbatim by the backends.

Every file here must run without cnndsl installed: it imports only the standard library, numpy, numba
(or numba-cuda) and torch, never cnndsl (tests/test_runtime_isolation.py checks). The backends read
these files as text (`source(name)`); the compiler imports a few of them too (the weights policy).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def source(name: str) -> str:
    """The text of runtime file `name` (e.g. "model_api.py"), as it is copied into generated modules."""
    return (HERE / name).read_text(encoding="utf-8")


def split_imports(text: str) -> tuple[list[str], str]:
    """A runtime file as (its top-level `import` lines, the rest): a generated module hoists the imports of
    every file it copies into one block at its top, so no import follows code. The import block is the run
    of `import`/`from` lines after the file's leading comment; the rest keeps the comment and the code."""
    lines = text.split("\n")
    head = 0
    while head < len(lines) and lines[head].startswith("#"):
        head += 1
    end = head
    while end < len(lines) and (lines[end].startswith(("import ", "from ")) or not lines[end].strip()):
        end += 1
    imports = [line for line in lines[head:end] if line.strip()]
    blank = end
    while blank > head and not lines[blank - 1].strip():  # the blank lines that set the code apart stay
        blank -= 1
    return imports, "\n".join(lines[:head] + lines[blank:])


def import_block(imports: list[str]) -> str:
    """`import x as y` lines in isort's order (ruff's I001): standard library first, then numba and numpy."""
    stdlib = sorted({i for i in imports if i.split()[1].split(".")[0] in ("ctypes", "math", "os")})
    third = sorted(set(imports) - set(stdlib))
    return "\n\n".join("\n".join(group) for group in (stdlib, third) if group)
