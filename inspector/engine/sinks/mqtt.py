"""MQTT (paho-mqtt): one JSON verdict per message on the URL's topic, QoS 1, delivered when the
broker's PUBACK arrives. The station's state is a retained message on ``<topic>/state``; the
broker publishes the last will ``offline`` there when inspector goes away without saying so. Any
message on ``<topic>/trigger`` is a trigger (``inspector live --trigger``: one part inspected).

    mqtt://HOST[:PORT]/TOPIC     (default port 1883; default topic inspector/<station>)
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from inspector.engine.sinks.base import Sink, SinkError
from inspector.engine.sinks.message import encode, iso_time


class MqttSink(Sink):
    scheme = "mqtt"
    default_port = 1883

    def __init__(self, url: str, station: str) -> None:
        super().__init__(url, station)
        self.topic = self.parts.path.strip("/") or f"inspector/{station}"
        if any(c in self.topic for c in "#+") or "\0" in self.topic:
            raise ValueError(f"sink {url!r}: an MQTT topic to publish on cannot hold '#', '+' or NUL")
        self.state_topic = f"{self.topic}/state"
        self.trigger_topic = f"{self.topic}/trigger"
        self._connected = threading.Event()
        self._state = "ready"
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"inspector-{station}-{uuid.uuid4().hex[:8]}",
                                   protocol=mqtt.MQTTv311)
        if self.parts.username:
            self._client.username_pw_set(self.parts.username, self.parts.password)
        self._client.will_set(self.state_topic, self._state_payload("offline"), qos=1, retain=True)
        self._client.reconnect_delay_set(min_delay=0.2, max_delay=5)
        self._client.on_connect = self._on_connect
        self._client.message_callback_add(self.trigger_topic, lambda *args: self.trigger())
        self._client.on_disconnect = lambda *args: self._connected.clear()

    def _state_payload(self, state: str) -> bytes:
            return json.dumps({"station": self.station, "state": state, "time": iso_time(time.time())}).encode()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            self._connected.set()
            client.subscribe(self.trigger_topic, qos=1)
            client.publish(self.state_topic, self._state_payload(self._state), qos=1, retain=True)

    def start(self) -> None:
        self._client.connect_async(self.host, self.port, keepalive=10)
        self._client.loop_start()

    def send(self, message: dict[str, Any], timeout: float) -> None:
        if not self._connected.wait(min(timeout, 1.0)):
            raise SinkError(f"not connected to the MQTT broker at {self.host}:{self.port}")
        info = self._client.publish(self.topic, encode(message), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise SinkError(f"MQTT publish to {self.host}:{self.port} refused: {mqtt.error_string(info.rc)}")
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as e:
            raise SinkError(f"MQTT publish to {self.host}:{self.port} failed: {e}") from None
        if not info.is_published():
            raise SinkError(f"no PUBACK from the MQTT broker at {self.host}:{self.port} within {timeout:g} s")

    def set_state(self, state: str) -> None:
        self._state = state
        if self._connected.is_set():
            self._client.publish(self.state_topic, self._state_payload(state), qos=1, retain=True)

    def close(self) -> None:
        if self._connected.is_set():
            self._client.publish(self.state_topic, self._state_payload("offline"), qos=1, retain=True).wait_for_publish(2.0)
        self._client.disconnect()
        self._client.loop_stop()
