"""Every example in docs/language.md compiles (or fails with the code it names)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import cnndsl

DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"
BLOCKS = re.findall(r"```(cnn|cnn-error)\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("kind, text", BLOCKS, ids=[f"example{i}" for i in range(len(BLOCKS))])
def test_example(kind, text, monkeypatch):
    monkeypatch.chdir(DOC.parent)
    if kind == "cnn":
        net = cnndsl.parse(text, path="docs/language.md")
        assert len(net.layers) > 0
        from cnndsl.analysis.figures import Figures
        from cnndsl.analysis.judge import judge

        assert [d for d in judge(Figures(net)) if d.severity == "error"] == []  # expectations hold
    else:
        code = re.match(r"# error: (\w+)", text).group(1)
        with pytest.raises(cnndsl.CnnError) as info:
            cnndsl.parse(text)
        assert code in {d.code for d in info.value.diagnostics}
