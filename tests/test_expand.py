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
    if len(net.outputs) > 1:
        pytest.skip("one chain cannot express several outputs: `cnndsl expand` refuses them (tested below)")
    flat = cnndsl.parse(expand(net))
    got, want = [(n.op, n.attrs, n.shape) for n in flat.layers], [(n.op, n.attrs, n.shape) for n in net.layers]
    if "align=" in path.read_text():
        # an aligning crop is made once every branch is known, so it follows them; spelled out as a
        # layer of its branch it comes first: the same layers, in another valid order
        got, want = sorted(got, key=repr), sorted(want, key=repr)
    assert got == want
    assert sum(param_counts(flat).values()) == sum(param_counts(net).values())


def test_the_command_refuses_several_outputs(tmp_path, capsys):
    spec = tmp_path / "two.cnn"
    spec.write_text("input 3x8x8\ntensor a = conv3x3(4)\ntensor b = a -> relu\noutput a, b\n")
    assert main(["expand", str(spec)]) == 2
    assert "2 outputs" in capsys.readouterr().err


def test_the_command_prints_it(capsys):
    assert main(["expand", str(SPECS[0])]) == 0
    assert cnndsl.parse(capsys.readouterr().out).layers
