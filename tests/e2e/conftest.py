"""Fixtures for the browser tests: one Chromium and one server per kind per session, pages per test.

``lab`` / ``notebook7``: a fresh browser context per test; ``lab_module``: one context per test
module (a notebook shared by its tests); ``jupyter_lab_server``, ``jupyter_notebook_server`` and
``browser``: session-wide. See harness.py for the Notebook API.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import (
    CHROMIUM_PATH,
    Frontend,
    JupyterServer,
    safe_name,
    chromium_missing_reason,
    launch_chromium,
)

E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e is an e2e test, so `-m "not e2e"` leaves the browser alone."""
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright; skipped locally, failed in CI (CI=true), when missing."""
    reason = chromium_missing_reason()
    if reason is not None:
        if _in_ci():
            pytest.fail(f"CI=true and the browser tests cannot run: {reason}", pytrace=False)
        pytest.skip(f"browser tests need {CHROMIUM_PATH} and Playwright: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def jupyter_lab_server(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JupyterServer]:
    """JupyterLab for the whole session (depends on `browser` so a missing browser skips first)."""
    server = JupyterServer.start("lab", tmp_path_factory.mktemp("jupyterlab"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def jupyter_notebook_server(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JupyterServer]:
    """Notebook 7 for the whole session."""
    server = JupyterServer.start("notebook", tmp_path_factory.mktemp("notebook7"))
    yield server
    server.stop()


def _frontend(server: JupyterServer, browser: Any, label: str) -> Iterator[Frontend]:
    frontend = Frontend(server, browser, label=label)
    yield frontend
    frontend.close()


@pytest.fixture
def lab(
    jupyter_lab_server: JupyterServer, browser: Any, request: pytest.FixtureRequest
) -> Iterator[Frontend]:
    """A fresh browser context on JupyterLab for one test."""
    yield from _frontend(jupyter_lab_server, browser, request.node.name)


@pytest.fixture(scope="module")
def lab_module(
    jupyter_lab_server: JupyterServer, browser: Any, request: pytest.FixtureRequest
) -> Iterator[Frontend]:
    """A browser context on JupyterLab shared by the tests of one module."""
    yield from _frontend(jupyter_lab_server, browser, Path(str(request.node.fspath)).stem)


@pytest.fixture
def notebook7(
    jupyter_notebook_server: JupyterServer, browser: Any, request: pytest.FixtureRequest
) -> Iterator[Frontend]:
    """A fresh browser context on Notebook 7 for one test."""
    yield from _frontend(jupyter_notebook_server, browser, request.node.name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failure, screenshot the open pages and save the console log while they still exist."""
    report = yield
    if report.failed and report.when in {"setup", "call"} and Frontend.live:
        stem = safe_name(f"{Path(str(item.fspath)).stem}__{item.name}")
        saved: list[Path] = []
        for i, frontend in enumerate(sorted(Frontend.live, key=lambda f: f.label)):
            saved += frontend.save_failure_artifacts(stem if i == 0 else f"{stem}-ctx{i}")
        if saved:
            listing = "\n".join(str(p.relative_to(E2E_DIR.parent.parent)) for p in saved)
            report.sections.append(("e2e artifacts", listing))
    return report
