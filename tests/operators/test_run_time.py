"""``run_time`` is when the run started (the guide: "the time the task started running")."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from hydroserver_provider.operators.ingest import HydroIngestOperator, run_started_at
from hydroserver_provider.testing import stations
from hydroserver_provider.testing.sources import LocalSourceServer

UTC = UTC
T0 = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def source():
    with LocalSourceServer() as server:
        server.add("/api.json", lambda q: stations.api_json(T0, T0 + timedelta(hours=3)),
                   "application/json")
        yield server


def test_run_time_is_when_the_run_started(source, monkeypatch, local_hydroserver):
    """A scheduled run of the 15:00 interval that started at 16:53 sends ``as_of=16:53``."""
    monkeypatch.setenv("AIRFLOW_CONN_HYDROSERVER_DEFAULT", json.dumps({
        "conn_type": "hydroserver", "host": local_hydroserver.url,
        "extra": {"api_key": local_hydroserver.api_key}}))
    flow = local_hydroserver.create_datastream(name="Discharge")
    op = HydroIngestOperator(
        task_id="ingest",
        data_connection={"name": "Station API", "source_url": source.url + "/api.json?as_of={t}",
                         "payload_type": "JSON", "jmespath": "data.records[*]",
                         "timestamp_key": "time", "placeholder_variables": [
                             {"name": "t", "variable_type": "run_time",
                              "timestamp_format": "%Y-%m-%dT%H:%M:%S"}]},
        mappings=[{"source_identifier": "values.discharge", "target_datastream_id": flow}])
    started = datetime(2025, 6, 1, 16, 53, 12, tzinfo=UTC)
    dag_run = SimpleNamespace(run_type="scheduled", start_date=started)
    ti = SimpleNamespace(start_date=started + timedelta(minutes=5))  # a later try
    op.execute({"data_interval_start": datetime(2025, 6, 1, 14, tzinfo=UTC),
                "data_interval_end": datetime(2025, 6, 1, 15, tzinfo=UTC),
                "dag_run": dag_run, "ti": ti})
    assert source.requests_to("/api.json")[-1].query == {"as_of": "2025-06-01T16:53:12"}


def test_run_started_at_falls_back_to_the_try_then_now():
    started = datetime(2025, 6, 1, 16, 53, tzinfo=UTC)
    assert run_started_at({"dag_run": SimpleNamespace(start_date=None),
                           "ti": SimpleNamespace(start_date=started)}) == started
    assert run_started_at({"dag_run": SimpleNamespace(start_date=started.replace(tzinfo=None))}
                          ) == started
    before = datetime.now(UTC)
    assert before <= run_started_at({}) <= datetime.now(UTC)
