"""Line outputs: every verdict to the PLC and the plant (MQTT, an HTTP webhook, OPC UA, Modbus
TCP, digital outputs), delivered in order from the durable outbox (``delivery``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from inspector.engine.sinks.base import Sink, SinkError
from inspector.engine.sinks.delivery import LineOutputs, SinkStatus

__all__ = ["LineOutputs", "Sink", "SinkError", "SinkStatus", "open_sink", "SCHEMES"]


def _classes() -> dict[str, type[Sink]]:
    """The protocols, imported when a sink is opened (each pulls its library in)."""
    from inspector.engine.sinks.http import HttpSink
    from inspector.engine.sinks.mqtt import MqttSink

    return {"mqtt": MqttSink, "http": HttpSink, "https": HttpSink}


SCHEMES = ("mqtt", "http", "https")


def open_sink(url: str, station: str) -> Sink:
    """The sink a URL names (ValueError, one line, for anything else)."""
    scheme = urlsplit(url).scheme.lower()
    classes = _classes()
    if scheme not in classes:
        raise ValueError(f"unknown sink {url!r}: use one of {', '.join(s + '://' for s in SCHEMES)}")
    return classes[scheme](url, station)
