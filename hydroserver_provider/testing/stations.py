"""Realistic, deterministic station data for tests and the demo.

Two kinds of source a HydroServer user meets every day:

- a logger CSV in local time (America/Denver, with DST), a units row under the header, 15-minute
  water level and temperature, answering ``?start=...&end=...`` in local time;
- a JSON API with nested records (``data.records[*]``), ISO 8601 times with offsets, discharge and
  gage height under ``values``, answering ``?from=...&to=...`` in UTC.

Values are smooth functions of time, so any window can be generated and checked exactly.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

DENVER = ZoneInfo("America/Denver")
STEP = timedelta(minutes=15)
CSV_FORMAT = "%Y-%m-%d %H:%M:%S"


def water_level(moment: datetime) -> float:
    hours = moment.timestamp() / 3600
    return round(4.0 + 0.5 * math.sin(hours / 24 * 2 * math.pi) + 0.001 * (hours % 97), 3)


def water_temperature(moment: datetime) -> float:
    hours = moment.timestamp() / 3600
    return round(9.0 + 3.0 * math.sin((hours - 6) / 24 * 2 * math.pi), 2)


def discharge(moment: datetime) -> float:
    return round(120.0 + 35.0 * math.cos(moment.timestamp() / 3600 / 48 * 2 * math.pi), 1)


def gage_height(moment: datetime) -> float:
    return round(2.0 + discharge(moment) / 100.0, 3)


def instants(start: datetime, end: datetime, step: timedelta = STEP) -> list[datetime]:
    """UTC instants on the ``step`` grid with ``start <= t < end``."""
    start = start.astimezone(UTC)
    end = end.astimezone(UTC)
    seconds = step.total_seconds()
    first = math.ceil(start.timestamp() / seconds) * seconds
    moments = []
    t = datetime.fromtimestamp(first, UTC)
    while t < end:
        moments.append(t)
        t += step
    return moments


def logger_csv(start: datetime, end: datetime) -> str:
    """The logger file for ``[start, end)``: local Denver times, a units row, CRLF line ends."""
    lines = ["Date Time,Water Level,Water Temp", "MST/MDT,ft,degC"]
    for t in instants(start, end):
        local = t.astimezone(DENVER).strftime(CSV_FORMAT)
        lines.append(f"{local},{water_level(t)},{water_temperature(t)}")
    return "\r\n".join(lines) + "\r\n"


def api_json(start: datetime, end: datetime, station: str = "09380000") -> str:
    """The JSON API answer for ``[start, end)``: nested records with offsets in Denver time."""
    records = [
        {
            "time": t.astimezone(DENVER).isoformat(),
            "values": {"discharge": discharge(t), "gage_height": gage_height(t)},
            "qualifiers": ["P"],
        }
        for t in instants(start, end, timedelta(hours=1))
    ]
    return json.dumps(
        {
            "station": {"id": station, "name": "Colorado River at Lees Ferry"},
            "data": {"records": records},
        }
    )


def parse_query_time(value: str | None, zone=UTC) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)
