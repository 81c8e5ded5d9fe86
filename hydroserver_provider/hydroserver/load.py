"""Write one datastream's parsed series so that this run's own rows end up stored, exactly once.

What a run is responsible for (DESIGN.md, "Loading rules"):

- windowed: the window ``[start, end)`` it owns. Afterwards the stored rows inside it are exactly
  the source's rows for it (new rows added, revised values replaced, rows the source no longer has
  removed), whatever other runs did at the same time outside it.
- incremental: the rows after the datastream's ``phenomenonEndTime``, plus the rows of an optional
  look-back span before it (late data: Hydrocron's overlap, a connection's ``lookback``): missing
  ones are inserted and revised values replaced there; stored rows the source lacks are kept.
  Older rows are skipped and counted, like HydroServer's own loader does.

How: the rows are written in chunks. The usual write adds rows only (``append`` after the end,
``insert`` elsewhere), which needs no delete permission, so a Data Loader key can load. When a
write is refused because rows are already there (a lost answer that the server had committed, or
another run -- a backfill beside the scheduled run, two attempts of one task) or when the span
holds other values, the run reads back *its own chunk's span* and settles it: nothing to do when
the rows are there with the right values, an ``insert`` of the missing ones, or one atomic
``replace`` of the span. It never infers its rows from the datastream's end time or from other
runs' progress. A span other writers keep changing fails the datastream (retryable) with the span
named. Rows found already stored are counted as ``already_stored``; ``loaded`` counts the rows this
run wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from hydroserver_provider.defaults import CHUNK_ROWS
from hydroserver_provider.errors import HydroServerAPIError, HydroServerProviderError
from hydroserver_provider.hydroserver.client import BulkMode, HydroServerClient, chunk_slices
from hydroserver_provider.sources.parse import ParsedSeries
from hydroserver_provider.timestamps import parse_instant, to_utc_iso

log = logging.getLogger(__name__)

ONE_MICROSECOND = np.timedelta64(1, "us")
SETTLE_ATTEMPTS = 6
"""Reads and writes of one chunk's span before giving up on writers that keep changing it."""


class LoadConflict(HydroServerProviderError):
    """Other writers kept changing a span while this run settled it; a retry resolves it."""


_NEEDS_DELETE = (
    "replacing or removing stored observations needs credentials that may delete them (an "
    "Editor API key or a workspace member's account; a Data Loader key may only add rows)")


@dataclass
class DatastreamOutcome:
    """What happened to one target datastream in one run.

    ``loaded + skipped`` is always the number of parsed rows for it (after ``dropped``).
    """

    datastream_id: str
    source_identifier: str
    name: str | None = None
    mode: str = "incremental"
    loaded: int = 0  # rows this run wrote: new rows and revised values
    revised: int = 0  # of ``loaded``: stored rows whose value this run replaced
    removed: int = 0  # stored rows of the window the source no longer has (windowed runs)
    skipped: int = 0
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> where, what
    first: str | None = None
    last: str | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def label(self) -> str:
        return f"Datastream '{self.name}' ({self.datastream_id})" if self.name \
            else f"Datastream {self.datastream_id}"

    def skip(self, reason: str, count: int) -> None:
        if count:
            self.skipped += count
            self.skipped_reasons[reason] = self.skipped_reasons.get(reason, 0) + count

    def as_dict(self) -> dict[str, Any]:
        return {
            "datastream_id": self.datastream_id,
            "name": self.name,
            "source_identifier": self.source_identifier,
            "status": "FAILURE" if self.failed else "SUCCESS",
            "mode": self.mode,
            "loaded": self.loaded,
            "revised": self.revised,
            "removed": self.removed,
            "skipped": self.skipped,
            "skipped_reasons": dict(self.skipped_reasons),
            "dropped": dict(self.dropped),
            "dropped_total": sum(self.dropped.values()),
            "dropped_examples": {k: list(v) for k, v in self.dropped_examples.items()},
            "first": self.first,
            "last": self.last,
            "error": self.error,
        }


def as_datetime64(moment: datetime) -> np.datetime64:
    return np.datetime64(moment.astimezone(UTC).replace(tzinfo=None), "us")


def load_datastream(
    client: HydroServerClient,
    outcome: DatastreamOutcome,
    series: ParsedSeries,
    metadata: Mapping[str, Any],
    *,
    window: tuple[datetime, datetime] | None,
    lookback: timedelta | None = None,
    chunk_rows: int = CHUNK_ROWS,
    dry_run: bool = False,
) -> DatastreamOutcome:
    """Load ``series`` into one datastream; errors are recorded in ``outcome``, not raised.

    ``window``: the ``[start, end)`` this run owns (None: incremental). ``lookback``: for an
    incremental run, how far before the stored end missing or revised rows are still written.
    """
    outcome.name = metadata.get("name")
    outcome.mode = "incremental" if window is None else "windowed"
    writer = _Writer(client, outcome, chunk_rows=max(1, int(chunk_rows)), dry_run=dry_run)
    try:
        if window is None:
            _load_incremental(writer, series, metadata, lookback)
        else:
            _load_window(writer, series, metadata, window)
    except HydroServerProviderError as exc:
        outcome.error = str(exc)
        log.error("%s failed: %s", outcome.label, exc)
    return outcome


def _load_incremental(writer: _Writer, series: ParsedSeries, metadata: Mapping[str, Any],
                      lookback: timedelta | None) -> None:
    ts, values = series.timestamps, series.values
    end = parse_instant(metadata.get("phenomenonEndTime"))
    if end is None:
        writer.note_span(ts)
        writer.append(ts, values)
        return
    stored_end = as_datetime64(end)
    after = ts > stored_end
    recheck = ~after
    if lookback:
        recheck &= ts >= stored_end - np.timedelta64(lookback).astype("timedelta64[us]")
    else:
        recheck[:] = False
    writer.outcome.skip("not_after_latest_observation", int((~after & ~recheck).sum()))
    writer.note_span(np.concatenate([ts[recheck], ts[after]]))
    if recheck.any():  # late rows inside the look-back span: one read, then settle
        span_ts, span_values = ts[recheck], values[recheck]
        writer.settle_range(span_ts, span_values, span_ts[0], stored_end, exact=False)
    writer.append(ts[after], values[after])


def _load_window(writer: _Writer, series: ParsedSeries, metadata: Mapping[str, Any],
                 window: tuple[datetime, datetime]) -> None:
    start, end = as_datetime64(window[0]), as_datetime64(window[1])
    ts, values = series.timestamps, series.values
    inside = (ts >= start) & (ts < end)
    writer.outcome.skip("outside_window", int((~inside).sum()))
    ts, values = ts[inside], values[inside]
    writer.note_span(ts)
    begin_meta = parse_instant(metadata.get("phenomenonBeginTime"))
    end_meta = parse_instant(metadata.get("phenomenonEndTime"))
    # Nothing stored in the window when the run began (the usual scheduled run): no read needed.
    # Rows another run adds meanwhile make a write conflict, settled by reading that span back.
    empty = end_meta is None or as_datetime64(end_meta) < start or (
        begin_meta is not None and as_datetime64(begin_meta) >= end)
    known = _Stored.empty() if empty else None
    writer.settle_range(ts, values, start, end - ONE_MICROSECOND, exact=True, stored=known)


@dataclass(frozen=True)
class _Stored:
    """Stored rows of a span, ascending (what a read of that span answered)."""

    timestamps: np.ndarray
    values: np.ndarray

    @classmethod
    def empty(cls) -> _Stored:
        return cls(np.empty(0, "datetime64[us]"), np.empty(0, "float64"))

    def between(self, first: np.datetime64, last: np.datetime64) -> _Stored:
        lo = int(np.searchsorted(self.timestamps, first, side="left"))
        hi = int(np.searchsorted(self.timestamps, last, side="right"))
        return _Stored(self.timestamps[lo:hi], self.values[lo:hi])


class _Writer:
    """Writes one datastream's rows for one run and keeps its outcome's counts truthful."""

    def __init__(self, client: HydroServerClient, outcome: DatastreamOutcome, *,
                 chunk_rows: int, dry_run: bool) -> None:
        self.client = client
        self.outcome = outcome
        self.chunk_rows = chunk_rows
        self.dry_run = dry_run
        self.total = 0  # rows this run is responsible for, for progress lines
        self.done = 0

    def note_span(self, ts: np.ndarray) -> None:
        """Remember the first and last timestamp this run is responsible for."""
        self.total = len(ts)
        if len(ts):
            self.outcome.first, self.outcome.last = to_utc_iso(ts.min()), to_utc_iso(ts.max())

    # -- reading --------------------------------------------------------------------------------

    def read(self, first: np.datetime64, last: np.datetime64) -> _Stored:
        times, results = self.client.get_observation_arrays(
            self.outcome.datastream_id, to_utc_iso(first), to_utc_iso(last))
        return _Stored(times, results)

    # -- writing --------------------------------------------------------------------------------

    def append(self, ts: np.ndarray, values: np.ndarray) -> None:
        """Rows after the stored end, in ``append`` chunks (a refused chunk is settled)."""
        for chunk in chunk_slices(len(ts), self.chunk_rows):
            chunk_ts, chunk_values = ts[chunk], values[chunk]
            if self.dry_run:
                self._count(loaded=len(chunk_ts))
                continue
            try:
                self._write(chunk_ts, chunk_values, "append")
            except HydroServerAPIError as exc:
                if not _is_conflict(exc, "append"):
                    raise
                self.settle(chunk_ts, chunk_values, exact=False,
                            lost_answer=exc.after_transport_error)
                continue
            self._count(loaded=len(chunk_ts))

    def settle_range(self, ts: np.ndarray, values: np.ndarray, first: np.datetime64,
                     last: np.datetime64, *, exact: bool, stored: _Stored | None = None) -> None:
        """Make the stored rows of ``[first, last]`` match ``ts``/``values``, chunk by chunk.

        ``exact``: stored rows the source lacks are removed (a window the run owns); otherwise
        they are kept. ``stored``: what the span holds, when known; else it is read once here.
        """
        if not exact and not len(ts):
            return
        if stored is None:
            stored = self.read(first, last)
        if exact:
            self._remove_between_chunks(ts, first, last, stored)
        for chunk in chunk_slices(len(ts), self.chunk_rows):
            self.settle(ts[chunk], values[chunk], exact=exact,
                        stored=stored.between(ts[chunk][0], ts[chunk][-1]))

    def settle(self, ts: np.ndarray, values: np.ndarray, *, exact: bool,
               stored: _Stored | None = None, lost_answer: bool = False) -> None:
        """Make the span ``[ts[0], ts[-1]]`` hold these rows (and, ``exact``, nothing else).

        ``stored``: the span's stored rows, when known (else read). ``lost_answer``: the write of
        these rows lost its answer, so rows found stored are most likely this run's own.
        """
        for _ in range(SETTLE_ATTEMPTS):
            if stored is None:
                stored = self.read(ts[0], ts[-1])
            diff = _Diff.of(ts, values, stored)
            extra = diff.extra if exact else 0
            # rows found stored after a lost answer are this run's own write
            found, already = (diff.same, 0) if lost_answer else (0, diff.same)
            if diff.missing == 0 and diff.changed == 0 and extra == 0:
                self._count(loaded=found, already=already)
                return
            mode: BulkMode
            if diff.changed == 0 and extra == 0:  # only rows to add: no delete permission needed
                rows, mode = (ts[~diff.present], values[~diff.present]), "insert"
            else:
                rows, mode = (_merge(stored, ts, values) if not exact else (ts, values)), "replace"
            if not self.dry_run:
                try:
                    self._write(*rows, mode)
                except HydroServerAPIError as exc:
                    if not _is_conflict(exc, mode):
                        raise
                    stored, lost_answer = None, lost_answer or exc.after_transport_error
                    continue  # someone wrote in this span meanwhile: read it again
            self._count(loaded=diff.missing + diff.changed + found, revised=diff.changed,
                        removed=extra, already=already)
            return
        raise LoadConflict(
            f"rows {to_utc_iso(ts[0])} .. {to_utc_iso(ts[-1])} kept changing while this run "
            f"wrote them ({SETTLE_ATTEMPTS} tries): another run of this task is writing the same "
            "span; the task's retry will settle it")

    def _remove_between_chunks(self, ts: np.ndarray, first: np.datetime64, last: np.datetime64,
                               stored: _Stored) -> None:
        """Delete stored rows of ``[first, last]`` that lie outside every chunk's span (the
        chunks' own spans are settled by their ``replace``)."""
        gaps: list[tuple[np.datetime64, np.datetime64]] = []
        edge = first
        for chunk in chunk_slices(len(ts), self.chunk_rows):
            gaps.append((edge, ts[chunk][0] - ONE_MICROSECOND))
            edge = ts[chunk][-1] + ONE_MICROSECOND
        gaps.append((edge, last))
        for gap_first, gap_last in gaps:
            if gap_first > gap_last:
                continue
            count = len(stored.between(gap_first, gap_last).timestamps)
            if not count:
                continue
            if not self.dry_run:
                self._delete(gap_first, gap_last)
            self.outcome.removed += count
            log.info("%s: removed %s stored %s in %s .. %s that the source no longer has",
                     self.outcome.label, f"{count:,}", "row" if count == 1 else "rows",
                     to_utc_iso(gap_first), to_utc_iso(gap_last))

    def _write(self, ts: np.ndarray, values: np.ndarray, mode: BulkMode) -> None:
        """Write rows (at most a chunk, or a chunk's span merged with what is stored there)."""
        try:
            for chunk in chunk_slices(len(ts), self.chunk_rows):
                self.client.write_chunk(self.outcome.datastream_id, ts[chunk], values[chunk],
                                        mode=mode)
        except HydroServerAPIError as exc:
            if exc.status == 403 and mode == "replace":
                raise HydroServerProviderError(
                    f"{exc}: the source revised rows {to_utc_iso(ts[0])} .. {to_utc_iso(ts[-1])}"
                    f"; {_NEEDS_DELETE}") from None
            raise

    def _delete(self, first: np.datetime64, last: np.datetime64) -> None:
        try:
            self.client.bulk_delete_observations(self.outcome.datastream_id, to_utc_iso(first),
                                                 to_utc_iso(last))
        except HydroServerAPIError as exc:
            if exc.status == 403:
                raise HydroServerProviderError(
                    f"{exc}: the source no longer has rows stored in {to_utc_iso(first)} .. "
                    f"{to_utc_iso(last)}; {_NEEDS_DELETE}") from None
            raise

    def _count(self, *, loaded: int = 0, revised: int = 0, removed: int = 0,
               already: int = 0) -> None:
        outcome = self.outcome
        outcome.loaded += loaded
        outcome.revised += revised
        outcome.removed += removed
        outcome.skip("already_stored", already)
        self.done += loaded + already
        if self.total > self.chunk_rows and not self.dry_run:
            log.info("%s: %s/%s rows settled", outcome.label, f"{self.done:,}",
                     f"{self.total:,}")


@dataclass(frozen=True)
class _Diff:
    """A chunk's rows against the stored rows of its span."""

    present: np.ndarray  # per chunk row: a row with this timestamp is stored
    same: int  # stored with this value
    changed: int  # stored with another value
    missing: int  # not stored
    extra: int  # stored rows of the span that the chunk does not have

    @classmethod
    def of(cls, ts: np.ndarray, values: np.ndarray, stored: _Stored) -> _Diff:
        at = np.searchsorted(stored.timestamps, ts)
        present = at < len(stored.timestamps)
        present[present] = stored.timestamps[at[present]] == ts[present]
        same = np.zeros(len(ts), dtype=bool)
        same[present] = stored.values[at[present]] == values[present]
        n_present = int(present.sum())
        n_same = int(same.sum())
        return cls(present=present, same=n_same, changed=n_present - n_same,
                   missing=len(ts) - n_present, extra=len(stored.timestamps) - n_present)


def _merge(stored: _Stored, ts: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored rows with the chunk's rows put over them (the chunk's values win)."""
    keep = ~np.isin(stored.timestamps, ts)
    merged_ts = np.concatenate([stored.timestamps[keep], ts])
    merged_values = np.concatenate([stored.values[keep], values])
    order = np.argsort(merged_ts, kind="stable")
    return merged_ts[order], merged_values[order]


def _is_conflict(exc: HydroServerAPIError, mode: str) -> bool:
    """Whether HydroServer refused the write because of rows already stored in its span."""
    if mode == "append":
        return exc.status == 400 and "append" in str(exc.detail)
    return exc.status == 409
