"""Whole runs over real local HTTP: a station source server into the local HydroServer."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from hydroserver_provider.definitions import DataConnection, Mapping
from hydroserver_provider.errors import IngestionFailed, SourceError
from hydroserver_provider.hydroserver.client import Credentials, HydroServerClient
from hydroserver_provider.pipeline import RunOptions, run_ingestion
from hydroserver_provider.retries import RetryPolicy
from hydroserver_provider.sources.placeholders import RunWindow
from hydroserver_provider.testing import stations
from hydroserver_provider.testing.sources import LocalSourceServer

FAST = RetryPolicy(tries=3, backoff=0.01, max_delay=0.02)
UTC = UTC


@pytest.fixture
def source():
    with LocalSourceServer() as server:
        yield server


@pytest.fixture
def client(local_hydroserver):
    with HydroServerClient(local_hydroserver.url, Credentials(api_key=local_hydroserver.api_key),
                           retry=FAST) as c:
        yield c


def logger_route(source: LocalSourceServer) -> str:
    """The Denver logger: ``?start=&end=`` in local time, like many station web services."""

    def answer(query):
        start = stations.parse_query_time(query["start"], stations.DENVER)
        end = stations.parse_query_time(query["end"], stations.DENVER)
        return stations.logger_csv(start, end)

    source.add("/logger.csv", answer)
    return source.url + "/logger.csv?start={start}&end={end}"


def logger_connection(url: str) -> DataConnection:
    return DataConnection.model_validate({
        "name": "Lees Ferry logger",
        "source_url": url,
        "payload_type": "CSV",
        "timestamp_key": "Date Time",
        "timestamp_format": "%Y-%m-%d %H:%M:%S",
        "timezone_type": "iana",
        "timezone": "America/Denver",
        "header_row": 1,
        "data_start_row": 3,
        "delimiter": ",",
        "placeholder_variables": [
            {"name": "start", "variable_type": "window_start", "timestamp_format": "%Y-%m-%dT%H:%M:%S"},
            {"name": "end", "variable_type": "window_end", "timestamp_format": "%Y-%m-%dT%H:%M:%S"},
        ],
    })


def api_connection(url: str) -> DataConnection:
    return DataConnection.model_validate({
        "name": "Discharge API",
        "source_url": url,
        "payload_type": "JSON",
        "jmespath": "data.records[*]",
        "timestamp_key": "time",
    })


def window(start: datetime, hours: float) -> RunWindow:
    return RunWindow(start, start + timedelta(hours=hours))


def expected(fn, start, end, step=stations.STEP):
    return [(t, fn(t)) for t in stations.instants(start, end, step)]


def test_windowed_csv_loads_exactly_its_window_and_rerun_changes_nothing(
        local_hydroserver, client, source):
    conn = logger_connection(logger_route(source))
    level = local_hydroserver.create_datastream(name="Water Level")
    temp = local_hydroserver.create_datastream(name="Water Temp")
    mappings = [Mapping(source_identifier="Water Level", target_datastream_id=level),
                Mapping(source_identifier="Water Temp", target_datastream_id=temp)]
    w = window(datetime(2025, 6, 1, 0, tzinfo=UTC), 6)

    summary = run_ingestion(client, conn, mappings, window=w)
    assert summary["status"] == "SUCCESS" and summary["mode"] == "windowed"
    assert summary["message"] == "Loaded 48 observations into 2 datastreams."
    assert local_hydroserver.observations(level) == expected(stations.water_level, w.start, w.end)
    assert local_hydroserver.observations(temp) == expected(stations.water_temperature, w.start, w.end)
    # the URL asked for the window in Denver local time
    assert source.requests_to("/logger.csv")[0].query == {
        "start": "2025-05-31T18:00:00", "end": "2025-06-01T00:00:00"}

    again = run_ingestion(client, conn, mappings, window=w)
    assert again["status"] == "SUCCESS"
    assert local_hydroserver.observations(level) == expected(stations.water_level, w.start, w.end)
    # the re-run reads its window back, finds every row stored, and writes nothing
    assert [d["loaded"] for d in again["datastreams"]] == [0, 0]
    assert [d["skipped_reasons"] for d in again["datastreams"]] == [{"already_stored": 24}] * 2


def test_consecutive_windows_and_a_backfill_in_between(local_hydroserver, client, source):
    conn = logger_connection(logger_route(source))
    level = local_hydroserver.create_datastream(name="Water Level")
    mappings = [Mapping(source_identifier="Water Level", target_datastream_id=level)]
    t0 = datetime(2025, 6, 1, tzinfo=UTC)
    run_ingestion(client, conn, mappings, window=window(t0 + timedelta(hours=2), 1))
    run_ingestion(client, conn, mappings, window=window(t0, 1))  # older window: insert mode
    run_ingestion(client, conn, mappings, window=window(t0 + timedelta(hours=1), 1))
    assert local_hydroserver.observations(level) == expected(
        stations.water_level, t0, t0 + timedelta(hours=3))


def test_fall_back_window_keeps_both_repeated_hours(local_hydroserver, client, source):
    conn = logger_connection(logger_route(source))
    level = local_hydroserver.create_datastream(name="Water Level")
    mappings = [Mapping(source_identifier="Water Level", target_datastream_id=level)]
    # 2025-11-02 01:00-02:00 MDT/MST happens twice in Denver: 07:00-09:00 UTC
    w = RunWindow(datetime(2025, 11, 2, 6, tzinfo=UTC), datetime(2025, 11, 2, 10, tzinfo=UTC))
    summary = run_ingestion(client, conn, mappings, window=w)
    stored = local_hydroserver.observations(level)
    assert stored == expected(stations.water_level, w.start, w.end)
    assert len(stored) == 16
    assert summary["timestamps"]["ambiguous_by_order"] == 8


def test_incremental_json_loads_new_rows_then_is_up_to_date(local_hydroserver, client, source):
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    state = {"end": t0 + timedelta(hours=5)}
    source.add("/api.json", lambda q: stations.api_json(t0, state["end"]), "application/json")
    conn = api_connection(source.url + "/api.json")
    flow = local_hydroserver.create_datastream(name="Discharge")
    gage = local_hydroserver.create_datastream(name="Gage height")
    mappings = [Mapping(source_identifier="values.discharge", target_datastream_id=flow),
                Mapping(source_identifier="values.gage_height", target_datastream_id=gage)]

    first = run_ingestion(client, conn, mappings)
    assert first["mode"] == "incremental" and first["loaded"] == 10
    local_hydroserver.reset_counts()
    same = run_ingestion(client, conn, mappings)
    assert same["message"] == "Already up to date."
    assert [d["skipped"] for d in same["datastreams"]] == [5, 5]
    assert local_hydroserver.total_requests == 2  # metadata of both datastreams, nothing else

    state["end"] = t0 + timedelta(hours=8)
    more = run_ingestion(client, conn, mappings)
    assert more["loaded"] == 6
    assert local_hydroserver.observations(flow) == expected(
        stations.discharge, t0, state["end"], timedelta(hours=1))


def test_one_source_field_feeds_several_datastreams(local_hydroserver, client, source):
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    source.add("/api.json", lambda q: stations.api_json(t0, t0 + timedelta(hours=3)),
               "application/json")
    a = local_hydroserver.create_datastream(name="Discharge A")
    b = local_hydroserver.create_datastream(name="Discharge B")
    mappings = [Mapping(source_identifier="values.discharge", target_datastream_id=a),
                Mapping(source_identifier="values.discharge", target_datastream_id=b)]
    run_ingestion(client, api_connection(source.url + "/api.json"), mappings)
    assert local_hydroserver.observations(a) == local_hydroserver.observations(b)
    assert len(local_hydroserver.observations(a)) == 3


def test_a_failing_datastream_does_not_stop_the_others_and_a_retry_completes(
        local_hydroserver, client, source):
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    source.add("/api.json", lambda q: stations.api_json(t0, t0 + timedelta(hours=4)),
               "application/json")
    conn = api_connection(source.url + "/api.json")
    flow = local_hydroserver.create_datastream(name="Discharge")
    gage = local_hydroserver.create_datastream(name="Gage height")
    mappings = [Mapping(source_identifier="values.discharge", target_datastream_id=flow),
                Mapping(source_identifier="values.gage_height", target_datastream_id=gage)]
    local_hydroserver.faults.fail_next(1, status=500, path_contains=f"{flow}/observations")

    with pytest.raises(IngestionFailed) as info:
        run_ingestion(client, conn, mappings)
    summary = info.value.summary
    assert summary["status"] == "FAILURE"
    assert "1 of 2 datastreams failed" in summary["message"] and "Discharge" in summary["message"]
    assert [d["status"] for d in summary["datastreams"]] == ["FAILURE", "SUCCESS"]
    assert local_hydroserver.observations(flow) == []
    assert len(local_hydroserver.observations(gage)) == 4

    retry = run_ingestion(client, conn, mappings)  # what Airflow's retry does
    assert retry["status"] == "SUCCESS"
    assert [d["loaded"] for d in retry["datastreams"]] == [4, 0]
    assert len(local_hydroserver.observations(flow)) == 4
    assert len(local_hydroserver.observations(gage)) == 4


def test_missing_datastream_fails_alone(local_hydroserver, client, source):
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    source.add("/api.json", lambda q: stations.api_json(t0, t0 + timedelta(hours=2)),
               "application/json")
    flow = local_hydroserver.create_datastream(name="Discharge")
    ghost = "11111111-2222-3333-4444-555555555555"
    mappings = [Mapping(source_identifier="values.discharge", target_datastream_id=flow),
                Mapping(source_identifier="values.gage_height", target_datastream_id=ghost)]
    with pytest.raises(IngestionFailed) as info:
        run_ingestion(client, api_connection(source.url + "/api.json"), mappings)
    failed = [d for d in info.value.summary["datastreams"] if d["status"] == "FAILURE"]
    assert [d["datastream_id"] for d in failed] == [ghost]
    assert "does not exist" in failed[0]["error"]
    assert len(local_hydroserver.observations(flow)) == 2


def test_source_503_then_200_and_404(local_hydroserver, client, source):
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    source.add("/api.json", lambda q: stations.api_json(t0, t0 + timedelta(hours=2)),
               "application/json")
    source.fail_next("/api.json", times=1, status=503)
    flow = local_hydroserver.create_datastream(name="Discharge")
    mappings = [Mapping(source_identifier="values.discharge", target_datastream_id=flow)]
    options = RunOptions(source_retry=FAST)
    assert run_ingestion(client, api_connection(source.url + "/api.json"), mappings,
                         options=options)["loaded"] == 2
    local_hydroserver.reset_counts()
    with pytest.raises(SourceError, match="HTTP 404"):
        run_ingestion(client, api_connection(source.url + "/gone.json"), mappings, options=options)
    writes = [k for k in local_hydroserver.request_counts if k.startswith("POST")]
    assert writes == []


def test_dry_run_writes_nothing_and_reports_what_would_load(local_hydroserver, client, source):
    conn = logger_connection(logger_route(source))
    level = local_hydroserver.create_datastream(name="Water Level")
    mappings = [Mapping(source_identifier="Water Level", target_datastream_id=level)]
    summary = run_ingestion(client, conn, mappings, window=window(datetime(2025, 6, 1, tzinfo=UTC), 2),
                            options=RunOptions(dry_run=True))
    assert summary["dry_run"] is True
    assert summary["message"] == "Would load 8 observations into 1 datastream."
    assert local_hydroserver.observations(level) == []


def test_auth_header_reaches_the_source_and_never_the_summary(local_hydroserver, client, source):
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    source.add("/api.json", lambda q: stations.api_json(t0, t0 + timedelta(hours=2)),
               "application/json")
    flow = local_hydroserver.create_datastream(name="Discharge")
    secret = "tok-5d41402abc4b2a76b9719d911017c592"
    summary = run_ingestion(
        client, api_connection(source.url + "/api.json?key=" + secret),
        [Mapping(source_identifier="values.discharge", target_datastream_id=flow)],
        options=RunOptions(source_headers={"Authorization": secret}),
    )
    assert source.requests_to("/api.json")[0].headers["Authorization"] == secret
    assert secret not in repr(summary)
    assert "key=***" in summary["url"]


def test_a_mapping_to_a_missing_column_fails_alone_with_a_hint(local_hydroserver, client, source):
    conn = logger_connection(logger_route(source))
    level = local_hydroserver.create_datastream(name="Water Level")
    temp = local_hydroserver.create_datastream(name="Water Temp")
    mappings = [Mapping(source_identifier="Water Level", target_datastream_id=level),
                Mapping(source_identifier="water temp", target_datastream_id=temp)]
    with pytest.raises(IngestionFailed) as info:
        run_ingestion(client, conn, mappings, window=window(datetime(2025, 6, 1, tzinfo=UTC), 1))
    failed, ok = info.value.summary["datastreams"][1], info.value.summary["datastreams"][0]
    assert "column 'water temp' not found; did you mean 'Water Temp'?" in failed["error"]
    assert ok["status"] == "SUCCESS" and ok["loaded"] == 4
    assert len(local_hydroserver.observations(level)) == 4


def test_a_mapping_to_a_missing_json_field_fails_alone(local_hydroserver, client, source):
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    source.add("/api.json", lambda q: stations.api_json(t0, t0 + timedelta(hours=2)),
               "application/json")
    flow = local_hydroserver.create_datastream(name="Discharge")
    other = local_hydroserver.create_datastream(name="Turbidity")
    mappings = [Mapping(source_identifier="values.discharge", target_datastream_id=flow),
                Mapping(source_identifier="values.turbidity", target_datastream_id=other)]
    with pytest.raises(IngestionFailed) as info:
        run_ingestion(client, api_connection(source.url + "/api.json"), mappings)
    errors = [d["error"] for d in info.value.summary["datastreams"]]
    assert errors[0] is None and "field 'values.turbidity' not found" in errors[1]
    assert len(local_hydroserver.observations(flow)) == 2


@pytest.mark.parametrize("parallel, peak", [(1, 1), (4, 2)])
def test_datastreams_are_written_concurrently(local_hydroserver, client, source, parallel, peak):
    conn = logger_connection(logger_route(source))
    targets = [local_hydroserver.create_datastream(name=f"Level {i}") for i in range(4)]
    mappings = [Mapping(source_identifier="Water Level", target_datastream_id=ds) for ds in targets]
    local_hydroserver.faults.latency = 0.3  # each write takes a while, as on a real server
    local_hydroserver.reset_counts()
    summary = run_ingestion(client, conn, mappings,
                            window=window(datetime(2025, 6, 1, tzinfo=UTC), 1),
                            options=RunOptions(parallel_datastreams=parallel))
    assert [d["loaded"] for d in summary["datastreams"]] == [4, 4, 4, 4]
    assert [d["datastream_id"] for d in summary["datastreams"]] == targets  # mapping order kept
    assert local_hydroserver.peak_in_flight >= peak
    assert local_hydroserver.peak_in_flight <= parallel


class _RecordingClient(HydroServerClient):
    """Records which thread sent each request over which ``requests.Session``."""

    def __init__(self, *args, sends: list, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sends = sends

    def fork(self) -> HydroServerClient:
        twin = _RecordingClient(self.url, self.credentials, retry=self.retry,
                                timeout=self.timeout, sends=self.sends)
        twin._token = self._token
        return twin

    def _send(self, method, path, **kwargs):
        self.sends.append((threading.get_ident(), id(self._session), method, path))
        return super()._send(method, path, **kwargs)


def test_loading_threads_never_share_a_session_and_log_in_again_once(local_hydroserver, source):
    """Four datastreams loaded by four threads with an email/password login: each thread has its
    own ``requests.Session``; when the session token expires mid-run (here: while the source is
    fetched, after the metadata call) exactly one thread logs in again and all use the new one."""
    hs = local_hydroserver

    def answer(query):
        hs.expire_sessions()
        return stations.logger_csv(datetime(2025, 6, 1, tzinfo=UTC),
                                   datetime(2025, 6, 1, 2, tzinfo=UTC))

    source.add("/expiring.csv", answer)
    conn = logger_connection(source.url + "/expiring.csv?start={start}&end={end}")
    targets = [hs.create_datastream(name=f"Level {i}") for i in range(4)]
    mappings = [Mapping(source_identifier="Water Level", target_datastream_id=ds) for ds in targets]
    hs.faults.latency = 0.05  # the threads overlap
    sends: list = []
    with _RecordingClient(hs.url, Credentials(email=hs.email, password=hs.password), retry=FAST,
                          sends=sends) as client:
        summary = run_ingestion(client, conn, mappings, window=window(datetime(2025, 6, 1,
                                                                               tzinfo=UTC), 2),
                                options=RunOptions(parallel_datastreams=4, chunk_rows=2))
    assert [d["loaded"] for d in summary["datastreams"]] == [8, 8, 8, 8]
    assert hs.request_counts["POST /api/auth/app/session"] == 2  # first login + one renewal
    threads_of_session: dict[int, set[int]] = {}
    for thread, session, _, _ in sends:
        threads_of_session.setdefault(session, set()).add(thread)
    assert all(len(threads) == 1 for threads in threads_of_session.values())
    writers = {thread for thread, _, method, _ in sends if method == "POST"}
    assert len(writers) >= 2  # the writes really ran in several threads


def test_a_fork_has_its_own_session_and_shares_the_login(local_hydroserver):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Flow")
    with HydroServerClient(hs.url, Credentials(email=hs.email, password=hs.password),
                           retry=FAST) as client:
        client.get_datastream(ds)
        twin = client.fork()
        try:
            assert twin._session is not client._session
            assert twin.get_datastream(ds)["id"] == ds
            assert hs.request_counts["POST /api/auth/app/session"] == 1
            hs.expire_sessions()
            twin.get_datastream(ds)
            client.get_datastream(ds)  # uses the token the twin renewed
            assert hs.request_counts["POST /api/auth/app/session"] == 2
        finally:
            twin.close()


def test_a_hobo_export_repeating_a_column_loads_like_hydroservers_loader(local_hydroserver,
                                                                         client, source):
    """A real HOBO logger export names two columns the same (the sensor's serial number in the
    header); HydroServer's loader (pandas) reads the first as the name, the second as
    ``<name>.1``. Both map here too, and the summary notes it."""
    temp = 'Temp, °F (LGR S/N: 9724974, SEN S/N: 9724974)'
    body = ('"Plot Title: 9724974"\n'
            f'"#","Date Time, GMT-06:00","{temp}","{temp}","Coupler Detached (LGR S/N: 9724974)"\n'
            '1,06/01/25 12:00:00 AM,61.5,61.4,\n'
            '2,06/01/25 12:15:00 AM,61.2,61.1,Logged\n')
    source.add("/hobo.csv", body.encode("utf-8"))
    conn = DataConnection.model_validate({
        "name": "HOBO", "source_url": source.url + "/hobo.csv", "payload_type": "CSV",
        "timestamp_key": "Date Time, GMT-06:00", "timestamp_format": "%m/%d/%y %I:%M:%S %p",
        "timezone_type": "offset", "timezone": "-0600", "header_row": 2, "data_start_row": 3})
    first = local_hydroserver.create_datastream(name="Temp")
    second = local_hydroserver.create_datastream(name="Temp (second sensor)")
    summary = run_ingestion(client, conn, [
        Mapping(source_identifier=temp, target_datastream_id=first),
        Mapping(source_identifier=f"{temp}.1", target_datastream_id=second)])
    assert summary["status"] == "SUCCESS" and summary["loaded"] == 4
    six = datetime(2025, 6, 1, 6, tzinfo=UTC)
    assert local_hydroserver.observations(first) == [(six, 61.5),
                                                     (six + timedelta(minutes=15), 61.2)]
    assert [v for _, v in local_hydroserver.observations(second)] == [61.4, 61.1]
    (note,) = summary["notes"]
    assert f"column {temp!r} appears 2 times" in note and f"as '{temp}.1'" in note
