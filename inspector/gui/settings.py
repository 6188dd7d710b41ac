"""What the app remembers between runs: window layout, last folder and model, view options.

Stored as an INI file in the config folder (``paths.config_dir()/gui.ini``), so
``INSPECTOR_HOME`` moves it too (tests get a fresh one each).
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from inspector.engine import paths

MAX_RECENT = 8


class Settings:
    def __init__(self, path: str | None = None) -> None:
        self.q = QSettings(path or str(paths.config_dir() / "gui.ini"), QSettings.Format.IniFormat)

    # --- generic ------------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        value = self.q.value(key, default)
        if isinstance(default, bool) and isinstance(value, str):  # INI stores everything as text
            return value.lower() == "true"
        if isinstance(default, (int, float)) and not isinstance(default, bool) and value is not None:
            try:
                return type(default)(value)
            except (TypeError, ValueError):
                return default
        return value

    def set(self, key: str, value: Any) -> None:
        self.q.setValue(key, value)

    def get_json(self, key: str, default: Any = None) -> Any:
        text = self.q.value(key)
        if not text:
            return default
        try:
            return json.loads(text)
        except (TypeError, ValueError):
            return default

    def set_json(self, key: str, value: Any) -> None:
        self.q.setValue(key, json.dumps(value))

    def get_bytes(self, key: str) -> QByteArray | None:
        value = self.q.value(key)
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def sync(self) -> None:
        self.q.sync()

    # --- named values -------------------------------------------------------------------------
    @property
    def last_folder(self) -> str:
        return self.get("data/last_folder", "") or ""

    @last_folder.setter
    def last_folder(self, folder: str) -> None:
        self.set("data/last_folder", folder)
        recent = [folder] + [f for f in self.recent_folders if f != folder]
        self.set_json("data/recent_folders", recent[:MAX_RECENT])

    @property
    def recent_folders(self) -> list[str]:
        return [str(f) for f in self.get_json("data/recent_folders", [])]

    @property
    def last_model(self) -> str:
        return self.get("model/last", "") or ""

    @last_model.setter
    def last_model(self, ref: str) -> None:
        self.set("model/last", ref)

    @property
    def opacity(self) -> float:
        return min(1.0, max(0.0, self.get("view/opacity", 0.5)))

    @opacity.setter
    def opacity(self, value: float) -> None:
        self.set("view/opacity", float(value))

    def train_form(self, method: str) -> dict[str, Any]:
        return self.get_json(f"train/{method}", {}) or {}

    def set_train_form(self, method: str, values: dict[str, Any]) -> None:
        self.set_json(f"train/{method}", values)
