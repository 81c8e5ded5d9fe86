"""Schedules with the loading guide's meaning: the first run at ``start_time``, ``enabled`` on
existing DAGs, readable schedules that Airflow can store and rebuild."""

from __future__ import annotations

import os
import tempfile
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="hydroserver-schedules-"))

import pytest
from airflow.timetables.interval import CronDataIntervalTimetable

from hydroserver_provider import factory
from hydroserver_provider.factory.timetables import (
    CrontabTimetable,
    IntervalTimetable,
    ManualTimetable,
    interval_text,
)
from hydroserver_provider.periods import first_period

UTC = UTC
HOUR = timedelta(hours=1)

CONNECTION = """
data_connections:
  - name: Station CSV
    source_url: http://127.0.0.1:9/data.csv
    payload_type: CSV
    timestamp_key: Timestamp
tasks:
"""


def build(tmp_path: Path, schedule: str, extra: str = ""):
    """The DAG of one task with this schedule (YAML lines of the task)."""
    folder = tmp_path / "defs"
    folder.mkdir(exist_ok=True)
    body = textwrap.indent(textwrap.dedent(schedule).strip() + "\n" + extra, "    ")
    (folder / "one.yaml").write_text(CONNECTION + f"""  - name: Station 42
    data_connection: Station CSV
    mappings: [{{source_identifier: Level, target_datastream_id: d1}}]
{body}""")
    result = factory.build_dags(folder)
    assert result.errors == []
    (dag,) = result.dags.values()
    return dag


def scheduled(dag):
    """The DAG as the scheduler and the API server rebuild it."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


def first_run(dag):
    return scheduled(dag).next_dagrun_info(last_automated_run_info=None)


# --------------------------------------------------------------------------------------------
# start_time: "when a scheduled task first runs"
# --------------------------------------------------------------------------------------------


def test_first_period_ends_at_the_first_run():
    daily = first_period(datetime(2027, 1, 1, tzinfo=UTC), interval_seconds=86400, crontab=None)
    assert daily == (datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    # a crontab: the first tick at or after start_time, and the tick before it
    nightly = first_period(datetime(2026, 12, 10, tzinfo=UTC), interval_seconds=None,
                           crontab="0 2 * * *")
    assert nightly == (datetime(2026, 12, 9, 2, tzinfo=UTC), datetime(2026, 12, 10, 2, tzinfo=UTC))
    on_tick = first_period(datetime(2026, 12, 10, 2, tzinfo=UTC), interval_seconds=None,
                           crontab="0 2 * * *")
    assert on_tick == nightly
    # in a time zone, across the switch to daylight time (06:00 MST = 13:00, MDT = 12:00 UTC)
    denver = first_period(datetime(2025, 3, 9, 5, tzinfo=UTC), interval_seconds=None,
                          crontab="0 6 * * *", timezone="America/Denver")
    assert denver == (datetime(2025, 3, 8, 13, tzinfo=UTC), datetime(2025, 3, 9, 12, tzinfo=UTC))
    assert first_period(datetime(2027, 1, 1, tzinfo=UTC), interval_seconds=None,
                        crontab=None) is None


@pytest.mark.parametrize(("schedule", "run_at"), [
    # the two examples: they first ran one period late
    ("interval: 1\ninterval_period: days\nstart_time: 2027-01-01T00:00:00Z",
     datetime(2027, 1, 1, tzinfo=UTC)),
    ('crontab: "0 2 * * *"\nstart_time: 2026-12-10T00:00:00Z',
     datetime(2026, 12, 10, 2, tzinfo=UTC)),
    ("interval: 15\ninterval_period: minutes\nstart_time: 2027-03-01T08:05:00Z",
     datetime(2027, 3, 1, 8, 5, tzinfo=UTC)),
])
def test_a_future_start_time_is_the_first_run(tmp_path, schedule, run_at):
    dag = build(tmp_path, schedule)
    info = first_run(dag)
    assert info.run_after == info.data_interval.end == run_at
    # the run loads the period ending at start_time; later runs follow on the schedule
    following = scheduled(dag).next_dagrun_info(last_automated_run_info=info)
    assert following.data_interval.start == run_at


def test_catch_up_begins_with_the_period_ending_at_start_time(tmp_path):
    dag = build(tmp_path, "interval: 6\ninterval_period: hours\nstart_time: 2025-01-01T03:00:00Z",
                "airflow: {catchup: true}\n")
    info = first_run(dag)
    assert info.data_interval == (datetime(2024, 12, 31, 21, tzinfo=UTC),
                                  datetime(2025, 1, 1, 3, tzinfo=UTC))


def test_interval_periods_stay_on_the_start_time_grid_without_catch_up(tmp_path):
    """Airflow's own interval timetable skips ahead on the Unix epoch's grid once it stops
    catching up: every 6 hours from 03:00 would run at 00:00, 06:00, ... This one keeps 03:00,
    09:00, 15:00, 21:00."""
    dag = build(tmp_path, "interval: 6\ninterval_period: hours\nstart_time: 2025-01-01T03:00:00Z")
    assert dag.catchup is False
    info = first_run(dag)
    now = datetime.now(UTC)
    assert info.run_after.hour % 6 == 3 and info.run_after.minute == 0
    assert info.run_after <= now < info.run_after + 6 * HOUR
    assert info.data_interval.end - info.data_interval.start == 6 * HOUR


def test_without_start_time_periods_keep_airflows_grid(tmp_path):
    dag = build(tmp_path, "interval: 15\ninterval_period: minutes")
    assert dag.start_date == factory.DEFAULT_START_DATE and dag.timetable.anchor is None
    start, end = first_run(dag).data_interval
    assert end - start == timedelta(minutes=15) and end.minute % 15 == 0 and end.second == 0


def test_a_manual_task_with_a_start_time_has_it_as_start_date(tmp_path):
    dag = build(tmp_path, "start_time: 2025-01-01T00:00:00Z")
    assert dag.start_date == datetime(2025, 1, 1, tzinfo=UTC) and first_run(dag) is None


def test_digests_first_run_at_their_start_time(tmp_path):
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "d.yaml").write_text(textwrap.dedent("""
        data_connections:
          - name: Notified
            source_url: http://127.0.0.1:9/data.csv
            payload_type: CSV
            timestamp_key: Timestamp
            notification:
              recipient_emails: [ops@example.org]
              schedule: {interval: 1, interval_period: days, start_time: "2027-01-01T07:00:00Z"}
        tasks:
          - name: T
            data_connection: Notified
            mappings: [{source_identifier: a, target_datastream_id: d1}]
        """))
    digest = factory.build_dags(folder).dags["hydroserver_digest_notified"]
    assert first_run(digest).run_after == datetime(2027, 1, 1, 7, tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# enabled: on existing DAGs too
# --------------------------------------------------------------------------------------------


def test_flipping_enabled_changes_the_stored_schedule_of_a_dag(tmp_path):
    """``is_paused_upon_creation`` acts once, when Airflow first sees a DAG; the timetable is
    stored again at every parse, so this is what carries ``enabled`` to an existing DAG."""
    from airflow.serialization.serialized_objects import DagSerialization

    hourly = "interval: 1\ninterval_period: hours\n"
    on = DagSerialization.to_dict(build(tmp_path, hourly))
    off = DagSerialization.to_dict(build(tmp_path, hourly + "enabled: false"))
    assert on["dag"]["timetable"] != off["dag"]["timetable"]
    assert first_run(build(tmp_path, hourly + "enabled: false")) is None
    assert first_run(build(tmp_path, hourly)) is not None
    for dag in (build(tmp_path, hourly), build(tmp_path, hourly + "enabled: false")):
        assert dag.is_paused_upon_creation is False  # a manual run never waits for an unpause


def test_a_disabled_task_keeps_its_schedule_for_manual_runs(tmp_path):
    """A manual run of a disabled hourly task loads the last hour, as it would enabled."""
    from types import SimpleNamespace

    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "w.yaml").write_text(textwrap.dedent("""
        data_connections:
          - name: Windowed
            source_url: http://127.0.0.1:9/data.csv?from={start}&to={end}
            payload_type: CSV
            timestamp_key: Timestamp
            placeholder_variables:
              - {name: start, variable_type: window_start}
              - {name: end, variable_type: window_end}
        tasks:
          - name: Disabled hourly
            data_connection: Windowed
            mappings: [{source_identifier: a, target_datastream_id: d1}]
            interval: 1
            interval_period: hours
            enabled: false
        """))
    (dag,) = factory.build_dags(folder).dags.values()
    macro = dag.user_defined_macros["hydroserver_run_window"]
    run_after = datetime(2025, 5, 5, 10, 7, tzinfo=UTC)
    window = macro(SimpleNamespace(data_interval_start=run_after, data_interval_end=run_after,
                                   run_after=run_after))
    assert (window.start, window.end) == ((run_after - HOUR).isoformat(), run_after.isoformat())
    assert "Required" not in dag.params.get_param("window_start").description


# --------------------------------------------------------------------------------------------
# Readable schedules, stored and rebuilt by Airflow
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("schedule", "summary"), [
    ("interval: 15\ninterval_period: minutes", "every 15 minutes"),
    ("interval: 1\ninterval_period: hours", "every hour"),
    ("interval: 6\ninterval_period: hours", "every 6 hours"),
    ("interval: 1\ninterval_period: days", "every day"),
    ("interval: 90\ninterval_period: minutes", "every 90 minutes"),
    ('crontab: "0 2 * * *"', "At 02:00 (UTC)"),
    ('crontab: "0 6 * * 1-5"\nschedule: {timezone: America/Denver}',
     "At 06:00, Monday through Friday (America/Denver)"),
    ("", "manual only"),
    ("interval: 1\ninterval_period: hours\nenabled: false", "disabled (every hour)"),
    ('crontab: "0 2 * * *"\nenabled: false', "disabled (cron 0 2 * * * (UTC))"),
    ("enabled: false", "disabled"),
])
def test_the_schedule_airflow_shows(tmp_path, schedule, summary):
    dag = build(tmp_path, schedule)
    rebuilt = scheduled(dag).timetable
    assert rebuilt.summary == summary == dag.timetable.summary
    assert rebuilt.description == dag.timetable.description and rebuilt.description
    assert ":00:00" not in rebuilt.summary  # never a timedelta


def test_descriptions_say_what_a_run_loads():
    every = IntervalTimetable(timedelta(hours=6), anchor=datetime(2025, 1, 1, 3, tzinfo=UTC))
    assert every.description == ("Every 6 hours, from 2025-01-01 03:00 UTC; each run loads the "
                                 "6 hours before it")
    cron = CrontabTimetable("0 2 * * *", "UTC")
    assert cron.description == ("crontab '0 2 * * *' in UTC: At 02:00; each run loads the "
                                "period since the previous one")
    assert interval_text(60) == "every minute" and interval_text(172800) == "every 2 days"


def test_crontab_words_are_airflows_own_however_often_a_crontab_repeats():
    # the per-expression cache must give what Airflow's timetable says, the DOM-or-DOW case too
    for expression in ("0 2 * * *", "0 6 1 * 1", "*/15 * * * *", "0 2 * * *", "0 6 1 * 1"):
        ours = CrontabTimetable(expression, "UTC")
        airflows = CronDataIntervalTimetable(expression, "UTC")
        assert airflows.description and ours.description.startswith(
            f"crontab '{expression}' in UTC: {airflows.description};")


def test_the_timetables_are_registered_with_airflow_as_a_plugin():
    from airflow import plugins_manager

    registered = plugins_manager.get_timetables_plugins()
    for cls in (IntervalTimetable, CrontabTimetable, ManualTimetable):
        assert registered[f"{cls.__module__}.{cls.__qualname__}"] is cls


def test_timetables_round_trip_with_their_anchor_and_words():
    for timetable in (IntervalTimetable(HOUR), IntervalTimetable(HOUR, datetime(2025, 1, 1, 0, 30,
                                                                                tzinfo=UTC)),
                      ManualTimetable("disabled (every hour)", "why")):
        assert type(timetable).deserialize(timetable.serialize()) == timetable
    cron = CrontabTimetable("*/15 * * * *", "Europe/Paris")
    again = CrontabTimetable.deserialize(cron.serialize())
    assert (again.summary, again.description) == (cron.summary, cron.description)
