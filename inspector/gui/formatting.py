"""How figures read in the window: one place, so every page shows them alike ("–" for none)."""

from __future__ import annotations

import math


def ratio(x: float | None, digits: int = 3) -> str:
    """0.8492 → "0.849"; None or nan → "–"."""
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def percent(x: float | None) -> str:
    """0.103 → "10.3 %"; None or nan → "–"."""
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.1f} %"
