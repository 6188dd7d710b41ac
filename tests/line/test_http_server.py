"""inspector's own HTTP endpoint: the last verdict and the state to read, a trigger to post."""

from __future__ import annotations

import json
import urllib.request

import pytest

from inspector.engine.results_store import ResultsStore
from inspector.engine.sinks import LineOutputs, open_sink
from tests.line.servers import free_port, wait_until


def get(url: str) -> tuple[int, dict | None]:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=5) as r:
        body = r.read()
        return r.status, json.loads(body) if body else None


def test_the_last_verdict_and_the_state_can_be_read_and_a_trigger_posted(tmp_path):
    port = free_port()
    store = ResultsStore(tmp_path / "results.sqlite")
    outputs = LineOutputs.open([f"http+server://127.0.0.1:{port}"], store, "line1")
    outputs.start()
    base = f"http://127.0.0.1:{port}"
    try:
        assert get(f"{base}/verdict") == (204, None)
        for i, decision in enumerate(["OK", "NG", "OK"]):
            store.record(source="cam", frame_id=i, model="m", model_version=4, score=float(i), threshold=1.5, decision=decision)
        outputs.stored()
        wait_until(lambda: outputs.status()[0].delivered == 3, what="three verdicts")
        status, verdict = get(f"{base}/verdict")
        assert status == 200 and verdict["frame"] == 2 and verdict["decision"] == "OK" and verdict["version"] == 4
        assert get(f"{base}/state")[1] == {"station": "line1", "state": "ready", "inspected": 3, "ng": 1, "errors": 0}
        request = urllib.request.Request(f"{base}/trigger", data=b"", method="POST")
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5) as r:
            assert r.status == 202
        assert outputs.gate.pulled == 1
    finally:
        outputs.stop()


def test_an_address_with_a_path_is_refused():
    with pytest.raises(ValueError, match="no path or options"):
        open_sink("http+server://127.0.0.1:8080/verdicts", "s")
