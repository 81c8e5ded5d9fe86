"""Timestamps and ids the way HydroServer reads and writes them."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

UTC = UTC


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_US = timedelta(microseconds=1)


class _UUID7:
    """Time-ordered UUIDs like HydroServer's ``uuid6.uuid7`` (version 7, monotonic per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def __call__(self) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                ms = self._last_ms
                self._counter += 1
                if self._counter > 0xFFF:
                    ms += 1
                    self._counter = 0
            else:
                self._counter = 0
            self._last_ms = ms
            counter = self._counter
        value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | secrets.randbits(62)
        return str(uuid.UUID(int=value))


uuid7 = _UUID7()


try:  # the parser HydroServer itself uses; only needed for forms fromisoformat rejects
    from dateutil.parser import isoparse as _isoparse
except Exception:  # pragma: no cover - dateutil is always there next to Airflow
    _isoparse = None


def parse_iso(value: str) -> datetime:
    """Parse an ISO 8601 timestamp like HydroServer's ``ISODatetime`` (naive means UTC)."""
    try:
        dt = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        if _isoparse is None:
            raise ValueError("Invalid ISO time format") from None
        try:
            dt = _isoparse(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError("Invalid ISO time format") from None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def to_us(value: Any) -> int:
    """Microseconds since the epoch (UTC) of a datetime, an ISO string or epoch seconds."""
    if isinstance(value, datetime):
        dt = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    elif isinstance(value, str):
        dt = parse_iso(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return _epoch_number_to_us(value)
    else:
        raise TypeError(f"Cannot read a timestamp from {value!r}")
    return (dt - _EPOCH) // _US


def _epoch_number_to_us(value: float) -> int:
    # pydantic reads numbers as seconds, or as milliseconds when they are larger than 2e10
    seconds = value / 1000 if abs(value) > 2e10 else value
    return int(round(seconds * 1_000_000))


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def iso(us: int | None) -> str | None:
    """Render like the real server (orjson, aware UTC): ``2024-01-01T00:00:00+00:00``."""
    if us is None:
        return None
    return (_EPOCH + timedelta(microseconds=us)).isoformat()


def iso_dt(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).isoformat()


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def canonical_uuid(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError):
        return None
