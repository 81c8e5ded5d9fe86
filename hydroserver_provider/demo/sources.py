"""The sources the demo serves, one :class:`DemoSource` per example task definition.

Each entry names a task of ``dags/definitions/`` and says how to stand in for its web source
locally, which data intervals to run, and what HydroServer must hold afterwards. The demo reads
everything else (the source URL, the datastream ids, the start time) from the definition itself,
so the file the user copies is the file the demo proves.

To show one more definition, add its task to ``dags/definitions/`` and a :class:`DemoSource` to
:data:`DEMO_SOURCES`; a source that is not a plain HTTP route (a replayed API with its own Airflow
connection, say) starts its server in ``serve`` and returns the environment Airflow needs.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from hydroserver_provider.testing import stations
from hydroserver_provider.testing.sources import Handler, LocalSourceServer
from hydroserver_provider.timestamps import parse_instant

if TYPE_CHECKING:
    from hydroserver_provider.definitions import Task

UTC = UTC
Interval = tuple[datetime, datetime]
Observation = tuple[datetime, float]


class DemoSetupError(RuntimeError):
    """The demo cannot start: a message for the user, no traceback needed."""


@dataclass(frozen=True)
class DemoSeries:
    """One mapped series of a source: what the local source returns for it at any instant."""

    source_identifier: str  # as in the task's mappings
    name: str  # the datastream the demo creates for it
    unit: str
    value: Callable[[datetime], float]
    step: timedelta


class SourceHosts:
    """One :class:`LocalSourceServer` per ``host:port`` the definitions' URLs name."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self._servers: dict[tuple[str, int], LocalSourceServer] = {}
        self.others: list[str] = []  # other local services, described for the demo's header

    def route(self, task: Task, handler: Handler, content_type: str) -> str:
        """Serve ``handler`` at the path of the task's source URL; returns that URL's origin."""
        url = task.data_connection.source_url
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
            raise DemoSetupError(
                f"task '{task.name}': the demo serves its source locally, so the source URL must "
                f"be http://127.0.0.1:<port>/...; found {url}")
        path = parts.path
        for name, value in task.task_variables.items():
            path = path.replace("{" + name + "}", value)
        self._server(parts.port).add(path, handler, content_type)
        return f"http://127.0.0.1:{parts.port}"

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self._servers.values()]

    def _server(self, port: int) -> LocalSourceServer:
        key = ("127.0.0.1", port)
        if key not in self._servers:
            try:
                server = LocalSourceServer(port=port)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                raise DemoSetupError(
                    f"port {port} on 127.0.0.1 is in use, and the example definitions fetch "
                    f"their sources from it; stop what uses it (another demo?) and try again"
                ) from None
            self._stack.enter_context(server)
            self._servers[key] = server
        return self._servers[key]


@dataclass(frozen=True)
class DemoSource:
    """How the demo runs one example task.

    ``intervals`` are consecutive data intervals, run in order; then the first one is run again.
    Each is ``(start, end)`` in UTC and must be an interval of the task's schedule: the run's
    logical date is ``end``, which Airflow turns back into exactly this interval.
    """

    task_name: str
    label: str  # one line under the DAG id in the demo's table
    series: tuple[DemoSeries, ...]
    intervals: tuple[Interval, ...]
    serve: Callable[[Task, SourceHosts, contextlib.ExitStack], Mapping[str, str]]

    def series_for(self, source_identifier: str) -> DemoSeries:
        for series in self.series:
            if series.source_identifier == source_identifier:
                return series
        raise DemoSetupError(
            f"task '{self.task_name}' maps '{source_identifier}', which the demo's source does "
            f"not serve; it serves {', '.join(s.source_identifier for s in self.series)}")

    def expected(self, task: Task, series: DemoSeries,
                 done: Sequence[Interval]) -> list[Observation]:
        """What the datastream must hold after runs of the intervals ``done``.

        A windowed task owns each window, so it holds the source's rows of every window run. An
        incremental one asks from its newest stored observation (at first the task's start time)
        to the run's end, so it holds everything from the start time to the latest end.
        """
        if not done:
            return []
        if task.data_connection.uses_window:
            windows = sorted(set(done))
        else:
            start = task.schedule.start_time or datetime(1970, 1, 1, tzinfo=UTC)
            windows = [(start, max(end for _, end in done))]
        moments = sorted({t for start, end in windows
                          for t in stations.instants(start, end, series.step)})
        return [(t, series.value(t)) for t in moments]


# --------------------------------------------------------------------------------------------
# The station sources of dags/definitions/stations.yaml
# --------------------------------------------------------------------------------------------


def _required_time(query: Mapping[str, str], name: str, zone) -> datetime:
    moment = stations.parse_query_time(query.get(name), zone)
    if moment is None:
        raise ValueError(name)
    return moment


def _serve_logger(task: Task, hosts: SourceHosts, stack: contextlib.ExitStack) -> dict[str, str]:
    """The field logger: ``?start=&end=`` in its local time (America/Denver), CSV back."""

    def answer(query: dict[str, str]):
        try:
            start = _required_time(query, "start", stations.DENVER)
            end = _required_time(query, "end", stations.DENVER)
        except ValueError as exc:
            return 400, f"missing or bad '{exc}': expected local time YYYY-MM-DDTHH:MM:SS\n"
        return stations.logger_csv(start, end)

    hosts.route(task, answer, "text/csv")
    return {}


def _serve_river_api(task: Task, hosts: SourceHosts,
                     stack: contextlib.ExitStack) -> dict[str, str]:
    """The river API: ``?from=&to=`` in UTC, nested JSON records back."""
    site = task.task_variables.get("site_id", "09380000")

    def answer(query: dict[str, str]):
        try:
            start = _required_time(query, "from", UTC)
            end = _required_time(query, "to", UTC)
        except ValueError as exc:
            return 400, f'{{"error": "missing or bad \'{exc}\': expected ISO 8601 UTC"}}'
        return stations.api_json(start, end, station=site)

    hosts.route(task, answer, "application/json")
    return {}


def _utc(text: str) -> datetime:
    moment = parse_instant(text)
    if moment is None:
        raise ValueError("an empty date")
    return moment


# --------------------------------------------------------------------------------------------
# The Hydrocron replay of dags/definitions/hydrocron.yaml
# --------------------------------------------------------------------------------------------

_REPLAYED: dict[str, list[Observation]] = {}  # field -> the passes the replay serves (by serve)


@dataclass(frozen=True)
class ReplayedSource(DemoSource):
    """A source replaying recorded SWOT passes (irregular, days apart) rather than a regular
    series: a datastream holds the served passes inside the windows run when the task is
    windowed; when it is incremental, those from the task's start time to the latest run's
    start (which the demo's runs take at their interval's end), both widened by the overlap.
    Without the recorded answers (an installed package) the synthetic passes go on past the
    runs, so the upper bound matters."""

    def expected(self, task: Task, series: DemoSeries,
                 done: Sequence[Interval]) -> list[Observation]:
        if not done:
            return []
        passes = _REPLAYED.get(series.source_identifier, [])
        if task.data_connection.uses_window:
            return [(t, v) for t, v in passes if any(s <= t < e for s, e in set(done))]
        payload = task.data_connection.payload
        assert payload.type == "HYDROCRON", "the replayed source serves the Hydrocron task only"
        overlap = timedelta(hours=payload.overlap_hours)
        start = (task.schedule.start_time or datetime(1970, 1, 1, tzinfo=UTC)) - overlap
        end = max(e for _, e in done) + overlap
        return [(t, v) for t, v in passes if start <= t <= end]


def _serve_hydrocron(task: Task, hosts: SourceHosts,
                     stack: contextlib.ExitStack) -> dict[str, str]:
    """The Hydrocron replay (recorded answers when the fixtures are at hand, else synthetic
    passes), named by the Airflow connection the definition uses."""
    import csv
    import io
    import json

    from hydroserver_provider.testing.hydrocron import LocalHydrocron, synthetic_passes

    payload = task.data_connection.payload
    assert payload.type == "HYDROCRON", f"task '{task.name}' is not a Hydrocron task"
    feature_id = payload.feature_id or task.task_variables["feature_id"]
    replay = stack.enter_context(LocalHydrocron())
    hosts.others.append(f"{replay.url} (Hydrocron replay of recorded SWOT answers)")
    fields = [m.source_identifier for m in task.mappings]
    params = {"feature": payload.feature, "feature_id": feature_id, "output": "csv",
              "start_time": "2022-12-01T00:00:00Z", "end_time": "2030-01-01T00:00:00Z",
              "fields": ",".join(["time_str", *fields]),
              **({"collection_name": payload.collection_name} if payload.collection_name
                 else {})}
    status, _, body, _, _ = replay.answer(params, "application/json")
    if status != 200:  # no recorded answers here (installed package): synthetic passes
        replay.add_feature(payload.feature, feature_id,
                           synthetic_passes(6, start=datetime(2024, 1, 12, tzinfo=UTC)),
                           collection=(payload.collection_name or "D").rsplit("_", 1)[-1])
        status, _, body, _, _ = replay.answer(params, "application/json")
    rows = list(csv.DictReader(io.StringIO(json.loads(body)["results"]["csv"])))
    for name in fields:
        _REPLAYED[name] = sorted(
            (_utc(r["time_str"]), float(r[name])) for r in rows
            if r["time_str"] != "no_data" and float(r[name]) > -999999999999.0)
    conn_id = (task.airflow.hydrocron_conn_id or payload.hydrocron_conn_id).upper()
    return {f"AIRFLOW_CONN_{conn_id}": json.dumps({"conn_type": "hydrocron",
                                                   "host": replay.url})}


DEMO_SOURCES: tuple[DemoSource, ...] = (
    DemoSource(
        task_name="Demo logger 42",
        label="CSV logger in America/Denver local time, hourly windows",
        series=(
            DemoSeries("Water Level", "Water Level", "ft", stations.water_level, stations.STEP),
            DemoSeries("Water Temp", "Water Temperature", "degC", stations.water_temperature,
                       stations.STEP),
        ),
        intervals=((_utc("2025-06-02T10:00"), _utc("2025-06-02T11:00")),
                   (_utc("2025-06-02T11:00"), _utc("2025-06-02T12:00"))),
        serve=_serve_logger,
    ),
    DemoSource(
        task_name="Demo river site 09380000",
        label="JSON API with nested records, every 15 min, incremental",
        series=(
            DemoSeries("values.discharge", "Discharge", "ft^3/s", stations.discharge,
                       timedelta(hours=1)),
            DemoSeries("values.gage_height", "Gage Height", "ft", stations.gage_height,
                       timedelta(hours=1)),
        ),
        intervals=((_utc("2025-06-02T10:45"), _utc("2025-06-02T11:00")),
                   (_utc("2025-06-02T11:00"), _utc("2025-06-02T11:15"))),
        serve=_serve_river_api,
    ),
    ReplayedSource(
        task_name="SWOT reach 18180900091",
        label="NASA Hydrocron (SWOT passes, replayed), incremental",
        series=(
            DemoSeries("wse", "Surface Elevation", "m", lambda t: 0.0, timedelta(days=1)),
            DemoSeries("slope", "Surface Slope", "m/m", lambda t: 0.0, timedelta(days=1)),
            DemoSeries("width", "River Width", "m", lambda t: 0.0, timedelta(days=1)),
        ),
        # daily at 06:00 UTC, after the last replayed pass: the first run catches up
        intervals=((_utc("2024-03-01T06:00"), _utc("2024-03-02T06:00")),
                   (_utc("2024-03-02T06:00"), _utc("2024-03-03T06:00"))),
        serve=_serve_hydrocron,
    ),
)
