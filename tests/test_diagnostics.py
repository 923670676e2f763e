"""One test per diagnostic code: each bad spec gets its own located, hinted error, through the CLI as a user sees it."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnndsl.cli import main
from cnndsl.diagnostics import CODES

# code -> (spec text, expected "line:col" of the diagnostic, a fragment its message or hint must contain)
CASES = {
    "E001": ("input 3x8x8\nconv3x3(8 relu\n", "2:11", "separate arguments"),
    "E002": ("input 3x8x8\n" + "(" * 70 + "relu" + ")" * 70 + "\n", "2:65", "nested"),
    "E004": ("import resnett\ninput 3x8x8\nrelu\n", "1:1", "did you mean `resnet`"),
    "E101": ("input 3x8x8\ncnv3x3(8) -> relu\n", "2:1", "did you mean `conv3x3`"),
    "E102": ("input 3x8x8\nconv3x3(8, strid=2)\n", "2:12", "did you mean `stride`"),
    "E103": ("input 3x8x8\nconv3x3(8) -> 5\n", "2:15", "expected a layer"),
    "E104": ("input 3x8x8\nconv3x3(0)\n", "2:9", "from 1 to"),
    "E105": ("input 3x8x8\nblock a() { relu -> b }\nblock b() { a }\na\n", "3:13", "recursive"),
    "E106": ("let w = 1\nlet w = 2\ninput 3x8x8\nrelu\n", "2:1", "defined twice"),
    "E107": ("input 3x8x8\n[[[conv3x3(8)]x1000]x1000]x1000\n", "2:1", "limit"),
    "E108": ("input 3x8x8\n", "1:1", "no network body"),
    "E109": ("input 3x8\nrelu\n", "1:1", "3 dimensions"),
    "E110": ("input 3x8x8\nconv3x3(8 // 0)\n", "2:9", "division by zero"),
    "E113": ("input 3x8x8\ntensor a = conv3x3(8)\ntensor b = a -> relu\noutput a\n", "3:17", "not used by any output"),
    "E201": ("input 1x4x4\nconv5x5(8, pad=valid)\n", "2:1", "leaves a 0x0 output"),
    "E202": ("input 3x8x8\nadd(conv3x3(8), conv3x3(16))\n", "2:1", "equal channels"),
    "E203": ("input 3x8x8\nconcat(conv3x3(8), conv3x3(8, stride=2))\n", "2:1", "equal spatial sizes"),
    "E204": ("input 8x8x8\nconv3x3(10, groups=4)\n", "2:13", "must divide"),
    "E205": ("input 3x8x8\nflatten -> conv3x3(8)\n", "2:12", "feature map"),
    "E206": ("input 3x8x8\nconv3x3(8, stride=2, pad=same)\n", "2:22", "stride 1"),
    "E207": ("input 3x64x64\nconv3x3(1048576)\n", "2:1", "too large"),
    "E208": ("input 3x8x8\nconv3x3(2, table=[[0, 1]])\n", "2:12", "rows"),
    "W301": ("input 3x8x8\nconv3x3(4) -> fc(10)\n", "2:15", "flatten"),
}


def run_check(tmp_path: Path, text: str, capsys, *extra: str):
    spec = tmp_path / "spec.cnn"
    spec.write_text(text)
    code = main(["check", str(spec), *extra])
    return code, capsys.readouterr().err, spec


@pytest.mark.parametrize("code", sorted(CASES))
def test_each_code_is_located_and_explained(code, tmp_path, capsys):
    text, where, fragment = CASES[code]
    status, err, spec = run_check(tmp_path, text, capsys)
    assert f"{spec}:{where}: " in err and f"[{code}]" in err, err
    assert fragment in err, err
    assert "Traceback" not in err
    if code.startswith("E"):
        assert status == 2
        assert re.search(r"^\s+\| +\^+", err, re.M), "a caret under the source line"
    else:
        assert status == 0


def test_expectations_are_skipped_at_another_input_W304(tmp_path, capsys):
    text = "input 3x32x32\nconv3x3(8) -> gap -> fc(2)\nexpect macs == 221_200\n"
    status, err, spec = run_check(tmp_path, text, capsys)
    assert status == 0 and err == ""
    status, err, spec = run_check(tmp_path, text, capsys, "--input", "3x64x64")
    assert status == 0 and f"{spec}:3:1: warning[W304]" in err
    status, err, spec = run_check(tmp_path, text, capsys, "--input", "3x32x32")
    assert status == 0 and err == ""


def test_file_errors_E003(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.cnn")]) == 2
    assert "error[E003]: no such file" in capsys.readouterr().err
    bad = tmp_path / "latin1.cnn"
    bad.write_bytes(b"input 3x8x8\nrelu # caf\xe9\n")
    assert main(["check", str(bad)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_import_cycle_E005(tmp_path, capsys):
    (tmp_path / "a.cnn").write_text('import "b.cnn"\n')
    (tmp_path / "b.cnn").write_text('import "a.cnn"\n')
    status, err, _ = run_check(tmp_path, 'import "a.cnn"\ninput 3x8x8\nrelu\n', capsys)
    assert status == 2 and "[E005]" in err and "import cycle" in err


def test_every_code_has_a_test():
    """Each registered code appears in some test (here or in the analysis/lint tests)."""
    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    missing = [c for c in CODES if f'"{c}"' not in tests and f"[{c}]" not in tests and f"'{c}'" not in tests]
    assert not missing, f"codes without a test: {missing}"


def test_independent_errors_are_all_reported(tmp_path, capsys):
    text = "input 3x8x8\nadd(conv3x3(4), conv3x3(8))\n-> conv3x3(8) -> relux\n-> maxpol2(strides=2)\n"
    status, err, _ = run_check(tmp_path, text, capsys)
    assert status == 2
    assert err.count("error[") == 3, err  # the add, and the two unknown names after it
    assert ":2:1:" in err and ":3:18:" in err and ":4:4:" in err


def test_shape_error_names_both_shapes_and_places(tmp_path, capsys):
    text = "input 3x8x8\nresidual(conv3x3(16, stride=2) -> relu)\n"
    status, err, _ = run_check(tmp_path, text, capsys)
    assert status == 2 and "[E202]" in err
    assert "Nx16x4x4" in err and "Nx3x8x8" in err
    assert "projection shortcut" in err


def test_expansion_limit_refuses_at_once(tmp_path, capsys):
    start = time.perf_counter()
    status, err, _ = run_check(tmp_path, "input 3x8x8\n[[[conv3x3(8)]x1000]x1000]x1000\n", capsys)
    assert status == 2 and "[E107]" in err
    assert time.perf_counter() - start < 5  # a hang guard, not a benchmark: it used to take minutes
    status, err, _ = run_check(tmp_path, "input 3x8x8\n[relu]x50\n", capsys, "--max-nodes", "20")
    assert status == 2 and "[E107]" in err


def test_json_reports_diagnostics(tmp_path, capsys):
    import json

    spec = tmp_path / "t.cnn"
    spec.write_text("input 3x8x8\nconv3x3(8) -> relux\n")
    assert main(["check", str(spec), "--format", "json"]) == 2
    out = json.loads(capsys.readouterr().out)
    (d,) = out["diagnostics"]
    assert {k: d[k] for k in ("severity", "code", "file", "line", "column")} == {
        "severity": "error",
        "code": "E101",
        "file": str(spec),
        "line": 2,
        "column": 15,
    }
    assert "relu" in d["message"] + (d["hint"] or "")


def test_no_traceback_from_the_command_line(tmp_path):
    spec = tmp_path / "junk.cnn"
    spec.write_bytes(b"\x00\xff[[[(((->->")
    for args in (["check", str(spec)], ["fmt", "--check", str(spec)], ["expand", str(spec)], ["check", str(tmp_path)]):
        proc = subprocess.run([sys.executable, "-m", "cnndsl", *args], capture_output=True, text=True)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "error[" in proc.stderr


def test_every_code_is_documented():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "diagnostics.md").read_text()
    assert [c for c in CODES if f"| {c} |" not in doc] == []
