"""A machine that never ran cnndsl: empty temp and cache directories, the parser built from the grammar.

The landed parser once worked only where an old cache file happened to exist; these tests build it in a
new process with nothing to lean on, and check that the cache can never hand back a parser for other code.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnndsl import parser_cache

ROOT = Path(__file__).parent.parent


def _fresh_env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNNDSL_", "XDG_"))}
    for name in ("tmp", "cache", "numba"):
        (tmp_path / name).mkdir()
    env.update(TMPDIR=str(tmp_path / "tmp"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.update(NUMBA_CACHE_DIR=str(tmp_path / "numba"), HOME=str(tmp_path), **extra)
    return env


def _check(env: dict, spec: str = "specs/resnet18.cnn") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnndsl", "check", spec], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_check_builds_the_parser_from_nothing(tmp_path):
    env = _fresh_env(tmp_path)
    first = _check(env)
    assert first.returncode == 0, first.stderr
    assert "total" in first.stdout and "11,689,512" in first.stdout  # ResNet-18's published parameter count
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing in the temp directory
    saved = list((tmp_path / "cache" / "cnndsl").glob("parser-*.pickle"))
    assert len(saved) == 1 and saved[0].stat().st_mode & 0o077 == 0
    second = _check(env)  # now from the cache
    assert second.returncode == 0 and second.stdout == first.stdout


def test_a_damaged_cache_file_means_a_rebuild(tmp_path):
    env = _fresh_env(tmp_path)
    assert _check(env).returncode == 0
    (saved,) = (tmp_path / "cache" / "cnndsl").glob("parser-*.pickle")
    saved.write_bytes(saved.read_bytes()[:100])  # a truncated file, as a crash mid-write would leave
    again = _check(env)
    assert again.returncode == 0, again.stderr
    assert saved.stat().st_size > 100  # rewritten whole


def test_the_cache_can_be_turned_off(tmp_path):
    env = _fresh_env(tmp_path, CNNDSL_CACHE_DIR="")
    assert _check(env).returncode == 0
    assert list((tmp_path / "cache").iterdir()) == []


def test_the_key_covers_grammar_post_lexer_and_lark():
    grammar, code = b"start: NAME", b"class _Newlines: ..."
    key = parser_cache.parser_key(grammar, code)
    assert key != parser_cache.parser_key(grammar + b" ", code)
    assert key != parser_cache.parser_key(grammar, code + b" ")
    assert key != parser_cache.parser_key(grammar + code, b"")  # parts are length-prefixed


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX file ownership")
def test_a_cache_file_others_can_write_is_not_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNDSL_CACHE_DIR", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        from cnndsl.syntax import _parser

        return _parser()[0]

    parser_cache.load_or_build("k", build)
    path = tmp_path / "parser-k.pickle"
    assert path.exists() and len(calls) == 1
    path.chmod(0o666)
    parser_cache.load_or_build("k", build)
    assert len(calls) == 2  # refused and rebuilt
