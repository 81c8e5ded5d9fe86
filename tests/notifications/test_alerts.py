"""Failure alerts: real ingestion failures (local HydroServer and source), real SMTP delivery."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from hydroserver_provider.errors import IngestionFailed, SourceError
from hydroserver_provider.notifications.alerts import FailureAlert, safe_error_text
from hydroserver_provider.notifications.mail import EmailNotSent
from hydroserver_provider.operators.ingest import HydroIngestOperator, _to_datetime
from hydroserver_provider.testing import stations
from hydroserver_provider.testing.sources import LocalSourceServer

UTC = UTC
T0 = datetime(2025, 6, 1, tzinfo=UTC)
RUN_ID = "scheduled__2025-06-01T01:00:00+00:00"
RECIPIENTS = ("ops@example.org", "hydro@example.org")
MISSING = "0f000000-0000-4000-8000-00000000dead"


class TaskInstanceStandIn:
    """What the callback uses of Airflow's RuntimeTaskInstance: ids, XCom, the log URL."""

    def __init__(self, try_number: int = 4) -> None:
        self.dag_id = "hydroserver_station_7"
        self.task_id = "ingest"
        self.run_id = RUN_ID
        self.try_number = try_number
        self.xcoms: dict[str, object] = {}

    def xcom_push(self, key, value):
        self.xcoms[key] = json.loads(json.dumps(value))  # what XCom would store

    def xcom_pull(self, task_ids=None, key="return_value"):
        assert task_ids == self.task_id
        return self.xcoms.get(key)

    @property
    def log_url(self) -> str:
        return (f"http://airflow.example.org:8080/dags/{self.dag_id}/runs/{RUN_ID}/tasks/ingest"
                f"?try_number={self.try_number}")


@pytest.fixture
def env(local_hydroserver, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_HYDROSERVER_DEFAULT", json.dumps({
        "conn_type": "hydroserver", "host": local_hydroserver.url,
        "extra": {"api_key": local_hydroserver.api_key, "retries": 0}}))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example.org:8080/")
    with LocalSourceServer() as source:
        source.add("/api.json", lambda q: stations.api_json(
            stations.parse_query_time(q.get("from")), stations.parse_query_time(q.get("to"))),
            "application/json")
        yield local_hydroserver, source


def operator(url: str, *targets: str, identifiers=("values.discharge",)) -> HydroIngestOperator:
    return HydroIngestOperator(
        task_id="ingest",
        data_connection={
            "name": "Station API", "source_url": url, "payload_type": "JSON",
            "jmespath": "data.records[*]", "timestamp_key": "time",
            "placeholder_variables": [{"name": "start", "variable_type": "window_start"},
                                      {"name": "end", "variable_type": "window_end"}]},
        mappings=[{"source_identifier": i, "target_datastream_id": t}
                  for i, t in zip(identifiers, targets)])


def fail(op: HydroIngestOperator) -> dict:
    """Run ``op`` for 00:00-01:00 and return the failure callback's context."""
    ti = TaskInstanceStandIn()
    context = {"ti": ti, "task": op, "run_id": RUN_ID, "data_interval_start": T0,
               "data_interval_end": T0 + timedelta(hours=1)}
    with pytest.raises(Exception) as raised:
        op.execute(context)
    context["exception"] = raised.value
    return context


def alert(recipients=RECIPIENTS) -> FailureAlert:
    return FailureAlert(task_name="Station 7", connection_name="Station API",
                        recipients=recipients)


def test_a_source_404_is_mailed_with_window_error_and_links(env, smtp):
    hs, source = env
    flow = hs.create_datastream(name="Discharge")
    context = fail(operator(source.url + "/gone.json?from={start}&to={end}&api_key=k-123-secret",
                            flow))
    assert isinstance(context["exception"], SourceError)
    alert()(context)

    (mail,) = smtp.wait_for(1)
    assert mail.recipients == RECIPIENTS
    assert mail.subject == ("[HydroServer] Task 'Station 7' failed (2025-06-01 00:00 UTC - "
                            "2025-06-01 01:00 UTC)")
    for body in (mail.text, mail.html):
        assert "answered HTTP 404" in body
        assert "2025-06-01 00:00 UTC" in body and "2025-06-01 01:00 UTC" in body
        assert "hydroserver_station_7" in body and RUN_ID in body
        assert "k-123-secret" not in body
    assert "Station 7' failed after 4 tries." in mail.text
    assert ("Run in Airflow: http://airflow.example.org:8080/dags/hydroserver_station_7/runs/"
            "scheduled__2025-06-01T01%3A00%3A00%2B00%3A00") in mail.text
    assert "Task log: http://airflow.example.org:8080/dags/hydroserver_station_7/" in mail.text
    assert 'href="http://airflow.example.org:8080/dags/hydroserver_station_7/runs/' in mail.html
    # the run's history gets the message too
    recorded = context["ti"].xcoms["summary"]
    assert recorded["status"] == "FAILURE" and "answered HTTP 404" in recorded["message"]
    assert recorded["window"] == {"start": T0.isoformat(),
                                  "end": (T0 + timedelta(hours=1)).isoformat()}


def test_a_partial_failure_lists_every_datastream_outcome(env, smtp):
    hs, source = env
    flow = hs.create_datastream(name="Discharge")
    op = operator(source.url + "/api.json?from={start}&to={end}", flow, MISSING,
                  identifiers=("values.discharge", "values.gage_height"))
    context = fail(op)
    assert isinstance(context["exception"], IngestionFailed)
    pushed = dict(context["ti"].xcoms["summary"])
    alert()(context)
    assert context["ti"].xcoms["summary"] == pushed  # the operator's summary is kept

    (mail,) = smtp.wait_for(1)
    assert "1 of 2 datastreams failed" in mail.text
    text_rows = {line.split()[0]: line for line in mail.text.splitlines()
                 if line.strip().startswith(("Discharge", "values.gage_height"))}
    assert "SUCCESS" in text_rows["Discharge"] and " 1 " in text_rows["Discharge"]
    missing_row = text_rows["values.gage_height"]
    assert MISSING in missing_row and "FAILURE" in missing_row and "does not exist" in missing_row
    assert f"<td style=\"border: 1px solid #d5d8dc; padding: 4px 8px; text-align: left\">" \
           f"{MISSING}</td>" in mail.html
    assert "FAILURE</b>" in mail.html and "does not exist" in mail.html
    assert [t for t, _ in hs.observations(flow)] == [T0]  # the other datastream still loaded


def test_a_foreign_error_text_is_never_mailed(env, smtp):
    context = {"ti": TaskInstanceStandIn(), "run_id": RUN_ID,
               "exception": RuntimeError("Authorization: Bearer sk-live-999 rejected")}
    alert()(context)
    (mail,) = smtp.wait_for(1)
    assert "RuntimeError (details in the task log)" in mail.text
    assert "sk-live-999" not in mail.text + mail.html
    assert "none (a run without a data interval)" in mail.text
    assert "sk-live-999" not in json.dumps(context["ti"].xcoms["summary"])


def test_error_texts_from_our_code_are_shown_and_masked():
    from hydroserver_provider.compat import mask_secret

    with pytest.raises(ValueError) as raised:
        _to_datetime("next tuesday", "window_start")
    assert safe_error_text(raised.value) == ("ValueError: window_start: expected an ISO 8601 "
                                             "date/time, found 'next tuesday'")
    mask_secret("hunter2-long-secret")
    error = SourceError("http://x/data.csv: the source answered HTTP 401 for "
                        "hunter2-long-secret")
    assert "hunter2-long-secret" not in safe_error_text(error)
    assert "the source answered HTTP 401" in safe_error_text(error)
    assert safe_error_text(KeyError("k")) == "KeyError (details in the task log)"
    assert "no exception" in safe_error_text(None)


def test_without_recipients_the_failure_is_only_recorded(smtp):
    ti = TaskInstanceStandIn()
    alert(recipients=())({"ti": ti, "exception": SourceError("http://x: the source answered "
                                                             "HTTP 500")})
    assert ti.xcoms["summary"]["message"] == "http://x: the source answered HTTP 500"
    assert smtp.received == []


def test_an_smtp_problem_fails_the_callback_after_recording(smtp, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT")
    monkeypatch.setenv("AIRFLOW__EMAIL__EMAIL_CONN_ID", "missing_smtp")
    ti = TaskInstanceStandIn()
    with pytest.raises(EmailNotSent, match="'missing_smtp'"):
        alert()({"ti": ti, "exception": SourceError("boom")})
    assert ti.xcoms["summary"]["message"] == "boom"
