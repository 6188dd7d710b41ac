"""Every verdict reaches every sink, in order, through a broker restart and a receiver that is
down, and nothing stalls inspection; against a real Mosquitto and a real HTTP receiver."""

from __future__ import annotations

import time

import pytest

from inspector.engine.results_store import ResultsStore
from inspector.engine.sinks import LineOutputs, open_sink
from inspector.engine.sinks.message import SCHEMA
from tests.line.servers import Subscriber, in_order_once, wait_until

TOPIC = "plant/line1/verdicts"


def record(store: ResultsStore, outputs: LineOutputs, n: int, start: int = 0) -> list[int]:
    ids = []
    for i in range(start, start + n):
        ids.append(store.record(source="test", frame_id=i, model="m", model_version=2, score=float(i % 7), threshold=5.0,
                                decision="NG" if i % 7 > 5 else "OK", rule="score"))
        outputs.stored()
    return ids


def test_every_verdict_arrives_in_order_through_a_broker_restart_and_a_receiver_outage(tmp_path, broker, receiver):
    store = ResultsStore(tmp_path / "results.sqlite")
    subscriber = Subscriber(broker.port, TOPIC)
    outputs = LineOutputs.open([f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", receiver.url], store, "line1")
    outputs.start()
    try:
        expected = [f"{store.store_id}:{i}" for i in record(store, outputs, 15)]
        wait_until(lambda: in_order_once(subscriber.ids()) == expected and receiver.ids() == expected, what="the first 15 verdicts")

        receiver.failing = True
        broker.stop()
        started = time.perf_counter()
        expected += [f"{store.store_id}:{i}" for i in record(store, outputs, 15, start=15)]
        assert time.perf_counter() - started < 5, "a sink that is down never stalls inspection"
        wait_until(lambda: all(s.down_since is not None for s in outputs.status()), what="both sinks to show as down")
        status = {s.key: s for s in outputs.status()}
        assert all(s.backlog > 0 and s.alarm for s in status.values())

        broker.start()  # same port, its persistence kept the subscriber's session
        receiver.failing = False
        wait_until(lambda: in_order_once(subscriber.ids()) == expected and in_order_once(receiver.ids()) == expected,
                   timeout=40, what="all 30 verdicts after the outage",
                   show=lambda: f"mqtt {in_order_once(subscriber.ids())}, http {in_order_once(receiver.ids())}, {outputs.status()}")
        wait_until(lambda: all(s.backlog == 0 and not s.alarm for s in outputs.status()), what="the backlogs to empty")
    finally:
        outputs.stop()
        subscriber.close()
    first = receiver.bodies[0]
    assert first["schema"] == SCHEMA and first["station"] == "line1" and first["model"] == "m" and first["version"] == 2
    assert first["decision"] == "OK" and first["score"] == 0.0 and first["threshold"] == 5.0 and first["stored"] is True
    assert [b["decision"] for b in receiver.bodies if b["frame"] == 6][0] == "NG"
    assert subscriber.retained[f"{TOPIC}/state"]["state"] == "offline"  # said on a clean stop


def test_a_new_process_resumes_where_each_sink_stopped_and_a_new_sink_starts_at_now(tmp_path, receiver):
    db = tmp_path / "results.sqlite"
    store = ResultsStore(db)
    receiver.failing = True
    outputs = LineOutputs.open([receiver.url], store, "line1")
    outputs.start()
    ids = record(store, outputs, 5)
    outputs.stop(drain_s=0)  # as if killed: nothing was acknowledged
    store.close()

    store = ResultsStore(db)
    receiver.failing = False
    late = LineOutputs.open([f"{receiver.url}/late"], store, "line1")  # first seen now: only what comes next
    outputs = LineOutputs.open([receiver.url], store, "line1")
    for o in (outputs, late):
        o.start()
    try:
        ids += record(store, outputs, 2, start=5)
        late.stored()
        wait_until(lambda: len(in_order_once(receiver.ids("/verdicts"))) == 7 and len(receiver.ids("/verdicts/late")) == 2,
                   what="the backlog and the new verdicts")
    finally:
        outputs.stop()
        late.stop()
    every = [f"{store.store_id}:{i}" for i in ids]
    assert in_order_once(receiver.ids("/verdicts")) == every, "the first sink delivered all 7, in order"
    assert receiver.ids("/verdicts/late") == every[5:], "the late sink got only the 2 recorded after it appeared"


@pytest.mark.parametrize("url, message", [
    ("ftp://127.0.0.1/x", "unknown sink"),
    ("mqtt:///topic", "names no host"),
    ("mqtt://127.0.0.1:99999/t", "port"),
    ("mqtt://127.0.0.1/a/#", "not allowed"),
    ("mqtt://127.0.0.1/a/+", "cannot hold"),
])
def test_a_bad_sink_address_is_one_line(url, message):
    with pytest.raises(ValueError, match=message):
        open_sink(url, "s")


def test_an_unstored_verdict_goes_out_as_ng_and_a_stored_ok_never_becomes_ok_without_a_number(tmp_path, receiver):
    from inspector.engine.sinks.message import unstored_verdict

    store = ResultsStore(tmp_path / "results.sqlite")
    outputs = LineOutputs.open([receiver.url], store, "line1")
    outputs.start()
    try:
        outputs.unstored(unstored_verdict("line1", frame_id=3, frame_name="", source="cam", timestamp=time.time(), model="m",
                                          model_version=1, score=0.1, threshold=5.0, decision="OK", why="disk full"))
        store.record(source="cam", frame_id=4, model="m", model_version=1, score=float("nan"), threshold=5.0, decision="OK")
        store.record(source="cam", frame_id=5, model="m", model_version=1, score=float("nan"), threshold=5.0, decision="NG",
                     error="model failed")
        outputs.stored()
        wait_until(lambda: len(receiver.bodies) == 3, what="three verdicts")
    finally:
        outputs.stop()
    by_frame = {b["frame"]: b for b in receiver.bodies}
    assert by_frame[3]["decision"] == "NG" and by_frame[3]["stored"] is False and by_frame[3]["error"] == "disk full"
    assert by_frame[4]["decision"] == "NG" and by_frame[4]["score"] is None  # NaN: fail closed
    assert by_frame[5]["decision"] == "ERROR" and by_frame[5]["error"] == "model failed"


def test_a_test_verdict_reaches_each_sink_with_or_without_a_run(tmp_path, broker, receiver):
    from inspector.engine.live_controller import LiveController

    controller = LiveController(store_path=tmp_path / "results.sqlite")
    subscriber = Subscriber(broker.port, TOPIC)
    urls = [f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", receiver.url, "http://127.0.0.1:1/nobody"]
    try:
        answers = controller.send_test_verdict(urls, station="line1", timeout=2)
        assert answers[receiver.url] == "" and answers[f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"] == ""
        assert "not reached" in answers["http://127.0.0.1:1/nobody"]
        wait_until(lambda: len(subscriber.ids()) == 1, what="the test verdict over MQTT")
    finally:
        subscriber.close()
    body = receiver.bodies[0]
    assert body["test"] is True and body["decision"] == "NG" and body["station"] == "line1"
