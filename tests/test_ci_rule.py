"""The CI rule: any truthy CI value makes a missing requirement fail instead of skip."""

from __future__ import annotations

import pytest

from .ci import in_ci, skip_or_fail


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", " Yes "])
def test_truthy_ci_values_are_ci_and_fail_instead_of_skipping(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match="espeak-ng"):
        skip_or_fail("espeak-ng is not installed")


@pytest.mark.parametrize("value", [None, "", "0", "false", "no", "off"])
def test_other_values_skip_outside_ci(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception, match="espeak-ng"):
        skip_or_fail("espeak-ng is not installed")


def test_a_missing_tool_fails_the_fixture_in_ci(monkeypatch):
    from . import conftest

    monkeypatch.setenv("CI", "1")
    monkeypatch.setattr(conftest.shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="espeak-ng"):
        conftest._need_tool("espeak-ng")
