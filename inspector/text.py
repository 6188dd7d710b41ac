"""How values and errors appear inside one-line messages: short, whatever they hold."""

from __future__ import annotations

from typing import Any


def shown(value: Any) -> str:
    """``repr(value)``, cut to about 60 characters (a hostile value may be huge or deeply nested)."""
    try:
        text = repr(value)
    except RecursionError:
        return f"a deeply nested {type(value).__name__}"
    return text if len(text) <= 60 else f"{text[:50]}… ({len(text)} characters)"


def first_line(error: BaseException, limit: int = 120) -> str:
    """The first line of an error's message (its type name when it has none), at most ``limit`` characters."""
    lines = str(error).strip().splitlines()
    line = lines[0] if lines else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
