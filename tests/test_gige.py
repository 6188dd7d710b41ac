"""GigE Vision through Aravis, against Aravis's simulated GigE Vision camera on the loopback
interface (``arv-fake-gv-camera-0.8``, Debian's aravis-tools, installed by ``./dev``), started by
the test: free-running frames, one picture per software trigger, a lost camera reconnected."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from inspector.data.sources import SourceError, SourceState, open_source
from inspector.data.trigger import TriggerGate, TriggeredSource

FAKE = shutil.which("arv-fake-gv-camera-0.8") or "/usr/bin/arv-fake-gv-camera-0.8"


def start_camera() -> subprocess.Popen:
    if not Path(FAKE).is_file():
        raise RuntimeError("arv-fake-gv-camera-0.8 is not installed: `./dev setup` installs it (apt package aravis-tools)")
    process = subprocess.Popen([FAKE, "-i", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return process


@pytest.fixture
def camera():
    process = start_camera()
    yield process
    process.terminate()
    process.wait(10)


def take(source, n: int, timeout: float = 20.0, stop: threading.Event | None = None, states: list | None = None) -> list:
    stop = stop or threading.Event()
    frames, deadline = [], time.monotonic() + timeout
    for frame in source.frames(stop, on_state=states.append if states is not None else None):
        frames.append(frame)
        if len(frames) >= n or time.monotonic() > deadline:
            break
    stop.set()
    return frames


def test_a_free_running_gige_camera_streams_frames_with_its_settings(camera):
    source = open_source("gige:127.0.0.1?exposure_us=5000&gain=2")
    frames = take(source, 3)
    assert len(frames) == 3 and frames[0].image.shape == (512, 512) and frames[0].image.dtype == np.uint8
    assert not np.array_equal(frames[0].image, frames[2].image), "the simulated camera's pattern moves"
    assert [f.frame_id for f in frames] == [0, 1, 2]


def test_a_software_triggered_camera_takes_one_picture_per_trigger(camera):
    gate, stop = TriggerGate(), threading.Event()
    source = TriggeredSource(open_source("gige:127.0.0.1?trigger=software"), gate)
    frames: list = []

    def run():
        for frame in source.frames(stop):
            frames.append(frame)

    reader = threading.Thread(target=run, daemon=True)
    reader.start()
    time.sleep(1.0)
    assert frames == [], "no trigger, no picture"
    for _ in range(3):
        gate.pull()
    deadline = time.monotonic() + 10
    while len(frames) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    stop.set()
    reader.join(10)
    assert len(frames) == 3 and not reader.is_alive()


def test_a_lost_gige_camera_is_retried_until_it_is_back(camera):
    states: list = []
    stop = threading.Event()
    source = open_source("gige:127.0.0.1")
    frames: list = []

    def run():
        for frame in source.frames(stop, on_state=states.append):
            frames.append(frame)

    reader = threading.Thread(target=run, daemon=True)
    reader.start()
    deadline = time.monotonic() + 15
    while not frames and time.monotonic() < deadline:
        time.sleep(0.05)
    camera.terminate()
    camera.wait(10)
    while not any(s.state == SourceState.LOST for s in states) and time.monotonic() < deadline + 10:
        time.sleep(0.05)
    seen = len(frames)
    again = start_camera()
    try:
        end = time.monotonic() + 30
        while len(frames) <= seen + 2 and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        stop.set()
        reader.join(10)
        again.terminate()
        again.wait(10)
    assert any(s.state == SourceState.LOST for s in states) and len(frames) > seen + 2


@pytest.mark.parametrize("text, message", [
    ("gige:", "needs a camera"),
    ("gige:127.0.0.1?shutter=5", "unknown GigE option"),
    ("gige:127.0.0.1?trigger=hardware", "trigger must be one of"),
    ("gige:127.0.0.1?gain=loud", "gain must be a number"),
])
def test_bad_gige_sources_are_one_line(text, message):
    with pytest.raises(SourceError, match=message):
        open_source(text)
