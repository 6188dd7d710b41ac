"""inspector's own small HTTP endpoint for the line: the last verdict and the station's state to
read, and a trigger to post, for a PLC or a plant system that speaks HTTP but takes no webhook.

    http+server://HOST:PORT          (default port 8080; HOST to listen on)

    GET  /verdict    the last verdict (the message of docs/line-outputs/README.md), 204 before the first
    GET  /state      {"station", "state", "inspected", "ng", "errors"}
    POST /trigger    one part inspected (with trigger = "line"); 202

A verdict counts as delivered once it is the one ``GET /verdict`` answers: like OPC UA or Modbus
with the handshake off, a reader that polls slower than parts come sees only the latest (use the
webhook, MQTT or a handshake when every verdict matters).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from inspector.engine.decision import NG, OK
from inspector.engine.sinks.base import Sink, SinkError
from inspector.engine.sinks.message import ERROR, encode


class HttpServerSink(Sink):
    scheme = "http+server"
    default_port = 8080

    def __init__(self, url: str, station: str) -> None:
        super().__init__(url, station)
        if self.parts.path not in ("", "/") or self.parts.query:
            raise ValueError(f"sink {url!r}: inspector's HTTP endpoint takes no path or options (it serves /verdict, /state, /trigger)")
        self._lock = threading.Lock()
        self._last: dict[str, Any] | None = None
        self._state = "ready"
        self._counts = {OK: 0, NG: 0, ERROR: 0}
        self._server: ThreadingHTTPServer | None = None
        self._error = "not started"

    def start(self) -> None:
        """Listen (a port that is taken is tried again at the next verdict)."""
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/verdict":
                    with sink._lock:
                        body = encode(sink._last) if sink._last is not None else None
                    self._answer(200 if body else 204, body)
                elif self.path == "/state":
                    with sink._lock:
                        state = {"station": sink.station, "state": sink._state, "inspected": sum(sink._counts.values()),
                                 "ng": sink._counts[NG] + sink._counts[ERROR], "errors": sink._counts[ERROR]}
                    self._answer(200, json.dumps(state).encode())
                else:
                    self._answer(404, b'{"error": "use GET /verdict, GET /state or POST /trigger"}')

            def do_POST(self):
                if self.path != "/trigger":
                    self._answer(404, b'{"error": "POST /trigger"}')
                    return
                sink.trigger()
                self._answer(202, b'{"trigger": "taken"}')

            def _answer(self, code: int, body: bytes | None) -> None:
                self.send_response(code)
                if body:
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        try:
            self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as e:
            self._error = f"cannot listen on {self.host}:{self.port}: {e.strerror or e}"
            return
        self._error = ""
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"http {self.key}", daemon=True).start()

    def send(self, message: dict[str, Any], timeout: float) -> None:
        if self._server is None:
            self.start()
        if self._server is None:
            raise SinkError(self._error)
        with self._lock:
            if self._last is None or self._last["id"] != message["id"]:
                self._counts[message["decision"] if message["decision"] in self._counts else NG] += 1
            self._last = message

    def set_state(self, state: str) -> None:
        with self._lock:
            self._state = state

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
