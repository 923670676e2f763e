"""Networks in Jupyter: a small notebook is executed by a real kernel (nbclient + ipykernel), and what the
cells display is the layer table (HTML) and, with a layout engine, the diagram (SVG)."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (the test extra)")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (the test extra)")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (the test extra)")

from cnndsl.draw import available  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_a_loaded_network_displays_its_table_and_diagram(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"import cnndsl\nnet = cnndsl.load({str(ROOT / 'specs' / 'lenet5.cnn')!r})\nnet"),
        nbformat.v4.new_code_cell("net.output_shape"),
    ]
    nbclient.NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    (shown,) = nb.cells[0].outputs
    assert shown.output_type == "execute_result"
    html = shown.data["text/html"]
    assert "<b>lenet5</b>" in html and "61,706 parameters" in html and "<th>layer</th>" in html
    assert "<td>conv1</td><td>conv</td><td>Nx6x28x28</td>" in html
    if available("svg"):
        assert shown.data["image/svg+xml"].startswith("<svg") and "conv1" in shown.data["image/svg+xml"]
        assert '<div class="cnndsl-diagram"><svg' in html
    else:
        assert "image/svg+xml" not in shown.data
    assert nb.cells[1].outputs[0].data["text/plain"] == "(10,)"


def test_without_a_layout_engine_the_table_alone_is_shown(monkeypatch):
    import cnndsl

    monkeypatch.setenv("CNNDSL_LAYOUT", "none")
    net = cnndsl.load(ROOT / "specs" / "googlenet.cnn")
    assert net._repr_svg_() is None
    html = net._repr_html_()
    assert "<svg" not in html and "<details><summary>197 layers</summary>" in html
