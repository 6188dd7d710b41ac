"""Where the app keeps its data: platformdirs folders, or everything under $INSPECTOR_HOME when set
(tests, portable installs)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "inspector"


def _base(kind: str) -> Path:
    home = os.environ.get("INSPECTOR_HOME")
    if home:
        return Path(home) / kind
    return Path(
        {
            "data": platformdirs.user_data_dir,
            "cache": platformdirs.user_cache_dir,
            "logs": platformdirs.user_log_dir,
            "config": platformdirs.user_config_dir,
        }[kind](APP, appauthor=False)
    )


def data_dir() -> Path:
    """Models, results database and datasets the app materialised."""
    return _ensure(_base("data"))


def cache_dir() -> Path:
    """Training checkpoints (for resume) and other re-creatable files."""
    return _ensure(_base("cache"))


def log_dir() -> Path:
    return _ensure(_base("logs"))


def config_dir() -> Path:
    return _ensure(_base("config"))


def models_dir() -> Path:
    return _ensure(data_dir() / "models")


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
