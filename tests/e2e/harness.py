"""Real-browser test harness: a Jupyter server, Debian's Chromium driven by Playwright, notebooks.

Every browser test of the project goes through it (fixtures in tests/e2e/conftest.py)::

    import pytest

    pytestmark = pytest.mark.e2e
    VIEWER = '[data-testid="audiovis-viewer"]'

    def test_click_selects(lab):             # `notebook7`: Notebook 7; `lab_module`: shared per module
        nb = lab.open_notebook(cells=[       # writes an .ipynb into the server root, opens it in a
            "import audiovis as av",         # new page and waits for an idle kernel; or
            "viewer = av.SpectrogramViewer(spec)\nviewer",  # open_notebook(path="notebooks/x.ipynb")
        ])
        nb.run_all()                         # CellError (plain-text traceback) if a cell raised
        widget = nb.wait_for_widget(1, VIEWER)   # visible in cell 1's output, no widget error
        widget.click()
        out = nb.poll_cell("print(viewer.selected_patches)", lambda text: text.strip() != "[]")
        assert out == "[17]\n"
        nb.screenshot("after-click")         # -> tests/e2e/screenshots/after-click.png

Notebook API: ``run_cell(source) -> str`` appends a code cell, runs it and returns its stdout plus
its ``text/plain`` result (``execute`` returns a ``CellResult`` with stdout, stderr, outputs);
``poll_cell`` re-runs one cell until a predicate holds (ipywidgets may hold a front-end update back
until the kernel acknowledged the previous one); ``rerun_cell(i)``; ``output_locator(i)``,
``cell_locator(i)`` (negative indices count from the end); ``wait_for(selector)``;
``wait_for_widget(i, selector)``; ``screenshot(name)``; ``page`` (Playwright) and ``evaluate(js)``.
Running a cell keeps the page's scroll position (``keep_scroll=True``), so coordinates measured
before stay valid. ``nb.page_errors`` holds uncaught page exceptions; ``frontend.console`` and
``frontend.dialogs`` record the console and any alert/confirm dialogs (for XSS checks). Kernels run
the venv's Python with this checkout importable and the server root as working directory
(``frontend.server.root_dir``: put input files there). A failing test gets
``screenshots/<module>__<test>.png`` and ``.console.log`` (console plus server log).

One server per kind per session (``JupyterServer.start``): 127.0.0.1, random port and token, every
Jupyter directory in a temp dir, no news/update popups, JupyterLab windowing off (all cells in the
DOM). Debian's Chromium at /usr/bin/chromium; no browser is ever downloaded.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import psutil

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # the browser tests then skip (or fail in CI) with the reason
    PlaywrightTimeout = TimeoutError  # type: ignore[misc, assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page, Playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = Path(__file__).resolve().parent / "screenshots"

CHROMIUM_PATH = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
VIEWPORT = {"width": 1280, "height": 900}

ServerKind = Literal["lab", "notebook"]

# Settings written into the temp JupyterLab settings dir (shared by Lab and Notebook 7).
# Notifications: never ask about news (a toast covering the notebook) and never check for updates.
# Windowing "none": every cell stays in the DOM, so the output of any cell can be located.
USER_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}

WIDGET_ERROR_TEXTS = ("Loading widget...", "Error displaying widget")

# Uncaught page errors of the Jupyter front ends themselves, not of anything under test:
# (server kind, message, a string in the stack). Notebook 7.6's shortcut-settings handler throws
# this on every page load, with or without our settings.
KNOWN_FRONTEND_ERRORS = (
    (
        "notebook",
        "Cannot read properties of undefined (reading 'schema')",
        "/static/notebook/notebook_core.",
    ),
)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class HarnessError(RuntimeError):
    """The server, browser or notebook did not reach the expected state."""


class CellError(AssertionError):
    """A cell raised in the kernel; the message holds the plain-text traceback."""


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython tracebacks carry them)."""
    return _ANSI.sub("", text)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def safe_name(text: str) -> str:
    """`text` reduced to characters safe in a file name (test ids carry brackets and colons)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "unnamed"


# --------------------------------------------------------------------------------------------------
# Browser


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None when Chromium and Playwright are available."""
    if not CHROMIUM_PATH.exists():
        return f"Chromium not found at {CHROMIUM_PATH} (install Debian's `chromium` package)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"Playwright for Python is not importable: {exc}"
    return None


def launch_chromium(playwright: Playwright) -> Browser:
    """Launch Debian's Chromium headless; Playwright never downloads a browser for this project."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM_PATH), args=list(CHROMIUM_ARGS), headless=True
    )


# --------------------------------------------------------------------------------------------------
# Server


def _write_user_settings(settings_dir: Path) -> None:
    for plugin, values in USER_SETTINGS.items():
        target = settings_dir / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values, indent=2))


def _write_kernelspec(data_dir: Path) -> None:
    """A `python3` kernelspec running this interpreter; the temp data dir shadows any other one."""
    spec_dir = data_dir / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (audiovis venv)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))


def _server_config(port: int, token: str, root_dir: Path) -> str:
    return "\n".join(
        [
            "c.ServerApp.ip = '127.0.0.1'",
            f"c.ServerApp.port = {port}",
            "c.ServerApp.port_retries = 0",
            "c.ServerApp.open_browser = False",
            f"c.ServerApp.root_dir = {str(root_dir)!r}",
            f"c.IdentityProvider.token = {token!r}",
            "c.ServerApp.allow_root = True",  # containers and CI often run as root
            "c.ServerApp.terminals_enabled = False",
            "c.LabApp.extension_manager = 'readonly'",  # never query PyPI for extensions
            "c.LabApp.news_url = None",
            "c.LabApp.check_for_updates_class = 'jupyterlab.NeverCheckForUpdate'",
            "c.LabApp.expose_app_in_browser = True",
            "c.JupyterNotebookApp.expose_app_in_browser = True",
            "c.LanguageServerManager.autodetect = False",
            "",
        ]
    )


@dataclass
class JupyterServer:
    """A JupyterLab or Notebook 7 server on 127.0.0.1, isolated from the user's Jupyter config."""

    kind: ServerKind
    root_dir: Path
    port: int
    token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log_file: Any = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, kind: ServerKind, workdir: Path, *, timeout: float = 90.0) -> JupyterServer:
        """Start `jupyter lab` or `jupyter notebook` from this venv with all state under `workdir`."""
        workdir = Path(workdir)
        root_dir = workdir / "root"
        dirs = {
            "JUPYTER_CONFIG_DIR": workdir / "config",
            "JUPYTER_DATA_DIR": workdir / "data",
            "JUPYTER_RUNTIME_DIR": workdir / "runtime",
            "JUPYTERLAB_SETTINGS_DIR": workdir / "settings",
            "JUPYTERLAB_WORKSPACES_DIR": workdir / "workspaces",
            "IPYTHONDIR": workdir / "ipython",
        }
        for path in [root_dir, *dirs.values()]:
            path.mkdir(parents=True, exist_ok=True)
        _write_user_settings(dirs["JUPYTERLAB_SETTINGS_DIR"])
        _write_kernelspec(dirs["JUPYTER_DATA_DIR"])

        env = dict(os.environ)
        env.update({key: str(value) for key, value in dirs.items()})
        env["JUPYTER_PATH"] = str(dirs["JUPYTER_DATA_DIR"])  # replaces any user-set search path
        # The kernel inherits this environment: `import audiovis` resolves to this checkout.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env.pop("JUPYTER_TOKEN", None)
        env.pop("JUPYTER_CONFIG_PATH", None)

        executable = Path(sys.executable).with_name("jupyter")
        if not executable.exists():
            raise HarnessError(f"`jupyter` not found next to the interpreter: {executable}")

        last_error: Exception | None = None
        for attempt in range(3):  # the random port can be taken between probing and binding
            port, token = _free_port(), secrets.token_hex(24)
            config_path = dirs["JUPYTER_CONFIG_DIR"] / "jupyter_server_config.py"
            config_path.write_text(_server_config(port, token, root_dir))
            config_path.chmod(0o600)
            log_path = workdir / f"server-{attempt}.log"
            log_file = log_path.open("wb")
            process = subprocess.Popen(
                [str(executable), kind],
                cwd=root_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            server = cls(kind, root_dir, port, token, process, log_path, log_file)
            try:
                server._wait_ready(timeout)
                server._check_kernelspec()
                return server
            except HarnessError as exc:
                last_error = exc
                server.stop()
        raise HarnessError(f"jupyter {kind} did not start: {last_error}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(
                    f"exited with code {self.process.returncode}; log:\n{self.log_tail()}"
                )
            try:
                self.api("GET", "/api/status", timeout=2)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        raise HarnessError(
            f"/api/status did not answer within {timeout:.0f} s; log:\n{self.log_tail()}"
        )

    def _check_kernelspec(self) -> None:
        specs = self.api("GET", "/api/kernelspecs")
        argv = specs["kernelspecs"]["python3"]["spec"]["argv"]
        if argv[0] != sys.executable:
            raise HarnessError(f"kernelspec python3 runs {argv[0]!r}, expected {sys.executable!r}")

    def api(self, method: str, path: str, body: Any = None, *, timeout: float = 10.0) -> Any:
        """Call the server's REST API with the token; returns the decoded JSON (or None)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def page_url(self, notebook_path: str, *, workspace: str) -> str:
        """URL that opens `notebook_path` (relative to the root dir) in this server's UI."""
        quoted = urllib.request.pathname2url(notebook_path)
        if self.kind == "lab":
            # A fresh named workspace per page: no layout restored from another test's page.
            return f"{self.url}/lab/workspaces/{workspace}/tree/{quoted}?token={self.token}"
        return f"{self.url}/notebooks/{quoted}?token={self.token}"

    def log_tail(self, lines: int = 60) -> str:
        self._log_file.flush()
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kernel_pids(self) -> list[int]:
        """Process ids of the processes this server started: its kernels (in their own sessions)."""
        return [child.pid for child in self._children()]

    def stop(self, timeout: float = 20.0) -> None:
        """Shut the server and its kernels down: /api/shutdown first, signals as a fallback."""
        kernels = self._children()  # remembered: they outlive a server killed by a signal
        if self.process.poll() is None:
            try:
                self.api("POST", "/api/shutdown", timeout=timeout)
            except (OSError, urllib.error.URLError):
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(5)
        _gone, alive = psutil.wait_procs(kernels, timeout=5)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        self._log_file.close()


# --------------------------------------------------------------------------------------------------
# Browser pages and notebooks

# Installed in every page: finds the notebook panel showing `path` in JupyterLab or Notebook 7
# (both expose the application as window.jupyterapp with `expose_app_in_browser`).
_JS_INIT = """
window.__panel = (path) => {
  const app = window.jupyterapp;
  if (!app || !app.shell) return null;
  for (const widget of app.shell.widgets('main')) {
    if (widget.context && widget.context.path === path && widget.content && widget.content.model) {
      return widget;
    }
  }
  return null;
};
"""

_JS_READY = """
(path) => {
  const panel = __panel(path);
  if (!panel || !panel.context.isReady) return false;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' && kernel.connectionStatus === 'connected';
}
"""

_JS_IDLE = """
(path) => {
  const panel = __panel(path);
  const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle';
}
"""

# Starts a command on the notebook; completion is polled (page.evaluate itself has no timeout).
# With keepScroll, every scrolled element is put back when the command is done, so page
# coordinates taken before a run_cell stay valid (activating the new cell scrolls to it).
_JS_START = """
([path, command, index, source, runId, keepScroll]) => {
  const app = window.jupyterapp;
  const panel = __panel(path);
  const notebook = panel.content;
  const scrolled = keepScroll
    ? Array.from(document.querySelectorAll('*'))
        .filter((e) => e.scrollHeight > e.clientHeight || e.scrollWidth > e.clientWidth)
        .map((e) => [e, e.scrollTop, e.scrollLeft])
    : [];
  const restore = () => {
    for (const [e, top, left] of scrolled) {
      if (e.scrollTop !== top) e.scrollTop = top;
      if (e.scrollLeft !== left) e.scrollLeft = left;
    }
  };
  if (source !== null) {
    notebook.model.sharedModel.insertCell(index, {cell_type: 'code', source: source});
  }
  if (index !== null) {
    notebook.activeCellIndex = index;
    notebook.deselectAll();
  }
  app.shell.activateById(panel.id);
  window.__e2eRuns = window.__e2eRuns || {};
  const state = window.__e2eRuns[runId] = {done: false, ok: null, error: null};
  Promise.resolve(app.commands.execute(command)).then(
    (ok) => { restore(); state.done = true; state.ok = ok; },
    (err) => { restore(); state.done = true; state.error = String(err && err.stack || err); },
  );
}
"""

_JS_RUN_DONE = """
([path, runId]) => {
  const state = window.__e2eRuns[runId];
  const panel = __panel(path);
  const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return state.done && !!kernel && kernel.status === 'idle';
}
"""

_JS_CELLS = """
(path) => {
  const cells = __panel(path).content.model.cells;
  const result = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    result.push({
      cell_type: cell.type,
      execution_count: cell.type === 'code' ? cell.executionCount : null,
      outputs: cell.type === 'code' ? cell.outputs.toJSON() : [],
    });
  }
  return result;
}
"""


@dataclass(frozen=True)
class CellResult:
    """What one executed cell produced, as stored in the notebook model of the page."""

    index: int
    cell_type: str
    execution_count: int | None
    outputs: list[dict[str, Any]]

    @staticmethod
    def _text(value: str | list[str]) -> str:
        return "".join(value) if isinstance(value, list) else value

    @property
    def stdout(self) -> str:
        return "".join(
            self._text(o["text"])
            for o in self.outputs
            if o["output_type"] == "stream" and o.get("name") == "stdout"
        )

    @property
    def stderr(self) -> str:
        return "".join(
            self._text(o["text"])
            for o in self.outputs
            if o["output_type"] == "stream" and o.get("name") == "stderr"
        )

    @property
    def result(self) -> str:
        """`text/plain` of the execute result (the cell's last expression), '' if none."""
        for output in self.outputs:
            if output["output_type"] == "execute_result":
                return self._text(output.get("data", {}).get("text/plain", ""))
        return ""

    @property
    def text(self) -> str:
        """stdout followed by the `text/plain` result: what `run_cell` returns."""
        return self.stdout + self.result

    @property
    def error(self) -> str | None:
        """Plain-text traceback if the cell raised, else None."""
        for output in self.outputs:
            if output["output_type"] == "error":
                trace = "\n".join(output.get("traceback", []))
                return strip_ansi(trace) or f"{output.get('ename')}: {output.get('evalue')}"
        return None


class Notebook:
    """One notebook open in its own browser page, with its own kernel."""

    def __init__(self, frontend: Frontend, page: Page, path: str) -> None:
        self.frontend = frontend
        self.page = page
        self.path = path
        self.page_errors: list[str] = []  # uncaught exceptions in this page (e.g. a widget's render)
        self._runs = itertools.count()

    # ---- locating things -------------------------------------------------------------------------

    def cell_count(self) -> int:
        return int(self.evaluate("(p) => __panel(p).content.model.cells.length", self.path))

    def _index(self, index: int) -> int:
        count = self.cell_count()
        resolved = index + count if index < 0 else index
        if not 0 <= resolved < count:
            raise IndexError(f"cell index {index} out of range for {count} cells")
        return resolved

    def cell_locator(self, index: int) -> Locator:
        """The cell widget `index` (negative counts from the end)."""
        return self.page.locator(".jp-Notebook .jp-Cell").nth(self._index(index))

    def output_locator(self, index: int) -> Locator:
        """The output area of code cell `index`; widgets it displays are inside."""
        return self.cell_locator(index).locator(".jp-Cell-outputArea").first

    def wait_for(self, selector: str, *, timeout: float = 30.0, state: str = "visible") -> Locator:
        """Wait until `selector` matches a visible element on the page; returns its first match."""
        locator = self.page.locator(selector).first
        locator.wait_for(state=state, timeout=timeout * 1000)  # type: ignore[arg-type]
        return locator

    def wait_for_widget(
        self, index: int, selector: str, *, timeout: float = 30.0, allow_page_errors: bool = False
    ) -> Locator:
        """Wait for `selector` inside output `index`; fail if the widget manager shows an error or
        the page had an uncaught exception (a widget's `render` throwing lands there)."""
        output = self.output_locator(index)
        widget = output.locator(selector).first
        try:
            widget.wait_for(state="visible", timeout=timeout * 1000)
        except PlaywrightTimeout as exc:
            raise HarnessError(
                f"{selector} not visible in output {index} after {timeout:.0f} s; output text: "
                f"{output.inner_text()!r}"
            ) from exc
        text = output.inner_text()
        for bad in WIDGET_ERROR_TEXTS:
            if bad in text:
                raise HarnessError(f"output {index} shows {bad!r}: {text!r}")
        if self.page_errors and not allow_page_errors:
            raise HarnessError(f"uncaught errors in the page: {self.page_errors}")
        return widget

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def screenshot(self, name: str, *, full_page: bool = False) -> Path:
        """Save a PNG of the page as tests/e2e/screenshots/<name>.png and return its path."""
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{safe_name(name)}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    # ---- running code ----------------------------------------------------------------------------

    def wait_until_idle(self, *, timeout: float = 60.0) -> None:
        """Wait until the notebook's kernel reports idle (e.g. after a widget sent it messages)."""
        self.page.wait_for_function(_JS_IDLE, arg=self.path, timeout=timeout * 1000)

    def _run(
        self, command: str, index: int | None, source: str | None, timeout: float, keep_scroll: bool
    ) -> None:
        run_id = f"run{next(self._runs)}"
        self.evaluate(_JS_START, [self.path, command, index, source, run_id, keep_scroll])
        try:
            self.page.wait_for_function(
                _JS_RUN_DONE,
                arg=[self.path, run_id],
                timeout=timeout * 1000,
            )
        except PlaywrightTimeout as exc:
            raise HarnessError(
                f"{command} on {self.path} did not finish within {timeout:.0f} s"
                f" (kernel busy, dead or a dialog open?)"
            ) from exc
        state = self.evaluate("(id) => window.__e2eRuns[id]", run_id)
        if state["error"]:
            raise HarnessError(f"{command} failed in the page: {state['error']}")

    def results(self) -> list[CellResult]:
        """Every cell's execution count and outputs, read from the page's notebook model."""
        cells = self.evaluate(_JS_CELLS, self.path)
        return [
            CellResult(i, cell["cell_type"], cell["execution_count"], cell["outputs"])
            for i, cell in enumerate(cells)
        ]

    def execute(
        self, source: str, *, timeout: float = 60.0, keep_scroll: bool = True
    ) -> CellResult:
        """Append a code cell with `source`, run it, wait for the idle kernel; raise CellError on error.

        `keep_scroll` puts the page's scroll positions back afterwards (running a cell scrolls to it),
        so mouse coordinates measured before stay valid.
        """
        index = self.cell_count()
        self._run("notebook:run-cell", index, source, timeout, keep_scroll)
        return self._checked(index)

    def run_cell(self, source: str, *, timeout: float = 60.0, keep_scroll: bool = True) -> str:
        """Append and run a code cell; returns its stdout plus `text/plain` result."""
        return self.execute(source, timeout=timeout, keep_scroll=keep_scroll).text

    def rerun_cell(
        self, index: int, *, timeout: float = 60.0, keep_scroll: bool = True
    ) -> CellResult:
        """Execute the existing code cell `index` again."""
        resolved = self._index(index)
        self._run("notebook:run-cell", resolved, None, timeout, keep_scroll)
        return self._checked(resolved)

    def poll_cell(
        self,
        source: str,
        until: Callable[[str], bool],
        *,
        timeout: float = 20.0,
        interval: float = 0.2,
    ) -> str:
        """Run `source` in one new cell, re-running it until `until(text)` holds; returns the text.

        For reading kernel state right after a browser interaction: ipywidgets may hold a front-end
        update back until the kernel has acknowledged the previous one.
        """
        deadline = time.monotonic() + timeout
        result = self.execute(source, timeout=timeout)
        while not until(result.text):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"after {timeout:.0f} s the output of {source!r} is still {result.text!r}"
                )
            time.sleep(interval)
            result = self.rerun_cell(result.index, timeout=timeout)
        return result.text

    def run_all(self, *, timeout: float = 300.0, keep_scroll: bool = True) -> list[CellResult]:
        """Run every cell (like Run > Run All Cells); raise CellError naming the first failing cell."""
        self._run("notebook:run-all-cells", None, None, timeout, keep_scroll)
        results = self.results()
        for result in results:
            if result.error is not None:
                raise CellError(f"cell {result.index} of {self.path} raised:\n{result.error}")
        not_run = [r.index for r in results if r.cell_type == "code" and r.execution_count is None]
        if not_run:
            raise HarnessError(f"cells {not_run} of {self.path} were not executed")
        return results

    def _checked(self, index: int) -> CellResult:
        result = self.results()[index]
        if result.error is not None:
            raise CellError(f"cell {index} of {self.path} raised:\n{result.error}")
        if result.execution_count is None:
            raise HarnessError(f"cell {index} of {self.path} was not executed")
        return result

    def visible_dialogs(self) -> list[str]:
        """Texts of the JupyterLab dialogs shown on the page (a dialog would cover the notebook)."""
        return self.page.locator(".jp-Dialog").all_inner_texts()

    def close(self) -> None:
        """Close the page and shut its kernel down."""
        if not self.page.is_closed():
            self.page.close()
        server = self.frontend.server
        try:
            for session in server.api("GET", "/api/sessions"):
                if session.get("path") == self.path:
                    server.api("DELETE", f"/api/sessions/{session['id']}")
        except (OSError, urllib.error.URLError) as exc:
            self.frontend.console.append(f"[harness] shutting down the kernel of {self.path}: {exc}")


def _to_cell(cell: str | Mapping[str, Any]) -> dict[str, Any]:
    """An nbformat 4.5 cell (written directly: importing nbformat costs seconds of jsonschema)."""
    kind, source = ("code", cell) if isinstance(cell, str) else (
        cell.get("cell_type", "code"), cell.get("source", "")
    )
    base = {"id": uuid.uuid4().hex[:8], "metadata": {}, "source": source}
    if kind == "markdown":
        return {"cell_type": "markdown", **base}
    if kind == "code":
        return {"cell_type": "code", "execution_count": None, "outputs": [], **base}
    raise ValueError(f"cell_type must be 'code' or 'markdown', got {kind!r}")


class Frontend:
    """A browser context on one Jupyter server; each opened notebook gets its own page."""

    _names: ClassVar[Iterator[int]] = itertools.count()  # unique notebook file names per session
    live: ClassVar[set[Frontend]] = set()  # open contexts, read by the failure hook in conftest.py

    def __init__(self, server: JupyterServer, browser: Browser, label: str = "page") -> None:
        self.server = server
        self.label = safe_name(label)
        self.context: BrowserContext = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        self.notebooks: list[Notebook] = []
        self.console: list[str] = []
        self.dialogs: list[str] = []
        Frontend.live.add(self)

    def _watch(self, page: Page, notebook: Notebook) -> None:
        def on_page_error(error: Any) -> None:
            stack = str(getattr(error, "stack", "") or "")
            for kind, message, where in KNOWN_FRONTEND_ERRORS:
                if self.server.kind == kind and str(error) == message and where in stack:
                    self.console.append(f"[pageerror, known {kind} front-end error] {error}")
                    return
            notebook.page_errors.append(str(error))
            self.console.append(f"[pageerror] {stack or error}")

        page.on("console", lambda msg: self.console.append(f"[{msg.type}] {msg.text}"))
        page.on("pageerror", on_page_error)

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            self.console.append(f"[dialog] {dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)

    def write_notebook(
        self,
        cells: Iterable[str | Mapping[str, Any]] | None = None,
        *,
        path: str | Path | None = None,
        name: str | None = None,
    ) -> str:
        """Write a notebook into the server's root dir; returns its path relative to the root."""
        if (cells is None) == (path is None):
            raise ValueError("give exactly one of cells= or path=")
        if path is not None:
            source = Path(path)
            if not source.is_absolute():
                source = REPO_ROOT / source
            notebook = json.loads(source.read_text(encoding="utf-8"))
            if notebook.get("nbformat") != 4:
                raise ValueError(f"{source}: expected an nbformat 4 notebook")
            stem = name or source.stem
        else:
            notebook = {
                "cells": [_to_cell(c) for c in cells or []],
                "metadata": {"language_info": {"name": "python"}},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
            stem = name or self.label
        notebook.setdefault("metadata", {})["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (audiovis venv)",
            "language": "python",
        }
        relative = f"{safe_name(stem)}-{next(Frontend._names)}.ipynb"
        (self.server.root_dir / relative).write_text(json.dumps(notebook, indent=1), encoding="utf-8")
        return relative

    def open_notebook(
        self,
        cells: Iterable[str | Mapping[str, Any]] | None = None,
        *,
        path: str | Path | None = None,
        name: str | None = None,
        timeout: float = 60.0,
    ) -> Notebook:
        """Write the notebook (cells as sources, or a copy of `path`), open it, wait for an idle kernel.

        Cells are strings (code) or ``{"cell_type": "markdown", "source": ...}``; nothing runs yet.
        """
        relative = self.write_notebook(cells, path=path, name=name)
        page = self.context.new_page()
        notebook = Notebook(self, page, relative)
        self._watch(page, notebook)
        page.add_init_script(_JS_INIT)
        self.notebooks.append(notebook)
        page.goto(self.server.page_url(relative, workspace=Path(relative).stem))
        try:
            page.wait_for_function(_JS_READY, arg=relative, timeout=timeout * 1000)
        except PlaywrightTimeout as exc:
            raise HarnessError(
                f"{relative} did not open with an idle kernel within {timeout:.0f} s; console:\n"
                + "\n".join(self.console[-30:])
            ) from exc
        # More room for the notebook: JupyterLab opens a fresh workspace with the file browser shown.
        page.evaluate("() => { const shell = window.jupyterapp.shell; shell.collapseLeft?.(); }")
        return notebook

    def pages(self) -> list[Page]:
        return [nb.page for nb in self.notebooks if not nb.page.is_closed()]

    def save_failure_artifacts(self, stem: str) -> list[Path]:
        """Screenshot every open page and write the console log; returns the files written."""
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for i, page in enumerate(self.pages()):
            target = SCREENSHOT_DIR / (f"{stem}.png" if i == 0 else f"{stem}-{i}.png")
            try:
                page.screenshot(path=str(target))
                written.append(target)
            except Exception as exc:  # a crashed page must not hide the test's own failure
                self.console.append(f"[harness] screenshot failed: {exc}")
        log = SCREENSHOT_DIR / f"{stem}.console.log"
        log.write_text(
            "\n".join(self.console)
            + f"\n\n--- jupyter {self.server.kind} server log (tail) ---\n"
            + self.server.log_tail(100)
            + "\n"
        )
        written.append(log)
        return written

    def close(self) -> None:
        for notebook in self.notebooks:
            try:
                notebook.close()
            except Exception as exc:  # keep closing the others; teardown must not mask the test
                self.console.append(f"[harness] closing {notebook.path} failed: {exc}")
        self.context.close()
        Frontend.live.discard(self)

