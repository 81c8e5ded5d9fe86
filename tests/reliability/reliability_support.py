"""Helpers shared by the reliability tests: station sources, connections, Airflow-like retries.

Every run goes over real loopback HTTP: a :class:`LocalSourceServer` answers like a station web
service, :func:`run_ingestion` fetches, parses and loads, and a :class:`LocalHydroServer` stores.
Retries are tiny (milliseconds) and timeouts short, so hundreds of injected faults stay cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hydroserver_provider.definitions import DataConnection, Mapping
from hydroserver_provider.errors import HydroServerProviderError, IngestionFailed
from hydroserver_provider.hydroserver.client import Credentials, HydroServerClient
from hydroserver_provider.pipeline import RunOptions
from hydroserver_provider.retries import RetryPolicy
from hydroserver_provider.testing import stations
from hydroserver_provider.testing.sources import LocalSourceServer

UTC = UTC
# Four tries, a few milliseconds apart; a Retry-After up to 50 ms is honoured as sent.
FAST = RetryPolicy(tries=4, backoff=0.005, max_delay=0.02, max_retry_after=0.05)
# (connect, read) seconds: an answer SLOW_ANSWER seconds late is past the read timeout.
TIMEOUT = (2.0, 0.25)
SLOW_ANSWER = 0.5

Rows = list[tuple[datetime, float]]


def make_client(hs, *, api_key: str | None = None, retry: RetryPolicy = FAST,
                timeout: Any = TIMEOUT) -> HydroServerClient:
    """A new client, as each Airflow try builds its own hook."""
    return HydroServerClient(hs.url, Credentials(api_key=api_key or hs.api_key), retry=retry,
                             timeout=timeout)


def options(chunk_rows: int = 50_000, **extra: Any) -> RunOptions:
    return RunOptions(chunk_rows=chunk_rows, source_retry=FAST, source_timeout=TIMEOUT, **extra)


# ------------------------------------------------------------------------------ station sources


class StationSource:
    """One station route on a :class:`LocalSourceServer`.

    With window parameters in the query the route answers that window (like the real services);
    without them it answers ``full_range`` (what an incremental task fetches every time).
    """

    def __init__(self, server: LocalSourceServer, kind: str) -> None:
        self.server = server
        self.kind = kind
        self.full_range: tuple[datetime, datetime] | None = None
        if kind == "csv":
            self.path, self.step = "/logger.csv", stations.STEP
            self.fields = [("Water Level", stations.water_level),
                           ("Water Temp", stations.water_temperature)]
            server.add(self.path, self._logger)
        else:
            self.path, self.step = "/api.json", timedelta(hours=1)
            self.fields = [("values.discharge", stations.discharge),
                           ("values.gage_height", stations.gage_height)]
            server.add(self.path, self._api, "application/json")

    @property
    def identifiers(self) -> list[str]:
        return [name for name, _ in self.fields]

    def _range(self, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
        if start is not None and end is not None:
            return start, end
        assert self.full_range is not None, "an incremental source needs full_range"
        return self.full_range

    def _logger(self, query: dict[str, str]) -> str:
        return stations.logger_csv(*self._range(
            stations.parse_query_time(query.get("start"), stations.DENVER),
            stations.parse_query_time(query.get("end"), stations.DENVER)))

    def _api(self, query: dict[str, str]) -> str:
        return stations.api_json(*self._range(stations.parse_query_time(query.get("from")),
                                              stations.parse_query_time(query.get("to"))))

    def connection(self, windowed: bool) -> DataConnection:
        url = self.server.url + self.path
        if self.kind == "csv":
            fmt = "%Y-%m-%dT%H:%M:%S"
            return DataConnection.model_validate({
                "name": "Lees Ferry logger",
                "source_url": url + ("?start={start}&end={end}" if windowed else ""),
                "payload_type": "CSV", "timestamp_key": "Date Time",
                "timestamp_format": stations.CSV_FORMAT, "timezone_type": "iana",
                "timezone": "America/Denver", "header_row": 1, "data_start_row": 3,
                "delimiter": ",",
                "placeholder_variables": [
                    {"name": "start", "variable_type": "window_start", "timestamp_format": fmt},
                    {"name": "end", "variable_type": "window_end", "timestamp_format": fmt},
                ] if windowed else [],
            })
        return DataConnection.model_validate({
            "name": "Discharge API",
            "source_url": url + ("?from={start}&to={end}" if windowed else ""),
            "payload_type": "JSON", "jmespath": "data.records[*]", "timestamp_key": "time",
            "placeholder_variables": [{"name": "start", "variable_type": "window_start"},
                                      {"name": "end", "variable_type": "window_end"}]
            if windowed else [],
        })

    def rows(self, field: int, start: datetime, end: datetime) -> Rows:
        """The observations the source holds for ``field`` in ``[start, end)``."""
        fn = self.fields[field][1]
        return [(t, fn(t)) for t in stations.instants(start, end, self.step)]

    def mappings(self, datastreams: list[str]) -> list[Mapping]:
        return [Mapping(source_identifier=i, target_datastream_id=d)
                for i, d in zip(self.identifiers, datastreams)]


# ------------------------------------------------------------------------------ running


def run_until_success(make_run: Callable[[], dict], attempts: int) -> tuple[dict | None, list[str]]:
    """Run like Airflow with ``retries=attempts-1``: again after every failed try.

    Returns the summary of the successful try (None if every try failed) and each failure as
    ``"ErrorType: message"``. Only the provider's own errors are a clean failure; anything else
    propagates and fails the test (an unclear error is a bug too).
    """
    failures: list[str] = []
    for _ in range(attempts):
        try:
            return make_run(), failures
        except IngestionFailed as exc:
            failures.append(f"IngestionFailed: {exc.summary['message']}")
        except HydroServerProviderError as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
    return None, failures


def wait_until_idle(hs, quiet: float = 0.1, timeout: float = 10.0) -> None:
    """Wait until the local HydroServer carries out nothing and got no request for ``quiet``
    seconds (a killed or timed-out client's last request may still be running)."""
    deadline = time.monotonic() + timeout
    last, since = hs.total_requests, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.01)
        now = hs.total_requests
        if now != last or hs.in_flight:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    raise AssertionError("the local HydroServer never became idle")
