"""GigE Vision / GenICam cameras through Aravis (its GObject introspection bindings).

``gige:DEVICE`` opens a camera by its Aravis device id or IP address (``gige:CAMERA-IP``,
``gige:127.0.0.1`` for Aravis's simulated camera ``arv-fake-gv-camera-0.8 -i 127.0.0.1``), with
options after a ``?``: ``exposure_us=``, ``gain=``, ``trigger=free|software``. Free-running, the
camera streams and the newest frame wins, as any camera; with ``trigger=software`` it takes one
picture per ``fire()`` (a line trigger through ``data.trigger.TriggeredSource``). A lost camera
(unplugged, a timeout) is retried like any source. Mono8, RGB8, BGR8 and the 8-bit Bayer formats
are read; anything else is refused in one line with what to set instead.

Aravis is optional: the system package ``gir1.2-aravis-0.8`` and ``pip install inspector[gige]``
(PyGObject). Without it a ``gige:`` source is a one-line SourceError.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs

import cv2
import numpy as np

from inspector.data.sources import Backoff, FrameSource, SourceError, SourceLost

GIGE_PREFIX = "gige:"
TRIGGERS = ("free", "software")
POP_TIMEOUT_S = 2.0  # free-running: no frame for this long is a lost camera
BUFFERS = 4

# GenICam PFNC pixel formats read here -> conversion to RGB (None: gray as it is)
_FORMATS = {
    0x01080001: ("Mono8", None),
    0x02180014: ("RGB8", "rgb"),
    0x02180015: ("BGR8", cv2.COLOR_BGR2RGB),
    0x01080009: ("BayerRG8", cv2.COLOR_BayerBG2RGB),  # OpenCV names Bayer patterns from the second row
    0x01080008: ("BayerGR8", cv2.COLOR_BayerGB2RGB),
    0x0108000A: ("BayerGB8", cv2.COLOR_BayerGR2RGB),
    0x0108000B: ("BayerBG8", cv2.COLOR_BayerRG2RGB),
}


def _aravis():
    try:
        import gi

        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis
    except (ImportError, ValueError) as e:
        raise SourceError(f"GigE Vision cameras need Aravis: install the system package gir1.2-aravis-0.8 and "
                          f"pip install 'inspector[gige]' ({e})") from None
    return Aravis


def aravis_available() -> bool:
    try:
        _aravis()
    except SourceError:
        return False
    return True


def parse_gige(text: str) -> tuple[str, dict[str, str]]:
    """``gige:DEVICE?key=value&…`` -> (device, options); SourceError for unknown options."""
    device, _, query = text[len(GIGE_PREFIX):].partition("?")
    options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - {"exposure_us", "gain", "trigger"})
    if not device.strip():
        raise SourceError("gige: needs a camera: gige:DEVICE-ID or gige:IP-ADDRESS")
    if unknown:
        raise SourceError(f"unknown GigE option(s) {', '.join(unknown)}: use exposure_us, gain, trigger")
    return device.strip(), options


class GigESource(FrameSource):
    kind = "gige"
    drops_frames = True

    def __init__(self, device: str, exposure_us: float | None = None, gain: float | None = None, trigger: str = "free",
                 backoff: Backoff | None = None) -> None:
        if trigger not in TRIGGERS:
            raise SourceError(f"GigE trigger must be one of {', '.join(TRIGGERS)}, got {trigger!r}")
        for name, value in (("exposure_us", exposure_us), ("gain", gain)):
            if value is not None and not (np.isfinite(value) and value >= 0):
                raise SourceError(f"GigE {name} must be a number of at least 0, got {value}")
        self.aravis = _aravis()  # a missing library is a set-up error now, not a lost camera later
        super().__init__(f"GigE camera {device}" + (", software trigger" if trigger == "software" else ""), backoff)
        self.device, self.exposure_us, self.gain, self.trigger = device, exposure_us, gain, trigger
        self._camera = self._stream = None
        self._lock = threading.Lock()

    @classmethod
    def from_text(cls, text: str, backoff: Backoff | None = None) -> GigESource:
        device, options = parse_gige(text)

        def number(key: str) -> float | None:
            if key not in options:
                return None
            try:
                return float(options[key])
            except ValueError:
                raise SourceError(f"GigE {key} must be a number, got {options[key]!r}") from None

        return cls(device, number("exposure_us"), number("gain"), options.get("trigger", "free"), backoff)

    @property
    def fires(self) -> bool:
        """Whether the camera takes a picture only when told (``fire``)."""
        return self.trigger == "software"

    def _open(self) -> None:
        arv = self.aravis
        try:
            camera = arv.Camera.new(self.device)
            if self.exposure_us is not None:
                low, high = camera.get_exposure_time_bounds()
                if not low <= self.exposure_us <= high:
                    raise SourceError(f"exposure_us {self.exposure_us:g} is outside the camera's {low:g}..{high:g}")
                camera.set_exposure_time(self.exposure_us)
            if self.gain is not None:
                low, high = camera.get_gain_bounds()
                if not low <= self.gain <= high:
                    raise SourceError(f"gain {self.gain:g} is outside the camera's {low:g}..{high:g}")
                camera.set_gain(self.gain)
            pixel_format = camera.get_pixel_format()
            if pixel_format not in _FORMATS:
                raise SourceError(f"{self.description}: pixel format {camera.get_pixel_format_as_string()} is not read here; "
                                  f"set the camera to {', '.join(n for n, _ in _FORMATS.values())}")
            if self.fires:
                camera.set_trigger("Software")
            else:
                camera.clear_triggers()
                camera.set_acquisition_mode(arv.AcquisitionMode.CONTINUOUS)
            stream = camera.create_stream(None, None)
            size = camera.get_payload()
            for _ in range(BUFFERS):
                stream.push_buffer(arv.Buffer.new_allocate(size))
            camera.start_acquisition()
        except SourceError:
            raise
        except Exception as e:  # noqa: BLE001 — GLib.Error and friends: the camera is not (yet) there
            raise SourceLost(f"cannot open {self.description}: {getattr(e, 'message', e)}") from None
        with self._lock:
            self._camera, self._stream = camera, stream

    def fire(self) -> bool:
        """Take one picture now (software trigger); False when the camera is not open."""
        with self._lock:
            if self._camera is None:
                return False
            self._camera.software_trigger()
            return True

    def _read(self) -> np.ndarray | None:
        timeout_s = 0.2 if self.fires else POP_TIMEOUT_S
        buffer = self._stream.timeout_pop_buffer(int(timeout_s * 1e6))
        if buffer is None:
            if self.fires:
                return None  # waiting for the next trigger
            raise SourceLost(f"{self.description}: no frame within {POP_TIMEOUT_S:g} s")
        self._captured = time.perf_counter()
        try:
            if buffer.get_status() != self.aravis.BufferStatus.SUCCESS:
                return None  # an incomplete frame (lost packets): the next one counts
            width, height = buffer.get_image_width(), buffer.get_image_height()
            name, conversion = _FORMATS[buffer.get_image_pixel_format()]
            data = np.frombuffer(buffer.get_data(), np.uint8)
            channels = 3 if name in ("RGB8", "BGR8") else 1
            image = data[: width * height * channels].reshape(height, width, channels) if channels == 3 else \
                data[: width * height].reshape(height, width)
            if conversion is None or conversion == "rgb":
                return image.copy()
            return cv2.cvtColor(image, conversion)
        finally:
            self._stream.push_buffer(buffer)

    def _close(self) -> None:
        with self._lock:
            camera, self._camera, self._stream = self._camera, None, None
        if camera is not None:
            try:
                camera.stop_acquisition()
            except Exception:  # noqa: BLE001 — a camera that is gone cannot be stopped
                pass
