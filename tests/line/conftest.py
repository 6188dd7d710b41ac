from __future__ import annotations

import pytest

from tests.line.servers import Broker, Receiver


@pytest.fixture
def broker(tmp_path):
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Broker(folder).start()
    yield b
    b.stop()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
