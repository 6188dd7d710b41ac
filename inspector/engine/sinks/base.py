"""What every line output (sink) is: it sends one verdict and returns only once the receiver has
acknowledged it, or raises ``SinkError``. Ordering, retries, back-off, the durable outbox and the
figures are ``engine.sinks.delivery``'s, the same for every protocol."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit, urlunsplit


class SinkError(Exception):
    """A verdict was not delivered (one line: receiver down, refused, no acknowledgement)."""


class Sink:
    """One receiver. ``url`` names it; ``key`` (the URL without a password or options) is where its
    place in the outbox is kept, so the same sink resumes where it stopped."""

    scheme: str = ""
    default_port: int = 0
    on_trigger: Callable[[], None] | None = None  # set by LineOutputs: the line asks for the next part to be inspected
    query_in_key = False  # the URL's options (ack, timeouts) do not make another receiver; an HTTP query does

    def __init__(self, url: str, station: str) -> None:
        self.url = url
        self.station = station
        self.parts: SplitResult = urlsplit(url)
        if "#" in url:
            raise ValueError(f"sink {url!r}: a '#' is not allowed (an MQTT wildcard cannot be published to)")
        if not self.parts.hostname:
            raise ValueError(f"sink {url!r} names no host (e.g. {self.scheme}://127.0.0.1:{self.default_port}/...)")
        try:
            self.port = self.parts.port or self.default_port
        except ValueError:
            raise ValueError(f"sink {url!r}: the port is not a number from 1 to 65535") from None
        self.host = self.parts.hostname

    def option(self, name: str, default: str | None = None) -> str | None:
        """A ``?name=value`` option of the URL (the last one given)."""
        values = parse_qs(self.parts.query, keep_blank_values=True).get(name)
        return values[-1] if values else default

    @property
    def key(self) -> str:
        p = self.parts
        netloc = (f"{p.hostname}:{self.port}" if self.port else p.hostname) if p.hostname else p.netloc
        return urlunsplit((p.scheme, netloc, p.path, p.query if self.query_in_key else "", ""))

    def start(self) -> None:
        """Connect or start serving (returns at once; a receiver that is down is retried)."""

    def send(self, message: dict[str, Any], timeout: float) -> None:
        """Deliver one verdict and wait for its acknowledgement (SinkError otherwise)."""
        raise NotImplementedError

    def set_state(self, state: str) -> None:
        """The station's state (``message.STATION_STATES``), where the protocol shows one."""

    def trigger(self) -> None:
        """The line asked for a part to be inspected (a sink that takes triggers calls this)."""
        if self.on_trigger is not None:
            self.on_trigger()

    def close(self) -> None:
        """Disconnect or stop serving; the station shows as offline where the protocol can."""
