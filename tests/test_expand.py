"""`cnndsl expand`: the flat spec of primitives it prints is a valid spec of the same network."""

from __future__ import annotations

from pathlib import Path

import pytest

import cnndsl
from cnndsl.analysis import param_counts
from cnndsl.cli import main
from cnndsl.expand import expand

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.cnn"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_the_expanded_spec_compiles_to_the_same_layers(path):
    net = cnndsl.load(str(path))
    flat = cnndsl.parse(expand(net))
    assert [(n.op, n.attrs, n.shape) for n in flat.layers] == [(n.op, n.attrs, n.shape) for n in net.layers]
    assert sum(param_counts(flat).values()) == sum(param_counts(net).values())


def test_the_command_prints_it(capsys):
    assert main(["expand", str(SPECS[0])]) == 0
    assert cnndsl.parse(capsys.readouterr().out).layers
