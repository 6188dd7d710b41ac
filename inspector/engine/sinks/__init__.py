"""Line outputs: every verdict to the PLC and the plant (MQTT, an HTTP webhook, OPC UA, Modbus
TCP, digital outputs), delivered in order from the durable outbox (``delivery``)."""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from inspector.engine.sinks.base import Sink, SinkError
from inspector.engine.sinks.delivery import LineOutputs, SinkStatus

__all__ = ["LineOutputs", "Sink", "SinkError", "SinkStatus", "open_sink", "SCHEMES"]


# scheme -> (module, class): each protocol is imported when a sink of it is opened (its library with it)
_CLASSES = {
    "mqtt": ("mqtt", "MqttSink"),
    "http": ("http", "HttpSink"),
    "https": ("http", "HttpSink"),
    "http+server": ("http_server", "HttpServerSink"),
    "opcua": ("opcua", "OpcUaServerSink"),
    "opcua+client": ("opcua", "OpcUaClientSink"),
    "modbus": ("modbus", "ModbusServerSink"),
    "modbus+client": ("modbus", "ModbusClientSink"),
    "digital": ("digital", "DigitalOutputSink"),
}
SCHEMES = tuple(_CLASSES)


def open_sink(url: str, station: str) -> Sink:
    """The sink a URL names (ValueError, one line, for anything else)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _CLASSES:
        raise ValueError(f"unknown sink {url!r}: use one of {', '.join(s + '://' for s in SCHEMES)}")
    module, name = _CLASSES[scheme]
    return getattr(importlib.import_module(f"inspector.engine.sinks.{module}"), name)(url, station)
