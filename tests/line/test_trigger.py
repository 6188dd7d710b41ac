"""Triggered stations: one part inspected per trigger from the line, none lost, none extra."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
import pytest

from inspector.data.sources import FolderSource, SimulatedLineSource
from inspector.data.trigger import TriggerGate, TriggeredSource
from tests.line.servers import Subscriber, wait_until


@pytest.mark.parametrize("free_running", [True, False])
def test_one_frame_per_trigger_from_a_free_running_or_a_waiting_source(parts_dir, free_running):
    inner = SimulatedLineSource(parts_dir, fps=100) if free_running else FolderSource(parts_dir, include_existing=True)
    gate, stop = TriggerGate(), threading.Event()
    source = TriggeredSource(inner, gate)
    frames: list = []
    reader = threading.Thread(target=lambda: frames.extend(source.frames(stop)), daemon=True)
    reader.start()
    time.sleep(0.3)
    assert frames == [], "no trigger, no frame"
    for _ in range(3):
        gate.pull()
    gate.pull()
    wait_until(lambda: len(frames) == 4, what="four frames for four triggers")
    time.sleep(0.3)
    stop.set()
    reader.join(5)
    assert len(frames) == 4 and not reader.is_alive()


def test_an_mqtt_trigger_inspects_one_part_each(tmp_path, tmp_home, parts_dir, broker):
    from inspector.engine.live_controller import LiveController
    from inspector.engine.predictor import Predictor
    from inspector.engine.trainer import TrainConfig, Trainer

    bundle = Trainer(TrainConfig(method="padim", image_size=32, device="cpu")).fit(sorted(parts_dir.glob("*.png"))[:20])
    controller = LiveController(store_path=tmp_path / "results.sqlite", device="cpu")
    topic = "plant/line1"
    subscriber = Subscriber(broker.port, topic)
    controller.start(SimulatedLineSource(parts_dir, fps=30), Predictor(bundle, "cpu"), sinks=[f"mqtt://127.0.0.1:{broker.port}/{topic}"],
                     station="line1", triggered=True)
    plc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-plc")
    plc.connect("127.0.0.1", broker.port)
    plc.loop_start()
    try:
        wait_until(lambda: subscriber.retained.get(f"{topic}/state", {}).get("state") == "ready", what="the station to be ready")
        time.sleep(0.5)
        assert subscriber.ids() == [], "free-running frames are not inspected"
        for _ in range(3):
            plc.publish(f"{topic}/trigger", b"{}", qos=1).wait_for_publish(5)
        wait_until(lambda: len(subscriber.ids()) == 3, what="three verdicts for three triggers")
        time.sleep(0.5)
        assert len(subscriber.ids()) == 3 and controller.store.count()["total"] == 3
    finally:
        plc.loop_stop()
        controller.close()
        subscriber.close()
