"""Station files: read back what was saved; anything wrong is one line naming the file and key."""

from __future__ import annotations

import pytest

from inspector.engine.station import Station, StationError


def test_a_station_round_trips(tmp_path):
    station = Station(name='cells "A"', source="sim:/data/test", model="elpv@v3", fps=5.0, roi=[1, 2, 30, 40], trigger="line",
                      sinks=["mqtt://127.0.0.1:1883/plant/a", "opcua://127.0.0.1:4840"])
    assert Station.load(station.save(tmp_path / "a.toml")) == station


@pytest.mark.parametrize("text, message", [
    ('sink = ["mqtt://x/y"]\n', "unknown key"),
    ('trigger = "sometimes"\n', "trigger must be one of"),
    ("fps = 0\n", "fps must be"),
    ("roi = [1, 2, 3]\n", "roi must be four"),
    ("sinks = \"mqtt://x/y\"\n", "sinks must be a list"),
    ("name = 3\n", "name must be text"),
    ("name = \n", "not a valid TOML"),
])
def test_a_bad_station_file_is_one_line(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(StationError, match=message) as caught:
        Station.load(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_cli_live_refuses_a_bad_station_before_starting(tmp_path, tmp_home, capsys):
    from inspector.cli import main

    path = tmp_path / "bad.toml"
    path.write_text('source = "sim:/x"\nmodel = "m"\ntrigger = "line"\nsinks = []\n')
    assert main(["live", "--station", str(tmp_path / "missing.toml")]) != 0
    assert "cannot read the station file" in capsys.readouterr().err
    assert main(["live"]) != 0
    assert "needs --source and --model" in capsys.readouterr().err
