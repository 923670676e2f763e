"""`cnndsl lsp` end to end: a real client (pytest-lsp) spawns `python -m cnndsl lsp` and speaks LSP over stdio."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="the lsp extra is not installed")
pytest_lsp = pytest.importorskip("pytest_lsp", reason="pytest-lsp is not installed")

from lsprotocol import types as t  # noqa: E402
from pygls.uris import from_fs_path, to_fs_path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STDLIB = ROOT / "cnndsl" / "stdlib"
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(
    scope="module", config=pytest_lsp.ClientServerConfig(server_command=[sys.executable, "-m", "cnndsl", "lsp"])
)
async def client(lsp_client: pytest_lsp.LanguageClient):
    await lsp_client.initialize_session(t.InitializeParams(capabilities=t.ClientCapabilities(), root_uri=ROOT.as_uri()))
    yield
    await lsp_client.shutdown_session()


async def open_doc(client, tmp_path: Path, name: str, text: str) -> str:
    uri = from_fs_path(str(tmp_path / name))
    client.text_document_did_open(t.DidOpenTextDocumentParams(t.TextDocumentItem(uri, "cnn", 1, text)))
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return uri


async def test_diagnostics_as_the_user_types(client, tmp_path):
    clean = "input 3x5x5\nconv3x3(16) -> relu -> conv3x3(16) -> relu -> gap -> fc(10)\n"
    uri = await open_doc(client, tmp_path, "typo.cnn", clean)
    assert list(client.diagnostics[uri]) == []
    client.text_document_did_change(
        t.DidChangeTextDocumentParams(
            t.VersionedTextDocumentIdentifier(version=2, uri=uri),
            [t.TextDocumentContentChangeWholeDocument("input 3x32x32\nconv3x3(16, bias=true) -> bn -> maxpol2\n")],
        )
    )
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    (d,) = client.diagnostics[uri]
    assert (d.code, d.severity, d.source) == ("E101", t.DiagnosticSeverity.Error, "cnndsl")
    assert d.range == t.Range(t.Position(1, 32), t.Position(1, 39))
    assert "unknown layer `maxpol2`" in d.message and "hint: did you mean `maxpool2`" in d.message


async def test_warnings_and_lint_codes_with_hints(client, tmp_path):
    uri = await open_doc(
        client, tmp_path, "lint.cnn", "input 3x32x32\nconv3x3(16, bias=true) -> bn -> relu -> fc(10)\n"
    )
    codes = {d.code: d for d in client.diagnostics[uri]}
    assert {"W301", "L002", "L003"} <= set(codes)
    assert (
        codes["L003"].severity == t.DiagnosticSeverity.Warning and "hint: write `bias=false`" in codes["L003"].message
    )


async def test_hover_on_a_layer_and_on_a_block_call(client, tmp_path):
    text = (ROOT / "specs" / "resnet18.cnn").read_text()
    uri = await open_doc(client, tmp_path, "r18.cnn", text)
    line = text.split("\n").index("-> (basic(64) -> basic(64)) as layer1")
    h = await client.text_document_hover_async(t.HoverParams(t.TextDocumentIdentifier(uri), t.Position(line, 5)))
    assert "**basic** `layer1.basic1`" in h.contents.value
    assert "output `Nx64x56x56` · params 73,984 · MACs 231M · receptive field 27 /4" in h.contents.value
    stem = text.split("\n").index(next(x for x in text.split("\n") if x.startswith("conv7x7")))
    h = await client.text_document_hover_async(t.HoverParams(t.TextDocumentIdentifier(uri), t.Position(stem, 1)))
    assert "`conv1`" in h.contents.value and "params 9,408" in h.contents.value and "7 /2" in h.contents.value


async def test_hover_on_a_constant_and_a_block_name(client, tmp_path):
    text = "import resnet\nlet width = 2 * 8\ninput 3x32x32\nconv3x3(width) -> gap -> fc(10)\n"
    uri = await open_doc(client, tmp_path, "names.cnn", text)
    h = await client.text_document_hover_async(t.HoverParams(t.TextDocumentIdentifier(uri), t.Position(1, 6)))
    assert h.contents.value == "**width** = `16`"
    h = await client.text_document_hover_async(t.HoverParams(t.TextDocumentIdentifier(uri), t.Position(0, 1)))
    assert h is None  # `import` is no name


async def test_definition_of_blocks_constants_and_imports(client, tmp_path):
    (tmp_path / "mine.cnn").write_text("let growth = 8\nblock pair(c) { conv3x3(c) -> relu }\n")
    text = 'import resnet\nimport "mine.cnn"\nlet w = 16\ninput 3x32x32\nconv3x3(w) -> basic(w) -> pair(growth)\n'
    uri = await open_doc(client, tmp_path, "defs.cnn", text)

    async def where(line, col):
        loc = await client.text_document_definition_async(
            t.DefinitionParams(t.TextDocumentIdentifier(uri), t.Position(line, col))
        )
        return Path(to_fs_path(loc.uri)).resolve(), loc.range.start.line

    assert await where(4, 8) == (Path(to_fs_path(uri)).resolve(), 2)  # `w` -> its let
    assert await where(4, 16) == ((STDLIB / "resnet.cnn").resolve(), 5)  # `basic` in the standard library
    assert await where(4, 28) == ((tmp_path / "mine.cnn").resolve(), 1)  # `pair` in an imported file
    assert await where(4, 33) == ((tmp_path / "mine.cnn").resolve(), 0)  # an imported `let`
    assert await where(0, 9) == ((STDLIB / "resnet.cnn").resolve(), 0)  # the import itself
    assert await where(1, 10) == ((tmp_path / "mine.cnn").resolve(), 0)


async def test_completion_of_layers_and_keyword_arguments(client, tmp_path):
    text = "input 3x32x32\nblock stem(c, stride=1) { conv3x3(c, stride=stride) }\nconv3x3(16, ) -> stem(8, ) -> m\n"
    uri = await open_doc(client, tmp_path, "complete.cnn", text)

    async def labels(col):
        got = await client.text_document_completion_async(
            t.CompletionParams(t.TextDocumentIdentifier(uri), t.Position(2, col))
        )
        return {i.label: i for i in got.items}

    args = await labels(12)
    assert set(args) == {"out=", "stride=", "pad=", "dilation=", "groups=", "bias=", "table="}
    assert set(await labels(24)) == {"c=", "stride="}
    names = await labels(32)
    assert {"maxpool2", "conv3x3", "dwconv3x3", "fc", "relu", "residual", "stem"} <= set(names)
    assert names["stem"].kind == t.CompletionItemKind.Class and "maxpool" in names["maxpool2"].detail


async def test_document_formatting_is_cnndsl_fmt(client, tmp_path):
    from cnndsl.fmt import format_text

    text = "input 3x32x32\nconv3x3( 16 )->relu  ->gap->fc(10)  # head\n"
    uri = await open_doc(client, tmp_path, "fmt.cnn", text)
    opts = t.FormattingOptions(tab_size=2, insert_spaces=True)
    edits = await client.text_document_formatting_async(t.DocumentFormattingParams(t.TextDocumentIdentifier(uri), opts))
    (edit,) = edits
    assert edit.new_text == format_text(text) and edit.range.start == t.Position(0, 0)
    broken = await open_doc(client, tmp_path, "broken.cnn", "input 3x32x32\nconv3x3(16 -> relu\n")
    assert await client.text_document_formatting_async(
        t.DocumentFormattingParams(t.TextDocumentIdentifier(broken), opts)
    ) in (None, [])
