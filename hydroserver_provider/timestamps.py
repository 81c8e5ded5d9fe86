"""Reading timestamps: ISO 8601 or strftime formats, in UTC, a fixed offset or an IANA zone.

Everything here works on whole columns at once (pandas / numpy); no Python loop runs per row
except over the handful of rows that fall into a daylight-saving change.

Timestamps are carried as ``int64`` microseconds since the Unix epoch (numpy ``datetime64[us]``
underneath); ``NAT`` marks a value that could not be read.

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
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from .errors import DefinitionError, ParseError

if TYPE_CHECKING:  # pragma: no cover
    from .definitions import DataConnection

__all__ = [
    "ISO_8601",
    "NAT",
    "TimestampParser",
    "TimestampReport",
    "is_iso_format",
    "parse_fixed_offset",
    "parse_timestamps",
    "validate_format",
    "zone_for",
]

ISO_8601 = "ISO 8601"
NAT = np.iinfo(np.int64).min  # the int64 value numpy uses for NaT
_US = 1_000_000
_DAY_US = 86_400 * _US
_EPOCH = datetime(1970, 1, 1)
_MAX_EXAMPLES = 5
_MAX_EXAMPLE_CHARS = 60
_LOCALIZE_SLICE = 1 << 18

# An embedded offset after a time of day: "T08:30:00Z", " 08:30-07", "T083000+0530", ".5 -07:00".
_AWARE_RE = re.compile(
    r"[T\s]\d\d(?::?\d\d){0,2}(?:[.,]\d+)?\s*(?:[Zz]|[+-]\d\d(?::?\d\d)?)\s*$"
)
_OFFSET_RE = re.compile(
    r"^(?:UTC|GMT)?\s*(?:(?P<z>Z)|(?P<sign>[+-])(?P<h>\d{1,2})(?::?(?P<m>\d{2}))?)$"
)
_DIRECTIVE_RE = re.compile(r"%(.?)")
# Directives Python's strptime (and pandas) understand.
_STRPTIME_DIRECTIVES = set("aAbBcdfGHIjmMpSuUVwWxXyYzZ%")


@dataclass
class TimestampReport:
    """What happened to the timestamps of one payload."""

    unparsable: int = 0
    unparsable_examples: list[str] = field(default_factory=list)  # up to 5 raw values
    ambiguous_by_order: int = 0  # fall-back rows resolved from the order of the rows
    ambiguous_by_rule: int = 0  # fall-back rows the order could not resolve (read as fold=0)
    nonexistent: int = 0  # spring-forward rows, read with the offset before the change
    format_tried: str = ISO_8601  # "ISO 8601" or the strftime format

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able copy (for the run result / XCom)."""
        return {
            "unparsable": self.unparsable,
            "unparsable_examples": list(self.unparsable_examples),
            "ambiguous_by_order": self.ambiguous_by_order,
            "ambiguous_by_rule": self.ambiguous_by_rule,
            "nonexistent": self.nonexistent,
            "format_tried": self.format_tried,
        }


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
        return timezone.utc
    match = _OFFSET_RE.match(text)
    if match is None:
        raise ValueError(
            f"expected a UTC offset such as '-0700', '-07:00' or '+05:30', found {raw!r}"
        )
    if match.group("z"):
        return timezone.utc
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
        return timezone.utc
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


def _fmt_is_aware(fmt: str) -> tuple[bool, bool]:
    """(has %z/%Z, ends with a literal 'Z' meaning UTC)."""
    directives = _DIRECTIVE_RE.findall(fmt.replace("%%", ""))
    has_zone = "z" in directives or "Z" in directives
    stripped = fmt.rstrip()
    literal_z = stripped.endswith("Z") and not stripped.replace("%%", "").endswith("%Z")
    return has_zone, literal_z and not has_zone


def _zone_needs_localizing(zone: tzinfo | None) -> bool:
    if zone is None:
        return False
    if isinstance(zone, timezone):
        return zone.utcoffset(None) != timedelta(0)
    return str(zone) not in ("UTC", "Etc/UTC", "Etc/GMT", "GMT", "Zulu", "Etc/Zulu", "Universal")


# --------------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------------


def shorten(text: str, limit: int = _MAX_EXAMPLE_CHARS) -> str:
    """A raw value as quoted in reports and errors: a 50 MB "timestamp" (or a header that is one
    huge line) must not become a 50 MB log line or XCom."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _to_int64(result: Any) -> np.ndarray:
    """pandas to_datetime output -> int64 microseconds (UTC for aware values), NAT for NaT."""
    idx = pd.DatetimeIndex(result)
    if idx.unit != "us":
        idx = idx.as_unit("us")
    return np.asarray(idx.asi8, dtype=np.int64)


def _as_str_series(raw: Any) -> pd.Series:
    if isinstance(raw, pd.Series):
        series = raw.reset_index(drop=True)
    else:
        series = pd.Series(raw, copy=False)
    if series.dtype != "str":
        series = series.astype("str")
    return series


class TimestampParser:
    """Reads a timestamp column chunk by chunk, then resolves local times once for the whole column.

    ``parse(raw)`` turns one chunk of raw values into ``(values, naive)``: ``values`` are int64
    microseconds -- already UTC for values with an embedded offset, wall-clock time for the others
    -- and ``naive`` marks the wall-clock ones (``None`` when no zone needs applying, so the values
    are final). Keep both in file order and call ``localize(values, naive)`` once at the end: the
    daylight-saving fall-back is resolved from the order of *all* rows, whatever the chunking.
    """

    def __init__(self, timestamp_format: str | None = None, zone: tzinfo | None = None) -> None:
        self.iso = is_iso_format(timestamp_format)
        self.format = None if self.iso else validate_format(str(timestamp_format))
        self.zone = zone
        self.report = TimestampReport(format_tried=ISO_8601 if self.iso else self.format)
        self.rows_seen = 0
        self.rows_parsed = 0
        self._localize = _zone_needs_localizing(zone)
        if not self.iso:
            self._fmt_has_zone, self._fmt_utc = _fmt_is_aware(self.format)
            # Let pandas reject a format it cannot use (e.g. %G without %V) before any data.
            try:
                pd.to_datetime(pd.Series([], dtype="str"), format=self.format, errors="coerce")
            except ValueError as exc:
                raise DefinitionError(
                    f"timestamp_format cannot be used: {exc}",
                    field="timestamp_format",
                    expected="a Python strftime format such as '%Y-%m-%d %H:%M:%S'",
                    found=self.format,
                ) from None

    @classmethod
    def for_connection(cls, connection: DataConnection) -> TimestampParser:
        return cls(connection.timestamp_format, zone_for(connection))

    # -- per chunk ------------------------------------------------------------------------------

    def parse(self, raw: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """One chunk of raw timestamps (strings; None/NaN for missing) -> (int64 values, naive)."""
        series = _as_str_series(raw)
        n = len(series)
        values, naive = self._parse_series(series)
        failed = values == NAT
        if failed.any():
            # Second chance for the few failures: surrounding blanks, ISO decimal comma.
            retry_idx = np.flatnonzero(failed & series.notna().to_numpy())
            if retry_idx.size:
                cleaned = series.iloc[retry_idx].str.strip()
                if self.iso:
                    cleaned = cleaned.str.replace(r"(\d\d:\d\d:\d\d),(\d)", r"\1.\2", regex=True)
                retry_vals, retry_naive = self._parse_series(cleaned.reset_index(drop=True))
                values[retry_idx] = retry_vals
                if naive is not None and retry_naive is not None:
                    naive[retry_idx] = retry_naive
                failed = values == NAT
            n_failed = int(failed.sum())
            if n_failed:
                self.report.unparsable += n_failed
                room = _MAX_EXAMPLES - len(self.report.unparsable_examples)
                if room > 0:
                    examples = series.iloc[np.flatnonzero(failed)[:room]]
                    self.report.unparsable_examples.extend(
                        "" if pd.isna(v) else shorten(str(v)) for v in examples
                    )
        self.rows_seen += n
        self.rows_parsed += n - int(failed.sum())
        if naive is not None:
            naive &= ~failed
        return values, naive

    def _parse_series(self, series: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
        n = len(series)
        if self.iso:
            try:
                result = pd.to_datetime(series, format="ISO8601", errors="coerce")
            except (ValueError, TypeError):
                # Mixed offsets, or naive and aware values together: read all as UTC instants
                # and find the naive ones from the text.
                result = pd.to_datetime(series, format="ISO8601", errors="coerce", utc=True)
                values = _to_int64(result)
                if not self._localize:
                    return values, None
                aware = series.str.contains(_AWARE_RE, na=False).to_numpy(dtype=bool)
                return values, ~aware
            values = _to_int64(result)
            if not self._localize:
                return values, None
            all_naive = getattr(result.dtype, "tz", None) is None
            return values, np.full(n, all_naive, dtype=bool)
        if self._fmt_has_zone:
            result = pd.to_datetime(series, format=self.format, errors="coerce", utc=True)
            values = _to_int64(result)
            return values, (np.zeros(n, dtype=bool) if self._localize else None)
        result = pd.to_datetime(series, format=self.format, errors="coerce")
        values = _to_int64(result)
        if not self._localize:
            return values, None
        return values, np.full(n, not self._fmt_utc, dtype=bool)

    # -- whole column -----------------------------------------------------------------------------

    def localize(self, values: np.ndarray, naive: np.ndarray | None) -> np.ndarray:
        """Wall-clock values (where ``naive``) -> UTC, resolving DST from the row order.

        ``values`` and ``naive`` are the concatenated chunks in file order. Returns a new int64
        array of UTC microseconds (``NAT`` stays ``NAT``); updates the report's DST counters.
        """
        values = np.asarray(values, dtype=np.int64)
        if naive is None or not self._localize:
            return values
        naive = np.asarray(naive, dtype=bool) & (values != NAT)
        if naive.all():
            return self._localize_wall(values)
        positions = np.flatnonzero(naive)
        del naive
        out = values.copy()
        if positions.size:
            out[positions] = self._localize_wall(values[positions])
        return out

    def _localize_wall(self, wall: np.ndarray) -> np.ndarray:
        zone = self.zone
        if wall.size == 0:
            return wall.copy()
        if isinstance(zone, timezone):
            offset = zone.utcoffset(None)
            return wall - (offset // timedelta(microseconds=1))
        # Slices bound pandas' temporary arrays; each value is localised on its own here.
        utc = np.empty_like(wall)
        for start in range(0, wall.size, _LOCALIZE_SLICE):
            part = pd.DatetimeIndex(wall[start : start + _LOCALIZE_SLICE].view("M8[us]"))
            local = part.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
            utc[start : start + _LOCALIZE_SLICE] = local.asi8
        special = np.flatnonzero(utc == NAT)
        if special.size:
            self._resolve_special(wall, utc, special)
        return utc

    def _resolve_special(self, wall: np.ndarray, utc: np.ndarray, special: np.ndarray) -> None:
        """Fill ``utc`` at the fall-back (ambiguous) and spring-forward (non-existent) rows."""
        zone = self.zone
        one_us = timedelta(microseconds=1)
        amb_pos: list[int] = []
        amb_first: list[int] = []  # fold=0: the earlier instant (daylight time)
        amb_second: list[int] = []  # fold=1: the later instant (standard time)
        for pos in special.tolist():
            w = int(wall[pos])
            local = _EPOCH + timedelta(microseconds=w)
            off0 = local.replace(tzinfo=zone, fold=0).utcoffset() // one_us
            off1 = local.replace(tzinfo=zone, fold=1).utcoffset() // one_us
            if off0 > off1:  # the clock went back: this wall time happened twice
                amb_pos.append(pos)
                amb_first.append(w - off0)
                amb_second.append(w - off1)
            else:  # the clock jumped forward over this wall time: read it as fold=0
                utc[pos] = w - off0
                if off0 != off1:
                    self.report.nonexistent += 1
        if not amb_pos:
            return
        positions = np.array(amb_pos, dtype=np.int64)
        first = np.array(amb_first, dtype=np.int64)
        second = np.array(amb_second, dtype=np.int64)
        walls = wall[positions]
        # Group the ambiguous rows by DST change: changes are months apart.
        distinct = np.unique(walls)
        starts = distinct[np.concatenate(([True], np.diff(distinct) > _DAY_US))]
        group_of = np.searchsorted(starts, walls, side="right") - 1
        global_ascending: bool | None = None
        for group in range(len(starts)):
            members = np.flatnonzero(group_of == group)  # in file order
            p = positions[members]
            w = walls[members]
            prev_w = int(wall[p[0] - 1]) if p[0] > 0 else None
            next_w = int(wall[p[-1] + 1]) if p[-1] + 1 < len(wall) else None
            if prev_w is not None and next_w is not None and prev_w != next_w:
                ascending: bool | None = prev_w < next_w
            elif prev_w is not None and prev_w != w[0]:
                ascending = prev_w < w[0]
            elif next_w is not None and next_w != w[-1]:
                ascending = next_w > w[-1]
            else:
                ascending = None
            if ascending is None:
                if global_ascending is None:
                    steps = np.sign(np.diff(wall))
                    global_ascending = bool((steps > 0).sum() >= (steps < 0).sum())
                ascending = global_ascending
            if ascending:
                breaks = w[1:] <= w[:-1]
            else:
                breaks = w[1:] >= w[:-1]
            if not breaks.any():
                utc[p] = first[members]
                self.report.ambiguous_by_rule += len(members)
                continue
            second_pass = np.concatenate(([False], np.cumsum(breaks) > 0))
            take_later = second_pass if ascending else ~second_pass
            utc[p] = np.where(take_later, second[members], first[members])
            self.report.ambiguous_by_order += len(members)

    # -- checks -----------------------------------------------------------------------------------

    def raise_if_none_parsed(self, where: str) -> None:
        """``ParseError`` when rows were seen but not a single timestamp could be read."""
        if self.rows_seen and not self.rows_parsed:
            example = self.report.unparsable_examples[0] if self.report.unparsable_examples else ""
            if self.iso:
                hint = (
                    "; if the values are not ISO 8601, set timestamp_format to a strftime "
                    "format such as '%m/%d/%Y %H:%M'"
                )
            else:
                hint = "; check timestamp_format against the values (or unset it for ISO 8601)"
            raise ParseError(
                f"none of the {self.rows_seen} timestamps in {where} could be read as "
                f"{self.report.format_tried!r}: first value {example!r}{hint}"
            )


def parse_timestamps(
    raw: Sequence[Any] | np.ndarray | pd.Series,
    timestamp_format: str | None = None,
    zone: tzinfo | None = None,
) -> tuple[np.ndarray, TimestampReport]:
    """A whole column in one go -> (``datetime64[us]`` UTC, NaT where unreadable; the report).

    The rows are taken in the given order for the daylight-saving rules.
    """
    parser = TimestampParser(timestamp_format, zone)
    values, naive = parser.parse(raw)
    utc = parser.localize(values, naive)
    return utc.view("M8[us]"), parser.report
