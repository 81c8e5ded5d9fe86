"""What a run tells a person: the task-log lines and the summary, with the same facts.

Runs go over real local HTTP (a station source, the local HydroServer); the log is what
``logging`` records, which is what Airflow's task log shows.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from hydroserver_provider.definitions import DataConnection, Mapping
from hydroserver_provider.hydroserver.client import Credentials, HydroServerClient
from hydroserver_provider.pipeline import RunOptions, run_ingestion
from hydroserver_provider.retries import RetryPolicy
from hydroserver_provider.sources.placeholders import RunWindow
from hydroserver_provider.summary import describe_window
from hydroserver_provider.testing.sources import LocalSourceServer

FAST = RetryPolicy(tries=2, backoff=0.001, max_delay=0.002)
T0 = datetime(2025, 6, 2, 10, tzinfo=UTC)

# four rows: one fine, one '---', one with an unreadable time, one empty value
CSV = ("time,level,temp\n"
       "2025-06-02T10:00:00Z,1.5,20\n"
       "2025-06-02T10:15:00Z,---,21\n"
       "not-a-time,2.5,22\n"
       "2025-06-02T10:45:00Z,,23\n")


@pytest.fixture
def source():
    with LocalSourceServer() as server:
        yield server


@pytest.fixture
def client(local_hydroserver):
    with HydroServerClient(local_hydroserver.url, Credentials(api_key=local_hydroserver.api_key),
                           retry=FAST) as c:
        yield c


def connection(url: str, **extra) -> DataConnection:
    return DataConnection.model_validate({
        "name": "Logger", "source_url": url, "payload_type": "CSV", "timestamp_key": "time",
        **extra})


def run(client, conn, hs, *, caplog, **kwargs):
    level = hs.create_datastream(name="Water Level")
    temp = hs.create_datastream(name="Water Temp")
    mappings = [Mapping(source_identifier="level", target_datastream_id=level),
                Mapping(source_identifier="temp", target_datastream_id=temp)]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hydroserver_provider"):
        summary = run_ingestion(client, conn, mappings, **kwargs)
    return summary, [r.getMessage() for r in caplog.records]


def test_the_log_names_each_datastream_with_its_numbers_and_drop_examples(
        local_hydroserver, client, source, caplog):
    source.add("/a.csv", CSV)
    summary, lines = run(client, connection(source.url + "/a.csv"), local_hydroserver,
                         caplog=caplog)
    assert "Read 4 rows from the source" in lines
    level = next(line for line in lines if line.startswith("Datastream 'Water Level'"))
    assert level == (
        "Datastream 'Water Level': loaded 1; dropped 3 (empty 1: data row 4: (empty) | "
        "not_a_number 1: data row 2: '---' | unparsable_timestamp 1: data row 3: "
        "'not-a-time'), 2025-06-02T10:00:00Z .. 2025-06-02T10:00:00Z")
    assert any(line.startswith("Datastream 'Water Temp': loaded 3; dropped 1 (unparsable_")
               for line in lines)
    assert lines[-1] == "Loaded 4 observations into 2 datastreams."
    # the summary holds the same facts
    (out,) = [d for d in summary["datastreams"] if d["name"] == "Water Level"]
    assert out["dropped_examples"] == {"empty": ["data row 4: (empty)"],
                                       "not_a_number": ["data row 2: '---'"],
                                       "unparsable_timestamp": ["data row 3: 'not-a-time'"]}


def test_naive_timestamps_read_as_utc_warn_once(local_hydroserver, client, source, caplog):
    source.add("/naive.csv", CSV.replace("Z,", ","))
    summary, lines = run(client, connection(source.url + "/naive.csv"), local_hydroserver,
                         caplog=caplog)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    (note,) = summary["notes"]
    assert warnings == [f"Note: {note}"]
    assert note.startswith("column 'time': timestamps such as '2025-06-02T10:00:00' carry no "
                           "UTC offset and the data connection sets no timezone_type")
    # a zone set on purpose says so: no warning
    source.add("/utc.csv", CSV.replace("Z,", ","))
    summary, _ = run(client, connection(source.url + "/utc.csv", timezone_type="utc"),
                     local_hydroserver, caplog=caplog)
    assert summary["notes"] == []


def test_a_dry_run_logs_what_it_would_load_and_a_no_op_what_it_skipped(
        local_hydroserver, client, source, caplog):
    source.add("/a.csv", CSV)
    conn = connection(source.url + "/a.csv")
    _, lines = run(client, conn, local_hydroserver, caplog=caplog,
                   options=RunOptions(dry_run=True))
    assert any(line.startswith("Datastream 'Water Level': would load 1;") for line in lines)
    assert lines[-1] == "Would load 4 observations into 2 datastreams."

    hs = local_hydroserver
    level = hs.create_datastream(name="Level, full", observations=[(T0, 1.5)])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hydroserver_provider"):
        summary = run_ingestion(client, conn, [
            Mapping(source_identifier="level", target_datastream_id=level)])
    lines = [r.getMessage() for r in caplog.records]
    assert summary["message"] == "Already up to date."
    assert ("Datastream 'Level, full': loaded 0; skipped 1 (not_after_latest_observation 1); "
            "dropped 3") in "\n".join(lines)


def test_the_window_is_logged_in_utc_and_in_the_connections_zone(
        local_hydroserver, client, source, caplog):
    source.add("/w.csv", lambda q: CSV)
    conn = connection(source.url + "/w.csv?start={start}", timezone_type="iana",
                      timezone="America/Denver", placeholder_variables=[
                          {"name": "start", "variable_type": "window_start"}])
    summary, lines = run(client, conn, local_hydroserver, caplog=caplog,
                         window=RunWindow(T0, T0 + timedelta(hours=1)))
    assert "Window: 2025-06-02 10:00 -> 11:00 UTC (04:00 -> 05:00 America/Denver)" in lines
    assert summary["window"]["shown"] == "2025-06-02 10:00 -> 11:00 UTC (04:00 -> 05:00 " \
                                         "America/Denver)"


def test_describe_window_across_days_and_fixed_offsets():
    from datetime import timezone

    day = datetime(2025, 6, 1, tzinfo=UTC)
    assert describe_window(day, day + timedelta(days=1), UTC) == \
        "2025-06-01 00:00 -> 2025-06-02 00:00 UTC"
    minus_seven = timezone(timedelta(hours=-7))
    assert describe_window(day, day + timedelta(hours=1), minus_seven) == \
        "2025-06-01 00:00 -> 01:00 UTC (2025-05-31 17:00 -> 18:00 UTC-07:00)"


def test_large_loads_report_progress_per_chunk_with_the_name(local_hydroserver, client, source,
                                                             caplog):
    rows = "\n".join(f"2025-06-02T{h:02d}:{m:02d}:00Z,{h + m / 60:.2f},1"
                     for h in range(10) for m in (0, 15, 30, 45))
    source.add("/big.csv", "time,level,temp\n" + rows + "\n")
    _, lines = run(client, connection(source.url + "/big.csv"), local_hydroserver, caplog=caplog,
                   options=RunOptions(chunk_rows=10, parallel_datastreams=1))
    progress = [line.split(": ", 1)[1] for line in lines
                if line.startswith("Datastream 'Water Level' (") and "rows settled" in line]
    assert progress == [f"{n}/40 rows settled" for n in (10, 20, 30, 40)]
