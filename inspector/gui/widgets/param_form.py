"""An editor for a method's hyper-parameters, built from its Config dataclass defaults."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QFormLayout, QLineEdit, QSpinBox, QWidget


class ParamForm(QWidget):
    """One row per option: int → spin box, float → spin box, bool → check box, str → text."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layout_ = QFormLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.editors: dict[str, QWidget] = {}
        self.defaults: dict[str, Any] = {}

    def set_fields(self, defaults: dict[str, Any], values: dict[str, Any] | None = None,
                   ranges: dict[str, tuple[float, float]] | None = None) -> None:
        """``ranges``: each numeric option's allowed range (the method config's bounds)."""
        while self.layout_.rowCount():
            self.layout_.removeRow(0)
        self.editors.clear()
        self.defaults = dict(defaults)
        for key, default in defaults.items():
            span = (ranges or {}).get(key)
            editor = _editor_for(default, span)
            self.editors[key] = editor
            editor.setToolTip(f"{key} (default {default}" + (f", {span[0]:g}..{span[1]:g})" if span else ")"))
            self.layout_.addRow(key.replace("_", " "), editor)
        self.set_values({**defaults, **(values or {})})

    def set_values(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            editor = self.editors.get(key)
            if editor is None:
                continue
            try:
                if isinstance(editor, QCheckBox):
                    editor.setChecked(bool(value))
                elif isinstance(editor, QSpinBox):
                    editor.setValue(int(value))
                elif isinstance(editor, QDoubleSpinBox):
                    editor.setValue(float(value))
                else:
                    editor.setText(value if isinstance(value, str) else json.dumps(value))
            except (TypeError, ValueError):
                continue  # a stored value that no longer fits: keep the default

    def values(self) -> dict[str, Any]:
        out = {}
        for key, editor in self.editors.items():
            if isinstance(editor, QCheckBox):
                out[key] = editor.isChecked()
            elif isinstance(editor, QSpinBox):
                out[key] = editor.value()
            elif isinstance(editor, QDoubleSpinBox):
                out[key] = editor.value()
            elif isinstance(self.defaults.get(key), str):
                out[key] = editor.text()
            else:  # lists, tuples, None: edited as JSON
                try:
                    out[key] = json.loads(editor.text())
                except ValueError:
                    out[key] = editor.text()
        return out

    def changed_values(self) -> dict[str, Any]:
        """Only the options that differ from the method's defaults."""
        return {k: v for k, v in self.values().items() if v != self.defaults.get(k)}


def _editor_for(default: Any, span: tuple[float, float] | None = None) -> QWidget:
    if isinstance(default, bool):
        return QCheckBox()
    if isinstance(default, int):
        box = QSpinBox()
        low, high = span or (-1_000_000, 1_000_000)
        box.setRange(int(max(low, -2**31)), int(min(high, 2**31 - 1)))
        return box
    if isinstance(default, float):
        box = QDoubleSpinBox()
        box.setDecimals(8 if span and 0 < span[0] < 1e-6 else 6)
        box.setRange(*(span or (-1e9, 1e9)))
        box.setSingleStep(abs(default) / 10 if default else 0.1)
        box.setStepType(QDoubleSpinBox.StepType.AdaptiveDecimalStepType)
        return box
    return QLineEdit()
