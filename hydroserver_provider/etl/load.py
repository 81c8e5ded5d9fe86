"""Write parsed series into HydroServer, idempotently, one datastream at a time.

Two modes (see DESIGN.md, "Loading rules"):

- incremental: only rows after the datastream's ``phenomenonEndTime`` are sent, in ``append``
  chunks. A chunk whose answer was lost (the server stored it, the connection dropped) or that a
  concurrent run got in first is detected by re-reading the end time, and the load resumes after
  it; nothing is sent twice.
- windowed: the run owns its window ``[start, end)``. When stored data may lie in it, the window is
  cleared first; then the source's rows for the window are inserted. Re-running a window (retry,
  clear, backfill) leaves exactly what the source returned, never duplicates.

A datastream that fails is recorded with its error and the others go on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import numpy as np

from .errors import HydroServerAPIError, HydroServerProviderError
from .hydroserver import DEFAULT_CHUNK_ROWS, HydroServerClient, parse_time, to_utc_iso
from .parse import ParsedSeries

log = logging.getLogger(__name__)

_ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass
class DatastreamOutcome:
    """What happened to one target datastream in one run."""

    datastream_id: str
    source_identifier: str
    name: str | None = None
    loaded: int = 0
    skipped: int = 0
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    deleted_window: bool = False
    first: str | None = None
    last: str | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

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
            "loaded": self.loaded,
            "skipped": self.skipped,
            "skipped_reasons": dict(self.skipped_reasons),
            "dropped": dict(self.dropped),
            "dropped_total": sum(self.dropped.values()),
            "first": self.first,
            "last": self.last,
            "error": self.error,
        }


def _np(moment: datetime) -> np.datetime64:
    return np.datetime64(moment.astimezone(timezone.utc).replace(tzinfo=None), "us")


def load_datastream(
    client: HydroServerClient,
    outcome: DatastreamOutcome,
    series: ParsedSeries,
    metadata: Mapping[str, Any],
    *,
    window: tuple[datetime, datetime] | None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    dry_run: bool = False,
) -> DatastreamOutcome:
    """Load ``series`` into one datastream; errors are recorded in ``outcome``, not raised."""
    outcome.name = metadata.get("name")
    try:
        if window is None:
            _load_incremental(client, outcome, series, metadata, chunk_rows, dry_run)
        else:
            _load_window(client, outcome, series, metadata, window, chunk_rows, dry_run)
    except HydroServerProviderError as exc:
        outcome.error = str(exc)
        log.error("Datastream %s (%s) failed: %s", outcome.name, outcome.datastream_id, exc)
    return outcome


def _load_incremental(client, outcome, series, metadata, chunk_rows, dry_run) -> None:
    end = parse_time(metadata.get("phenomenonEndTime"))
    ts, values = series.timestamps, series.values
    if end is not None:
        keep = ts > _np(end)
        outcome.skip("not_after_latest_observation", int((~keep).sum()))
        ts, values = ts[keep], values[keep]
    _send(client, outcome, ts, values, "append", chunk_rows, dry_run)


def _load_window(client, outcome, series, metadata, window, chunk_rows, dry_run) -> None:
    start, end = window
    ts, values = series.timestamps, series.values
    inside = (ts >= _np(start)) & (ts < _np(end))
    outcome.skip("outside_window", int((~inside).sum()))
    ts, values = ts[inside], values[inside]
    stored_begin = parse_time(metadata.get("phenomenonBeginTime"))
    stored_end = parse_time(metadata.get("phenomenonEndTime"))
    overlaps = stored_end is not None and stored_end >= start and stored_begin < end
    mode = "append" if stored_end is None or stored_end < start else "insert"
    if overlaps:
        outcome.deleted_window = True
        if not dry_run:
            client.bulk_delete_observations(outcome.datastream_id, start, end - _ONE_MICROSECOND)
        log.info("Datastream %s: cleared %s .. %s before re-loading the window",
                 outcome.datastream_id, to_utc_iso(start), to_utc_iso(end))
    _send(client, outcome, ts, values, mode, chunk_rows, dry_run)


def _send(client, outcome, ts, values, mode, chunk_rows, dry_run) -> None:
    if len(ts) == 0:
        return
    outcome.first, outcome.last = to_utc_iso(ts[0]), to_utc_iso(ts[-1])
    if dry_run:
        outcome.loaded = len(ts)
        return
    label = f"Datastream {outcome.name or ''} ({outcome.datastream_id})".replace("  ", " ")
    sent = 0
    while sent < len(ts):
        stop = min(len(ts), sent + chunk_rows)
        try:
            client.bulk_create_observations(
                outcome.datastream_id, ts[sent:stop], values[sent:stop], mode=mode,
                chunk_rows=chunk_rows,
            )
        except HydroServerAPIError as exc:
            resumed = _resume_point(client, outcome, exc, mode, ts, sent, stop)
            if resumed is None and _chunk_already_stored(client, outcome, exc, mode,
                                                         ts[sent:stop], values[sent:stop]):
                resumed = stop
            if resumed is None:
                raise
            outcome.skip("already_stored", resumed - sent)
            sent = resumed
            continue
        outcome.loaded += stop - sent
        sent = stop
        log.info("%s: %s/%s rows written (%s)", label, f"{sent:,}", f"{len(ts):,}", mode)


def _resume_point(client, outcome, exc, mode, ts, sent, stop) -> int | None:
    """After an append was refused, where to go on from, or None if it was a real error.

    HydroServer refuses a whole append batch when any row is not after the stored end. That
    happens when this very chunk was stored but its answer was lost, or when a concurrent run
    stored the same rows first: the rows up to the new end are there, so go on after them.
    """
    if mode != "append" or exc.status != 400:
        return None
    end = parse_time(client.get_datastream(outcome.datastream_id).get("phenomenonEndTime"))
    if end is None:
        return None
    position = int(np.searchsorted(ts, _np(end), side="right"))
    if position <= sent:
        return None
    log.warning("Datastream %s: rows up to %s were already stored; going on after them",
                outcome.datastream_id, to_utc_iso(end))
    return position


def _chunk_already_stored(client, outcome, exc, mode, ts, values) -> bool:
    """After an insert was refused as a duplicate (409): whether exactly this chunk is stored.

    That is the case when this chunk's answer was lost, or when a concurrent run of the same
    window (a manual run during the scheduled one) stored the same rows first: then go on. Any
    other row in the chunk's span, or another value, is a real conflict and fails the datastream.
    """
    if mode != "insert" or exc.status != 409:
        return False
    times, results = client.get_observations(outcome.datastream_id, to_utc_iso(ts[0]),
                                             to_utc_iso(ts[-1]))
    stored = np.array([_np(t) for t in times], dtype="datetime64[us]")
    same = (len(stored) == len(ts) and bool((stored == ts).all())
            and bool((np.asarray(results, dtype=np.float64) == values).all()))
    if same:
        log.warning("Datastream %s: rows %s .. %s were already stored; going on after them",
                    outcome.datastream_id, to_utc_iso(ts[0]), to_utc_iso(ts[-1]))
    return same
