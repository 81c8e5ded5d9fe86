"""Every example of hydroserverpy's loading guide, as one definition file, run through the provider.

``reference/seeds/hydroserverpy-data-loading-guide.txt`` creates its data connections and tasks
with ``hs_api.dataconnections.create(...)`` / ``hs_api.tasks.create(...)``; :data:`GUIDE` is the
same keywords in YAML. Only what the guide leaves open is filled in: the source host (a local
source server, serving what the guide describes), the datastream ids (a local HydroServer), the
elided ``mappings=[...]`` and ``data_connection=...`` of the scheduling examples, a task for the
notification example's data connection (the nightly one) and one for ``task.enabled = False``
("Pause the task"). The Mountain Time source moves to its own path (the guide gives it the CSV
source's URL with other columns).

Each example is then

* validated (``hydroserver-airflow validate``), which names the Airflow connections they need --
  the notification example needs SMTP and the API connection for its digest;
* built into its DAG, the schedule asserted against the guide's words: "every 15 minutes",
  "every 6 hours", "once a day", crontab "every day at 2:00 AM UTC", "no schedule (manual only)",
  "start_time to delay when a scheduled task first runs", "Pause the task", and the daily e-mail
  summary -- as Airflow's scheduler computes the runs from the stored DAG;
* run the way an Airflow worker runs it (params, rendered templates, ``execute``) into a local
  HydroServer, with what each loads checked: timestamps in UTC, local times shifted, only new
  rows on a second incremental run, ``run_time`` the moment the run started.

The slow test at the end parses the file with Airflow's own dag-processor and checks the
schedules it stores (what the UI shows, the next run).
"""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="hydroserver-guide-"))

import pytest

from hydroserver_provider import factory
from hydroserver_provider.testing.sources import LocalSourceServer

UTC = UTC
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
T0 = datetime(2025, 6, 1, tzinfo=UTC)  # the sources' first reading
READINGS = 6  # hourly, T0 .. T0 + 5 h

GUIDE = """
data_connections:
  # CSV Data Connection
  - name: My CSV Source
    workspace: your-workspace-id
    source_url: {source}/readings.csv?start={{start_date}}
    timestamp_key: Timestamp
    payload_type: CSV
    description: Hourly sensor readings.
    timestamp_format: "%Y-%m-%d %H:%M:%S"
    timezone_type: utc
    header_row: 1
    data_start_row: 2
    delimiter: ","
    placeholder_variables:
      - name: start_date
        variable_type: latest_observation_timestamp
        timestamp_format: "%Y-%m-%dT%H:%M:%S"

  # JSON Data Connection
  - name: My JSON Source
    workspace: your-workspace-id
    source_url: {source}/readings.json
    timestamp_key: datetime
    payload_type: JSON
    jmespath: "data[*]"

  # Timestamp Settings: Mountain Time (US)
  - name: Mountain Time Source
    workspace: your-workspace-id
    source_url: {source}/mountain/readings.csv
    timestamp_key: Time
    payload_type: CSV
    timezone_type: iana
    timezone: America/Denver

  # URL Placeholders: loading only new data
  - name: Incremental CSV Source
    workspace: your-workspace-id
    source_url: {source}/data.csv?start={{start_date}}
    timestamp_key: Timestamp
    payload_type: CSV
    placeholder_variables:
      - {{name: start_date, variable_type: latest_observation_timestamp,
          timestamp_format: "%Y-%m-%dT%H:%M:%S"}}

  # URL Placeholders: per-task station ID combined with a run-time date
  - name: Station API
    workspace: your-workspace-id
    source_url: {source}/{{station_id}}?as_of={{run_time}}
    timestamp_key: timestamp
    payload_type: JSON
    jmespath: "observations[*]"
    placeholder_variables:
      - {{name: station_id, variable_type: per_task}}
      - {{name: run_time, variable_type: run_time, timestamp_format: "%Y-%m-%dT%H:%M:%S"}}

  # Email Notifications
  - name: Notified Source
    workspace: your-workspace-id
    source_url: {source}/readings.csv
    timestamp_key: Timestamp
    payload_type: CSV
    notification:
      recipient_emails: [admin@example.com, engineer@example.com]
      schedule: {{enabled: true, interval: 1, interval_period: days}}

tasks:
  # Create a Basic Task
  - name: Hourly Temperature and Humidity
    data_connection: My CSV Source
    description: Loads hourly readings from the station API.
    mappings:
      - {{source_identifier: Temperature, target_datastream_id: {temperature}}}
      - {{source_identifier: Humidity, target_datastream_id: {humidity}}}
    interval: 1
    interval_period: hours
    enabled: true

  # Per-Task Variables
  - name: Station 42 Temperature
    data_connection: Station API
    task_variables: {{station_id: station-42}}
    mappings:
      - {{source_identifier: Temperature, target_datastream_id: {station}}}
    interval: 1
    interval_period: hours
    enabled: true

  # Task Scheduling: every 15 minutes, every 6 hours, once a day
  - name: 15-Minute Ingestion
    data_connection: My JSON Source
    mappings: [{{source_identifier: temperature, target_datastream_id: {json}}}]
    interval: 15
    interval_period: minutes
    enabled: true

  - name: Six-Hour Ingestion
    data_connection: Mountain Time Source
    mappings: [{{source_identifier: Temperature, target_datastream_id: {mountain}}}]
    interval: 6
    interval_period: hours
    enabled: true

  - name: Daily Ingestion
    data_connection: Incremental CSV Source
    mappings: [{{source_identifier: Temperature, target_datastream_id: {incremental}}}]
    interval: 1
    interval_period: days
    enabled: true

  # Crontab schedule: every day at 2:00 AM UTC
  - name: Nightly Ingestion
    data_connection: Notified Source
    mappings: [{{source_identifier: Temperature, target_datastream_id: {notified}}}]
    crontab: "0 2 * * *"
    enabled: true

  # No schedule (manual only)
  - name: Manual Ingestion
    data_connection: My CSV Source
    mappings: [{{source_identifier: Dew Point, target_datastream_id: {manual}}}]

  # start_time delays when a scheduled task first runs
  - name: Delayed Start Task
    data_connection: My JSON Source
    mappings: [{{source_identifier: humidity, target_datastream_id: {delayed}}}]
    interval: 1
    interval_period: days
    start_time: "2025-01-01T00:00:00Z"
    enabled: true

  # Update a Task: task.enabled = False  # Pause the task
  - name: Paused Task
    data_connection: Incremental CSV Source
    mappings: [{{source_identifier: Humidity, target_datastream_id: {paused}}}]
    interval: 1
    interval_period: hours
    enabled: false
"""

DATASTREAMS = ("temperature", "humidity", "station", "json", "mountain", "incremental",
               "notified", "manual", "delayed", "paused")


def temperature(t: datetime) -> float:
    return round(20 + (t - T0) / HOUR * 0.5, 2)


def humidity(t: datetime) -> float:
    return round(50 + (t - T0) / HOUR, 2)


def readings() -> list[datetime]:
    return [T0 + k * HOUR for k in range(READINGS)]


def _after(query: dict[str, str]) -> datetime | None:
    start = query.get("start")
    return datetime.strptime(start, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC) if start else None


def utc_csv(query: dict[str, str]) -> str:
    """``Timestamp,Temperature,Humidity,Dew Point`` in UTC, from ``start`` on when given."""
    since = _after(query)
    rows = ["Timestamp,Temperature,Humidity,Dew Point"] + [
        f"{t:%Y-%m-%d %H:%M:%S},{temperature(t)},{humidity(t)},{temperature(t) - 8}"
        for t in readings() if since is None or t >= since]
    return "\n".join(rows) + "\n"


def json_readings(query: dict[str, str]) -> str:
    """The guide's JSON example shape: ``{"data": [{"datetime": ..., "temperature": ...}]}``."""
    return json.dumps({"data": [{"datetime": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                 "temperature": temperature(t), "humidity": humidity(t)}
                                for t in readings()]})


def mountain_csv(query: dict[str, str]) -> str:
    """Local Mountain times without an offset (MDT in June: UTC-6)."""
    rows = ["Time,Temperature"] + [f"{(t - 6 * HOUR):%Y-%m-%dT%H:%M:%S},{temperature(t)}"
                                   for t in readings()]
    return "\n".join(rows) + "\n"


def station(query: dict[str, str]) -> str:
    return json.dumps({"station": "station-42", "observations": [
        {"timestamp": t.isoformat(), "Temperature": temperature(t)} for t in readings()]})


@dataclass
class Guide:
    folder: Path
    source: LocalSourceServer
    hs: Any
    ids: dict[str, str]
    dags: dict[str, Any]


@pytest.fixture
def guide(tmp_path, local_hydroserver, monkeypatch) -> Any:
    hs = local_hydroserver
    monkeypatch.setenv("AIRFLOW_CONN_HYDROSERVER_DEFAULT", json.dumps({
        "conn_type": "hydroserver", "host": hs.url,
        "extra": {"api_key": hs.api_key, "retries": 1, "retry_backoff": 0.01}}))
    ids = {name: hs.create_datastream(name=name) for name in DATASTREAMS}
    with LocalSourceServer() as source:
        source.add("/readings.csv", utc_csv, "text/csv")
        source.add("/data.csv", utc_csv, "text/csv")
        source.add("/readings.json", json_readings, "application/json")
        source.add("/mountain/readings.csv", mountain_csv, "text/csv")
        source.add("/station-42", station, "application/json")
        folder = tmp_path / "definitions"
        folder.mkdir()
        (folder / "guide.yaml").write_text(textwrap.dedent(GUIDE).format(source=source.url,
                                                                         **ids))
        result = factory.build_dags(folder)
        assert result.errors == []
        yield Guide(folder, source, hs, ids, result.dags)


def scheduled(dag):
    """The DAG as Airflow's scheduler rebuilds it from the stored (serialized) DAG."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


def runs(dag, count: int = 3) -> list:
    """The scheduler's next ``count`` runs of ``dag`` (DagRunInfo: run_after, data_interval)."""
    stored, found, last = scheduled(dag), [], None
    for _ in range(count):
        last = stored.next_dagrun_info(last_automated_run_info=last)
        if last is None:
            break
        found.append(last)
    return found


def gap(later: datetime, earlier: datetime) -> timedelta:
    """``later - earlier`` as a plain timedelta (pendulum's differences compare their ends)."""
    return timedelta(seconds=(later - earlier).total_seconds())


def dag_of(guide: Guide, name: str):
    return guide.dags[factory.dag_id_for(name)]


# --------------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------------


def test_the_guide_validates_and_names_what_it_needs_from_airflow(guide, capsys):
    import hydroserver_provider.compat  # noqa: F401  (Airflow's logging set up before capsys)
    from hydroserver_provider.cli import main

    assert main(["validate", "--no-database", str(guide.folder)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    needs = {line.split(", for ")[0].strip(" -"): line for line in out if line.startswith("  - ")}
    assert list(needs) == ["connection 'hydroserver_default'", "connection 'smtp_default'",
                           "connection 'airflow_api_default'"]
    assert needs["connection 'hydroserver_default'"].endswith(
        "found (environment variable AIRFLOW_CONN_HYDROSERVER_DEFAULT)")
    # the notification example: failure alerts and the digest need SMTP, the digest the API
    assert "for failure alerts of task 'Nightly Ingestion', the digest of 'Notified Source'" in \
        needs["connection 'smtp_default'"]
    assert "for the digest of 'Notified Source'" in needs["connection 'airflow_api_default'"]
    assert out[-1] == ("OK: 1 file, 9 tasks, 6 data connections; 2 Airflow settings not "
                       "checked")


# --------------------------------------------------------------------------------------------
# schedules, as the guide words them
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("task", "every", "summary"), [
    ("15-Minute Ingestion", timedelta(minutes=15), "every 15 minutes"),   # "Run every 15 minutes"
    ("Six-Hour Ingestion", 6 * HOUR, "every 6 hours"),                  # "Run every 6 hours"
    ("Daily Ingestion", DAY, "every day"),                              # "Run once a day"
    ("Hourly Temperature and Humidity", HOUR, "every hour"),
    ("Station 42 Temperature", HOUR, "every hour"),
])
def test_interval_schedules_run_every_interval(guide, task, every, summary):
    dag = dag_of(guide, task)
    assert scheduled(dag).timetable.summary == summary  # what Airflow's UI shows
    assert dag.is_paused_upon_creation is False  # enabled=True: it runs on its own
    first, second, third = runs(dag)
    now = datetime.now(UTC)
    # the newest complete period runs at once; then one run per interval, each loading the
    # interval before it
    assert first.run_after <= now < first.run_after + every
    assert gap(second.run_after, first.run_after) == gap(third.run_after, second.run_after) \
        == every
    for info in (first, second, third):
        assert info.data_interval.end == info.run_after
        assert gap(info.data_interval.end, info.data_interval.start) == every


def test_crontab_nightly_runs_every_day_at_2_am_utc(guide):
    dag = dag_of(guide, "Nightly Ingestion")
    assert scheduled(dag).timetable.summary == "At 02:00 (UTC)"
    found = runs(dag)
    for info in found:
        assert (info.run_after.hour, info.run_after.minute) == (2, 0)
        assert info.run_after.utcoffset() == timedelta(0)
        assert info.data_interval == (info.run_after - DAY, info.run_after)
    assert gap(found[1].run_after, found[0].run_after) == DAY


def test_manual_only_never_runs_on_its_own_and_starts_when_triggered(guide):
    dag = dag_of(guide, "Manual Ingestion")
    assert runs(dag) == []
    assert scheduled(dag).timetable.summary == "manual only"
    assert dag.is_paused_upon_creation is False  # "an immediate run at any time"


def test_start_time_is_when_the_task_first_runs(guide, tmp_path):
    """The guide's example (daily from 2025-01-01 00:00 UTC): its runs fall on the midnight grid
    of start_time, and caught up from the start the first run is at start_time itself; with a
    start_time still ahead, the first run is exactly then."""
    dag = dag_of(guide, "Delayed Start Task")
    for info in runs(dag):
        assert info.run_after.time() == datetime.min.time()
    text = (guide.folder / "guide.yaml").read_text()
    caught_up = text.replace('start_time: "2025-01-01T00:00:00Z"',
                             'start_time: "2025-01-01T00:00:00Z"\n    airflow: {catchup: true}')
    ahead = (datetime.now(UTC) + 3 * DAY).replace(hour=0, minute=0, second=0, microsecond=0)
    later = text.replace('start_time: "2025-01-01T00:00:00Z"', f'start_time: "{ahead:%Y-%m-%dT%H:%M:%SZ}"')
    for variant, first_run in ((caught_up, datetime(2025, 1, 1, tzinfo=UTC)), (later, ahead)):
        folder = tmp_path / f"v{first_run:%Y%m%d}"
        folder.mkdir()
        (folder / "guide.yaml").write_text(variant)
        built = factory.build_dags(folder).dags[factory.dag_id_for("Delayed Start Task")]
        first, second = runs(built, 2)
        assert first.run_after == first.data_interval.end == first_run
        assert second.run_after == first_run + DAY


def test_a_paused_task_has_no_scheduled_runs_but_runs_when_triggered(guide):
    """``task.enabled = False  # Pause the task``; manual runs still start "at any time,
    regardless of schedule" (the DAG is not paused) and load the schedule's last period."""
    dag = dag_of(guide, "Paused Task")
    assert runs(dag) == []
    assert scheduled(dag).timetable.summary == "disabled (every hour)"
    assert dag.is_paused_upon_creation is False


def test_the_notification_example_sends_a_daily_digest_and_failure_alerts(guide):
    digest = guide.dags["hydroserver_digest_notified_source"]
    assert scheduled(digest).timetable.summary == "every day"  # interval 1, interval_period days
    (send,) = digest.tasks
    assert send.recipients == ("admin@example.com", "engineer@example.com")
    assert [t.name for t in send.tasks] == ["Nightly Ingestion"]
    first, second = runs(digest, 2)
    assert gap(second.run_after, first.run_after) == DAY
    (alert,) = dag_of(guide, "Nightly Ingestion").get_task("ingest").on_failure_callback
    assert alert.recipients == ("admin@example.com", "engineer@example.com")


# --------------------------------------------------------------------------------------------
# runs, into a local HydroServer
# --------------------------------------------------------------------------------------------


def run_task(dag, *, started: datetime, interval: tuple[datetime, datetime] | None = None,
             run_type: str = "scheduled", conf: dict | None = None) -> dict:
    """Run the DAG's ingest task as a worker does: params, rendered templates, ``execute``."""
    import copy

    from airflow.sdk.definitions.param import process_params

    op = copy.deepcopy(dag.get_task("ingest"))  # rendering replaces the templates: a copy
    # every param given: in one process, Airflow's process_params keeps a conf value in the
    # DAG's Param objects (a worker runs one task per process)
    conf = {"dry_run": False, "window_start": None, "window_end": None, **(conf or {})}
    params = process_params(dag, op, conf, suppress_exception=False)
    start, end = interval or (started, started)
    dag_run = SimpleNamespace(data_interval_start=start, data_interval_end=end,
                              run_after=started, start_date=started, run_type=run_type)
    context = {"params": params, "dag_run": dag_run, "data_interval_start": start,
               "data_interval_end": end}
    op.render_template_fields(context, jinja_env=dag.get_template_env())
    return op.execute(context)


def stored(guide: Guide, name: str) -> list[tuple[datetime, float]]:
    return guide.hs.observations(guide.ids[name])


def test_every_example_loads_into_hydroserver(guide):
    now = datetime(2025, 6, 2, 10, 7, tzinfo=UTC)
    expected_temperature = [(t, temperature(t)) for t in readings()]
    expected_humidity = [(t, humidity(t)) for t in readings()]

    # a dry run (the trigger form's switch) reads and compares, and writes nothing
    hourly = dag_of(guide, "Hourly Temperature and Humidity")
    dry = run_task(hourly, started=now, run_type="manual", conf={"dry_run": True})
    assert dry["dry_run"] is True and dry["message"].startswith("Would load 12 observations")
    assert stored(guide, "temperature") == []

    # incremental CSV (latest_observation_timestamp): everything, then nothing new
    first = run_task(hourly, started=now, interval=(now - HOUR, now))
    assert first["status"] == "SUCCESS" and first["loaded"] == 2 * READINGS
    assert stored(guide, "temperature") == expected_temperature
    assert stored(guide, "humidity") == expected_humidity
    again = run_task(hourly, started=now + HOUR, interval=(now, now + HOUR))
    assert again["status"] == "SUCCESS" and again["loaded"] == 0
    asked = [r.query for r in guide.source.requests_to("/readings.csv")]
    assert asked[-1] == {"start": f"{T0 + (READINGS - 1) * HOUR:%Y-%m-%dT%H:%M:%S}"}

    # per_task station id and run_time: the moment the run started, not its interval
    started = datetime(2025, 6, 2, 16, 53, 12, tzinfo=UTC)
    run_task(dag_of(guide, "Station 42 Temperature"), started=started,
             interval=(started.replace(minute=0, second=0) - 2 * HOUR,
                       started.replace(minute=0, second=0) - HOUR))
    assert guide.source.requests_to("/station-42")[-1].query == {"as_of": "2025-06-02T16:53:12"}
    assert stored(guide, "station") == expected_temperature

    # JSON with jmespath data[*]
    run_task(dag_of(guide, "15-Minute Ingestion"), started=now,
             interval=(now - timedelta(minutes=15), now))
    assert stored(guide, "json") == expected_temperature

    # local Mountain times (no offset) read in America/Denver: MDT is UTC-6 in June
    run_task(dag_of(guide, "Six-Hour Ingestion"), started=now, interval=(now - 6 * HOUR, now))
    assert stored(guide, "mountain") == expected_temperature

    run_task(dag_of(guide, "Daily Ingestion"), started=now, interval=(now - DAY, now))
    assert stored(guide, "incremental") == expected_temperature
    run_task(dag_of(guide, "Nightly Ingestion"), started=now, interval=(now - DAY, now))
    assert stored(guide, "notified") == expected_temperature
    run_task(dag_of(guide, "Delayed Start Task"), started=now, interval=(now - DAY, now))
    assert stored(guide, "delayed") == expected_humidity

    # manual and paused tasks: a manual run, at once
    manual = run_task(dag_of(guide, "Manual Ingestion"), started=now, run_type="manual")
    assert manual["status"] == "SUCCESS"
    assert stored(guide, "manual") == [(t, temperature(t) - 8) for t in readings()]
    run_task(dag_of(guide, "Paused Task"), started=now, run_type="manual")
    assert stored(guide, "paused") == expected_humidity


# --------------------------------------------------------------------------------------------
# Airflow's own dag-processor
# --------------------------------------------------------------------------------------------


@pytest.mark.slow  # starts Airflow
def test_airflow_stores_the_guides_schedules(guide, tmp_path):
    """The real dag-processor parses the guide's file; what it stores for the scheduler and the
    UI: the schedules in words, next runs on the guide's schedule, nothing paused, and the
    definition check's import error naming the connections the notification example lacks."""
    import shutil
    import sqlite3

    from hydroserver_provider.testing.airflow import LocalAirflow

    dags = tmp_path / "dags"
    dags.mkdir()
    for name in ("hydroserver_ingestion.py", "hydroserver_definition_check.py"):
        shutil.copy(Path(__file__).resolve().parents[1] / "dags" / name, dags)
    shutil.copytree(guide.folder, dags / "definitions")
    airflow = LocalAirflow(tmp_path / "home", dags, env={
        "AIRFLOW_CONN_HYDROSERVER_DEFAULT": os.environ["AIRFLOW_CONN_HYDROSERVER_DEFAULT"]})
    airflow.migrate()
    airflow.airflow("dag-processor", "--num-runs", "1")
    with sqlite3.connect(airflow.home / "airflow.db") as db:
        stored_dags = {row[0]: row[1:] for row in db.execute(
            "select dag_id, timetable_summary, is_paused, next_dagrun_create_after from dag")}
        errors = dict(db.execute("select filename, stacktrace from import_error"))
    summaries = {dag_id: summary for dag_id, (summary, _, _) in stored_dags.items()}
    assert summaries == {
        "hydroserver_hourly_temperature_and_humidity": "every hour",
        "hydroserver_station_42_temperature": "every hour",
        "hydroserver_15_minute_ingestion": "every 15 minutes",
        "hydroserver_six_hour_ingestion": "every 6 hours",
        "hydroserver_daily_ingestion": "every day",
        "hydroserver_nightly_ingestion": "At 02:00 (UTC)",
        "hydroserver_manual_ingestion": "manual only",
        "hydroserver_delayed_start_task": "every day",
        "hydroserver_paused_task": "disabled (every hour)",
        "hydroserver_digest_notified_source": "every day",
    }
    assert all(paused == 0 for _, paused, _ in stored_dags.values())
    next_runs = {dag_id: when for dag_id, (_, _, when) in stored_dags.items()}
    assert next_runs["hydroserver_manual_ingestion"] is None
    assert next_runs["hydroserver_paused_task"] is None
    nightly = datetime.fromisoformat(next_runs["hydroserver_nightly_ingestion"]).replace(
        tzinfo=UTC)
    assert (nightly.hour, nightly.minute) == (2, 0)
    (check,) = errors.values()
    assert "Airflow connection 'smtp_default' does not exist" in check
    assert "Airflow connection 'airflow_api_default' does not exist" in check
    assert "hydroserver_default" not in check and "problem" not in check
