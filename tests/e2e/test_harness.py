"""The harness itself: servers, kernels, notebooks, a two-way widget in JupyterLab and Notebook 7."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from .harness import CellError, Frontend, HarnessError, JupyterServer, Notebook

pytestmark = pytest.mark.e2e

TESTS_DIR = Path(__file__).resolve().parents[1]

# A minimal anywidget: a button that counts its clicks into a synced trait.
CLICKER = textwrap.dedent(
    '''
    import anywidget
    import traitlets

    class Clicker(anywidget.AnyWidget):
        _esm = """
        function render({ model, el }) {
          const button = document.createElement("button");
          button.dataset.testid = "e2e-clicker";
          const label = () => { button.textContent = `clicked ${model.get("count")} times`; };
          const onClick = () => { model.set("count", model.get("count") + 1); model.save_changes(); };
          label();
          button.addEventListener("click", onClick);
          model.on("change:count", label);
          el.appendChild(button);
          return () => { button.removeEventListener("click", onClick); model.off("change:count", label); };
        }
        export default { render };
        """
        count = traitlets.Int(0).tag(sync=True)

    clicker = Clicker()
    '''
)
BUTTON = '[data-testid="e2e-clicker"]'


def _click_round_trip(nb: Notebook, shot: str) -> None:
    nb.run_all()
    button = nb.wait_for_widget(1, BUTTON)
    assert button.inner_text() == "clicked 0 times"
    for _ in range(3):
        button.click()
    assert nb.poll_cell("print(clicker.count)", lambda out: out.strip() == "3") == "3\n"
    # Python -> browser: the rendered label follows the trait.
    nb.run_cell("clicker.count = 41")
    button.filter(has_text="clicked 41 times").wait_for(timeout=10_000)
    button.click()
    assert nb.poll_cell("print(clicker.count)", lambda out: out.strip() == "42") == "42\n"
    assert nb.page.locator(".jp-Dialog").count() == 0, "a dialog covers the notebook"
    path = nb.screenshot(shot)
    # The screenshot shows the rendered page, not a blank or uniform frame.
    assert max(ImageStat.Stat(Image.open(path).convert("L")).stddev) > 10


def test_lab_widget_click_round_trip(lab: Frontend) -> None:
    nb = lab.open_notebook(cells=[CLICKER, "clicker"], name="clicker")
    _click_round_trip(nb, "harness-lab-clicker")


def test_notebook7_widget_click_round_trip(notebook7: Frontend) -> None:
    nb = notebook7.open_notebook(cells=[CLICKER, "clicker"], name="clicker")
    assert nb.page.url.startswith(f"{notebook7.server.url}/notebooks/")
    _click_round_trip(nb, "harness-notebook7-clicker")


def test_run_cell_outputs_and_kernel_state(lab: Frontend) -> None:
    nb = lab.open_notebook(cells=[{"cell_type": "markdown", "source": "# notes"}, "x = 6"])
    results = nb.run_all()
    assert [r.cell_type for r in results] == ["markdown", "code"]
    assert nb.run_cell("import sys\nprint(sys.executable)") == sys.executable + "\n"
    # stdout first, then the text/plain of the last expression; state persists between cells.
    assert nb.run_cell("print('a')\nprint('b')\nx * 7") == "a\nb\n42"
    assert nb.run_cell("import os\nos.getcwd()") == repr(str(lab.server.root_dir))
    result = nb.execute("import sys\nprint('warn', file=sys.stderr)")
    assert (result.stdout, result.stderr) == ("", "warn\n")
    with pytest.raises(CellError, match=r"(?s)ZeroDivisionError.*division by zero") as info:
        nb.run_cell("def f():\n    return 1 / 0\nf()")
    assert "\x1b[" not in str(info.value)
    assert nb.cell_count() == 7
    # Negative indices locate the newest cell; its output area shows the traceback.
    assert "ZeroDivisionError" in nb.output_locator(-1).inner_text()
    # What a person sees in cell 3's output area: the stream, then the prompted result.
    assert nb.output_locator(3).inner_text().split() == ["a", "b", "[3]:", "42"]


def test_notebook_file_opens_and_imports_this_checkout(lab_module: Frontend, tmp_path: Path) -> None:
    # A notebook as stored in notebooks/: no outputs, no kernelspec (the harness sets the venv's).
    stored = {
        "cells": [
            {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": ["# Title"]},
            {
                "cell_type": "code", "id": "c1", "metadata": {}, "execution_count": None,
                "outputs": [],
                "source": ["import os\n", "import audiovis\n",
                           "print(os.path.dirname(os.path.dirname(audiovis.__file__)))"],
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "stored.ipynb"
    path.write_text(json.dumps(stored))
    nb = lab_module.open_notebook(path=path)
    assert nb.path.startswith("stored-") and (lab_module.server.root_dir / nb.path).exists()
    results = nb.run_all()
    assert results[1].stdout == str(TESTS_DIR.parent) + "\n"


def test_run_cell_keeps_the_view_still(lab_module: Frontend) -> None:
    cells = ["from ipywidgets import Button\nbutton = Button(description='still')\nbutton"]
    nb = lab_module.open_notebook(cells=cells + ["print('filler')"] * 25)
    nb.run_all()
    button = nb.wait_for_widget(0, "button")
    before = button.bounding_box()
    # The new cell goes to the bottom, far below the fold; the widget must stay where it was.
    assert nb.run_cell("button.description") == "'still'"
    assert button.bounding_box() == before
    assert nb.cell_locator(-1).bounding_box()["y"] > nb.page.viewport_size["height"]


def test_widget_render_error_is_reported(lab_module: Frontend) -> None:
    broken = (
        "import anywidget\n"
        "class Broken(anywidget.AnyWidget):\n"
        "    _esm = \"export default { render({ el }) {"
        " el.textContent = 'half drawn'; throw new Error('boom in render'); } };\"\n"
        "Broken()"
    )
    nb = lab_module.open_notebook(cells=[broken])
    nb.run_all()
    # The output looks rendered, but the exception must not go unnoticed.
    with pytest.raises(HarnessError, match="boom in render"):
        nb.wait_for_widget(0, "text=half drawn")


def test_run_all_reports_the_failing_cell(lab_module: Frontend) -> None:
    nb = lab_module.open_notebook(cells=["a = 1", "raise ValueError('bad input: a')", "b = 2"])
    with pytest.raises(CellError, match=r"(?s)cell 1 of .*ValueError: bad input: a"):
        nb.run_all()


def test_server_is_isolated(jupyter_lab_server: JupyterServer) -> None:
    specs = jupyter_lab_server.api("GET", "/api/kernelspecs")
    assert specs["kernelspecs"]["python3"]["spec"]["argv"][0] == sys.executable
    # The server's root is the temp root dir the harness writes notebooks into.
    (jupyter_lab_server.root_dir / "marker.txt").write_text("here")
    listing = jupyter_lab_server.api("GET", "/api/contents")
    assert "marker.txt" in {item["name"] for item in listing["content"]}
    # The user settings come from the harness's temp settings dir.
    for plugin, key, value in [
        ("@jupyterlab/apputils-extension:notification", "fetchNews", "false"),
        ("@jupyterlab/notebook-extension:tracker", "windowingMode", "none"),
    ]:
        settings = jupyter_lab_server.api("GET", f"/lab/api/settings/{plugin}")
        assert settings["settings"][key] == value, plugin


def test_missing_browser_fails_in_ci_and_skips_locally(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            f"""
            import sys
            from pathlib import Path
            sys.path.insert(0, {str(TESTS_DIR)!r})
            import e2e.harness
            e2e.harness.CHROMIUM_PATH = Path("/nonexistent/chromium")
            from e2e.conftest import browser  # noqa: F401
            """
        )
    )
    (tmp_path / "test_needs_browser.py").write_text("def test_it(browser):\n    pass\n")
    base_env = {k: v for k, v in os.environ.items() if k != "CI"}
    base_env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)]
    runs = {
        ci: subprocess.Popen(
            command,
            cwd=tmp_path,
            env={**base_env, "CI": "true"} if ci else base_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for ci in (True, False)
    }
    outputs = {ci: proc.communicate(timeout=120)[0] for ci, proc in runs.items()}
    in_ci, local = outputs[True], outputs[False]
    assert runs[True].returncode == 1, in_ci
    assert "1 error" in in_ci and "CI=true" in in_ci and "/nonexistent/chromium" in in_ci, in_ci
    assert runs[False].returncode == 0, local
    assert "1 skipped" in local and "/nonexistent/chromium" in local, local
