"""A sort/filter proxy keyed by one filter word, re-filtered with the Qt 6.9+ API where present."""

from __future__ import annotations

from PySide6.QtCore import QSortFilterProxyModel


class KeyFilterProxy(QSortFilterProxyModel):
    """Subclasses implement ``accepts(row, parent)`` for ``self.key`` (``"all"`` shows everything)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.key = "all"

    def set_key(self, key: str) -> None:
        self._refilter(lambda: setattr(self, "key", key))

    def refilter(self) -> None:
        self._refilter(lambda: None)

    def _refilter(self, change) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9
            self.beginFilterChange()
            change()
            self.endFilterChange()
        else:
            change()
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent) -> bool:
        return self.key == "all" or self.accepts(row, parent)

    def accepts(self, row: int, parent) -> bool:
        raise NotImplementedError
