"""editors/vscode: the manifest points at files that exist, the TextMate grammar's patterns compile and
know every statement keyword of grammars/cnn.lark."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VSCODE = ROOT / "editors" / "vscode"


def grammar() -> dict:
    return json.loads((VSCODE / "syntaxes" / "cnn.tmLanguage.json").read_text())


def test_manifest_names_files_that_exist():
    manifest = json.loads((VSCODE / "package.json").read_text())
    (language,) = manifest["contributes"]["languages"]
    assert language["extensions"] == [".cnn"]
    assert (VSCODE / language["configuration"]).is_file()
    assert all((VSCODE / g["path"]).is_file() for g in manifest["contributes"]["grammars"])
    assert (VSCODE / manifest["main"]).is_file()
    assert manifest["contributes"]["configuration"]["properties"]["cnndsl.server.command"]["default"] == [
        "cnndsl",
        "lsp",
    ]
    json.loads((VSCODE / "language-configuration.json").read_text())


def test_grammar_patterns_compile_and_cover_the_statements():
    rules = grammar()["repository"]
    patterns = {name: re.compile(rule["match"]) for name, rule in rules.items()}
    lark = (ROOT / "grammars" / "cnn.lark").read_text()
    statements = re.findall(r'^\w+_stmt: "(\w+)"', lark, re.M) + re.findall(r'^block_def: "(\w+)"', lark, re.M)
    assert len(statements) >= 8
    for word in statements:
        assert patterns["statement"].search(word) or patterns["block-def"].search(f"{word} x"), word
    line = "-> [bottleneck(256)]x5 as layer3  # note"
    assert patterns["call"].search(line).group(1) == "bottleneck"
    assert patterns["comment"].search(line).group() == "# note"
    assert patterns["dims"].search("input 3x224x224").group() == "3x224x224"


def test_lsp_without_pygls_says_what_to_install():
    code = (
        "import sys; sys.modules['pygls'] = None; import cnndsl.cli; "  # None: `import pygls` raises ImportError
        "sys.exit(cnndsl.cli.main(['lsp']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 2 and "pip install 'cnndsl[lsp]'" in done.stderr and "Traceback" not in done.stderr
