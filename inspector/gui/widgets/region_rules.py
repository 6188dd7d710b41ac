"""The region-rules form (Evaluate page): the five fields of ``engine.regions.RegionRules`` and
"Save rules to model". The form only collects numbers; the rules check themselves and the
session saves them as a new registry version."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout, QGroupBox, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from inspector.engine.regions import DEFAULT_LEVEL, MAX_REGIONS, RegionRules

OFF = "off"


def _optional(spin: QDoubleSpinBox | QSpinBox, special: str = OFF) -> None:
    """The spin box's minimum reads as ``special`` (the rule is off)."""
    spin.setSpecialValueText(special)
    spin.setKeyboardTracking(False)


class RegionRulesForm(QWidget):
    """A checkable box of the fields (unchecked: save a version without rules) and the save
    button below it. ``saveRequested`` carries the rules (or None); a ValueError from the rules
    is shown under the fields and nothing is saved."""

    saveRequested = Signal(object)  # RegionRules | None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.box = QGroupBox("Region rules")
        self.box.setCheckable(True)
        self.box.setChecked(False)
        self.box.setToolTip("Judge parts also by their defect regions (areas in mm² with a pixel size, else in pixels)")
        self.level = QDoubleSpinBox(decimals=2, minimum=0.01, maximum=1.0, singleStep=0.05, value=DEFAULT_LEVEL)
        self.level.setToolTip("Heat at or above which a pixel belongs to a region (0.6: about the good pixels' 99.9 % quantile)")
        self.pixel_size = QDoubleSpinBox(decimals=4, minimum=0.0, maximum=1000.0, singleStep=0.01)
        _optional(self.pixel_size, "none (areas in px)")
        self.ok_below = QDoubleSpinBox(decimals=3, minimum=0.0, maximum=1e9)
        _optional(self.ok_below)
        self.ok_below.setToolTip("A part NG by its score whose regions are all smaller than this is OK (a tolerated blemish)")
        self.ng_above = QDoubleSpinBox(decimals=3, minimum=0.0, maximum=1e9)
        _optional(self.ng_above)
        self.ng_above.setToolTip("Any region at least this large is NG, whatever the score")
        self.max_regions = QSpinBox(minimum=-1, maximum=MAX_REGIONS - 1, value=-1)
        _optional(self.max_regions)
        self.max_regions.setToolTip("More regions than this is NG")
        self.message = QLabel()
        self.message.setObjectName("hint")
        self.message.setWordWrap(True)
        self.save_button = QPushButton("Save rules to model")
        self.save_button.setToolTip("Write these rules into a new version of the model")
        self.save_button.clicked.connect(self._on_save)
        form = QFormLayout(self.box)
        form.addRow("Region level (heat)", self.level)
        form.addRow("Pixel size (mm)", self.pixel_size)
        form.addRow("OK below area", self.ok_below)
        form.addRow("NG from area", self.ng_above)
        form.addRow("Max regions", self.max_regions)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.box)
        layout.addWidget(self.message)
        layout.addWidget(self.save_button)  # outside the box: unchecked, it saves a version without rules

    def rules(self) -> RegionRules | None:
        """The rules the fields say (None when the box is unchecked); raises ValueError."""
        if not self.box.isChecked():
            return None

        def value(spin) -> float | None:
            return None if spin.value() == spin.minimum() else float(spin.value())

        return RegionRules(
            level=float(self.level.value()),
            pixel_size_mm=value(self.pixel_size),
            ok_below_area=value(self.ok_below),
            ng_above_area=value(self.ng_above),
            max_regions=None if self.max_regions.value() < 0 else int(self.max_regions.value()),
        )

    def set_rules(self, rules: RegionRules | None) -> None:
        """Show a model's rules (None: unchecked, the defaults in the fields)."""
        shown = rules or RegionRules()
        self.box.setChecked(rules is not None)
        self.level.setValue(shown.level)
        self.pixel_size.setValue(shown.pixel_size_mm or 0.0)
        self.ok_below.setValue(shown.ok_below_area or 0.0)
        self.ng_above.setValue(shown.ng_above_area or 0.0)
        self.max_regions.setValue(-1 if shown.max_regions is None else shown.max_regions)
        self.message.setText(f"{rules.describe()}. The evaluation figures above judge by the score alone; the Results "
                             "page, the CLI and live inspection apply the rules." if rules is not None
                             else "No rules: the score alone decides.")

    def _on_save(self) -> None:
        try:
            rules = self.rules()
        except ValueError as e:
            self.message.setText(f"<b>Not saved</b>: {e}")
            return
        self.saveRequested.emit(rules)
