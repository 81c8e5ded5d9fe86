"""An ingest task checks its Airflow connections and variables before anything else: a missing
one fails the task at once, without retries, with one line saying what to create and how."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from hydroserver_provider.compat import AirflowFailException
from hydroserver_provider.operators.ingest import HydroIngestOperator
from hydroserver_provider.operators.preflight import (
    Requirement,
    fail_if_missing,
    hydrocron_connection,
    ingest_requirements,
)
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


def operator(url: str, target: str = "0c000000-0000-4000-8000-000000000001",
             **connection) -> HydroIngestOperator:
    return HydroIngestOperator(
        task_id="ingest",
        data_connection={"name": "Discharge API", "source_url": url, "payload_type": "JSON",
                         "jmespath": "data.records[*]", "timestamp_key": "time", **connection},
        mappings=[{"source_identifier": "values.discharge", "target_datastream_id": target}])


def test_a_missing_hydroserver_connection_fails_at_once_in_one_line(source, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_HYDROSERVER_DEFAULT", raising=False)
    op = operator(source.url + "/api.json")
    with pytest.raises(AirflowFailException) as failed:  # no retries: they cannot create it
        op.execute({})
    assert str(failed.value) == (
        "Airflow connection 'hydroserver_default' does not exist: create it (Admin > "
        "Connections, type HydroServer) or set AIRFLOW_CONN_HYDROSERVER_DEFAULT")
    assert "\n" not in str(failed.value)
    assert source.requests_to("/api.json") == []  # nothing was done before the check


def test_every_missing_item_is_named_in_the_one_line(source, monkeypatch, local_hydroserver):
    monkeypatch.setenv("AIRFLOW_CONN_HS_PROD", json.dumps({
        "conn_type": "hydroserver", "host": local_hydroserver.url,
        "extra": {"api_key": local_hydroserver.api_key}}))
    monkeypatch.delenv("AIRFLOW_VAR_STATION_TOKEN", raising=False)
    op = operator(source.url + "/api.json", local_hydroserver.create_datastream(name="Q"),
                  auth={"header_name": "X-Token", "variable": "station_token"})
    op.hydroserver_conn_id = "hs_prod"
    with pytest.raises(AirflowFailException) as failed:
        op.execute({})
    assert str(failed.value) == (
        "Airflow variable 'station_token' does not exist: create it (Admin > Variables, the "
        "X-Token header's value) or set AIRFLOW_VAR_STATION_TOKEN")
    monkeypatch.setenv("AIRFLOW_VAR_STATION_TOKEN", "tok-123")
    assert op.execute({})["status"] == "SUCCESS"
    assert source.requests_to("/api.json")[-1].headers["X-Token"] == "tok-123"


def test_what_an_ingest_task_needs():
    op = operator("https://x.org/a.json", auth={"header_name": "X-Key", "conn_id": "station_api"})
    assert [(r.kind, r.key) for r in ingest_requirements(op)] == [
        ("connection", "hydroserver_default"), ("connection", "station_api")]
    # the default Hydrocron connection is optional (the public endpoint); a named one is not
    assert hydrocron_connection("hydrocron_default") is None
    assert hydrocron_connection("hydrocron_earthdata").missing_text() == (
        "Airflow connection 'hydrocron_earthdata' does not exist: create it (Admin > "
        "Connections, type NASA Hydrocron) or set AIRFLOW_CONN_HYDROCRON_EARTHDATA")


def test_fail_if_missing_lists_each_key_once(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NOPE_A", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_HERE_B", json.dumps({"conn_type": "http"}))
    needs = [Requirement("connection", "nope_a"), Requirement("connection", "nope_a", "again"),
             Requirement("connection", "here_b")]
    with pytest.raises(AirflowFailException) as failed:
        fail_if_missing(needs, "Digest of 'X' cannot run")
    assert str(failed.value) == ("Digest of 'X' cannot run: Airflow connection 'nope_a' does not "
                                 "exist: create it (Admin > Connections) or set "
                                 "AIRFLOW_CONN_NOPE_A")
