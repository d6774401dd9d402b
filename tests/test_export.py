"""python -m audiovis.export without a browser: clear errors for bad notebooks, no CDN in the page."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from audiovis.export import NotebookExportError, export_notebook, main

VIEW = "application/vnd.jupyter.widget-view+json"


def write(path, cells, metadata=None):
    nb = nbformat.v4.new_notebook(cells=cells, metadata=metadata or {})
    nbformat.write(nb, path)
    return path


def widget_output_cell(model_id="abc"):
    cell = nbformat.v4.new_code_cell("viewer")
    cell.outputs = [nbformat.v4.new_output("display_data", data={VIEW: {"model_id": model_id, "version_major": 2, "version_minor": 0}, "text/plain": "Viewer"})]
    return cell


def test_missing_and_non_notebook_files_are_named(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="notebook .*nope.ipynb does not exist"):
        export_notebook(tmp_path / "nope.ipynb")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        export_notebook(tmp_path)
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{ this is not json")
    with pytest.raises(NotebookExportError, match="is not a notebook: it is not JSON"):
        export_notebook(bad)
    other = tmp_path / "other.ipynb"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(NotebookExportError, match="not a Jupyter notebook"):
        export_notebook(other)
    # the command line says the same, on stderr, with exit status 1
    assert main([str(bad)]) == 1
    assert "not JSON" in capsys.readouterr().err


def test_widget_outputs_without_saved_state_say_how_to_save_it(tmp_path):
    nb = write(tmp_path / "w.ipynb", [widget_output_cell()])
    with pytest.raises(NotebookExportError, match=r"1 widget output\(s\) but no saved widget state.*--execute.*Save Widget State Automatically"):
        export_notebook(nb)
    never_run = write(tmp_path / "n.ipynb", [nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(NotebookExportError, match="never run.*--execute"):
        export_notebook(never_run)
    with pytest.raises(FileNotFoundError, match="folder .*missing does not exist"):
        export_notebook(nb, tmp_path / "missing" / "out.html")


def test_page_of_a_plain_notebook_has_no_cdn_and_no_remote_source(tmp_path):
    nb = write(tmp_path / "plain.ipynb", [nbformat.v4.new_markdown_cell("# Title\nSome $x^2$ math")])
    report = export_notebook(nb)
    html = report.path.read_text()
    assert report.path == tmp_path / "plain.html"
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "a remote script or stylesheet"
    assert "require.js" not in html and "cdn.jsdelivr" not in html and "unpkg.com" not in html
    assert "Content-Security-Policy" in html
    assert any("TeX" in note for note in report.notes)
