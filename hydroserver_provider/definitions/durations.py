"""Durations in definitions: seconds as a number, or a text such as "90", "30s", "5m", "1h30m",
"2 days". One parser for every setting that takes one (Airflow's retry delays and timeouts, a
connection's ``lookback``)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

__all__ = ["DURATION_EXPECTED", "parse_duration"]

DURATION_EXPECTED = "seconds (a number) or a text such as 30s, 5m, 2h, 1d"

_PART = re.compile(
    r"(\d+(?:\.\d+)?)(ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w)", re.I)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``value`` as a timedelta; raises ValueError naming what is expected."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(DURATION_EXPECTED)
    elif isinstance(value, (int, float)):
        seconds = float(value)
    else:
        seconds = _text_seconds(value)
    if not seconds >= 0:  # also refuses NaN
        raise ValueError(DURATION_EXPECTED)
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(DURATION_EXPECTED) from None


def _text_seconds(text: str) -> float:
    compact = text.strip().replace(" ", "")
    try:
        return float(compact)
    except ValueError:
        pass
    total, pos = 0.0, 0
    for match in _PART.finditer(compact):
        if match.start() != pos:
            break
        unit = match.group(2).lower()
        key = "ms" if unit == "ms" else ("m" if unit.startswith("mi") or unit == "m" else unit[0])
        total += float(match.group(1)) * _UNIT_SECONDS[key]
        pos = match.end()
    if pos == 0 or pos != len(compact):
        raise ValueError(DURATION_EXPECTED)
    return total
