"""A station file (TOML): everything a live station needs, so a line PC starts with one command
(``inspector live --station FILE``) and the Live page can open and save it.

    name = "line1-cells"                 # the station's name in every verdict
    source = "sim:/data/elpv/test"       # camera index, stream URL, video, folder or sim:FOLDER
    fps = 5.0                            # optional: sim:FOLDER's parts per second, a video's rate
    model = "elpv"                       # registry name (follows promotions), name@vN, or a model file
    roi = [0, 0, 300, 300]               # optional: x, y, width, height in frame pixels
    trigger = "free"                     # "free" (every frame) or "line" (one part per trigger from a sink)
    sinks = ["mqtt://127.0.0.1:1883/plant/line1", "opcua://127.0.0.1:4840"]

Unknown keys and wrong types are refused in one line that names the file and the key: a typo
must not silently run a station without its PLC output.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from inspector.atomic import write_bytes_atomic

TRIGGERS = ("free", "line")


class StationError(ValueError):
    """A station file that cannot be used (one line with the file's name)."""


@dataclass
class Station:
    name: str = "station"
    source: str = ""
    model: str = ""
    fps: float | None = None
    roi: list[int] | None = None
    trigger: str = "free"
    sinks: list[str] = field(default_factory=list)

    @property
    def triggered(self) -> bool:
        return self.trigger == "line"

    @classmethod
    def load(cls, path: str | Path) -> Station:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise StationError(f"cannot read the station file {path}: {e.strerror or e}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise StationError(f"{path} is not a valid TOML station file: {e}") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: dict, where: str = "station") -> Station:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise StationError(f"{where}: unknown key(s) {', '.join(unknown)}; a station has {', '.join(sorted(known))}")

        def text(key: str, default: str = "") -> str:
            value = data.get(key, default)
            if not isinstance(value, str):
                raise StationError(f"{where}: {key} must be text, got {value!r}")
            return value

        station = cls(name=text("name", "station").strip() or "station", source=text("source"), model=text("model"),
                      trigger=text("trigger", "free"))
        if station.trigger not in TRIGGERS:
            raise StationError(f"{where}: trigger must be one of {', '.join(TRIGGERS)}, got {station.trigger!r}")
        if "fps" in data:
            fps = data["fps"]
            if isinstance(fps, bool) or not isinstance(fps, int | float) or not (math.isfinite(fps) and 0 < fps <= 1000):
                raise StationError(f"{where}: fps must be a number above 0 and at most 1000, got {fps!r}")
            station.fps = float(fps)
        if "roi" in data:
            roi = data["roi"]
            if not (isinstance(roi, list) and len(roi) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in roi)):
                raise StationError(f"{where}: roi must be four whole numbers [x, y, width, height], got {roi!r}")
            station.roi = list(roi)
        sinks = data.get("sinks", [])
        if not (isinstance(sinks, list) and all(isinstance(s, str) for s in sinks)):
            raise StationError(f"{where}: sinks must be a list of addresses (text), got {sinks!r}")
        station.sinks = list(sinks)
        return station

    def to_toml(self) -> str:
        def value(v) -> str:
            if isinstance(v, str):  # a TOML basic string: JSON's escapes are TOML's
                return json.dumps(v, ensure_ascii=False)
            if isinstance(v, list):
                return "[" + ", ".join(value(x) for x in v) + "]"
            return repr(v)

        lines = [f"{f.name} = {value(getattr(self, f.name))}" for f in fields(self) if getattr(self, f.name) is not None]
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write the file whole or not at all."""
        path = Path(path)
        write_bytes_atomic(path, self.to_toml().encode("utf-8"))
        return path
