"""Files cnndsl writes (compile -o, fmt, lint -o, train's weights) and reads (specs, imports).

Every writer goes through cnndsl.files.write_atomic: an existing file keeps its mode, a symlink
stays a link and its target gets the new text, and a failure leaves the old file untouched.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cnndsl.cli import main
from cnndsl.files import FileProblem, read_regular, write_atomic

SPEC = "input 3x8x8\nconv3x3(4) -> relu -> gap -> fc(2)\n"
UNFORMATTED = "input   3x8x8\nconv3x3( 4 )->relu\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_write_keeps_an_existing_files_mode(tmp_path):
    target = tmp_path / "out.py"
    target.write_text("old")
    target.chmod(0o640)
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert mode(target) == 0o640  # mkstemp would have made it 0600
    target.chmod(0o755)
    write_atomic(target, b"bytes")
    assert target.read_bytes() == b"bytes" and mode(target) == 0o755


def test_a_new_file_gets_the_umask_default_like_open(tmp_path, umask_022):
    write_atomic(tmp_path / "new.py", "x")
    with open(tmp_path / "by_open.py", "w") as f:
        f.write("x")
    assert mode(tmp_path / "new.py") == mode(tmp_path / "by_open.py") == 0o644


def test_write_goes_through_a_symlink_to_its_target(tmp_path):
    real = tmp_path / "real" / "spec.cnn"
    real.parent.mkdir()
    real.write_text("old")
    real.chmod(0o664)
    link = tmp_path / "link.cnn"
    link.symlink_to(real)
    write_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new" and mode(real) == 0o664
    # no temporary file left beside the link or the target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.cnn", "real"]
    assert [p.name for p in real.parent.iterdir()] == ["spec.cnn"]


def test_a_write_that_fails_midway_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "out.py"
    target.write_text("old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.py"]


def test_compile_output_keeps_mode(tmp_path, capsys):
    spec = tmp_path / "net.cnn"
    spec.write_text(SPEC)
    out = tmp_path / "net.py"
    out.write_text("")
    out.chmod(0o644)
    assert main(["compile", str(spec), "--backend", "numba", "-o", str(out)]) == 0
    assert "def " in out.read_text() and mode(out) == 0o644


def test_compile_output_to_a_missing_folder_is_an_error_not_a_crash(tmp_path, capsys):
    spec = tmp_path / "net.cnn"
    spec.write_text(SPEC)
    assert main(["compile", str(spec), "--backend", "numba", "-o", str(tmp_path / "no" / "net.py")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_fmt_keeps_mode_and_formats_the_target_of_a_symlink(tmp_path, capsys):
    real = tmp_path / "real.cnn"
    real.write_text(UNFORMATTED)
    real.chmod(0o664)
    link = tmp_path / "link.cnn"
    link.symlink_to(real)
    assert main(["fmt", str(link)]) == 0
    assert link.is_symlink()
    assert real.read_text() != UNFORMATTED and "conv3x3(4) -> relu" in real.read_text()
    assert mode(real) == 0o664
    assert main(["fmt", "--check", str(real)]) == 0


def test_training_weights_use_the_same_writer(tmp_path):
    from cnndsl.training.transfer import write_bytes_atomic

    target = tmp_path / "w.safetensors"
    target.write_bytes(b"old")
    target.chmod(0o644)
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new" and mode(target) == 0o644


# Reading ---------------------------------------------------------------------------------


def test_read_refuses_what_is_not_a_regular_file(tmp_path):
    with pytest.raises(FileProblem, match="directory"):
        read_regular(tmp_path, 100)
    with pytest.raises(FileProblem, match="not a regular file"):
        read_regular("/dev/zero", 100)  # would otherwise read until memory runs out
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileProblem, match="not a regular file"):
        read_regular(fifo, 100)  # would otherwise block until a writer comes
    with pytest.raises(FileProblem, match="NUL"):
        read_regular("a\0b", 100)


def test_read_is_bounded_even_when_the_size_lies(tmp_path):
    big = tmp_path / "big.cnn"
    big.write_bytes(b"#" * 101)
    with pytest.raises(FileProblem) as e:
        read_regular(big, 100)
    assert e.value.code == "E104"
    assert read_regular(big, 101) == b"#" * 101
    if os.path.exists("/proc/self/status"):  # st_size 0, yet content: the read itself is bounded
        with pytest.raises(FileProblem) as e:
            read_regular("/proc/self/status", 10)
        assert e.value.code == "E104"


def test_a_fifo_swapped_in_after_the_check_cannot_block(tmp_path, monkeypatch):
    """The stat says regular file; by the open it is a FIFO. O_NONBLOCK + fstat refuse it at once."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    regular = os.stat(__file__)
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: regular if str(p) == str(fifo) else real_stat(p, *a, **k))
    with pytest.raises(FileProblem, match="not a regular file"):
        read_regular(fifo, 10**7)


@pytest.mark.parametrize("command", [["check"], ["fmt"], ["compile", "--backend", "torch"]])
def test_cli_on_a_fifo_exits_2_without_blocking(tmp_path, command):
    fifo = tmp_path / "spec.cnn"
    os.mkfifo(fifo)
    r = subprocess.run(
        [sys.executable, "-m", "cnndsl", *command, str(fifo)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert r.returncode == 2, r.stderr
    assert f"{fifo}:1:1: error[E003]" in r.stderr and "not a regular file" in r.stderr


def test_cli_on_dev_zero_exits_2(capsys):
    assert main(["check", "/dev/zero"]) == 2
    assert "/dev/zero:1:1: error[E003]" in capsys.readouterr().err


def test_a_utf8_bom_is_skipped(tmp_path, capsys):
    spec = tmp_path / "bom.cnn"
    spec.write_bytes(b"\xef\xbb\xbf" + SPEC.encode())
    assert main(["check", str(spec)]) == 0
    from cnndsl.frontend import compile_text

    assert compile_text("\ufeff" + SPEC).network is not None


def test_lint_output_to_a_missing_folder_is_an_error_not_a_crash(tmp_path, capsys):
    spec = tmp_path / "net.cnn"
    spec.write_text(SPEC)
    assert main(["lint", str(spec), "-o", str(tmp_path / "no" / "report.txt")]) == 2
    assert "cannot write" in capsys.readouterr().err
