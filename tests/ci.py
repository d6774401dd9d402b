"""Whether the tests run in CI, and skipping that fails there instead: CI must run every test."""

from __future__ import annotations

import os

import pytest

#: Values of the CI variable that mean "this is CI" (GitHub/GitLab set "true"; others "1" or "yes").
TRUTHY = frozenset({"1", "true", "yes"})  # the same set as tests/e2e/conftest.py (copied into stand-alone test runs)


def in_ci() -> bool:
    """True when the environment variable CI holds a truthy value (case and spaces ignored)."""
    return os.environ.get("CI", "").strip().lower() in TRUTHY


def skip_or_fail(reason: str) -> None:
    """Skip the test with ``reason`` locally; fail it in CI, where a missing requirement is an error."""
    if in_ci():
        pytest.fail(f"CI={os.environ.get('CI')!r}: {reason}", pytrace=False)
    pytest.skip(reason)
