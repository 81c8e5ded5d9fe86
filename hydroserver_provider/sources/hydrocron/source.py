"""NASA Hydrocron as a source (:class:`HydrocronSource`): which feature, which window, units
before loading.

The pipeline reads a ``HYDROCRON`` data connection through :meth:`HydrocronSource.read` (see
:mod:`hydroserver_provider.sources`), then calls :meth:`HydrocronRun.prepare` for every mapped
datastream before loading it.

Windows
    ``mode: windowed``: the run's data interval ``[start, end)``; the request is widened by
    ``overlap_hours`` on both sides (Hydrocron selects passes by their start time, not by
    ``time_str``) and the loader keeps exactly the interval, so re-running it changes nothing.
    ``mode: incremental`` (the default): from the oldest newest-observation of the mapped
    datastreams, minus the overlap, until now; the loader keeps what is newer than each
    datastream's last observation. A datastream with no data starts at the task's start time,
    but never before SWOT's first data (:data:`SWOT_FIRST_DATA`), so a first run does not ask for
    fifty years of nothing.

Feature
    The run's ``feature_id`` argument (the operator's, one per mapped task instance in a fan-out),
    else the payload's ``feature_id``, else the task variable ``feature_id``, else the one feature
    all mappings name.

Units
    Hydrocron reports ``<field>_units``; each datastream's unit is read from HydroServer (one list
    call for the run, see :meth:`~.hydroserver.HydroServerClient.get_units`) and compared with
    :func:`~.units.check_units`: a mismatch fails that datastream only, unless the payload's
    ``conversions`` converts the field.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hydroserver_provider.definitions import DataConnection, HydrocronPayload
from hydroserver_provider.definitions import Mapping as MappingDef
from hydroserver_provider.errors import DefinitionError
from hydroserver_provider.hydroserver.load import DatastreamOutcome
from hydroserver_provider.sources import SourceRun
from hydroserver_provider.sources.hydrocron.client import (
    DEFAULT_URL,
    HydrocronClient,
    HydrocronQuery,
    HydrocronResult,
    format_time,
)
from hydroserver_provider.sources.hydrocron.units import check_units, target_unit_text
from hydroserver_provider.sources.parse import ParsedSeries, ParseResult
from hydroserver_provider.sources.placeholders import RunWindow

__all__ = ["SWOT_FIRST_DATA", "HydrocronRun", "HydrocronSource", "fetch_for_run",
           "feature_id_for_run"]

log = logging.getLogger(__name__)

SWOT_FIRST_DATA = datetime(2022, 12, 1, tzinfo=UTC)
"""Before SWOT's launch (2022-12-16): no Hydrocron series starts earlier."""


def _hydrocron_payload(connection: DataConnection) -> HydrocronPayload:
    """The payload of a connection this module is only ever given for ``HYDROCRON`` payloads."""
    payload = connection.payload
    assert isinstance(payload, HydrocronPayload), f"not a Hydrocron payload: {payload.type}"
    return payload


def feature_id_for_run(connection: DataConnection, mappings: Sequence[MappingDef],
                       task_variables: Mapping[str, str] | None,
                       feature_id: str | None = None) -> str:
    """The one feature this run loads (see the module docstring for the order)."""
    payload = _hydrocron_payload(connection)
    named = list(dict.fromkeys(m.feature_id for m in mappings if m.feature_id))
    chosen = (feature_id or payload.feature_id or (task_variables or {}).get("feature_id")
              or (named[0] if len(named) == 1 else None))
    location = f"data connection '{connection.name}'"
    if not chosen:
        raise DefinitionError(
            "this Hydrocron run has no feature" + (
                f": the mappings name {len(named)} features, run one at a time (the DAG "
                "factory maps the task over them)" if named else ""),
            location=location, field="feature_id",
            expected="feature_id in the data connection, task_variables: {feature_id: ...}, or "
                     "the operator's feature_id", found=named or None)
    chosen = str(chosen).strip()
    other = [m.source_identifier for m in mappings if m.feature_id and m.feature_id != chosen]
    if other:
        raise DefinitionError(
            f"mappings of another feature were given to the run of feature {chosen}",
            location=location, field="mappings.feature_id",
            expected=f"only mappings with feature_id {chosen} (or none)", found=other)
    return chosen


def _window(connection: DataConnection, window: RunWindow,
            latest_observation: Callable[[], datetime | None]) -> tuple[datetime, datetime, bool]:
    """(start, end, windowed) of the period this run asks for (before the overlap margins)."""
    if window.explicit and window.bounded:  # a reload of a window given to the run
        return window.start, window.end, True  # type: ignore[return-value]
    if connection.uses_window:
        if not window.bounded:
            raise DefinitionError(
                "a Hydrocron connection with mode: windowed needs the run's data interval, and "
                "this run has none; trigger it with a window (start and end) or give the DAG a "
                "schedule", location=f"data connection '{connection.name}'", field="mode",
                expected="a run with a window, or mode: incremental", found="windowed")
        return window.start, window.end, True  # type: ignore[return-value]
    end = window.started_at
    start = max(latest_observation() or SWOT_FIRST_DATA, SWOT_FIRST_DATA)
    return min(start, end), end, False


@dataclass
class HydrocronRun:
    """What one run fetched from Hydrocron, and how each datastream's units were settled."""

    connection: DataConnection
    result: HydrocronResult
    feature_id: str
    windowed: bool
    start: datetime
    end: datetime
    units: dict[str, dict[str, Any]] = field(default_factory=dict)  # datastream id -> check
    notes: list[str] = field(default_factory=list)

    @property
    def parsed(self) -> ParseResult:
        return self.result.parse_result

    @property
    def url(self) -> str:
        return self.result.url

    @property
    def values(self) -> dict[str, str]:
        return {"feature_id": self.feature_id}

    @property
    def secrets(self) -> tuple[str, ...]:
        return ()  # the API key travels in a header the client holds, never in the answer

    @property
    def load_window(self) -> tuple[datetime, datetime] | None:
        return (self.start, self.end) if self.windowed else None

    @property
    def lookback(self) -> timedelta:
        """How far before each datastream's newest observation an incremental run still loads
        missing or revised passes: the overlap it asks for anyway, or the connection's
        ``lookback`` when longer (Hydrocron adds reprocessed or late passes afterwards)."""
        return max(self.result.query.overlap, self.connection.lookback or timedelta(0))

    def describe(self) -> str:
        query = self.result.query
        collection = self.result.collection or query.collection_name or "default collection"
        n = self.result.requests
        return (f"Hydrocron {query.feature} {query.feature_id} ({collection}), {n} request"
                f"{'s' if n != 1 else ''}:")

    def check_units(self, client: Any, mappings: Sequence[MappingDef],
                    metadata: Mapping[str, Mapping[str, Any]]) -> None:
        """Compare every mapped field's unit with its datastream's, before anything is loaded.

        HydroServer is asked only for datastreams that receive values, in one request.
        """
        conversions = _hydrocron_payload(self.connection).conversions
        series = self.parsed.series
        todo = [m for m in mappings if m.target_datastream_id in metadata
                and len(series.get(m.source_identifier, ())) > 0
                and (m.source_identifier in self.result.units
                     or m.source_identifier in conversions)]
        unit_ids = {m.target_datastream_id: metadata[m.target_datastream_id].get("unitId")
                    for m in todo}
        units = client.get_units([u for u in unit_ids.values() if u],
                                 datastream_ids=[d for d, u in unit_ids.items() if u]) \
            if any(unit_ids.values()) else {}
        for m in todo:
            meta = metadata[m.target_datastream_id]
            target = units.get(unit_ids[m.target_datastream_id] or "")
            name = meta.get("name")
            shown = f"datastream '{name}'" if name else f"datastream {m.target_datastream_id}"
            check = check_units(m.source_identifier, self.result.units.get(m.source_identifier),
                                target, conversions.get(m.source_identifier), datastream=shown)
            self.units[m.target_datastream_id] = {
                "name": name,
                "field": m.source_identifier,
                "source": self.result.units.get(m.source_identifier),
                "target": target_unit_text(target),
                "factor": check.factor,
                **({"error": check.error} if check.error else {}),
                **({"note": check.note} if check.note else {}),
            }
            if check.note:
                self.notes.append(check.note)
                log.warning("%s", check.note)

    def prepare(self, outcome: DatastreamOutcome, series: ParsedSeries) -> ParsedSeries | None:
        """The series to load into ``outcome``'s datastream (converted when configured), or
        None after recording in ``outcome`` why it must not be loaded."""
        settled = self.units.get(outcome.datastream_id)
        if settled is None:
            return series
        error = settled.get("error")
        if error:
            outcome.name = outcome.name or settled.get("name")
            outcome.error = error
            log.error("Datastream %s: %s", outcome.datastream_id, error)
            return None
        if settled["factor"] != 1.0:
            return ParsedSeries(timestamps=series.timestamps,
                                values=series.values * settled["factor"])
        return series

    def summary(self) -> dict[str, Any]:
        """The ``hydrocron`` block of the run summary (JSON-safe, no secret)."""
        return {"hydrocron": {
            **self.result.summary(),
            "mode": "windowed" if self.windowed else "incremental",
            "asked": [format_time(self.start), format_time(self.end)],
            "datastream_units": dict(self.units),
            "notes": [*self.result.notes, *self.notes],
        }}


@dataclass
class HydrocronSource:
    """A ``HYDROCRON`` data connection's source: ``client`` (e.g. ``HydrocronHook(...).get_conn()``;
    None: the public endpoint, anonymously) and the feature to load (``feature_id``; default:
    the definition's, see :func:`feature_id_for_run`)."""

    client: HydrocronClient | None = None
    feature_id: str | None = None

    def read(self, run: SourceRun) -> HydrocronRun:
        fetched = fetch_for_run(self.client, run.connection, run.mappings, window=run.window,
                                latest_observation=run.latest_observation,
                                task_variables=run.task_variables, feature_id=self.feature_id)
        fetched.check_units(run.hydroserver, run.mappings, run.metadata)
        return fetched


def fetch_for_run(
    client: HydrocronClient | None,
    connection: DataConnection,
    mappings: Sequence[MappingDef],
    *,
    window: RunWindow,
    latest_observation: Callable[[], datetime | None],
    task_variables: Mapping[str, str] | None = None,
    feature_id: str | None = None,
) -> HydrocronRun:
    """Fetch this run's series from Hydrocron (no write anywhere).

    ``client``: e.g. ``HydrocronHook(...).get_conn()``; None for an anonymous client of the
    public endpoint. The payload's ``min_window_hours`` / ``max_window_days`` apply to this run.
    Raises :class:`~.hydrocron.HydrocronRequestError` (a definition error quoting Hydrocron) for a
    rejected request; "no data" is an empty, successful result.
    """
    payload = _hydrocron_payload(connection)
    chosen = feature_id_for_run(connection, mappings, task_variables, feature_id)
    fields = payload.fields or tuple(dict.fromkeys(m.source_identifier for m in mappings))
    query = HydrocronQuery.from_payload(payload, feature_id=chosen, fields=fields)
    start, end, windowed = _window(connection, window, latest_observation)
    own = client is None
    run_client = HydrocronClient(DEFAULT_URL) if client is None else copy.copy(client)
    if payload.min_window_hours:
        run_client.min_window = timedelta(hours=payload.min_window_hours)
    if payload.max_window_days:
        run_client.max_window = timedelta(days=payload.max_window_days)
    log.info("Fetching %s %s..%s (%s)", query.describe(), format_time(start), format_time(end),
             "windowed" if windowed else "incremental")
    try:
        result = run_client.fetch(query, start, end)
    finally:
        if own:
            run_client.close()
    log.info("%s", result.description)
    return HydrocronRun(connection=connection, result=result, feature_id=chosen,
                        windowed=windowed, start=start, end=end)
