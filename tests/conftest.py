"""Shared test setup: headless Qt and a throw-away INSPECTOR_HOME."""

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def tmp_home(tmp_path, monkeypatch):
    """Point INSPECTOR_HOME at a fresh temp folder so tests never touch the real one."""
    home = tmp_path / "inspector-home"
    home.mkdir()
    monkeypatch.setenv("INSPECTOR_HOME", str(home))
    return home
