"""How figures read in the window: one place, so every page shows them alike ("–" for none)."""

from __future__ import annotations

import math


def ratio(x: float | None, digits: int = 3) -> str:
    """0.8492 → "0.849"; None or nan → "–"."""
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def percent(x: float | None) -> str:
    """0.103 → "10.3 %"; None or nan → "–"."""
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.1f} %"


def human_duration(seconds: float) -> str:
    """A span for people: 42 s, 3 min 05 s, 2 h 07 min."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"
