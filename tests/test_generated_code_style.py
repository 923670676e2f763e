"""Every backend's generated module for every spec in specs/ passes ruff check and ruff format --check,
under the project's own settings (pyproject.toml), and carries no comment line over the line length.
Rendering only: no numba, GPU or torch model is built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cnndsl
from cnndsl.backends import render

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.cnn"))
BACKENDS = ("torch", "numba", "cuda")
# ruff sits beside the interpreter in a virtualenv that is not activated (as in CI)
RUFF = shutil.which("ruff") or shutil.which("ruff", path=os.path.dirname(sys.executable))
# pyproject.toml's [tool.ruff] settings, spelled out so that no other configuration applies
SETTINGS = ["--isolated", "--line-length", "120", "--target-version", "py310"]
LINT = ["--select", "E,F,W,I,B,UP", "--ignore", "E501,B905"]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Every (spec, backend) module, written once: name -> path."""
    out = tmp_path_factory.mktemp("generated")
    paths = {}
    for spec in SPECS:
        net = cnndsl.load(spec)
        for backend in BACKENDS:
            path = out / f"{spec.stem}_{backend}.py"
            path.write_text(render(net, backend), encoding="utf-8")
            paths[path.stem] = path
    return paths


def test_the_settings_are_the_projects():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "line-length = 120" in text and 'target-version = "py310"' in text
    assert 'select = ["E", "F", "W", "I", "B", "UP"]' in text and 'ignore = ["E501", "B905"]' in text


@pytest.mark.skipif(RUFF is None, reason="ruff not installed")
@pytest.mark.parametrize("command", [["check", "--no-cache", *LINT], ["format", "--check", "--no-cache"]])
def test_generated_modules_are_ruff_clean(sources, command):
    r = subprocess.run([RUFF, *command, *SETTINGS, *map(str, sources.values())], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_comment_line_is_longer_than_the_line_length(sources, backend):
    long = [
        f"{name}:{i}"
        for name, path in sources.items()
        if name.endswith(backend)
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if line.lstrip().startswith("#") and len(line) > 120
    ]
    assert long == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_generated_modules_are_deterministic(backend):
    for spec in SPECS[:4]:
        assert render(cnndsl.load(spec), backend) == render(cnndsl.load(spec), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_provenance_comments_name_the_block_file_and_line(sources, backend):
    # resnet18's basic blocks come from the standard library's resnet.cnn: a comment must say so, not
    # quote the block's line number as if it were the spec's.
    text = sources[f"resnet18_{backend}"].read_text(encoding="utf-8")
    basic = next(
        i
        for i, line in enumerate((ROOT / "cnndsl/stdlib/resnet.cnn").read_text().splitlines(), 1)
        if "block basic(" in line
    )
    assert f"(resnet.cnn line {basic + 1})" in text
