"""Payload -> one time series per requested source identifier.

``parse_payload`` is the entry point the loader calls; it dispatches on the payload type to
``parse_csv`` / ``parse_json`` / ``hydrocron_parse.parse_hydrocron``. The CSV and JSON readers
feed raw columns, chunk by chunk, into a :class:`SeriesBuilder`, which reads timestamps and values
the same way for both formats:

* values: numbers and numeric strings load; the rest is dropped and counted per identifier under
  ``"empty"`` (missing, blank), ``"not_a_number"`` (text such as ``"---"``, ``"NaN"``, JSON's
  ``NaN``, booleans, objects), ``"infinite"`` (also numbers beyond float range such as
  ``1e400``), ``"fill_value"`` (only when fill values are given, e.g. Hydrocron);
* a row whose timestamp cannot be read counts as ``"unparsable_timestamp"`` for every identifier;
* equal timestamps for one identifier keep the *last* row in the file; the earlier rows count as
  ``"duplicate_timestamp"``;
* each series comes out sorted ascending, unique, ``datetime64[us]`` (UTC) + ``float64``.

Only reasons that occurred appear in ``dropped``.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pandas as pd

from hydroserver_provider.errors import ParseError
from hydroserver_provider.timestamps.columns import NAT, TimestampParser, TimestampReport, shorten

if TYPE_CHECKING:  # pragma: no cover
    from hydroserver_provider.definitions import DataConnection

__all__ = [
    "DROP_REASONS",
    "PARSE_CHUNK_ROWS",
    "ParseResult",
    "ParsedSeries",
    "SeriesBuilder",
    "parse_payload",
]

MAX_DROP_EXAMPLES = 3
"""Dropped values kept per identifier and reason, to show what was wrong and where."""

# Rows read and classified per chunk. Chunks this size keep pandas' tokenizer and the string table
# it builds for the timestamp column inside the CPU caches: a 1M-row CSV parses ~25% faster than
# with 200,000-row chunks, and peak memory is lower (see docs/benchmarks.md, Ingestion).
PARSE_CHUNK_ROWS = 50_000

DROP_REASONS = (
    "empty",
    "not_a_number",
    "infinite",
    "unparsable_timestamp",
    "duplicate_timestamp",
    "fill_value",
)

# The classes of JSON booleans and of Python floats (a JSON NaN), as 0-d object arrays:
# ``np.equal`` compares an object array of value types with them element by element.
_BOOL_CLASS = np.array(bool, dtype=object)
_FLOAT_CLASS = np.array(float, dtype=object)

# payload type -> "module:function" (relative to this package) of its reader. Each reader has the
# signature of ``parse_payload`` and returns a ParseResult.
_PAYLOAD_READERS: dict[str, str] = {
    "CSV": ".csv_reader:parse_csv",
    "JSON": ".json_reader:parse_json",
    "HYDROCRON": ".hydrocron.parse:parse_hydrocron",  # saved/previewed Hydrocron answers
}


@dataclass
class ParsedSeries:
    """One identifier's observations.

    ``timestamps`` is read-only and may be shared by several series of the same result.
    """

    timestamps: np.ndarray  # datetime64[us] (UTC, naive numpy), ascending, unique
    values: np.ndarray  # float64, finite

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class ParseResult:
    series: dict[str, ParsedSeries]  # keyed by each requested identifier exactly as given
    rows_read: int  # data rows read from the source (after comments/units rows)
    dropped: dict[str, dict[str, int]]  # identifier -> reason -> count (only reasons that occurred)
    timestamps: TimestampReport = field(default_factory=TimestampReport)
    # identifiers the source does not have (column/field not found) -> the error for their
    # datastreams; the other identifiers still load
    missing: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # how the source was read, for the summary
    # identifier -> reason -> the first few dropped values and where they were ("row 5: '---'")
    drop_examples: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def table(self) -> pd.DataFrame:
        """Long table (timestamp [UTC, tz-aware], source_identifier, value) by identifier, time."""
        frames = []
        for ident in sorted(self.series):
            s = self.series[ident]
            frames.append(
                pd.DataFrame(
                    {
                        "timestamp": pd.DatetimeIndex(s.timestamps).tz_localize("UTC"),
                        "source_identifier": pd.Series([ident] * len(s.values), dtype="str"),
                        "value": s.values,
                    }
                )
            )
        if not frames or not sum(len(f) for f in frames):
            return pd.DataFrame(
                {
                    "timestamp": pd.DatetimeIndex([], dtype="datetime64[us, UTC]"),
                    "source_identifier": pd.Series([], dtype="str"),
                    "value": pd.Series([], dtype="float64"),
                }
            )
        return pd.concat([f for f in frames if len(f)], ignore_index=True)


def parse_payload(
    stream: BinaryIO,
    connection: DataConnection,
    identifiers: Sequence[str],
    *,
    chunk_rows: int = PARSE_CHUNK_ROWS,
) -> ParseResult:
    """Read ``stream`` as ``connection.payload`` describes; one series per identifier."""
    kind = getattr(connection.payload, "type", None)
    target = _PAYLOAD_READERS.get(kind)  # type: ignore[arg-type]
    if target is None:
        raise ParseError(
            f"data connection '{connection.name}': payload type {kind!r} cannot be parsed here "
            f"(supported: {', '.join(sorted(_PAYLOAD_READERS))})"
        )
    module_name, func_name = target.split(":")
    reader: Callable[..., ParseResult] = getattr(
        importlib.import_module(module_name, __package__), func_name
    )
    return reader(stream, connection, identifiers, chunk_rows=chunk_rows)


# --------------------------------------------------------------------------------------------
# Shared by the readers
# --------------------------------------------------------------------------------------------


def did_you_mean(name: str, available: Sequence[str]) -> str | None:
    """The closest available name to ``name``: same text ignoring case/blanks, else difflib."""
    folded = name.strip().casefold()
    for candidate in available:
        if candidate.strip().casefold() == folded:
            return candidate
    close = difflib.get_close_matches(name, list(available), n=1, cutoff=0.6)
    return close[0] if close else None


def not_found_message(
    kind: str,
    missing: Sequence[tuple[str, str]],
    available: Sequence[str],
    *,
    suggest: bool = True,
    limit: int = 20,
) -> str:
    """``column 'temperature' not found; did you mean 'Temperature'? Available columns: ...``.

    ``missing`` holds (label, name) pairs such as ``("timestamp column", "Time")``; ``kind`` names
    what ``available`` lists ("column", "field").
    """
    parts = []
    for label, name in missing:
        hint = did_you_mean(name, available) if suggest else None
        if hint is not None and hint != name:
            parts.append(f"{label} {name!r} not found; did you mean {hint!r}?")
        else:
            parts.append(f"{label} {name!r} not found.")
    shown = ", ".join(repr(shorten(a)) for a in available[:limit])
    if len(available) > limit:
        shown += f", ... ({len(available) - limit} more)"
    return " ".join(parts) + f" Available {kind}s: {shown or '(none)'}"


def _shown(value: Any) -> str:
    """A raw value as a drop example: quoted and short; "(empty)" for a missing one."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "(empty)"
    if isinstance(value, str):
        return repr(shorten(value, 40)) if value.strip() else "(blank)"
    return shorten(repr(value), 40)


def _classify_values(
    raw: Any, fill_values: np.ndarray | None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Raw column -> (float64 with NaN where dropped, reason -> boolean mask of dropped rows)."""
    series = raw if isinstance(raw, pd.Series) else pd.Series(raw, dtype=object)
    n = len(series)
    reasons: dict[str, np.ndarray] = {}
    kind = getattr(series.dtype, "kind", "O")
    if kind == "f":
        values = series.to_numpy(dtype=np.float64, copy=True)
        reasons["empty"] = np.isnan(values)
    elif kind in "iu":
        values = series.to_numpy(dtype=np.float64, copy=True)
    elif kind == "b":
        values = np.full(n, np.nan)
        reasons["not_a_number"] = np.ones(n, dtype=bool)
    else:
        missing = series.isna().to_numpy(dtype=bool)
        numeric = pd.to_numeric(series, errors="coerce")
        values = pd.Series(numeric).to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        if series.dtype == object and n:
            # JSON booleans would read as 1/0: they are not measurements.
            types = np.fromiter(map(type, series.to_numpy()), dtype=object, count=n)
            is_bool = np.equal(types, _BOOL_CLASS)
            if is_bool.any():
                values[is_bool] = np.nan
            # A NaN number (JSON's NaN literal) is a value that is not a number, not a gap.
            is_nan = missing & np.equal(types, _FLOAT_CLASS)
            if is_nan.any():
                missing = missing & ~is_nan
        bad = np.isnan(values) & ~missing
        if bad.any():
            idx = np.flatnonzero(bad)
            blank = series.iloc[idx].astype("str").str.strip().eq("").to_numpy(dtype=bool)
            missing = missing.copy()
            missing[idx[blank]] = True
            bad[idx[blank]] = False
        reasons["empty"] = missing
        reasons["not_a_number"] = bad
    infinite = np.isinf(values)
    if infinite.any():
        values[infinite] = np.nan
        reasons["infinite"] = infinite
    if fill_values is not None and fill_values.size:
        is_fill = np.isin(values, fill_values)
        if is_fill.any():
            values[is_fill] = np.nan
            reasons["fill_value"] = is_fill
    return values, reasons


class SeriesBuilder:
    """Accumulates raw chunks (timestamp column + one column per identifier) into a ParseResult.

    Only int64 timestamps, a naive flag and float64 values are kept between chunks; the raw text
    is discarded chunk by chunk.

    ``where`` names the timestamp column/field in error messages ("column 'Timestamp'").
    ``fill_values``: values meaning "no data" (dropped as ``"fill_value"``).
    ``row_label``: how a row is named in the drop examples, from its 0-based position among the
    data rows ("data row 5", "record 5").
    """

    def __init__(
        self,
        identifiers: Sequence[str],
        parser: TimestampParser,
        *,
        where: str = "the timestamp column",
        fill_values: Collection[float] = (),
        row_label: Callable[[int], str] = lambda i: f"row {i + 1:,}",
    ) -> None:
        self.identifiers = list(dict.fromkeys(identifiers))
        self.parser = parser
        self.where = where
        self.fill_values = np.asarray(list(fill_values), dtype=np.float64) if fill_values else None
        self.rows_read = 0
        self._ts = _Column(np.int64)
        self._naive: _Column | None = None
        self._values = {i: _Column(np.float64) for i in self.identifiers}
        self._dropped: dict[str, dict[str, int]] = {i: {} for i in self.identifiers}
        self.missing: dict[str, str] = {}
        self.notes: list[str] = []
        self.row_label = row_label
        self._examples: dict[str, dict[str, list[str]]] = {i: {} for i in self.identifiers}

    def note(self, text: str) -> None:
        """Something the run summary should say about how the source was read."""
        self.notes.append(text)

    def mark_missing(self, names: Sequence[str], message: Callable[[str], str]) -> None:
        """The source lacks these identifiers: their datastreams fail with ``message(name)``.

        Raises ParseError when no identifier would be left, since nothing could load.
        """
        names = [n for n in dict.fromkeys(names) if n in self._values]
        if not names:
            return
        if len(names) == len(self.identifiers):
            raise ParseError(" ".join(dict.fromkeys(message(n) for n in names)))
        for name in names:
            self.missing[name] = message(name)
            self.identifiers.remove(name)
            del self._values[name], self._dropped[name], self._examples[name]

    def add(self, raw_timestamps: Any, raw_values: Mapping[str, Any]) -> None:
        """One chunk: the raw timestamp column and, per identifier, its raw column (same length)."""
        ts, naive = self.parser.parse(raw_timestamps)
        n = len(ts)
        offset = self.rows_read
        self.rows_read += n
        ts_ok = ts != NAT
        n_bad_ts = n - int(ts_ok.sum())
        for ident in self.identifiers:
            raw = raw_values[ident]
            values, reasons = _classify_values(raw, self.fill_values)
            if len(values) != n:
                raise ValueError(f"column for {ident!r} has {len(values)} rows, expected {n}")
            counts = self._dropped[ident]
            for reason, mask in reasons.items():
                dropped = mask & ts_ok if n_bad_ts else mask
                hit = int(np.count_nonzero(dropped))
                if hit:
                    counts[reason] = counts.get(reason, 0) + hit
                    self._example(ident, reason, dropped, raw, offset)
            if n_bad_ts:
                counts["unparsable_timestamp"] = counts.get("unparsable_timestamp", 0) + n_bad_ts
                self._example(ident, "unparsable_timestamp", ~ts_ok, raw_timestamps, offset)
            self._values[ident].append(values)
        if naive is not None:
            if self._naive is None:  # earlier chunks had nothing to localise
                self._naive = _Column(bool)
                self._naive.append(np.zeros(len(self._ts), dtype=bool))
            self._naive.append(naive)
        elif self._naive is not None:
            self._naive.append(np.zeros(n, dtype=bool))
        self._ts.append(ts)

    def _example(self, ident: str, reason: str, mask: np.ndarray, raw: Any, offset: int) -> None:
        """Keep the first few dropped values of a reason, with where they were."""
        shown = self._examples[ident].setdefault(reason, [])
        room = MAX_DROP_EXAMPLES - len(shown)
        if room <= 0:
            return
        for i in np.flatnonzero(mask)[:room].tolist():
            value = raw.iloc[i] if isinstance(raw, pd.Series) else raw[i]
            shown.append(f"{self.row_label(offset + i)}: {_shown(value)}")

    def finish(self) -> ParseResult:
        """Resolve local times over the whole column, then sort, de-duplicate and drop per series.

        To keep memory low, series whose rows all survive share one read-only timestamps array.
        """
        ts = self._ts.take()
        naive = self._naive.take() if self._naive is not None else None
        self._naive = None
        utc = self.parser.localize(ts, naive)
        del ts, naive
        self.parser.raise_if_none_parsed(self.where)

        order = _sort_order(utc)
        sorted_ts = utc if order is None else utc[order]
        del utc
        sorted_ts.flags.writeable = False
        shared: tuple[np.ndarray, np.ndarray | None] | None = None  # for series that keep all rows

        series: dict[str, ParsedSeries] = {}
        for ident in self.identifiers:
            values = self._values.pop(ident).take()
            if order is not None:
                values = values[order]
            keep = ~np.isnan(values)
            if keep.all():
                if shared is None:
                    last = _last_of_runs(sorted_ts)
                    shared = (sorted_ts if last is None else sorted_ts[last], last)
                    shared[0].flags.writeable = False
                t, last = shared
                before_dedup = sorted_ts
            else:
                t = before_dedup = sorted_ts[keep]
                values = values[keep]
                last = _last_of_runs(t)
                if last is not None:
                    t = t[last]
                t.flags.writeable = False
            del keep
            if last is not None:
                values = values[last]
                dups = int(last.size - np.count_nonzero(last))
                counts = self._dropped[ident]
                counts["duplicate_timestamp"] = counts.get("duplicate_timestamp", 0) + dups
                repeated = before_dedup[~last][:MAX_DROP_EXAMPLES].view("M8[us]")
                self._examples[ident]["duplicate_timestamp"] = [
                    f"{np.datetime_as_string(t, unit='s')}Z (a later row has the same time)"
                    for t in repeated]
            series[ident] = ParsedSeries(timestamps=t.view("M8[us]"), values=values)
        return ParseResult(
            series=series,
            rows_read=self.rows_read,
            dropped=self._dropped,
            timestamps=self.parser.report,
            missing=self.missing,
            notes=[*self.notes, *self.parser.report.notes(self.where)],
            drop_examples={i: e for i, e in self._examples.items() if e},
        )


class _Column:
    """An append-only array that grows by doubling.

    Unlike a list of chunks concatenated at the end, it never holds the data twice for long,
    and the unused tail of a large buffer is never touched, so it costs no resident memory.
    """

    def __init__(self, dtype: Any, capacity: int = 1 << 16) -> None:
        self._buf = np.empty(capacity, dtype=dtype)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, values: np.ndarray) -> None:
        need = self._n + len(values)
        if need > len(self._buf):
            grown = np.empty(max(need, 2 * len(self._buf)), dtype=self._buf.dtype)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : need] = values
        self._n = need

    def take(self) -> np.ndarray:
        """The values so far (a view of the buffer); the column is left empty."""
        out = self._buf[: self._n]
        self._buf = np.empty(0, dtype=self._buf.dtype)
        self._n = 0
        return out


def _sort_order(utc: np.ndarray) -> np.ndarray | None:
    """Row positions of the readable timestamps in ascending time (file order among equals).

    ``None`` when every row is readable and already strictly ascending (nothing to reorder).
    """
    valid = utc != NAT
    if valid.all():
        if utc.size < 2 or (utc[1:] > utc[:-1]).all():
            return None
        if (utc[1:] < utc[:-1]).all():
            return np.arange(utc.size - 1, -1, -1)
        return np.argsort(utc, kind="stable")
    positions = np.flatnonzero(valid)
    del valid
    u = utc[positions]
    if u.size < 2 or (u[1:] > u[:-1]).all():
        return positions
    if (u[1:] < u[:-1]).all():
        return positions[::-1].copy()
    return positions[np.argsort(u, kind="stable")]


def _last_of_runs(t: np.ndarray) -> np.ndarray | None:
    """Mask keeping the last element of each run of equal values; None when all are distinct."""
    if t.size < 2:
        return None
    last = np.empty(t.size, dtype=bool)
    np.not_equal(t[1:], t[:-1], out=last[:-1])
    last[-1] = True
    return None if last.all() else last
