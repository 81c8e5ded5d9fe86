"""One ingestion run: metadata -> source (fetch, parse) -> load -> summary.

The order keeps HydroServer requests to a minimum: one metadata call for every mapped datastream
(it also answers ``latest_observation_timestamp``), then the writes. The summary mirrors
HydroServer's run record (status, message, result) and never contains a secret.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hydroserver_provider.defaults import CHUNK_ROWS
from hydroserver_provider.definitions import DataConnection
from hydroserver_provider.definitions import Mapping as MappingDef
from hydroserver_provider.errors import HydroServerAPIError, IngestionFailed
from hydroserver_provider.hydroserver.client import HydroServerClient
from hydroserver_provider.hydroserver.load import DatastreamOutcome, load_datastream
from hydroserver_provider.retries import RetryPolicy
from hydroserver_provider.sources import (
    DEFAULT_MAX_BYTES,
    Source,
    SourceOptions,
    SourceRun,
    source_for,
)
from hydroserver_provider.sources.parse import ParseResult
from hydroserver_provider.sources.placeholders import (
    EPOCH,
    RunWindow,
    connection_zone,
    redact_text,
)
from hydroserver_provider.summary import (
    describe_window,
    log_datastreams,
    run_message,
    window_block,
)
from hydroserver_provider.text import plural
from hydroserver_provider.timestamps import parse_instant

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """Knobs of one run; the defaults suit a scheduled run."""

    chunk_rows: int = CHUNK_ROWS
    dry_run: bool = False
    source_headers: Mapping[str, str] = field(default_factory=dict)
    source_timeout: float | tuple[float, float] = (10.0, 300.0)
    source_retry: RetryPolicy = RetryPolicy()
    max_source_bytes: int = DEFAULT_MAX_BYTES
    # datastreams written at the same time: a real HydroServer spends ~0.1 ms per stored row,
    # so writing several datastreams concurrently divides a large run's wall time
    parallel_datastreams: int = 4


def oldest_end(metadata: Mapping[str, Mapping[str, Any]], fallback: datetime | None,
               lookback: timedelta | None = None) -> datetime:
    """``latest_observation_timestamp``: the oldest end among the datastreams (minus the
    ``lookback`` the run re-checks), or ``fallback``.

    A datastream with no data yet pulls the value back to the task's start time (else 1970), so
    that datastream is filled from the beginning too.
    """
    ends = [parse_instant(m.get("phenomenonEndTime")) for m in metadata.values()]
    known = [end for end in ends if end is not None]
    if not ends or len(known) != len(ends):
        return fallback or EPOCH
    return min(known) - (lookback or timedelta(0))


def mode_reason(connection: DataConnection, window: RunWindow, windowed: bool,
                lookback: timedelta | None) -> str:
    """Why a run loads the way it does, in one sentence (the summary's ``mode_reason``)."""
    if windowed and window.explicit and not connection.uses_window:
        return (f"this run was given its window ({window.reason or 'explicit window'}): it "
                "reloads that window, although the source URL is incremental")
    if windowed:
        given = f" ({window.reason})" if window.explicit and window.reason else ""
        return f"the source URL takes the run's window{given}: the run reloads that window"
    text = "the source URL has no window placeholder: rows after each datastream's newest " \
           "observation are loaded"
    if lookback:
        text += f", and missing or revised rows of the {_duration_text(lookback)} before it"
    return text


def _duration_text(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} s"


def run_ingestion(
    client: HydroServerClient,
    connection: DataConnection,
    mappings: Sequence[MappingDef],
    *,
    window: RunWindow | None = None,
    task_variables: Mapping[str, str] | None = None,
    start_time: datetime | None = None,
    options: RunOptions = RunOptions(),
    on_parsed: Callable[[ParseResult], None] | None = None,
    source: Source | None = None,
) -> dict[str, Any]:
    """Run one data connection into its mapped datastreams; returns the run summary.

    Raises :class:`IngestionFailed` (carrying the summary) when any datastream failed, after
    every other datastream was loaded. Source and parse errors raise before anything is written.
    ``on_parsed`` receives the parsed series before anything is loaded (the summary only counts
    them; a preview shows and plots them). ``source``: how to read the connection (default:
    :func:`~hydroserver_provider.sources.source_for`; e.g. a configured ``HydrocronSource``).
    """
    began = time.monotonic()
    window = window or RunWindow()
    metadata, missing = _metadata(client, [m.target_datastream_id for m in mappings],
                                  connection.workspace_id)

    def latest_observation() -> datetime:
        if window.explicit and window.bounded:  # a reload: every placeholder comes from it
            return window.start  # type: ignore[return-value]
        return oldest_end(metadata, start_time, connection.lookback)

    zone = connection_zone(connection)
    if window.bounded:
        log.info("Window: %s", describe_window(window.start, window.end, zone))  # type: ignore[arg-type]
    read = (source or source_for(connection)).read(SourceRun(
        connection=connection, mappings=mappings, window=window,
        task_variables=task_variables or {}, latest_observation=latest_observation,
        options=SourceOptions(headers=options.source_headers, timeout=options.source_timeout,
                              retry=options.source_retry, max_bytes=options.max_source_bytes),
        hydroserver=client, metadata=metadata))
    parsed = read.parsed
    log.info("Read %s from the source", plural(parsed.rows_read, "row"))
    reason = mode_reason(connection, window, read.windowed, read.lookback)
    log.info("Mode: %s (%s)", "windowed" if read.windowed else "incremental", reason)
    if on_parsed is not None:
        on_parsed(parsed)
    clients = _ThreadClients(client)
    secrets = (*options.source_headers.values(), *read.secrets)

    def load(mapping: MappingDef) -> DatastreamOutcome:
        outcome = DatastreamOutcome(mapping.target_datastream_id, mapping.source_identifier)
        outcome.dropped = dict(parsed.dropped.get(mapping.source_identifier, {}))
        outcome.dropped_examples = {
            reason: [redact_text(e, secrets) for e in shown]
            for reason, shown in parsed.drop_examples.get(mapping.source_identifier, {}).items()}
        if mapping.target_datastream_id in missing:
            outcome.error = missing[mapping.target_datastream_id]
            return outcome
        if mapping.source_identifier in parsed.missing:
            outcome.name = metadata[mapping.target_datastream_id].get("name")
            outcome.error = parsed.missing[mapping.source_identifier]
            return outcome
        series = read.prepare(outcome, parsed.series[mapping.source_identifier])
        if series is not None:
            load_datastream(
                clients.get(), outcome, series, metadata[mapping.target_datastream_id],
                window=read.load_window, lookback=read.lookback,
                chunk_rows=options.chunk_rows, dry_run=options.dry_run,
            )
        return outcome

    workers = max(1, min(options.parallel_datastreams, len(mappings)))
    try:
        if workers == 1:
            outcomes = [load(mapping) for mapping in mappings]
        else:  # HydroServer stores each datastream's chunks independently: overlap them
            with ThreadPoolExecutor(workers, thread_name_prefix="hydroserver-load") as pool:
                outcomes = list(pool.map(load, mappings))
    finally:
        clients.close()

    datastreams = [o.as_dict() for o in outcomes]
    timestamps = parsed.timestamps.as_dict()
    summary = {
        "status": "FAILURE" if any(o.failed for o in outcomes) else "SUCCESS",
        "message": run_message(datastreams, options.dry_run),
        "dry_run": options.dry_run,
        "mode": "windowed" if read.windowed else "incremental",
        "mode_reason": reason,
        "window": window_block(window.start, window.end, zone),
        "url": read.url,
        "variables": read.values,
        "rows_read": parsed.rows_read,
        "loaded": sum(o.loaded for o in outcomes),
        "timestamps": timestamps,
        "notes": list(parsed.notes),
        "datastreams": datastreams,
        "seconds": round(time.monotonic() - began, 3),
        **read.summary(),
    }
    prefix = read.describe()
    if prefix:
        summary["message"] = f"{prefix} {summary['message']}"
    for text in summary["notes"]:
        log.warning("Note: %s", text)
    log_datastreams(summary, log)
    log.info(summary["message"])
    if summary["status"] == "FAILURE":
        raise IngestionFailed(summary["message"], summary)
    return summary


class _ThreadClients:
    """One HydroServer client per loading thread: the run's own client in the thread that made
    it, a :meth:`~.hydroserver.HydroServerClient.fork` (own Session, shared login) elsewhere."""

    def __init__(self, client: HydroServerClient) -> None:
        self._client = client
        self._owner = threading.get_ident()
        self._local = threading.local()
        self._forks: list[HydroServerClient] = []
        self._lock = threading.Lock()

    def get(self) -> HydroServerClient:
        if threading.get_ident() == self._owner:
            return self._client
        fork = getattr(self._local, "client", None)
        if fork is None:
            fork = self._local.client = self._client.fork()
            with self._lock:
                self._forks.append(fork)
        return fork

    def close(self) -> None:
        for fork in self._forks:
            fork.close()


def _metadata(client: HydroServerClient, targets: list[str],
              workspace_id: str | None) -> tuple[dict[str, dict], dict[str, str]]:
    """Metadata by datastream id, and an error text for each id HydroServer would not give.

    A malformed id (HydroServer answers 422) fails its own datastream only, like a missing one.
    """
    try:
        return client.get_datastreams(targets, workspace_id=workspace_id), {}
    except HydroServerAPIError as exc:
        if exc.status not in (403, 404, 422):
            raise
    metadata, missing = {}, {}
    for datastream_id in dict.fromkeys(targets):  # find out which ones are missing
        try:
            metadata[datastream_id] = client.get_datastream(datastream_id)
        except HydroServerAPIError as exc:
            if exc.status == 422:
                missing[datastream_id] = (
                    f"datastream id {datastream_id!r} is not a HydroServer datastream id "
                    f"(expected a UUID such as 0190a6c4-5f3e-7a4b-9c1d-2e3f4a5b6c7d; HTTP 422)"
                )
                continue
            if exc.status not in (403, 404):
                raise
            missing[datastream_id] = (
                f"datastream {datastream_id} does not exist or these credentials cannot see it "
                f"(HTTP {exc.status}: {exc.detail})"
            )
    return metadata, missing
