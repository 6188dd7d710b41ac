"""Digital outputs (the simulated IO card): one pulse per verdict on ok or ng, ERROR on ng."""

from __future__ import annotations

import pytest

from inspector.engine.results_store import ResultsStore
from inspector.engine.sinks import LineOutputs, open_sink
from tests.line.servers import wait_until


def test_each_verdict_pulses_ok_or_ng_once(tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    outputs = LineOutputs.open(["digital://sim?pulse_ms=5"], store, "line1")
    io = outputs.deliveries[0].sink.io
    outputs.start()
    try:
        assert io.read("ready")
        for i, decision in enumerate(["OK", "NG", "OK", "OK"]):
            store.record(source="cam", frame_id=i, model="m", model_version=1, score=float(i), threshold=5.0, decision=decision)
        store.record(source="cam", frame_id=9, model="m", model_version=1, score=float("nan"), threshold=5.0, decision="NG",
                     error="model failed")
        outputs.stored()
        wait_until(lambda: outputs.status()[0].delivered == 5, what="five verdicts")
    finally:
        outputs.stop()
    assert io.pulses("ok") == 3 and io.pulses("ng") == 2 and io.pulses("error") == 1
    assert not io.read("ready"), "a stopped station is not ready"


@pytest.mark.parametrize("url", ["digital://card0", "digital://sim?pulse_ms=0", "digital://sim?pulse_ms=x"])
def test_bad_digital_addresses_are_one_line(url):
    with pytest.raises(ValueError, match="digital"):
        open_sink(url, "s")
