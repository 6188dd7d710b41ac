"""Real receivers for the line-output tests, started on 127.0.0.1 by the tests themselves: the
Mosquitto broker (Debian's ``mosquitto``, installed by ``./dev``), a subscriber that collects
verdicts, and an HTTP receiver that can be told to fail. Every wait is bounded."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import paho.mqtt.client as mqtt

WAIT_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float = WAIT_S, what: str = "the condition", show=None) -> None:
    """Poll ``check`` until true; AssertionError after ``timeout`` (with ``show()``'s text, if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}" + (f": {show()}" if show else ""))


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Broker:
    """A Mosquitto process on a free loopback port, with persistence (a restart keeps queued
    QoS 1 messages for persistent subscribers)."""

    def __init__(self, folder: Path) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).is_file():
            raise RuntimeError("mosquitto is not installed: `./dev setup` installs it (apt package mosquitto)")
        self.exe, self.folder, self.port = exe, folder, free_port()
        self.config = folder / "mosquitto.conf"
        # as root, mosquitto would drop to its own user, who cannot write the test's folder (persistence, log)
        user = "user root\n" if os.geteuid() == 0 else ""
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                               f"persistence_location {folder}/\nlog_dest file {folder}/mosquitto.log\n{user}")
        self.process: subprocess.Popen | None = None

    def start(self) -> Broker:
        self.process = subprocess.Popen([self.exe, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _port_open(self.port), what=f"mosquitto on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


class Subscriber:
    """A persistent MQTT session that collects every message of a topic (QoS 1)."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[dict] = []
        self.retained: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}", clean_session=False,
                                  protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, *a: c.subscribe([(topic, 1), (f"{topic}/state", 1)])
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.reconnect_delay_set(0.1, 1)
        self.topic = topic
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        # a message published before the broker has the subscription reaches nobody: wait for it
        if not subscribed.wait(WAIT_S):
            self.close()
            raise AssertionError(f"the test subscriber got no SUBACK for {topic} within {WAIT_S:g} s")

    def _on_message(self, client, userdata, msg) -> None:
        body = json.loads(msg.payload)
        body["_received"] = time.time()  # for bench/line.py's latencies
        with self._lock:
            if msg.topic.endswith("/state"):
                self.retained[msg.topic] = body
            else:
                self.messages.append(body)

    def ids(self) -> list[str]:
        with self._lock:
            return [m["id"] for m in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Receiver:
    """An HTTP server that keeps every POSTed JSON body with its path; ``failing`` makes it answer 503."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.failing = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                if receiver.failing:
                    self.send_response(503)
                    self.end_headers()
                    return
                assert self.headers["Idempotency-Key"] == body["id"]
                body["_received"] = time.time()  # for bench/line.py's latencies
                receiver.posts.append((self.path, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/verdicts"

    @property
    def bodies(self) -> list[dict]:
        return [body for _, body in list(self.posts)]

    def ids(self, path: str | None = None) -> list[str]:
        return [body["id"] for p, body in list(self.posts) if path is None or p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def in_order_once(ids: list[str]) -> list[str]:
    """The ids as a receiver that drops duplicates keeps them (first arrival)."""
    seen, out = set(), []
    for i in ids:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out
