"""`cnndsl verify`: per-pair errors, exit 1 on a mismatch, exit 2 when a requested backend is missing."""

from __future__ import annotations

import functools

import pytest

from cnndsl import reference
from cnndsl.backends import numba_backend
from cnndsl.cli import main
from cnndsl.commands import verify

SPEC = "input 3x6x5\nconv3x3(4) -> bn -> relu -> maxpool2(ceil=true) -> flatten -> fc(3) -> softmax\n"


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "small.cnn"
    path.write_text(SPEC)
    return str(path)


@pytest.fixture
def shared_kernels(monkeypatch):
    """Render modules that import the kernel library, so this test reuses the kernels compiled once."""
    monkeypatch.setattr(numba_backend, "render", functools.partial(numba_backend.render, inline_kernels=False))


def test_numba_agrees_with_reference(spec, shared_kernels, capsys):
    assert main(["verify", spec, "--backends", "numba", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("numba vs reference") == 2
    assert "MISMATCH" not in out and "all backends agree" in out


def test_mismatch_exits_1(spec, monkeypatch, capsys):
    def off_by_a_bit(network):
        return lambda weights, x: reference.run(network, weights, x) + 1e-3

    monkeypatch.setitem(verify.RUNNERS, "numba", off_by_a_bit)
    assert main(["verify", spec, "--backends", "numba", "--seeds", "1"]) == 1
    out = capsys.readouterr().out
    assert "max abs 1.000e-03" in out and "MISMATCH" in out
    # a looser tolerance accepts the same outputs
    assert main(["verify", spec, "--backends", "numba", "--seeds", "1", "--atol", "2e-3"]) == 0


def test_requested_backend_missing_exits_2(spec, monkeypatch, capsys):
    monkeypatch.setitem(verify.RUNNERS, "cuda", lambda network: (_ for _ in ()).throw(ImportError("no GPU here")))
    assert main(["verify", spec, "--backends", "cuda"]) == 2
    assert "backend cuda is not available here (ImportError: no GPU here)" in capsys.readouterr().err


def test_unknown_backend_and_bad_spec_exit_2(spec, tmp_path, capsys):
    assert main(["verify", spec, "--backends", "tensorflow"]) == 2
    assert "unknown backend(s) tensorflow" in capsys.readouterr().err
    bad = tmp_path / "bad.cnn"
    bad.write_text("input 3x6x5\nconv3x3(4) -> fc(3) -> conv3x3(2)\n")
    assert main(["verify", str(bad)]) == 2
