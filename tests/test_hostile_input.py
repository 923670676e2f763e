"""Hostile and careless input: a spec can make cnndsl report an error, never crash (exit 3), hang,
read what it should not, or echo a file that is not a spec. The rules are in docs/security.md."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnndsl.cli import main
from cnndsl.frontend import compile_text
from cnndsl.limits import MAX_SOURCE_BYTES

ROOT = Path(__file__).parent.parent
SPECS = sorted((ROOT / "specs").glob("*.cnn"))
SECRET = "AKIA_SUPER_SECRET_TOKEN_d41d8cd98f00"
BODY = "input 3x8x8\nrelu\n"


def check(path: Path, capsys) -> tuple[int, str]:
    code = main(["check", str(path)])
    out = capsys.readouterr()
    return code, out.err + out.out


def spec(tmp_path: Path, text: str, name: str = "spec.cnn") -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


# 3. Imports -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret_name, secret_text",
    [
        ("notes.txt", f"SHELL=/bin/bash\0TOKEN={SECRET}\0"),  # like /proc/self/environ
        ("secrets.env", f"TOKEN = {SECRET}\n"),
        ("creds.cnn", f"aws_key = {SECRET} {SECRET}\n"),  # a .cnn name, yet not a spec: still not quoted
        ("creds2.cnn", f"let x = 1\n{SECRET} ->\n"),  # parses up to the secret
    ],
)
def test_an_imported_file_that_is_not_a_spec_is_never_quoted(tmp_path, capsys, secret_name, secret_text):
    (tmp_path / secret_name).write_text(secret_text)
    main_spec = spec(tmp_path, f'import "{secret_name}"\n{BODY}')
    code, out = check(main_spec, capsys)
    assert code == 2
    assert f"{main_spec}:1:1: error[" in out  # located at the import, in the spec that asked for it
    assert SECRET not in out and "TOKEN" not in out and "aws_key" not in out, out


def test_absolute_imports_are_refused_without_reading(tmp_path, capsys):
    secret = tmp_path / "elsewhere" / "secret.cnn"
    secret.parent.mkdir()
    secret.write_text(f"{SECRET}\n")
    for target in ("/proc/self/environ", str(secret)):
        code, out = check(spec(tmp_path, f'import "{target}"\n{BODY}'), capsys)
        assert code == 2 and "error[E004]" in out and "absolute paths are not allowed" in out
        assert SECRET not in out and "PATH=" not in out


def test_imports_may_not_leave_the_spec_folder(tmp_path, capsys):
    outside = tmp_path / "outside.cnn"
    outside.write_text(f"block {SECRET.lower()}() {{ relu }}\n")
    project = tmp_path / "project"
    code, out = check(spec(project, f'import "../outside.cnn"\n{BODY}'), capsys)
    assert code == 2 and "outside the spec's folder" in out
    # nor through a symlink: the resolved path is what is checked
    (project / "inside.cnn").symlink_to(outside)
    code, out = check(spec(project, f'import "inside.cnn"\n{BODY}'), capsys)
    assert code == 2 and "outside the spec's folder" in out and SECRET.lower() not in out


def test_dotdot_inside_the_folder_is_fine(tmp_path, capsys):
    spec(tmp_path, "block stem() { conv3x3(4) -> relu }\n", "common.cnn")
    spec(tmp_path, 'import "../common.cnn"\nblock head() { stem -> gap }\n', "sub/head.cnn")
    code, out = check(spec(tmp_path, 'import "sub/head.cnn"\ninput 3x8x8\nhead -> fc(2)\n'), capsys)
    assert code == 0, out


def test_non_cnn_imports_are_refused(tmp_path, capsys):
    (tmp_path / "blocks.txt").write_text("block b() { relu }\n")
    code, out = check(spec(tmp_path, f'import "blocks.txt"\n{BODY}'), capsys)
    assert code == 2 and "only `.cnn` specs can be imported" in out


def test_two_spellings_of_one_file_are_one_module(tmp_path, capsys):
    spec(tmp_path, "block b() { relu }\n", "a.cnn")
    (tmp_path / "sub").mkdir()
    code, out = check(
        spec(tmp_path, 'import "a.cnn"\nimport "sub/../a.cnn"\nimport "./a.cnn"\ninput 3x8x8\nb\n'), capsys
    )
    assert code == 0, out  # not "block `b` is imported twice from different modules"


def test_a_cycle_through_another_spelling_is_found(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    spec(tmp_path, 'import "sub/../a.cnn"\nblock b() { relu }\n', "a.cnn")
    code, out = check(spec(tmp_path, f'import "sub/../a.cnn"\n{BODY}'), capsys)
    assert code == 2 and "error[E005]: import cycle" in out  # was RecursionError, exit 3
    spec(tmp_path, 'import "y.cnn"\n', "x.cnn")
    spec(tmp_path, 'import "sub/../x.cnn"\n', "y.cnn")
    code, out = check(spec(tmp_path, f'import "x.cnn"\n{BODY}'), capsys)
    assert code == 2 and "error[E005]" in out


def test_imports_have_the_top_level_size_limit(tmp_path, capsys):
    spec(tmp_path, "#" * (MAX_SOURCE_BYTES + 1) + "\n", "big.cnn")
    code, out = check(spec(tmp_path, f'import "big.cnn"\n{BODY}'), capsys)
    assert code == 2 and "error[E104]" in out and "larger than" in out


def test_a_nul_byte_in_an_import_path(tmp_path, capsys):
    code, out = check(spec(tmp_path, f'import "a\0b.cnn"\n{BODY}'), capsys)
    assert code == 2 and "1:1: error[E004]" in out and "control character" in out
    assert "\0" not in out  # neither in the message nor in the quoted line


def test_importing_a_fifo_does_not_block(tmp_path):
    os.mkfifo(tmp_path / "pipe.cnn")
    main_spec = spec(tmp_path, f'import "pipe.cnn"\n{BODY}')
    r = subprocess.run(
        [sys.executable, "-m", "cnndsl", "check", str(main_spec)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert r.returncode == 2 and "not a regular file" in r.stderr, r.stderr


def test_a_top_level_file_that_is_not_a_spec_is_not_quoted(tmp_path, capsys):
    env = tmp_path / "environ"
    env.write_text(f"HOME=/root\0TOKEN={SECRET}\0")
    code, out = check(env, capsys)
    assert code == 2 and f"{env}:1:5: error[E001]" in out and "not a valid cnndsl spec" in out
    assert SECRET not in out and "HOME" not in out


# 4. Arithmetic and numbers: located diagnostics, never exit 3 -----------------------------------

HUGE = "9" * 5000

# spec text -> (line:col, code, fragment of the message or hint)
NUMBERS = {
    "input 1.5\nrelu\n": ("1:7", "E109", "whole numbers"),
    "input 5M\nrelu\n": ("1:7", "E109", "whole numbers"),
    f"input 3x{HUGE}x8\nrelu\n": ("1:7", "E109", "absurdly large"),
    f"input {HUGE}\nrelu\n": ("1:7", "E109", "absurdly large"),
    f"input 3x8x8\nconv3x3({HUGE})\n": ("2:9", "E110", "2**62"),
    f"let c = {HUGE}\ninput 3x8x8\nrelu\n": ("1:9", "E110", "2**62"),
    f"input 3x8x8\nconv{HUGE}x3(4)\n": ("2:1", "E101", "unknown layer"),
    f"input 3x8x8\nmaxpool{HUGE}\n": ("2:1", "E101", "unknown layer"),
    "input 3x8x8\nconv3x3(make_divisible(7, 0))\n": ("2:9", "E110", "division by zero"),
    "input 3x8x8\nconv3x3(int(0.5 ** -10000))\n": ("2:13", "E110", "too large"),
    "input 3x8x8\nconv3x3(int(10.0 ** 400))\n": ("2:13", "E110", ""),
    "input 3x8x8\nconv3x3(round(5, -1000000000000))\n": ("2:9", "E104", "round"),
    "input 3x8x8\nconv3x3(int(1e400))\n": ("2:13", "E110", "finite"),
    "input 3x8x8\nconv3x3(ceil(1e300))\n": ("2:9", "E110", "2**62"),
    "input 3x8x8\nconv3x3(4 % 0)\n": ("2:9", "E110", "division by zero"),
    "input 3x8x8\nconv3x3(int((-8) ** 0.5))\n": ("2:14", "E110", "fractional power"),
}


@pytest.mark.parametrize("text", list(NUMBERS), ids=lambda t: t.replace("\n", " ")[:40])
def test_numbers_and_arithmetic_give_located_errors(tmp_path, capsys, text):
    out = assert_located_error(tmp_path, capsys, text, *NUMBERS[text])
    assert re.search(r"^\s+\| +\^+", out, re.M), "a caret under the source line"
    assert "internal error" not in out


def assert_located_error(tmp_path, capsys, text: str, where: str, code: str, fragment: str) -> str:
    path = spec(tmp_path, text)
    status, out = check(path, capsys)
    assert status == 2, out
    assert f"{path}:{where}: error[{code}]" in out, out[:500]
    assert fragment in out
    return out


# 8. Small acceptance gaps -----------------------------------------------------------------------

GAPS = {
    "network a\nnetwork b\ninput 3x8x8\nrelu\n": ("2:1", "E106", "`network` is given twice"),
    "input 3x8x8\nidentity(3)\n": ("2:10", "E102", "takes no arguments"),
    "input 3x8x8\nrelu(3)\n": ("2:6", "E102", "positional"),
    "input 3x8x8\nrelu(x=2)\n": ("2:6", "E102", "has no argument `x`"),
    "input 3x8x8\nconv3x3(4, strde=2)\n": ("2:12", "E102", "did you mean `stride`"),
    "input 3x8x8\n[in_channels: conv3x3(4)]x2\n": ("2:1", "E106", "repeat index"),
    "block b(in_channels) { conv3x3(in_channels) }\ninput 3x8x8\nb(4)\n": ("1:9", "E106", "parameter"),
    "input 3x8x8\nconv3x3(4) as class\n": ("2:1", "E112", "Python keyword"),
    "input 3x8x8\nconv3x3(4) as state_dict\n": ("2:1", "E112", "nn.Module"),
    "input 3x8x8\n(conv3x3(4) -> relu) as train\n": ("2:2", "E112", "nn.Module"),
    "input 3x8x8\nrelu as __init__\n": ("2:1", "E112", "`_`"),
    "block class() { relu }\ninput 3x8x8\nrelu\n": ("1:1", "E112", "block"),
}


@pytest.mark.parametrize("text", list(GAPS), ids=lambda t: t.replace("\n", " ")[:40])
def test_careless_specs_are_refused_by_the_front_end(tmp_path, capsys, text):
    assert_located_error(tmp_path, capsys, text, *GAPS[text])


def test_names_torch_refuses_are_refused_for_every_backend(tmp_path, capsys):
    path = spec(tmp_path, "input 3x8x8\nconv3x3(4) as state_dict\n")
    assert main(["compile", str(path), "--backend", "numba"]) == 2  # not only torch
    assert "error[E112]" in capsys.readouterr().err


def test_the_front_end_list_covers_torchs_module_attributes():
    torch = pytest.importorskip("torch")
    from cnndsl.modules import unusable_name

    missing = [a for a in dir(torch.nn.Module()) if unusable_name(a) is None]
    assert not missing, f"add to cnndsl.modules.MODULE_ATTRIBUTES: {missing}"


def test_a_bom_is_skipped_and_columns_stay_right(tmp_path, capsys):
    path = tmp_path / "bom.cnn"
    path.write_bytes(b"\xef\xbb\xbfinput 3x8x8\nconv3x3(0)\n")
    status, out = check(path, capsys)
    assert status == 2 and f"{path}:2:9: error[E104]" in out


# Properties: nothing a spec says makes the compiler raise --------------------------------------

FRAGMENTS = [
    "0", "-1", "1.5", "5M", "1e400", HUGE[:50], "**", "**-10000", "//0", "% 0", "(", ")", "[", "]x", "]x3",
    "->", ",", "=", " as class", " as x", "in_channels", "in_channels:", "identity(3)", "relu(3)",
    "make_divisible(7, 0)", "round(5, -99)", 'import "a.cnn"\n', 'import "/etc/passwd"\n', "import resnet\n",
    "\ufeff", "\0", "\n", "\r\n", "\t", "\\\n", "#", "block b(x) { x }\n", "network n\n", "input 3x8x8\n",
    "conv999x999(1)", "residual(", "concat(relu, relu)", "if true else", "not", "x", "let a = a\n",
]  # fmt: skip


@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text):
    result = compile_text(text, "<fuzz>")
    assert result.network is not None or result.errors


def _mutate(text: str, edits: list[tuple[int, int, int, str]]) -> str:
    for kind, a, b, fragment in edits:
        i, j = sorted((a % (len(text) + 1), b % (len(text) + 1)))
        if kind == 0:  # delete a span
            text = text[:i] + text[j:]
        elif kind == 1:  # insert a nasty fragment
            text = text[:i] + fragment + text[i:]
        elif kind == 2:  # replace a span by a fragment
            text = text[:i] + fragment + text[j:]
        else:  # duplicate a span
            text = text[:j] + text[i:j] + text[j:]
    return text


@given(
    st.sampled_from(SPECS),
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 10**6),
            st.integers(0, 10**6),
            st.sampled_from(FRAGMENTS) | st.text(max_size=5),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_shipped_specs_never_raise(path, edits):
    text = _mutate(path.read_text(), edits)
    result = compile_text(text, str(path))  # a real path: relative imports resolve beside it
    assert result.network is not None or result.errors
    for d in result.diagnostics:
        assert d.span.line >= 1 and d.span.column >= 1


def test_fmt_does_not_echo_a_file_that_is_not_a_spec(tmp_path, capsys):
    env = tmp_path / "credentials"
    env.write_text(f"TOKEN={SECRET}\n")
    assert main(["fmt", str(env)]) == 2
    err = capsys.readouterr().err
    assert "not a valid cnndsl spec" in err and SECRET not in err and "TOKEN" not in err
    assert env.read_text() == f"TOKEN={SECRET}\n"
