"""What the DAG factory builds for notifications: alerts on ingestion tasks, digest DAGs."""

from __future__ import annotations

import textwrap
from datetime import timedelta

from hydroserver_provider.factory import build_dags
from hydroserver_provider.notifications.alerts import FailureAlert
from hydroserver_provider.notifications.dags import HydroDigestOperator

CONNECTIONS = """
data_connections:
  - name: River API
    source_url: http://127.0.0.1:9/api.json?from={start}&to={end}
    payload_type: JSON
    jmespath: "data.records[*]"
    timestamp_key: time
    placeholder_variables:
      - {name: start, variable_type: window_start}
      - {name: end, variable_type: window_end}
    notification:
      recipient_emails: [ops@example.org]
      schedule: %(schedule)s
  - name: Quiet CSV
    source_url: http://127.0.0.1:9/quiet.csv
    payload_type: CSV
    timestamp_key: t
"""
TASKS = """
tasks:
  - name: River 1
    data_connection: River API
    mappings: [{source_identifier: q, target_datastream_id: 0d000000-0000-4000-8000-000000000001}]
    interval: 15
    interval_period: minutes
  - name: River 2
    data_connection: River API
    mappings: [{source_identifier: h, target_datastream_id: 0d000000-0000-4000-8000-000000000002}]
    crontab: "0 * * * *"
  - name: Quiet 1
    data_connection: Quiet CSV
    mappings: [{source_identifier: v, target_datastream_id: 0d000000-0000-4000-8000-000000000003}]
"""


def folder(tmp_path, schedule="{interval: 1, interval_period: days}", tasks=TASKS,
           connections=CONNECTIONS):
    (tmp_path / "defs.yaml").write_text(textwrap.dedent(connections % {"schedule": schedule})
                                        + textwrap.dedent(tasks))
    return tmp_path


def test_every_ingestion_task_gets_a_failure_alert_with_its_recipients(tmp_path):
    result = build_dags(folder(tmp_path))
    assert result.errors == []
    (alert,) = result.dags["hydroserver_river_1"].get_task("ingest").on_failure_callback
    assert isinstance(alert, FailureAlert)
    assert (alert.task_name, alert.connection_name, alert.recipients) == (
        "River 1", "River API", ("ops@example.org",))
    (quiet,) = result.dags["hydroserver_quiet_1"].get_task("ingest").on_failure_callback
    assert quiet.recipients == ()  # still records failures for run history


def test_a_digest_dag_per_connection_with_a_schedule(tmp_path):
    result = build_dags(folder(tmp_path))
    digest = result.dags["hydroserver_digest_river_api"]
    assert sorted(result.dags) == ["hydroserver_digest_river_api", "hydroserver_quiet_1",
                                   "hydroserver_river_1", "hydroserver_river_2"]
    assert type(digest.timetable).__name__ == "IntervalTimetable"
    assert digest.timetable.delta == timedelta(days=1)
    assert digest.catchup is False and digest.max_active_runs == 1
    assert digest.dag_display_name == "Digest: River API"
    (task,) = digest.tasks
    assert isinstance(task, HydroDigestOperator) and task.task_id == "send_digest"
    assert task.recipients == ("ops@example.org",)
    assert [(t.dag_id, t.interval_seconds, t.crontab) for t in task.tasks] == [
        ("hydroserver_river_1", 900.0, None), ("hydroserver_river_2", None, "0 * * * *")]
    assert task.interval_seconds == 86400.0


def test_a_crontab_digest_uses_its_time_zone(tmp_path):
    result = build_dags(folder(tmp_path, schedule='{crontab: "0 7 * * 1-5", '
                                                   'timezone: America/Denver}'))
    timetable = result.dags["hydroserver_digest_river_api"].timetable
    assert type(timetable).__name__ == "CrontabTimetable"
    assert timetable.expression == "0 7 * * 1-5" and str(timetable.timezone) == \
        "America/Denver"
    assert result.dags["hydroserver_digest_river_api"].tasks[0].crontab == "0 7 * * 1-5"


def test_no_digest_when_disabled_or_manual(tmp_path):
    result = build_dags(folder(tmp_path, schedule="{interval: 1, interval_period: days, "
                                                   "enabled: false}"))
    assert "hydroserver_digest_river_api" not in result.dags and result.errors == []
    result = build_dags(folder(tmp_path, schedule="{enabled: true}"))
    assert "hydroserver_digest_river_api" not in result.dags and result.errors == []


def test_a_digest_without_recipients_is_a_definition_error(tmp_path):
    connections = CONNECTIONS.replace("recipient_emails: [ops@example.org]",
                                      "recipient_emails: []")
    result = build_dags(folder(tmp_path, connections=connections))
    (error,) = result.errors
    assert "data connection 'River API'" in str(error)
    assert error.field == "notification.recipient_emails"
    assert "hydroserver_digest_river_api" not in result.dags
    assert "hydroserver_river_1" in result.dags  # the tasks still load
    check = build_dags(folder(tmp_path, connections=connections), build=False)
    assert [e.field for e in check.errors] == ["notification.recipient_emails"]


def test_a_task_whose_dag_id_is_a_digest_id_blocks_only_the_digest(tmp_path):
    tasks = TASKS + """
  - name: Digest River API
    data_connection: Quiet CSV
    mappings: [{source_identifier: w, target_datastream_id: 0d000000-0000-4000-8000-000000000009}]
"""
    result = build_dags(folder(tmp_path, tasks=tasks))
    (error,) = result.errors
    assert "digest DAG id 'hydroserver_digest_river_api' is already the DAG id of a task" in \
        str(error)
    assert type(result.dags["hydroserver_digest_river_api"].tasks[0]).__name__ == \
        "HydroIngestOperator"


def test_a_worker_builds_just_the_digest_dag_it_runs(tmp_path):
    result = build_dags(folder(tmp_path), only_dag_id="hydroserver_digest_river_api")
    assert list(result.dags) == ["hydroserver_digest_river_api"]
    result = build_dags(folder(tmp_path), only_dag_id="hydroserver_river_2")
    assert list(result.dags) == ["hydroserver_river_2"]
    assert result.dags["hydroserver_river_2"].get_task("ingest").on_failure_callback
