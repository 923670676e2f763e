"""Reading specs and writing outputs: the only places cnndsl touches the file system for a user.

Reading (`read_regular`): a spec names files (on the command line, in `import`), so a spec
must not be able to make cnndsl block on a FIFO, read `/dev/zero` until memory runs out, or
pull in a megabyte of something else. Only regular files are read, at most `limit` bytes,
and a file swapped for a FIFO between the check and the open cannot block (O_NONBLOCK).

Writing (`write_atomic`): every writer (compile -o, fmt, lint -o, train's weights, the
generated-module cache) goes through one helper, so they all keep an existing file's mode,
write through symlinks to the file they name, and never leave half a file behind.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


class FileProblem(Exception):
    """Why a file cannot be read as a spec; `message` is safe to print (it never quotes the file)."""

    def __init__(self, message: str, code: str = "E003", hint: str | None = None):
        super().__init__(message)
        self.message, self.code, self.hint = message, code, hint


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of a regular file no larger than `limit`, or FileProblem saying why not."""
    name = os.fspath(path)
    if "\0" in name:
        raise FileProblem("the path contains a NUL character")
    try:
        before = os.stat(name)  # stat first: opening a FIFO or a device could block or never end
    except FileNotFoundError:
        raise FileProblem("no such file") from None
    except OSError as e:
        raise FileProblem(e.strerror or type(e).__name__) from None
    _check_kind(before, limit)
    try:
        # O_NONBLOCK: if a FIFO was swapped in after the stat, open returns at once instead of
        # waiting for a writer, and the fstat below refuses it. O_NOCTTY: a terminal never becomes ours.
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise FileProblem(e.strerror or type(e).__name__) from None
    try:
        _check_kind(os.fstat(fd), limit)
        chunks, size = [], 0
        while size <= limit:  # /proc files say size 0 yet have content: bound the read itself
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except BlockingIOError:  # pragma: no cover - a regular file never blocks
        raise FileProblem("the file cannot be read without blocking") from None
    except OSError as e:
        raise FileProblem(e.strerror or type(e).__name__) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise FileProblem(f"the file is larger than {limit // 1024} KiB", "E104")
    return data


BOM = "\ufeff"


def read_text(path: str | os.PathLike, limit: int) -> str:
    """A spec's text: a regular file of at most `limit` bytes, UTF-8, a leading byte-order mark dropped."""
    data = read_regular(path, limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FileProblem(f"the file is not UTF-8 text (byte {e.start})") from None
    return strip_bom(text)


def strip_bom(text: str) -> str:
    """Editors on Windows start UTF-8 files with U+FEFF; it is not part of the spec."""
    return text[1:] if text.startswith(BOM) else text


def _check_kind(st: os.stat_result, limit: int) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise FileProblem("it is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise FileProblem("it is not a regular file (a FIFO, device or socket)", hint="specs are regular files")
    if st.st_size > limit:
        raise FileProblem(f"the file is larger than {limit // 1024} KiB", "E104")


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Replace the file at `path` with `data` so that a reader sees the old or the new file, never half.

    - A symlink is followed: the file it points to is replaced and the link stays a link.
    - An existing file keeps its permission bits; a new file gets what open() would give it
      (0o666 less the umask), because the temporary file is created with that mode.
    - The data is fsynced before the rename, and the directory after it (where the OS allows).
    - On any failure the temporary file is removed and the old file is untouched.
    A path that exists but is not a regular file (e.g. /dev/stdout) is written to directly:
    replacing a device or a FIFO by a file would be wrong, and there is nothing atomic to do.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    target = Path(os.path.realpath(path))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "Is a directory", str(path))
        with open(target, "wb") as f:
            f.write(payload)
        return
    fd, tmp = _create_temp(target)
    try:
        if st is not None:
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(target.parent)


def _create_temp(target: Path) -> tuple[int, str]:
    # Not tempfile.mkstemp: it creates 0600 files, and that mode would survive the rename.
    # Mode 0o666 here lets the kernel apply the umask exactly as for open(path, "w").
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = str(target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue
    raise FileExistsError(f"cannot create a temporary file beside {target}")  # pragma: no cover


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; some systems cannot open a directory, which is fine."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
