"""Frame sources for live inspection: a camera, a stream URL, a video file, a watched folder, a
simulated line (a folder of part images fed as a camera would, at a steady rate).

Every source has the same small interface. ``frames(stop)`` is a generator of ``Frame``s that
handles the life of the connection: it reports each change of ``SourceState`` (connecting,
live, lost, ended) through a callback, and when a camera or stream is lost it retries with
exponential back-off, forever, until asked to stop. Only a finite source (a video file without
looping) ever *ends*; nothing here ends the app.

Two kinds of source differ in what they do when inspection is slower than they are:

* ``drops_frames = True`` (camera, stream, a video file played in real time): the newest frame
  matters, older ones may be skipped (the live loop keeps only the latest one).
* ``drops_frames = False`` (a watched folder: each file is a part; a video file read as fast as
  possible): every frame must be inspected, so the live loop makes the source wait.

No Qt here and no torch: the GUI and the headless CLI use the same classes.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import cv2
import numpy as np

from .images import IMAGE_EXTENSIONS, ImageReadError, read_image

log = logging.getLogger(__name__)


class SourceState(str, Enum):
    CONNECTING = "connecting"
    LIVE = "live"
    LOST = "lost"
    ENDED = "ended"


class SourceLost(Exception):
    """The source stopped delivering (camera unplugged, stream down, folder gone); retried."""


class SourceEnded(Exception):
    """A finite source has no more frames (a video file that does not loop)."""


class SourceError(ValueError):
    """A source description that cannot work at all (no such file, bad index): not retried."""


@dataclass
class Frame:
    image: np.ndarray  # uint8 HxW (gray) or HxWx3 RGB
    frame_id: int  # 0-based count of frames this source delivered (for a video: the frame index)
    timestamp: float  # wall clock (time.time()) when it was captured
    captured: float  # time.perf_counter() when it was captured: latency is measured from here
    source: str  # the source's description
    name: str = ""  # file name for a watched folder; "" otherwise
    path: Path | None = None


@dataclass
class StateChange:
    state: SourceState
    message: str = ""
    attempt: int = 0  # reconnection attempt (1, 2, ...) while lost
    retry_in_s: float = 0.0  # seconds until the next attempt while lost


StateCallback = Callable[[StateChange], None]


@dataclass
class Backoff:
    """Wait times between reconnection attempts: initial, ×factor each time, capped at maximum."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 10.0

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.initial * self.factor ** max(attempt - 1, 0))


class _Stop:
    """Anything with a ``cancelled`` property (CancelToken) or ``is_set()`` (threading.Event)."""

    def __init__(self, stop) -> None:
        self._stop = stop

    def __bool__(self) -> bool:
        if self._stop is None:
            return False
        if hasattr(self._stop, "is_set"):
            return bool(self._stop.is_set())
        return bool(self._stop.cancelled)

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if it was interrupted by a stop request."""
        end = time.monotonic() + seconds
        while not self:
            left = end - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.05))
        return True


class FrameSource:
    """Base class. Subclasses implement ``_open``, ``_read`` and ``_close``.

    ``_open`` raises SourceLost when the device is not there (yet); ``_read`` returns an RGB or
    gray uint8 image, None when there is no new frame yet (a folder with no new file), raises
    SourceLost when the connection broke and SourceEnded at the end of a finite source.
    """

    kind = "source"
    drops_frames = True

    def __init__(self, description: str, backoff: Backoff | None = None) -> None:
        self.description = description
        self.backoff = backoff or Backoff()
        self.state = SourceState.CONNECTING
        self.message = ""
        self._count = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"

    # --- the one loop every source shares -------------------------------------------------
    def frames(self, stop=None, on_state: StateCallback | None = None) -> Iterator[Frame]:
        """Frames until ``stop`` is set (CancelToken or threading.Event) or the source ends.

        A lost connection is retried with back-off for as long as it takes; each state change
        is reported through ``on_state``.
        """
        stop = _Stop(stop)
        attempt = 0

        def report(state: SourceState, message: str = "", retry_in: float = 0.0) -> None:
            self.state, self.message = state, message
            if on_state is not None:
                on_state(StateChange(state, message, attempt, retry_in))

        def lost(error: SourceLost) -> bool:
            """Report, close, wait the back-off; True when a stop request came meanwhile."""
            nonlocal attempt
            attempt += 1
            wait = self.backoff.delay(attempt)
            report(SourceState.LOST, str(error), wait)
            self._close_quietly()
            return stop.sleep(wait)

        try:
            while not stop:
                report(SourceState.CONNECTING, f"opening {self.description}")
                try:
                    self._open()
                except SourceLost as e:
                    if lost(e):
                        return
                    continue
                report(SourceState.LIVE, self.description)
                try:
                    while not stop:
                        image = self._read()
                        if image is not None:
                            attempt = 0
                            yield self._frame(image)
                except SourceEnded as e:
                    report(SourceState.ENDED, str(e) or "end of source")
                    return
                except SourceLost as e:
                    if lost(e):
                        return
        finally:
            self._close_quietly()

    def close(self) -> None:
        self._close_quietly()

    # --- helpers for subclasses --------------------------------------------------------------
    _captured: float | None = None  # perf_counter of the last _read, set by subclasses that know it
    _current_path: Path | None = None  # the file the last _read came from (watched folder)

    def _frame(self, image: np.ndarray) -> Frame:
        path = self._current_path
        captured = self._captured or time.perf_counter()
        frame = Frame(image, self._count, time.time(), captured, self.description, path.name if path else "", path)
        self._count += 1
        self._captured = self._current_path = None
        return frame

    def _close_quietly(self) -> None:
        try:
            self._close()
        except Exception:  # noqa: BLE001 — closing a broken device must not raise
            pass

    # --- to implement -------------------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _read(self) -> np.ndarray | None:
        raise NotImplementedError

    def _close(self) -> None:
        pass


def _bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return image


class _CaptureSource(FrameSource):
    """Shared OpenCV VideoCapture handling for cameras, streams and files."""

    def __init__(self, description: str, backoff: Backoff | None = None) -> None:
        super().__init__(description, backoff)
        self._cap: cv2.VideoCapture | None = None

    def _make_capture(self) -> cv2.VideoCapture:
        raise NotImplementedError

    def _open(self) -> None:
        self._close()
        _quiet_opencv()  # a lost camera is reported once per retry by the source; not by OpenCV too
        cap = self._make_capture()
        if not cap.isOpened():
            cap.release()
            raise SourceLost(f"cannot open {self.description}")
        self._cap = cap

    def _grab(self) -> np.ndarray | None:
        assert self._cap is not None
        ok, image = self._cap.read()
        self._captured = time.perf_counter()
        return _bgr_to_rgb(image) if ok and image is not None else None

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _quiet_opencv() -> None:
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:  # an OpenCV build without the logging utilities
        pass


class CameraSource(_CaptureSource):
    """An OpenCV camera by index (USB/UVC, or whatever backend OpenCV finds)."""

    kind = "camera"

    def __init__(self, index: int, width: int | None = None, height: int | None = None, backoff: Backoff | None = None) -> None:
        super().__init__(f"camera {index}", backoff)
        self.index = index
        self.size = (width, height)

    def _make_capture(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.index)
        if cap.isOpened() and self.size[0] and self.size[1]:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        return cap

    def _read(self) -> np.ndarray | None:
        image = self._grab()
        if image is None:
            raise SourceLost(f"{self.description} stopped delivering frames")
        return image


class StreamSource(_CaptureSource):
    """An RTSP/HTTP(S) stream through OpenCV's FFmpeg backend, with open and read time-outs.

    A stream never ends: when it stops (even at the end of a served file) it is lost and reopened.
    """

    kind = "stream"

    def __init__(self, url: str, timeout_s: float = 5.0, backoff: Backoff | None = None) -> None:
        super().__init__(_redact(url), backoff)
        self.url = url
        self.timeout_ms = int(timeout_s * 1000)

    def _make_capture(self) -> cv2.VideoCapture:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.timeout_ms]
        return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)

    def _read(self) -> np.ndarray | None:
        image = self._grab()
        if image is None:
            raise SourceLost(f"{self.description}: no frame within {self.timeout_ms / 1000:g} s or stream closed")
        return image


class VideoFileSource(_CaptureSource):
    """A video file; ``loop`` starts again at the end (how tests and benchmarks simulate a camera).

    ``realtime`` plays it at its own frame rate (or at ``fps``) and then behaves like a camera:
    frames may be dropped when inspection is slower. Without it every frame is read as fast as
    the inspection takes them, none dropped.
    """

    kind = "video"

    def __init__(
        self,
        path: str | os.PathLike[str],
        loop: bool = False,
        realtime: bool = False,
        fps: float | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.path = Path(path)
        super().__init__(f"video {self.path.name}", backoff)
        self.loop = loop
        self.realtime = realtime or fps is not None
        self.fps = fps
        self.drops_frames = self.realtime
        self._next_due = 0.0
        self._period = 0.0

    def _make_capture(self) -> cv2.VideoCapture:
        if not self.path.is_file():
            raise SourceLost(f"video file not found: {self.path}")
        return cv2.VideoCapture(str(self.path), cv2.CAP_ANY)

    def _open(self) -> None:
        super()._open()
        assert self._cap is not None
        fps = self.fps or self._cap.get(cv2.CAP_PROP_FPS) or 25.0
        self._period = 1.0 / fps if self.realtime and fps > 0 else 0.0
        self._next_due = time.perf_counter()

    def _read(self) -> np.ndarray | None:
        if self._period:
            delay = self._next_due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self._next_due = max(self._next_due + self._period, time.perf_counter() - self._period)
        image = self._grab()
        if image is None:
            if not self.loop:
                raise SourceEnded(f"end of {self.path.name}")
            self._open()  # reopening is more reliable than seeking back with every codec
            image = self._grab()
            if image is None:
                raise SourceLost(f"{self.path.name} has no readable frames")
        return image


DISAPPEARED = "disappeared before it could be read"


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    stable_since: float
    done: bool = False
    first_failure: float | None = None


class FolderSource(FrameSource):
    """New image files in a folder, inspected once each, in the order they appear.

    A file counts only once it is complete: its size and modification time have not changed for
    ``settle_s`` seconds *and* it decodes. A file that stays undecodable (or empty) for
    ``give_up_s`` after it stopped changing is reported through ``on_unreadable`` and skipped; one
    that can never be a part (over the pixel limit, a directory, a broken link) is reported at
    once; one that disappears before it was read is reported as such. Nothing a file contains ends
    the watching: every failure to read one is an ImageReadError, reported. Hidden files (such as
    the ``.name.tmp`` files of writers that write-then-rename) are ignored. Files already in the
    folder when watching starts are skipped unless ``include_existing``.
    """

    kind = "folder"
    drops_frames = False  # every file is a part

    def __init__(
        self,
        folder: str | os.PathLike[str],
        recursive: bool = False,
        include_existing: bool = False,
        poll_s: float = 0.1,
        settle_s: float = 0.3,
        give_up_s: float = 10.0,
        on_unreadable: Callable[[Path, str], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.folder = Path(folder)
        super().__init__(f"folder {self.folder}", backoff)
        self.recursive = recursive
        self.include_existing = include_existing
        self.poll_s = poll_s
        self.settle_s = settle_s
        self.give_up_s = give_up_s
        self.on_unreadable = on_unreadable
        self._seen: dict[Path, _Seen] = {}
        self._ready: list[Path] = []
        self._started = False
        self._last_poll = 0.0

    def _open(self) -> None:
        if not self.folder.is_dir():
            raise SourceLost(f"folder not available: {self.folder}")
        if not self._started:
            self._started = True
            if not self.include_existing:  # what is there now was not made by the line while we watched
                for path, st in self._scan().items():
                    self._seen[path] = _Seen(st.st_size, st.st_mtime_ns, 0.0, done=True)

    def _scan(self) -> dict[Path, os.stat_result]:
        """Every entry with an image name (sub-folders walked when recursive).

        Broken links and other non-files are kept (with their own lstat) so that reading them
        reports why they cannot be parts instead of ignoring them.
        """
        found: dict[Path, os.stat_result] = {}
        try:
            if self.recursive:
                walker = os.walk(self.folder)
            else:
                walker = [(str(self.folder), [], [e.name for e in os.scandir(self.folder)])]
            for dirpath, dirnames, filenames in walker:
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for name in filenames:
                    if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                        continue
                    path = Path(dirpath) / name
                    try:
                        found[path] = path.stat()
                    except OSError:
                        try:
                            found[path] = path.lstat()  # a broken link: reported when read
                        except OSError:
                            continue  # renamed or deleted between listing and stat: never seen
        except OSError as e:
            raise SourceLost(f"folder not available: {self.folder} ({e.strerror or e})") from None
        return found

    def _unreadable(self, path: Path, reason: str) -> None:
        if self.on_unreadable is not None:
            try:
                self.on_unreadable(path, reason)
            except Exception:
                log.exception("on_unreadable callback failed")

    def _poll(self) -> None:
        now = time.monotonic()
        found = self._scan()
        for path in [p for p in self._seen if p not in found]:
            seen = self._seen.pop(path)  # gone: forget it (a new file of the same name is a new part)
            if not seen.done:
                self._unreadable(path, DISAPPEARED)
        candidates = []
        for path, st in found.items():
            seen = self._seen.get(path)
            if seen is None:
                self._seen[path] = _Seen(st.st_size, st.st_mtime_ns, now)
                continue
            if (seen.size, seen.mtime_ns) != (st.st_size, st.st_mtime_ns):
                if seen.done:  # overwritten with a new image: a new part
                    seen.done = False
                seen.size, seen.mtime_ns, seen.stable_since, seen.first_failure = st.st_size, st.st_mtime_ns, now, None
                continue
            if not seen.done and now - seen.stable_since >= self.settle_s:
                candidates.append((st.st_mtime_ns, str(path), path))
        self._ready.extend(p for _, _, p in sorted(candidates) if p not in self._ready)

    def _read(self) -> np.ndarray | None:
        while self._ready:
            path = self._ready.pop(0)
            seen = self._seen.get(path)
            if seen is None or seen.done:
                continue
            try:
                image = read_image(path)
            except ImageReadError as e:
                now = time.monotonic()
                seen.first_failure = seen.first_failure or now
                if not os.path.lexists(path):
                    seen.done = True
                    self._unreadable(path, DISAPPEARED)
                elif not e.transient or now - seen.first_failure >= self.give_up_s:
                    seen.done = True
                    self._unreadable(path, e.reason)
                continue  # maybe still being written: try again on a later poll
            seen.done = True
            self._captured = time.perf_counter()
            self._current_path = path
            return image
        wait = self.poll_s - (time.monotonic() - self._last_poll)
        if wait > 0:
            time.sleep(wait)
        self._last_poll = time.monotonic()
        self._poll()
        return None


SIMULATED_PREFIX = "sim:"  # "sim:FOLDER": the folder's images, fed as a line would
SIMULATED_FPS = 2.0  # parts per second of a simulated line unless told otherwise


class SimulatedLineSource(FrameSource):
    """A production line without a camera: the image files under a folder (e.g. a test split with
    good and defective parts), in a seeded random order, one every ``1 / fps`` seconds, round and
    round until stopped (each round in a new order). Like a camera it does not wait for the
    inspection: a slow model drops parts. The frame's name is the file's path under the folder
    (``crack/0003.png``), so a result says which part it was."""

    kind = "simulated"
    drops_frames = True

    def __init__(self, folder: str | os.PathLike[str], fps: float = SIMULATED_FPS, seed: int = 0, backoff: Backoff | None = None) -> None:
        if not fps > 0:
            raise SourceError(f"a simulated line needs a rate above 0 parts per second, got {fps}")
        self.folder = Path(folder)
        super().__init__(f"simulated line {self.folder.name} at {fps:g}/s", backoff)
        self.period = 1.0 / fps
        self._rng = np.random.default_rng(seed)
        self._queue: list[Path] = []
        self._next_due = 0.0

    def _open(self) -> None:
        if not self.folder.is_dir():
            raise SourceLost(f"folder not available: {self.folder}")
        self._next_due = time.perf_counter()

    def _parts(self) -> list[Path]:
        files = sorted(p for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith("."))
        if not files:
            raise SourceLost(f"no images under {self.folder}")
        return [files[i] for i in self._rng.permutation(len(files))]

    def _read(self) -> np.ndarray | None:
        delay = self._next_due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self._next_due = max(self._next_due + self.period, time.perf_counter() - self.period)
        for _ in range(2):  # a part that cannot be read is skipped, as a line would reject it
            if not self._queue:
                self._queue = self._parts()
            path = self._queue.pop(0)
            try:
                image = read_image(path)
            except ImageReadError as e:
                log.warning("simulated line: skipping %s: %s", path, e)
                continue
            self._captured = time.perf_counter()
            self._current_path = path
            return image
        return None

    def _frame(self, image: np.ndarray) -> Frame:
        path = self._current_path
        frame = super()._frame(image)
        if path is not None:
            frame.name = path.relative_to(self.folder).as_posix()
        return frame


@dataclass
class SourceSpec:
    """What ``open_source`` understood from the user's text (for messages and the GUI)."""

    kind: str
    target: str
    options: dict = field(default_factory=dict)


def parse_source(text: str | int) -> SourceSpec:
    """A camera index (``0``), a URL (``rtsp://…``, ``http://…``), a folder, a video file,
    ``gige:DEVICE`` (a GigE Vision camera, ``data.gige``) or ``sim:FOLDER`` (a simulated line)."""
    text = str(text).strip()
    if not text:
        raise SourceError("no source given: use a camera index, a stream URL, a video file, a folder or sim:FOLDER")
    if text.lower().startswith("gige:"):
        return SourceSpec("gige", text)
    if text.lower().startswith(SIMULATED_PREFIX):
        folder = Path(text[len(SIMULATED_PREFIX):]).expanduser()
        if not folder.is_dir():
            raise SourceError(f"a simulated line needs a folder of part images: no such folder '{folder}'")
        return SourceSpec("simulated", str(folder))
    if text.isdigit():
        return SourceSpec("camera", text)
    if "://" in text and not text.lower().startswith("file://"):
        return SourceSpec("stream", text)
    path = Path(text[7:] if text.lower().startswith("file://") else text).expanduser()
    if path.is_dir():
        return SourceSpec("folder", str(path))
    if path.is_file():
        return SourceSpec("video", str(path))
    raise SourceError(f"no such camera, URL, video file or folder: '{text}'")


def open_source(
    text: str | int,
    loop: bool = False,
    realtime: bool = False,
    fps: float | None = None,
    include_existing: bool = False,
    recursive: bool = False,
    backoff: Backoff | None = None,
    on_unreadable: Callable[[Path, str], None] | None = None,
) -> FrameSource:
    """The right FrameSource for a SOURCE given on the command line or typed in the GUI."""
    spec = parse_source(text)
    if spec.kind == "camera":
        return CameraSource(int(spec.target), backoff=backoff)
    if spec.kind == "stream":
        return StreamSource(spec.target, backoff=backoff)
    if spec.kind == "gige":
        from inspector.data.gige import GigESource

        return GigESource.from_text(spec.target, backoff=backoff)
    if spec.kind == "simulated":
        return SimulatedLineSource(spec.target, fps=fps or SIMULATED_FPS, backoff=backoff)
    if spec.kind == "folder":
        return FolderSource(spec.target, recursive=recursive, include_existing=include_existing, on_unreadable=on_unreadable, backoff=backoff)
    return VideoFileSource(spec.target, loop=loop, realtime=realtime, fps=fps, backoff=backoff)


def _redact(url: str) -> str:
    """A URL without its password, for messages and the results store."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    creds, _, host = rest.partition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def write_video(path: str | os.PathLike[str], frames, fps: float = 30.0, lossless: bool = True) -> Path:
    """Write frames (uint8 gray or RGB, all the same size) as an AVI: FFV1 (lossless) or MJPG.

    For tests, benchmarks and demos that simulate a camera with a file. Written to a temp name and
    renamed, so a watcher never sees half a video. OpenCV's writer needs a path (it picks the
    container from the name), so the bytes cannot go through ``write_bytes_atomic``; the temp name
    is unique (``mkstemp``), removed on any failure, and the file is fsynced before the rename.
    """
    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix or '.avi'}")
    os.close(fd)
    tmp = Path(tmp_name)
    codecs = ["FFV1", "MJPG"] if lossless else ["MJPG"]
    writer = None
    try:
        for codec in codecs:
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), fps, (w, h), True)
            if writer.isOpened():
                break
            writer.release()
            writer = None
        if writer is None:
            raise RuntimeError(f"OpenCV cannot write video ({', '.join(codecs)}) on this machine")
        try:
            for image in _chain(first, frames):
                if image.shape[:2] != (h, w):
                    raise ValueError(f"all frames must be {w}x{h}, got {image.shape[1]}x{image.shape[0]}")
                bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
                writer.write(bgr)
        finally:
            writer.release()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _chain(first, rest):
    yield first
    yield from rest


__all__ = [
    "Backoff",
    "CameraSource",
    "FolderSource",
    "Frame",
    "FrameSource",
    "SourceEnded",
    "SourceError",
    "SourceLost",
    "SourceSpec",
    "SourceState",
    "StateChange",
    "StreamSource",
    "VideoFileSource",
    "open_source",
    "parse_source",
    "write_video",
]
