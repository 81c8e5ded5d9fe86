"""Reading whole timestamp columns of a source at once (pandas / numpy): the rules are in
:mod:`hydroserver_provider.timestamps`.

Timestamps are carried as ``int64`` microseconds since the Unix epoch (numpy ``datetime64[us]``
underneath); ``NAT`` marks a value that could not be read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hydroserver_provider.errors import DefinitionError, ParseError
from hydroserver_provider.timestamps import ISO_8601, is_iso_format, validate_format, zone_for

if TYPE_CHECKING:  # pragma: no cover
    from hydroserver_provider.definitions import DataConnection

__all__ = ["NAT", "TimestampParser", "TimestampReport", "parse_timestamps", "shorten"]

NAT = np.iinfo(np.int64).min  # the int64 value numpy uses for NaT
_US = 1_000_000
_DAY_US = 86_400 * _US
_EPOCH = datetime(1970, 1, 1)
_MAX_EXAMPLES = 5
_MAX_EXAMPLE_CHARS = 60
_LOCALIZE_SLICE = 1 << 18

# An embedded offset after a time of day: "T08:30:00Z", " 08:30-07", "T083000+0530", ".5 -07:00".
_DIRECTIVE_RE = re.compile(r"%(.?)")
_AWARE_RE = re.compile(
    r"[T\s]\d\d(?::?\d\d){0,2}(?:[.,]\d+)?\s*(?:[Zz]|[+-]\d\d(?::?\d\d)?)\s*$"
)


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


@dataclass
class TimestampReport:
    """What happened to the timestamps of one payload."""

    unparsable: int = 0
    unparsable_examples: list[str] = field(default_factory=list)  # up to 5 raw values
    ambiguous_by_order: int = 0  # fall-back rows resolved from the order of the rows
    ambiguous_by_rule: int = 0  # fall-back rows the order could not resolve (read as fold=0)
    nonexistent: int = 0  # spring-forward rows, read with the offset before the change
    format_tried: str = ISO_8601  # "ISO 8601" or the strftime format
    # a value without UTC offset read as UTC because no timezone_type is set (the first one)
    no_offset_example: str | None = None

    def notes(self, where: str) -> list[str]:
        """What the run summary should say about these timestamps (``where``: their column)."""
        if self.no_offset_example is None:
            return []
        return [
            f"{where}: timestamps such as {self.no_offset_example!r} carry no UTC offset and the "
            "data connection sets no timezone_type, so they were read as UTC (as HydroServer "
            "does). If the source writes local time, the stored times are shifted by its UTC "
            "offset: set timezone_type: iana with timezone (e.g. America/Denver), or "
            "timezone_type: offset with timezone (e.g. -0700); timezone_type: utc confirms UTC "
            "and ends this note"
        ]

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
        fmt = None if self.iso else validate_format(str(timestamp_format))  # None: ISO
        self.format = fmt
        self.zone = zone
        self.report = TimestampReport(format_tried=ISO_8601 if fmt is None else fmt)
        self.rows_seen = 0
        self.rows_parsed = 0
        self._offset_checked = False
        self._localize = _zone_needs_localizing(zone)
        if fmt is not None:
            self._fmt_has_zone, self._fmt_utc = _fmt_is_aware(fmt)
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
        if self.zone is None and not self._offset_checked and not failed.all():
            self._offset_checked = True  # one look at the first value read, not every row
            first = str(series.iloc[int(np.argmin(failed))]).strip()
            if self._reads_without_offset(first):
                self.report.no_offset_example = shorten(first)
        self.rows_seen += n
        self.rows_parsed += n - int(failed.sum())
        if naive is not None:
            naive &= ~failed
        return values, naive

    def _reads_without_offset(self, text: str) -> bool:
        """Whether a value that parsed had no UTC offset of its own (nor a format saying UTC)."""
        if self.iso:
            return not _AWARE_RE.search(text)
        return not (self._fmt_has_zone or self._fmt_utc)

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
            wall_us = int(wall[pos])
            local = _EPOCH + timedelta(microseconds=wall_us)
            delta0 = local.replace(tzinfo=zone, fold=0).utcoffset()
            delta1 = local.replace(tzinfo=zone, fold=1).utcoffset()
            # only called with a real zone (see _localize_wall), which gives every time an offset
            assert delta0 is not None and delta1 is not None
            off0 = delta0 // one_us
            off1 = delta1 // one_us
            if off0 > off1:  # the clock went back: this wall time happened twice
                amb_pos.append(pos)
                amb_first.append(wall_us - off0)
                amb_second.append(wall_us - off1)
            else:  # the clock jumped forward over this wall time: read it as fold=0
                utc[pos] = wall_us - off0
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
