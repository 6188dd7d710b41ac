"""HTTP webhook: each verdict POSTed as JSON; delivered when the receiver answers 2xx. The
verdict's id is also in the ``Idempotency-Key`` header, so a receiver can drop a resent one.

    http://HOST[:PORT]/PATH   https://HOST[:PORT]/PATH
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from inspector.engine.sinks.base import Sink, SinkError
from inspector.engine.sinks.message import encode


class HttpSink(Sink):
    scheme = "http"
    default_port = 80
    query_in_key = True

    def __init__(self, url: str, station: str) -> None:
        if url.startswith("https:"):
            self.default_port = 443
        super().__init__(url, station)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to the receiver

    def send(self, message: dict[str, Any], timeout: float) -> None:
        request = urllib.request.Request(self.url, data=encode(message), method="POST", headers={
            "Content-Type": "application/json", "Idempotency-Key": str(message["id"]), "User-Agent": "inspector"})
        try:
            with self._opener.open(request, timeout=timeout) as response:
                status = response.status
        except urllib.error.HTTPError as e:
            raise SinkError(f"webhook {self.key} answered HTTP {e.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise SinkError(f"webhook {self.key} not reached: {reason}") from None
        if not 200 <= status < 300:
            raise SinkError(f"webhook {self.key} answered HTTP {status}")
