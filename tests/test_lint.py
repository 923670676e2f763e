"""Lint rules (one positive and one negative case each), disabling, and the CI formats."""

from __future__ import annotations

import dataclasses
import json

import pytest

import cnndsl
from cnndsl.analysis.figures import Figures
from cnndsl.analysis.lint import RULES, lint
from cnndsl.cli import main
from cnndsl.diagnostics import CODES
from cnndsl.ir import Attrs, Node


def codes(text: str, disabled=frozenset()) -> list[str]:
    return [d.code for d in lint(Figures(cnndsl.parse(text)), disabled)]


CLEAN = "input 3x8x8\nconv3x3(16, bias=false) -> bn -> relu -> maxpool2 -> conv3x3(32) -> relu -> gap -> fc(10)"

# The seed's ImageClassifier: 200,704 -> 128 is 99.9 % of its parameters.
SEED = """input 3x224x224
conv3x3(32) -> relu -> maxpool2 -> conv3x3(64) -> relu -> maxpool2 -> fc(128) -> relu -> fc(10)
"""


def test_clean_network_has_no_findings():
    assert codes(CLEAN) == []


def test_l001_fc_holding_most_parameters():
    (d,) = [d for d in lint(Figures(cnndsl.parse(SEED))) if d.code == "L001"]
    assert "200,704 -> 128" in d.message and "99.9 %" in d.message and d.span.line == 2
    assert "L001" not in codes("input 1x32x32\nconv5x5(6, pad=0) -> maxpool2 -> fc(120) -> fc(10)")  # small nets


def test_l002_head_field_smaller_than_input():
    assert "L002" in codes("input 3x64x64\nconv3x3(8) -> relu -> gap -> fc(2)")
    assert "L002" not in codes("input 3x8x8\nconv3x3(8) -> conv3x3(8) -> conv3x3(8) -> conv3x3(8) -> gap -> fc(2)")


def test_l003_bias_before_batch_norm():
    assert codes("input 3x8x8\nconv3x3(4) -> bn -> relu") == ["L003"]
    assert codes("input 3x8x8\nconv3x3(4, bias=false) -> bn -> relu") == []
    assert codes("input 3x8x8\nconv3x3(4) -> relu -> bn") == []


def test_l004_drops_rows_and_columns():
    assert "L004" in codes("input 3x7x8\nmaxpool2")  # row 6 is never pooled
    assert codes("input 3x7x8\nmaxpool2(ceil=true)") == []
    assert codes("input 3x56x56\nconv3x3(4, stride=2)") == []  # the padded row is the one left out
    (d,) = lint(Figures(cnndsl.parse("input 3x10x10\nconv3x3(4, stride=2, pad=0)")))
    assert "last 1 row(s) and 1 column(s) of its 10x10 input" in d.message
    assert codes("input 3x9x10\nconv3x3(4, stride=2, pad=0)") == ["L004"]  # 9 rows fit, the 10th column not


def test_l005_stride_larger_than_kernel():
    assert "L005" in codes("input 3x8x8\nconv1x1(4, stride=2)")
    assert RULES["L005"].severity == "error"
    # ResNet's 1x1 stride-2 shortcut: the body sees the pixels the shortcut skips.
    assert codes("input 3x8x8\nresidual(conv3x3(4, stride=2), shortcut=conv1x1(4, stride=2))") == []


def test_l006_softmax_not_at_the_end():
    assert codes("input 3x8x8\nconv3x3(4) -> softmax -> conv3x3(4)") == ["L006"]
    assert "L006" not in codes("input 3x8x8\nconv3x3(4) -> gap -> fc(3) -> softmax")


def test_l007_unused_node_in_a_hand_built_ir():
    net = cnndsl.parse("input 3x8x8\nconv3x3(4) -> relu")
    conv = net.node("conv1")
    dead = Node("dead", "relu", Attrs(), ("conv1",), conv.shape, conv.span)
    net = dataclasses.replace(net, nodes=(*net.nodes, dead))
    assert [d.code for d in lint(Figures(net))] == ["L007"]
    assert codes("input 3x8x8\nconcat(conv3x3(2), conv1x1(2)) -> relu") == []  # every branch is merged


def test_l008_merge_of_the_same_branch_twice():
    assert codes("input 3x8x8\nconv3x3(4, bias=false) -> concat(identity, identity)") == ["L008"]
    assert codes("input 3x8x8\nconcat(identity, conv1x1(4))") == []


def test_every_rule_is_registered_and_documented():
    docs = open("docs/lint.md").read()
    for code in RULES:
        assert code in CODES
        assert f"## {code}" in docs


def test_disable_in_spec_and_cli():
    text = "input 3x8x8\nconv3x3(4) -> bn -> relu\n"
    assert codes(text + "disable L003\n") == []
    assert codes(text, frozenset({"L003"})) == []


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "clean.cnn").write_text(CLEAN + "\n")
    (tmp_path / "sub" / "bias.cnn").write_text("input 3x8x8\nconv3x3(4) -> bn -> relu\n")
    (tmp_path / "sub" / "notes.txt").write_text("not a spec")
    return tmp_path


def test_lint_walks_directories_and_exit_codes(tree, capsys):
    assert main(["lint", str(tree)]) == 0  # warnings only
    err = capsys.readouterr().err
    assert "2 file(s): 0 error(s), 1 warning(s)" in err and "bias.cnn:2:1: warning[L003]" in err
    assert main(["lint", str(tree), "--strict"]) == 1
    assert main(["lint", str(tree), "--strict", "--disable", "L003,L004"]) == 0
    (tree / "stride.cnn").write_text("input 3x8x8\nconv1x1(4, stride=2)\n")
    assert main(["lint", str(tree)]) == 1  # L005 is an error
    (tree / "broken.cnn").write_text("input 3x8x8\nconv3x3(4) -> relu ->\n")
    assert main(["lint", str(tree)]) == 2


def test_lint_unknown_disable_code_warns(tree, capsys):
    main(["lint", str(tree / "clean.cnn"), "--disable", "L030"])
    assert "W303" in capsys.readouterr().err


def test_github_annotations(tree, capsys):
    main(["lint", str(tree), "--format", "github"])
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("::warning file=") and ",line=2,col=1," in line and "::L003: " in line


def test_sarif_log(tree, tmp_path, capsys):
    out = tmp_path / "lint.sarif"
    assert main(["lint", str(tree), "--format", "sarif", "-o", str(out)]) == 0
    log = json.loads(out.read_text())
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert {r["id"] for r in rules} == set(CODES)
    (result,) = run["results"]
    assert result["ruleId"] == "L003" and result["level"] == "warning"
    assert rules[result["ruleIndex"]]["id"] == "L003"
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] == 2 and region["startColumn"] == 1 and region["endColumn"] > 1
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("sub/bias.cnn")
    for r in rules:
        assert r["defaultConfiguration"]["level"] in ("error", "warning", "note")


def test_lint_json_is_a_list_of_check_objects(tree, capsys):
    main(["lint", str(tree), "--format", "json"])
    objs = json.loads(capsys.readouterr().out)
    assert [o["network"] for o in objs] == ["clean", "bias"]
    assert objs[1]["diagnostics"][0]["code"] == "L003"


def test_l002_ignores_squeeze_excitation_pooling_inside_blocks():
    # The SE `gap` makes the field global early; the head's `gap` then reads global features: nothing to say.
    se = "input 3x64x64\nconv3x3(8) -> mul(identity, gap -> conv1x1(8) -> sigmoid) -> conv3x3(8) -> gap -> fc(2)"
    assert "L002" not in codes(se)
    (d,) = lint(Figures(cnndsl.parse("input 3x64x64\nconv3x3(8) -> relu -> gap -> fc(2)")))
    assert d.code == "L002" and "`gap1`" in d.message and "3x3" in d.message


def test_check_and_lint_never_import_torch_or_numba(tree):
    import subprocess
    import sys

    code = (
        "import sys\nfrom cnndsl.cli import main\n"
        f"main(['check', {str(tree / 'clean.cnn')!r}, '--format', 'json'])\n"
        f"main(['lint', {str(tree)!r}, '--format', 'sarif'])\n"
        "assert not {'torch', 'numba'} & set(sys.modules), sorted(m for m in sys.modules if m in ('torch', 'numba'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
