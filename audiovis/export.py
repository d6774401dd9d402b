"""``python -m audiovis.export NOTEBOOK [-o OUT.html] [--execute]``: a static, offline page of a notebook.

Every widget renders from the widget state saved in the notebook (by ``--execute``, which runs the
notebook with nbclient and stores the state, or by JupyterLab's "Save Widget State Automatically"). The
page is nbconvert's JupyterLab look with the CDN parts replaced: the widget manager
(``@jupyter-widgets/html-manager``, bundled by js/build.mjs into audiovis/static/notebook.js) is inlined,
and MathJax, Mermaid and require.js are left out. A Content-Security-Policy forbids every fetch. audiovis
viewers run the front end saved in their own state (the version that made the notebook); widgets that
need a front-end library this page does not carry show a placeholder that says so (jupyter_bokeh plots
are drawn by the BokehJS an Explorer's output puts in the page); nothing can call the kernel,
so anything computed in Python answers with a message saying so. With ``--execute`` the audio of every
viewer (up to 10 min each) is read from the kernel at the end and put in the page, so playback works.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import AudiovisError

STATE_MIME = "application/vnd.jupyter.widget-state+json"
VIEW_MIME = "application/vnd.jupyter.widget-view+json"
TEMPLATES = Path(__file__).resolve().parent / "export_templates"
STATIC_DIR = Path(__file__).resolve().parent / "static"
WIDGET_SCRIPT = STATIC_DIR / "notebook.js"
WIDGET_STYLES = STATIC_DIR / "notebook.css"

CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval' blob:; style-src 'unsafe-inline'; "
    "img-src data: blob:; media-src data: blob:; font-src data:; worker-src blob:"
)

#: Audio of viewers longer than this is not put in an exported page (a saved viewer page holds any length).
AUDIO_LIMIT_SECONDS = 600
#: The last cell --execute runs (then removes): the audio of every live viewer, keyed by widget model id.
_COLLECT_AUDIO = f"""
def __audiovis_collect_audio():
    import json
    from ipywidgets.widgets import widget as _w
    from audiovis.widgets.viewer import SpectrogramViewer
    from audiovis.widgets.static_page import encode_audio
    found = {{}}
    for w in list(getattr(_w, "_instances", {{}}).values()):
        pcm = getattr(w, "_pcm", None) if isinstance(w, SpectrogramViewer) else None
        if pcm is not None and len(pcm) <= {AUDIO_LIMIT_SECONDS} * w._audio_rate:
            found[w.model_id] = encode_audio(pcm, int(w._audio_rate))[0]
    print("AUDIOVIS-AUDIO " + json.dumps(found))
__audiovis_collect_audio()
del __audiovis_collect_audio
"""

HOW_TO_SAVE_STATE = (
    "run it with `python -m audiovis.export NOTEBOOK --execute`, or in JupyterLab turn on "
    "Settings > Save Widget State Automatically, run the notebook and save it"
)


class NotebookExportError(AudiovisError, ValueError):
    """The notebook cannot be exported as it is (not a notebook, no widget state, a cell failed)."""


@dataclass
class ExportReport:
    """What ``export_notebook`` wrote: the page, its size, the widgets in it and what they lack."""

    path: Path
    size_bytes: int
    widget_views: int
    widget_models: int
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (f"{self.path} ({self.size_bytes / 1e6:.2f} MB): {self.widget_views} widget outputs, "
                f"{self.widget_models} widget models")
        return text + "".join(f"\n  - {note}" for note in self.notes)


def read_notebook(path: str | Path) -> Any:
    """The notebook at ``path`` (nbformat 4), or an error naming what is wrong with the file."""
    import nbformat

    src = Path(path).expanduser()
    if not src.exists():
        raise FileNotFoundError(f"audiovis.export: notebook {src} does not exist")
    if src.is_dir():
        raise IsADirectoryError(f"audiovis.export: {src} is a folder, not a notebook file")
    text = src.read_text(encoding="utf-8", errors="replace")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookExportError(f"audiovis.export: {src} is not a notebook: it is not JSON ({exc})") from None
    if not isinstance(raw, dict) or "cells" not in raw:
        raise NotebookExportError(f"audiovis.export: {src} is JSON but not a Jupyter notebook (no 'cells')")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:
        raise NotebookExportError(f"audiovis.export: {src} is not a valid notebook: {exc}") from None
    return nb


def _widget_views(nb: Any) -> list[str]:
    """Model ids of the widget outputs, in page order."""
    ids = []
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            view = output.get("data", {}).get(VIEW_MIME)
            if isinstance(view, dict) and "model_id" in view:
                ids.append(str(view["model_id"]))
    return ids


def execute_notebook(nb: Any, workdir: Path, *, timeout: int = 600, kernel_name: str | None = None) -> dict:
    """Run every cell with nbclient in ``workdir``, keeping the widget state in the notebook's metadata.

    Returns the audio of every live viewer (``{model_id: audio entry}``, as saved pages store it), read by
    one extra cell run last in the same kernel and then removed, so exported pages can play it.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    collect = nbformat.v4.new_code_cell(_COLLECT_AUDIO)
    nb.cells.append(collect)
    # Bokeh's output_notebook() loads BokehJS from a CDN unless told otherwise: inline it in the outputs
    import os

    bokeh_resources = os.environ.get("BOKEH_RESOURCES")
    os.environ["BOKEH_RESOURCES"] = "inline"
    client = NotebookClient(
        nb, timeout=timeout, kernel_name=kernel_name or "python3", store_widget_state=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        first = str(exc).strip().splitlines()
        raise NotebookExportError(
            f"audiovis.export: a cell raised while executing the notebook: {first[-1] if first else exc}"
        ) from None
    finally:
        if nb.cells and nb.cells[-1] is collect:
            nb.cells.pop()
        if bokeh_resources is None:
            os.environ.pop("BOKEH_RESOURCES", None)
        else:
            os.environ["BOKEH_RESOURCES"] = bokeh_resources
    audio: dict = {}
    for output in collect.get("outputs", []):
        for line in str(output.get("text", "")).splitlines():
            if line.startswith("AUDIOVIS-AUDIO "):
                audio.update(json.loads(line[len("AUDIOVIS-AUDIO "):]))
    return audio


def check_widget_state(nb: Any, name: str) -> tuple[dict, list[str]]:
    """The saved widget state and the notes on it; an error telling how to save it when it is missing."""
    state = nb.metadata.get("widgets", {}).get(STATE_MIME)
    views = _widget_views(nb)
    has_outputs = any(cell.get("outputs") for cell in nb.cells if cell.get("cell_type") == "code")
    code_cells = any(cell.get("cell_type") == "code" and cell.get("source", "").strip() for cell in nb.cells)
    if not state:
        if views:
            raise NotebookExportError(
                f"audiovis.export: {name} has {len(views)} widget output(s) but no saved widget state, so a page "
                f"could not show them: {HOW_TO_SAVE_STATE}"
            )
        if code_cells and not has_outputs:
            raise NotebookExportError(
                f"audiovis.export: {name} has no outputs and no saved widget state (it was never run): {HOW_TO_SAVE_STATE}"
            )
        return {}, []
    models = state.get("state", {})
    notes = []
    missing = [v for v in views if v not in models]
    if missing:
        notes.append(f"{len(missing)} widget output(s) have no saved state (shown as plain text): {HOW_TO_SAVE_STATE}")
    return state, notes


def export_notebook(
    notebook: str | Path,
    output: str | Path | None = None,
    *,
    execute: bool = False,
    timeout: int = 600,
    kernel_name: str | None = None,
) -> ExportReport:
    """Write a static HTML page of ``notebook`` in which its widgets render offline.

    Args:
        notebook: the ``.ipynb`` file.
        output: the page to write (default: the notebook's name with ``.html``); its folder must exist.
        execute: run the notebook first (nbclient, widget state kept); otherwise it must hold saved state.
        timeout: seconds allowed per cell when executing.
        kernel_name: kernel to execute with (default ``python3``, this Python).

    Returns:
        An ``ExportReport``.
    """
    from nbconvert import HTMLExporter

    from .widgets.static_page import check_output_path

    src = Path(notebook).expanduser()
    nb = read_notebook(src)
    out = check_output_path(src.with_suffix(".html") if output is None else output, "audiovis.export")
    if not WIDGET_SCRIPT.is_file():
        raise AudiovisError(f"the notebook page's widget manager is not built ({WIDGET_SCRIPT} is missing); "
                            "run `npm install && npm run build` in js/")
    audio = execute_notebook(nb, src.resolve().parent, timeout=timeout, kernel_name=kernel_name) if execute else {}
    state, notes = check_widget_state(nb, str(src))
    if not execute and state:
        notes.append("Playback is off in this page: the audio is saved only when exporting with --execute")
    exporter = HTMLExporter(template_name="audiovis_export", extra_template_basedirs=[str(TEMPLATES)])
    resources = {
        "metadata": {"name": src.stem},
        "audiovis": {
            "csp": CSP,
            "widget_js": WIDGET_SCRIPT.read_text(encoding="utf-8").replace("</script", "<\\/script"),
            "widget_css": WIDGET_STYLES.read_text(encoding="utf-8") if WIDGET_STYLES.is_file() else "",
            "audio": json.dumps(audio, separators=(",", ":")).replace("<", "\\u003c"),
        },
    }
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    if any(cell.get("cell_type") == "markdown" and "$" in cell.get("source", "") for cell in nb.cells):
        notes.append("Math is shown as TeX source (MathJax is not inlined)")
    out.write_text(body, encoding="utf-8")
    models = state.get("state", {}) if state else {}
    modules = {str(m.get("model_module", "")) for m in models.values()}
    if "@bokeh/jupyter_bokeh" in modules:
        notes.append("Bokeh plots (jupyter_bokeh) are drawn from their saved figure where BokehJS is in the page "
                     "(an Explorer puts it there), but nothing links them to other widgets: that runs in Python "
                     "(explorer.save_html links them in the page)")
    return ExportReport(out, out.stat().st_size, len(_widget_views(nb)), len(models), notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audiovis.export",
        description="Write a static, offline HTML page of a notebook whose widgets render from saved widget state.",
    )
    parser.add_argument("notebook", help="the .ipynb file")
    parser.add_argument("-o", "--output", help="the .html page to write (default: next to the notebook)")
    parser.add_argument("--execute", action="store_true", help="run the notebook first and keep its widget state")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell when executing (default 600)")
    parser.add_argument("--kernel", default=None, help="kernel name for --execute (default python3: this Python)")
    args = parser.parse_args(argv)
    try:
        report = export_notebook(args.notebook, args.output, execute=args.execute, timeout=args.timeout,
                                 kernel_name=args.kernel)
    except (OSError, AudiovisError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
