"""Reading timestamps: ISO 8601 or strftime formats, in UTC, a fixed offset or an IANA zone.

The one place timestamps are read. This module (light: no pandas or numpy) reads single values
-- :func:`parse_instant` for an ISO 8601 text or a datetime, :func:`to_utc_iso` to write one --
and checks zones and formats; :mod:`.columns` reads whole columns of a source at once (pandas /
numpy), with no Python loop per row except over the handful of rows that fall into a
daylight-saving change.

Rules
-----
``timestamp_format``
    ``None``, ``"ISO8601"`` or ``"iso"`` (any case): ISO 8601 is detected per value -- ``Z``,
    ``+HH:MM``, ``+HHMM`` and hour-only ``-07`` offsets, fractional seconds (a comma works as the
    decimal mark too), date-only values, ``T`` or space between date and time. Anything else is a
    Python strftime format. ``%z`` or ``%Z`` in it means every value carries its own offset; a
    literal ``Z`` at the end of the format (``"%Y-%m-%dT%H:%M:%SZ"``) means the values are UTC.

``timezone_type`` / ``timezone`` (see :func:`zone_for`)
    apply only to values *without* an embedded offset. An offset written in the value always wins;
    rows may mix both kinds. Unset type: such values are UTC.

Daylight-saving rules (IANA zones)
    *Fall back* (a local hour happens twice): the order of the rows decides. Within the repeated
    hour, the rows before the point where local time steps back (or repeats) are the first pass,
    the rows after it the second pass. In an ascending file the first pass is daylight time (the
    earlier instant); in a descending file (detected from the neighbouring rows, or else from the
    whole column) it is standard time. Such rows are counted as ``ambiguous_by_order``.
    When the order cannot tell (a lone ``01:00``, or a repeated hour that never steps back) the
    value is read as the *first occurrence*, i.e. daylight time / the earlier instant, like
    Python's ``fold=0``; these rows are counted as ``ambiguous_by_rule``.

    *Spring forward* (a local time that does not exist, e.g. 02:30 on the March change in
    America/Denver): read with the offset in force *before* the change, like Python's ``fold=0``,
    so ``02:30`` is read as MST, 09:30Z (= 03:30 MDT). Counted as ``nonexistent``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any

from hydroserver_provider.errors import DefinitionError

if TYPE_CHECKING:  # pragma: no cover
    from hydroserver_provider.definitions import DataConnection

__all__ = [
    "ISO_8601",
    "is_iso_format",
    "parse_fixed_offset",
    "parse_instant",
    "to_utc_iso",
    "validate_format",
    "zone_for",
]

ISO_8601 = "ISO 8601"

_OFFSET_RE = re.compile(
    r"^(?:UTC|GMT)?\s*(?:(?P<z>Z)|(?P<sign>[+-])(?P<h>\d{1,2})(?::?(?P<m>\d{2}))?)$"
)
_DIRECTIVE_RE = re.compile(r"%(.?)")
# Directives Python's strptime (and pandas) understand.
_STRPTIME_DIRECTIVES = set("aAbBcdfGHIjmMpSuUVwWxXyYzZ%")


# --------------------------------------------------------------------------------------------
# Single values
# --------------------------------------------------------------------------------------------


def parse_instant(value: Any) -> datetime | None:
    """An instant from an ISO 8601 text (``Z`` or an offset; none means UTC; a date alone means
    its midnight), a datetime (naive means UTC) or a numpy ``datetime64`` (UTC); None for
    None or "". Its offset is kept. Raises ValueError for text that is no ISO 8601 date."""
    if value is None or value == "":
        return None
    if type(value).__name__ == "datetime64":  # numpy, without importing it here
        value = value.astype("datetime64[us]").item()
    if isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        value = datetime.fromisoformat(text)
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise ValueError(f"expected an ISO 8601 date-time, found {value!r}")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def to_utc_iso(moment: Any) -> str:
    """An instant (as :func:`parse_instant` reads it) as ISO 8601 in UTC with ``Z``: what
    HydroServer, Hydrocron and the run summaries are given. Text is returned as it is."""
    if isinstance(moment, str):
        return moment
    instant = parse_instant(moment)
    if instant is None:
        raise ValueError("an instant is needed, found None")
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------
# Zones and formats
# --------------------------------------------------------------------------------------------


def parse_fixed_offset(text: str) -> timezone:
    """``"-0700"``, ``"-07:00"``, ``"+0530"``, ``"-07"``, ``"UTC-07:00"``, ``"Z"`` -> ``timezone``.

    Raises ``ValueError`` saying what was expected when ``text`` is not such an offset.
    """
    raw = text
    text = str(text).strip()
    if text.upper() in ("UTC", "GMT", "Z"):
        return UTC
    match = _OFFSET_RE.match(text)
    if match is None:
        raise ValueError(
            f"expected a UTC offset such as '-0700', '-07:00' or '+05:30', found {raw!r}"
        )
    if match.group("z"):
        return UTC
    hours = int(match.group("h"))
    minutes = int(match.group("m") or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(
            f"expected a UTC offset between -23:59 and +23:59 such as '-0700', found {raw!r}"
        )
    delta = timedelta(hours=hours, minutes=minutes)
    if match.group("sign") == "-":
        delta = -delta
    return timezone(delta)


def zone_for(connection: DataConnection) -> tzinfo | None:
    """The zone that applies to timestamps without an embedded offset, or ``None`` (= UTC).

    ``timezone_type`` unset -> ``None`` (``timezone`` is ignored, as HydroServer does);
    ``"utc"`` -> ``datetime.timezone.utc``; ``"offset"`` -> a fixed ``datetime.timezone`` from
    ``timezone`` (``"-0700"``); ``"iana"`` -> ``zoneinfo.ZoneInfo(timezone)``.
    """
    kind = connection.timezone_type
    value = connection.timezone
    where = f"data connection '{connection.name}'"
    if kind is None:
        return None
    if kind == "utc":
        return UTC
    if kind not in ("offset", "iana"):
        raise DefinitionError(
            "unknown timezone_type",
            location=where,
            field="timezone_type",
            expected="one of 'utc', 'offset', 'iana' or unset",
            found=kind,
        )
    if not value or not str(value).strip():
        example = "a UTC offset such as '-0700'" if kind == "offset" else (
            "an IANA zone name such as 'America/Denver'"
        )
        raise DefinitionError(
            f"timezone_type is '{kind}' but no timezone is set",
            location=where,
            field="timezone",
            expected=example,
            found=value,
        )
    if kind == "offset":
        try:
            return parse_fixed_offset(value)
        except ValueError as exc:
            raise DefinitionError(str(exc), location=where, field="timezone") from None
    if kind == "iana":
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(str(value).strip())
        except (ZoneInfoNotFoundError, ValueError):
            hint = ""
            try:
                parse_fixed_offset(value)
                hint = "; it looks like a UTC offset: use timezone_type 'offset'"
            except ValueError:
                pass
            raise DefinitionError(
                f"unknown IANA time zone{hint}",
                location=where,
                field="timezone",
                expected="an IANA zone name such as 'America/Denver' or 'UTC'",
                found=value,
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def is_iso_format(timestamp_format: str | None) -> bool:
    """True when ``timestamp_format`` asks for automatic ISO 8601 detection."""
    if timestamp_format is None:
        return True
    text = timestamp_format.strip().replace("-", "").replace(" ", "").lower()
    return text in ("", "iso", "iso8601")


def validate_format(timestamp_format: str) -> str:
    """Check a strftime format; return it unchanged or raise ``DefinitionError``."""
    fmt = timestamp_format
    directives = _DIRECTIVE_RE.findall(fmt)
    bad = [d for d in directives if d not in _STRPTIME_DIRECTIVES]
    if bad:
        shown = ", ".join(sorted({f"%{d}" for d in bad}))
        hint = ""
        if any(d in ("-", "#") for d in bad):
            hint = (
                " ('%-d' style flags are not accepted when reading; '%d', '%m', '%H' also read"
                " single digits)"
            )
        raise DefinitionError(
            f"timestamp_format has unknown directive(s) {shown}{hint}",
            field="timestamp_format",
            expected="a Python strftime format such as '%Y-%m-%d %H:%M:%S', or 'ISO8601'",
            found=fmt,
        )
    if not [d for d in directives if d != "%"]:
        raise DefinitionError(
            "timestamp_format has no % directives",
            field="timestamp_format",
            expected="a Python strftime format such as '%Y-%m-%d %H:%M:%S', or 'ISO8601'",
            found=fmt,
        )
    return fmt
