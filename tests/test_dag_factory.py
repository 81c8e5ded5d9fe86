"""Definitions -> DAGs: ids, schedules and their real data intervals, settings, params, docs."""

from __future__ import annotations

import os
import tempfile
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="hydroserver-dag-factory-"))

import pytest

from hydroserver_provider import factory
from hydroserver_provider.compat import AirflowFailException
from hydroserver_provider.defaults import CHUNK_ROWS
from hydroserver_provider.definitions.files import load_definition_file
from hydroserver_provider.errors import DefinitionErrors
from hydroserver_provider.factory.schedules import RunWindow
from hydroserver_provider.operators.ingest import HydroIngestOperator

UTC = UTC
DS1 = "0c000000-0000-4000-8000-000000000001"
DS2 = "0c000000-0000-4000-8000-000000000002"

CONNECTIONS = """
data_connections:
  - name: Windowed CSV
    workspace_id: 6e0f0000-0000-4000-8000-00000000000a
    source_url: http://127.0.0.1:8765/{station}/data.csv?start={start}&end={end}
    payload_type: CSV
    timestamp_key: Timestamp
    placeholder_variables:
      - {name: station, variable_type: per_task}
      - {name: start, variable_type: window_start, timestamp_format: "%Y-%m-%dT%H:%M:%S"}
      - {name: end, variable_type: window_end}
  - name: Incremental JSON
    source_url: http://127.0.0.1:8765/api.json?since={since}
    payload_type: JSON
    jmespath: "data.records[*]"
    timestamp_key: time
    placeholder_variables:
      - {name: since, variable_type: latest_observation_timestamp}
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def task_yaml(name: str, schedule: str = "", *, connection: str = "Windowed CSV",
              target: str = DS1, extra: str = "") -> str:
    variables = "task_variables: {station: s42}" if connection == "Windowed CSV" else ""
    body = f"""
  - name: {name}
    data_connection: {connection}
    {variables}
    mappings:
      - {{source_identifier: Temperature, target_datastream_id: {target}}}
"""
    for line in (schedule + "\n" + extra).strip().splitlines():
        body += f"    {line}\n"
    return body


def one_dag(tmp_path: Path, schedule: str = "", *, connection: str = "Windowed CSV",
            extra: str = "", defaults: str = ""):
    """Build the DAG of one task (a file with the two connections); fail on any error."""
    text = (defaults + CONNECTIONS + "tasks:" + task_yaml("Station 42", schedule,
                                                          connection=connection, extra=extra))
    write(tmp_path / "defs", "one.yaml", text)
    result = factory.build_dags(tmp_path / "defs")
    assert result.errors == []
    (dag,) = result.dags.values()
    return dag


def one_task(tmp_path: Path, schedule: str = "interval: 1\ninterval_period: hours", **kw):
    path = write(tmp_path / "defs", "one.yaml",
                 CONNECTIONS + "tasks:" + task_yaml("Station 42", schedule, **kw))
    loaded = load_definition_file(path)
    assert loaded.errors == ()
    return loaded.tasks[0]


def scheduled(dag):
    """The DAG as the scheduler sees it (serialized, then deserialized)."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


# --------------------------------------------------------------------------------------------
# DAG ids
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "dag_id"), [
    ("Station 42", "hydroserver_station_42"),
    ("Río Grande @ Lees Ferry (15-min)", "hydroserver_rio_grande_lees_ferry_15_min"),
    ("  --Already_snake--  ", "hydroserver_already_snake"),
    ("UPPER.case/with\\slashes", "hydroserver_upper_case_with_slashes"),
])
def test_dag_id_is_a_stable_slug(name, dag_id):
    assert factory.dag_id_for(name) == dag_id
    assert factory.dag_id_for(name) == factory.dag_id_for(name)


def test_dag_id_of_unsluggable_and_long_names_is_valid_and_stable():
    chinese = factory.dag_id_for("水位站")
    assert chinese.startswith("hydroserver_task_") and len(chinese) == len("hydroserver_task_") + 10
    assert chinese != factory.dag_id_for("水温站")
    long = factory.dag_id_for("x" * 400)
    assert len(long) <= 250 and long == factory.dag_id_for("x" * 400)
    assert long != factory.dag_id_for("x" * 401)
    for dag_id in (chinese, long):
        assert set(dag_id) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")


def test_explicit_dag_id_wins(tmp_path):
    dag = one_dag(tmp_path, "interval: 1\ninterval_period: hours",
                  extra="airflow: {dag_id: legacy_station_42}")
    assert dag.dag_id == "legacy_station_42"


def test_dag_id_collision_rejects_both_tasks_and_names_both(tmp_path):
    folder = tmp_path / "defs"
    write(folder, "a.yaml", CONNECTIONS + "tasks:" + task_yaml("Station 42", target=DS1)
          + task_yaml("Unrelated", target="0c000000-0000-4000-8000-0000000000ff"))
    write(folder, "b.yaml", CONNECTIONS + "tasks:" + task_yaml("station-42!", target=DS2))
    result = factory.build_dags(folder)
    assert list(result.dags) == ["hydroserver_unrelated"]
    messages = [str(e) for e in result.errors]
    assert len(messages) == 2
    a_error = next(m for m in messages if "task 'Station 42'" in m.split(":")[1])
    assert str(folder / "a.yaml") in a_error and str(folder / "b.yaml") in a_error
    assert "task 'station-42!'" in a_error and "hydroserver_station_42" in a_error
    assert all("field 'name'" in m for m in messages)


# --------------------------------------------------------------------------------------------
# Schedules, and the data intervals the scheduler will create
# --------------------------------------------------------------------------------------------


def test_interval_schedule_makes_hourly_data_intervals_from_start_time(tmp_path):
    dag = one_dag(tmp_path, "interval: 1\ninterval_period: hours\nstart_time: 2025-01-01T00:00:00Z",
                  extra="airflow: {catchup: true}")
    assert type(dag.timetable).__name__ == "IntervalTimetable"
    assert dag.timetable.delta == timedelta(hours=1)
    # the first run is at start_time (the guide: "when a scheduled task first runs"), loading
    # the hour ending there: start_date is one period before
    assert dag.start_date == datetime(2024, 12, 31, 23, tzinfo=UTC) and dag.catchup is True
    sdag = scheduled(dag)
    first = sdag.next_dagrun_info(last_automated_run_info=None)
    assert (first.data_interval.start, first.data_interval.end) == (
        datetime(2024, 12, 31, 23, tzinfo=UTC), datetime(2025, 1, 1, 0, tzinfo=UTC))
    assert first.run_after == first.data_interval.end == datetime(2025, 1, 1, tzinfo=UTC)
    second = sdag.next_dagrun_info(last_automated_run_info=first)
    assert (second.data_interval.start, second.data_interval.end) == (
        datetime(2025, 1, 1, 0, tzinfo=UTC), datetime(2025, 1, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(("period", "delta"), [("minutes", timedelta(minutes=15)),
                                               ("hours", timedelta(hours=15)),
                                               ("days", timedelta(days=15))])
def test_interval_periods(tmp_path, period, delta):
    dag = one_dag(tmp_path, f"interval: 15\ninterval_period: {period}")
    assert dag.timetable.delta == delta


def test_without_catchup_the_first_run_is_the_last_complete_interval(tmp_path):
    dag = one_dag(tmp_path, "interval: 15\ninterval_period: minutes\n"
                            "start_time: 2024-06-01T00:00:00Z")
    assert dag.catchup is False
    info = scheduled(dag).next_dagrun_info(last_automated_run_info=None)
    now = datetime.now(UTC)
    start, end = info.data_interval
    assert end - start == timedelta(minutes=15)
    assert end <= now < end + timedelta(minutes=15)


def test_crontab_in_a_time_zone_follows_local_time_across_dst(tmp_path):
    dag = one_dag(tmp_path, 'crontab: "0 6 * * *"\nschedule: {timezone: America/Denver}\n'
                            "start_time: 2025-03-07T13:00:00Z",
                  extra="airflow: {catchup: true}")
    assert type(dag.timetable).__name__ == "CrontabTimetable"
    assert dag.timetable.expression == "0 6 * * *"
    assert str(dag.timetable.timezone) == "America/Denver"
    sdag = scheduled(dag)
    first = sdag.next_dagrun_info(last_automated_run_info=None)
    # 06:00 MST is 13:00 UTC: the first run is at start_time, a tick; after the switch to
    # daylight time (9 March) 06:00 MDT is 12:00 UTC
    assert first.data_interval == (datetime(2025, 3, 6, 13, tzinfo=UTC),
                                   datetime(2025, 3, 7, 13, tzinfo=UTC))
    second = sdag.next_dagrun_info(last_automated_run_info=first)
    assert second.data_interval == (datetime(2025, 3, 7, 13, tzinfo=UTC),
                                    datetime(2025, 3, 8, 13, tzinfo=UTC))
    third = sdag.next_dagrun_info(last_automated_run_info=second)
    assert third.data_interval == (datetime(2025, 3, 8, 13, tzinfo=UTC),
                                   datetime(2025, 3, 9, 12, tzinfo=UTC))


def test_crontab_defaults_to_utc(tmp_path):
    dag = one_dag(tmp_path, 'crontab: "*/15 * * * *"')
    assert str(dag.timetable.timezone) == "UTC"
    start, end = scheduled(dag).next_dagrun_info(last_automated_run_info=None).data_interval
    assert end - start == timedelta(minutes=15) and end.minute % 15 == 0


def test_no_schedule_is_manual_only(tmp_path):
    dag = one_dag(tmp_path, "", connection="Incremental JSON")
    assert type(dag.timetable).__name__ == "ManualTimetable"
    assert dag.timetable.can_be_scheduled is False and dag.timetable.summary == "manual only"
    assert scheduled(dag).next_dagrun_info(last_automated_run_info=None) is None


def test_start_date_default_is_fixed_never_now(tmp_path):
    dag = one_dag(tmp_path, "interval: 1\ninterval_period: days")
    assert dag.start_date == factory.DEFAULT_START_DATE == datetime(2024, 1, 1, tzinfo=UTC)


def test_enabled_false_means_no_scheduled_runs_and_manual_runs_at_once(tmp_path):
    disabled = one_dag(tmp_path, "interval: 1\ninterval_period: hours\nenabled: false")
    # no schedule, created unpaused: a manual run starts at once, and flipping enabled changes
    # the (serialized) schedule of an existing DAG, which is_paused_upon_creation never could
    assert disabled.is_paused_upon_creation is False
    assert disabled.timetable.can_be_scheduled is False
    assert scheduled(disabled).next_dagrun_info(last_automated_run_info=None) is None
    assert scheduled(disabled).timetable.summary == "disabled (every hour)"
    enabled = one_dag(tmp_path, "interval: 1\ninterval_period: hours")
    assert enabled.is_paused_upon_creation is False
    assert scheduled(enabled).next_dagrun_info(last_automated_run_info=None) is not None
    # created paused only when a definition asks for it
    assert one_dag(tmp_path, "interval: 1\ninterval_period: hours",
                   extra="airflow: {is_paused_upon_creation: true}").is_paused_upon_creation is True


def test_catchup_and_max_active_runs_defaults_and_overrides(tmp_path):
    dag = one_dag(tmp_path, "interval: 1\ninterval_period: hours")
    assert (dag.catchup, dag.max_active_runs) == (False, 1)
    dag = one_dag(tmp_path, "interval: 1\ninterval_period: hours\nstart_time: 2025-01-01T00:00:00Z",
                  extra="airflow: {catchup: true, max_active_runs: 4}")
    assert (dag.catchup, dag.max_active_runs) == (True, 4)


def test_catchup_without_start_time_is_a_definition_error(tmp_path):
    folder = tmp_path / "defs"
    write(folder, "one.yaml", CONNECTIONS + "tasks:" + task_yaml(
        "Station 42", "interval: 1\ninterval_period: hours", extra="airflow: {catchup: true}"))
    result = factory.build_dags(folder)
    assert result.dags == {}
    (error,) = result.errors
    assert error.field == "airflow.catchup"
    assert "one.yaml: task 'Station 42'" in str(error) and "start_time" in str(error)


# --------------------------------------------------------------------------------------------
# Airflow settings
# --------------------------------------------------------------------------------------------


def test_defaults_and_task_settings_reach_the_operator(tmp_path):
    defaults = """
defaults:
  hydroserver_conn_id: hs_prod
  owner: hydrology
  retries: 3
  retry_delay: 120
  retry_exponential_backoff: true
  max_retry_delay: 3600
  queue: ingest
  execution_timeout: 900
  email: [ops@example.com]
  email_on_failure: true
"""
    dag = one_dag(tmp_path, "interval: 1\ninterval_period: hours", defaults=defaults,
                  extra="airflow: {retries: 5, pool: hydroserver_writes, tags: [river]}")
    op = dag.get_task(factory.INGEST_TASK_ID)
    assert isinstance(op, HydroIngestOperator) and list(dag.task_dict) == ["ingest"]
    assert op.hydroserver_conn_id == "hs_prod"
    assert op.owner == "hydrology" and dag.owner == "hydrology"
    assert op.retries == 5  # the task's airflow: block wins over the file's defaults
    assert op.retry_delay == timedelta(minutes=2)
    assert op.retry_exponential_backoff == 2.0  # Airflow 3.3 reads a multiplier: True would be 1
    assert op.max_retry_delay == timedelta(hours=1)
    assert op.queue == "ingest" and op.pool == "hydroserver_writes"
    assert op.execution_timeout == timedelta(minutes=15)
    assert op.email == ["ops@example.com"] and op.email_on_failure is True
    assert "river" in dag.tags


def test_pool_is_airflows_default_unless_named_or_per_connection(tmp_path):
    hourly = "interval: 1\ninterval_period: hours"
    assert one_dag(tmp_path, hourly).get_task("ingest").pool == "default_pool"
    defaults = "defaults: {hydroserver_conn_id: hs_prod, pool_per_connection: true}\n"
    dag = one_dag(tmp_path, hourly, defaults=defaults)
    assert dag.get_task("ingest").pool == "hydroserver_hs_prod"
    dag = one_dag(tmp_path, hourly, defaults=defaults, extra="airflow: {pool: my_pool}")
    assert dag.get_task("ingest").pool == "my_pool"


def test_durations_accept_seconds_and_short_texts(tmp_path):
    dag = one_dag(tmp_path, "interval: 1\ninterval_period: hours", extra=(
        'airflow: {retry_delay: 5m, max_retry_delay: "1h30m", execution_timeout: "90", '
        'dagrun_timeout: "2 days", retry_exponential_backoff: 3}'))
    op = dag.get_task("ingest")
    assert op.retry_delay == timedelta(minutes=5)
    assert op.max_retry_delay == timedelta(hours=1, minutes=30)
    assert op.execution_timeout == timedelta(seconds=90)
    assert op.retry_exponential_backoff == 3
    assert dag.dagrun_timeout == timedelta(days=2)


def test_provider_settings_chunk_rows_and_asset_host(tmp_path):
    dag = one_dag(tmp_path, "interval: 1\ninterval_period: hours",
                  extra="airflow: {chunk_rows: 1000, asset_host: hydroserver.example.org}")
    assert dag.params["chunk_rows"] == 1000
    task = dag.get_task("ingest")
    assert task.asset_host == "hydroserver.example.org"  # named in its datastreams' assets
    assert [a.name for a in task.outlets] == ["hydroserver-datastreams:hydroserver_station_42.ingest"]


def test_unknown_airflow_setting_in_a_file_is_a_definition_error(tmp_path):
    folder = tmp_path / "defs"
    write(folder, "one.yaml", CONNECTIONS + "tasks:" + task_yaml(
        "Station 42", "interval: 1\ninterval_period: hours", extra="airflow: {retires: 3}")
        + task_yaml("Station 43", "interval: 1\ninterval_period: hours", target=DS2))
    result = factory.build_dags(folder)
    assert list(result.dags) == ["hydroserver_station_43"]
    (error,) = result.errors
    assert "task 'Station 42'" in str(error) and error.field == "airflow.retires"
    assert "retries" in str(error)


@pytest.mark.parametrize(("settings", "field"), [
    ("{bogus: 1}", "airflow.bogus"),
    ("{retry_delay: soon}", "airflow.retry_delay"),
    ("{chunk_rows: 0}", "airflow.chunk_rows"),
    ("{pool_per_connection: 'yes'}", "airflow.pool_per_connection"),
    ("{dag_id: has spaces}", "airflow.dag_id"),
    ("{tags: [" + "x" * 101 + "]}", "airflow.tags"),
])
def test_settings_the_factory_cannot_use_are_definition_errors(tmp_path, settings, field):
    # one place checks them: the definitions' AirflowSettings; the DAG is never built
    folder = tmp_path / "defs"
    write(folder, "one.yaml", CONNECTIONS + "tasks:" + task_yaml(
        "Station 42", "interval: 1\ninterval_period: hours", extra=f"airflow: {settings}"))
    result = factory.build_dags(folder)
    assert result.dags == {}
    (error,) = result.errors
    assert error.field == field and "one.yaml: task 'Station 42'" in str(error)


# --------------------------------------------------------------------------------------------
# Trigger-form params
# --------------------------------------------------------------------------------------------


def test_params_defaults_and_validation(tmp_path):
    from airflow.sdk.definitions.param import process_params

    dag = one_dag(tmp_path, "interval: 1\ninterval_period: hours")
    op = dag.get_task("ingest")
    assert dag.params.validate() == {"window_start": None, "window_end": None, "dry_run": False,
                                     "chunk_rows": CHUNK_ROWS}
    schema = dag.params.get_param("window_start").schema
    assert schema["type"] == ["null", "string"] and schema["format"] == "date-time"

    def run_params(conf):
        return process_params(dag, op, conf, suppress_exception=False)

    good = run_params({"window_start": "2025-01-01T00:00:00Z",
                       "window_end": "2025-01-02T06:30:00+02:00", "dry_run": True,
                       "chunk_rows": 10})
    assert good["window_start"] == "2025-01-01T00:00:00Z" and good["dry_run"] is True
    assert run_params({"window_end": "2025-01-02 06:30:00.123"})["window_end"]
    for bad in ({"window_start": "2025-13-01T00:00:00Z"}, {"window_start": "yesterday"},
                {"window_end": "2025-02-30"}, {"dry_run": "yes"}, {"chunk_rows": 0},
                {"chunk_rows": "many"}):
        with pytest.raises(Exception, match="Invalid input for param"):
            run_params(bad)


def test_operator_fields_are_templated_from_params(tmp_path):
    dag = one_dag(tmp_path, "interval: 1\ninterval_period: hours")
    op = dag.get_task("ingest")
    assert op.chunk_rows == "{{ params.chunk_rows }}" and op.dry_run == "{{ params.dry_run }}"
    assert "params.window_start" in op.window_start and "params.window_end" in op.window_end
    assert op.start_time is None and op.task_variables == {"station": "s42"}


def render(dag, dag_run, conf=None):
    """Render the ingest task's templates the way a worker does, with ``dag_run`` and conf."""
    from airflow.sdk.definitions.param import process_params

    op = dag.get_task("ingest")
    op = op.prepare_for_execution() if hasattr(op, "prepare_for_execution") else op
    params = process_params(dag, op, conf or {}, suppress_exception=False)
    op.render_template_fields({"params": params, "dag_run": dag_run},
                              jinja_env=dag.get_template_env())
    return op


def run(start=None, end=None, run_after=datetime(2025, 5, 5, 10, 7, tzinfo=UTC)):
    return SimpleNamespace(data_interval_start=start, data_interval_end=end, run_after=run_after)


def test_a_scheduled_run_loads_its_data_interval(tmp_path):
    dag = one_dag(tmp_path, "interval: 1\ninterval_period: hours")
    op = render(dag, run(datetime(2025, 5, 5, 9, tzinfo=UTC), datetime(2025, 5, 5, 10, tzinfo=UTC)))
    assert (op.window_start, op.window_end) == ("2025-05-05T09:00:00+00:00",
                                                "2025-05-05T10:00:00+00:00")
    assert (op.chunk_rows, op.dry_run) == ("50000", "False")


def test_trigger_form_window_overrides_the_interval(tmp_path):
    dag = one_dag(tmp_path, "interval: 1\ninterval_period: hours")
    op = render(dag, run(datetime(2025, 5, 5, 9, tzinfo=UTC), datetime(2025, 5, 5, 10, tzinfo=UTC)),
                {"window_start": "2025-04-01T00:00:00Z", "window_end": "2025-04-08T00:00:00Z",
                 "dry_run": True})
    assert (op.window_start, op.window_end, op.dry_run) == (
        "2025-04-01T00:00:00Z", "2025-04-08T00:00:00Z", "True")


def test_a_run_without_data_interval_loads_the_last_interval_ending_now(tmp_path):
    hourly = one_dag(tmp_path, "interval: 1\ninterval_period: hours")
    op = render(hourly, run())  # Airflow 3: logical_date=None -> no data interval at all
    assert (op.window_start, op.window_end) == ("2025-05-05T09:07:00+00:00",
                                                "2025-05-05T10:07:00+00:00")
    cron = one_dag(tmp_path, 'crontab: "0 6 * * *"\nschedule: {timezone: America/Denver}')
    op = render(cron, run())  # the last complete local day: 06:00 MDT = 12:00 UTC
    assert (op.window_start, op.window_end) == ("2025-05-03T12:00:00+00:00",
                                                "2025-05-04T12:00:00+00:00")


def ui_required(param) -> bool:
    """What Airflow 3.3's trigger form marks "Required": a schema type without ``null``."""
    kind = param.schema.get("type")
    return bool(kind) and (not isinstance(kind, list) or "null" not in kind)


def test_manual_only_windowed_task_needs_a_window(tmp_path):
    from airflow.sdk.definitions.param import ParamValidationError

    dag = one_dag(tmp_path, "")
    assert "Required" in dag.params.get_param("window_start").description
    assert ui_required(dag.params.get_param("window_start"))
    assert ui_required(dag.params.get_param("window_end"))
    # Airflow validates a run's params when it creates the run (the form, the REST API): a
    # window left empty refuses the run instead of a run that fails
    with pytest.raises(ParamValidationError, match="window_start"):
        render(dag, run(datetime(2025, 5, 5, 10, 7, tzinfo=UTC),
                        datetime(2025, 5, 5, 10, 7, tzinfo=UTC)))  # a manual run's empty interval
    with pytest.raises(AirflowFailException, match="window_start and window_end"):
        dag.user_defined_macros["hydroserver_run_window"](run())  # a run made some other way
    op = render(dag, run(), {"window_start": "2025-01-01T00:00:00Z",
                             "window_end": "2025-01-02T00:00:00Z"})
    assert (op.window_start, op.window_end) == ("2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")


def test_the_form_marks_required_only_what_a_run_cannot_do_without(tmp_path):
    """"Dry run" is never required; the window only for a manual-only task whose URL needs one
    (not for a scheduled, a disabled or an incremental task)."""
    from airflow.sdk.definitions.param import process_params

    cases = {"scheduled": ("interval: 1\ninterval_period: hours", "Windowed CSV"),
             "disabled": ("interval: 1\ninterval_period: hours\nenabled: false", "Windowed CSV"),
             "incremental": ("", "Incremental JSON")}
    for name, (schedule, connection) in cases.items():
        dag = one_dag(tmp_path, schedule, connection=connection)
        assert not ui_required(dag.params.get_param("window_start")), name
        assert not ui_required(dag.params.get_param("dry_run")), name
        # a cleared dry-run switch (null) is a real run
        params = process_params(dag, dag.get_task("ingest"), {"dry_run": None},
                                suppress_exception=False)
        assert params["dry_run"] is None
    assert not ui_required(one_dag(tmp_path, "").params.get_param("dry_run"))


def test_manual_only_incremental_task_runs_without_a_window(tmp_path):
    dag = one_dag(tmp_path, "", connection="Incremental JSON")
    op = render(dag, run())
    assert (op.window_start, op.window_end) == ("", "")  # the operator then uses no window


def test_last_cron_period_on_and_between_boundaries():
    on = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert factory.last_cron_period("0 * * * *", "UTC", on) == (
        datetime(2025, 1, 1, 11, tzinfo=UTC), on)
    between = datetime(2025, 1, 1, 12, 30, tzinfo=UTC)
    assert factory.last_cron_period("0 * * * *", "UTC", between) == (
        datetime(2025, 1, 1, 11, tzinfo=UTC), datetime(2025, 1, 1, 12, tzinfo=UTC))


# --------------------------------------------------------------------------------------------
# What the UI shows
# --------------------------------------------------------------------------------------------


def test_doc_md_description_and_tags(tmp_path):
    dag = one_dag(tmp_path, "interval: 1\ninterval_period: hours\nstart_time: 2025-01-01T00:00:00Z")
    doc = dag.doc_md
    assert "### Station 42" in doc
    assert "`http://127.0.0.1:8765/{station}/data.csv?start={start}&end={end}`" in doc
    assert "| Source identifier | Target datastream |" in doc
    assert f"| `Temperature` | `{DS1}` |" in doc
    assert "| `{station}` | per_task | `s42` |" in doc
    assert "| `{start}` | window_start | format `%Y-%m-%dT%H:%M:%S` |" in doc
    assert "every hour, from 2025-01-01T00:00:00+00:00" in doc
    assert "one.yaml" in doc and "`hydroserver_default`" in doc
    assert dag.description == "Windowed CSV -> 1 datastream, every hour"
    assert dag.dag_display_name == "Station 42"
    assert set(dag.tags) == {"hydroserver", "CSV", "Windowed CSV",
                             "workspace:6e0f0000-0000-4000-8000-00000000000a"}


def test_the_docs_panel_never_shows_a_secret(tmp_path):
    """Per-task values of secret placeholders (``key={station}``: a secret query parameter,
    with a name Airflow does not mask by itself) are not shown, only where a templated one is
    read from; a secret written into the URL template is masked; other values are shown."""
    write(tmp_path / "defs", "secret.yaml", """
        data_connections:
          - name: Keyed API
            source_url: "https://api.example.org/{site}/obs.json?key={station}&token=tkn-6MQ1ZP"
            payload_type: JSON
            jmespath: "data[*]"
            timestamp_key: time
            placeholder_variables:
              - {name: site, variable_type: per_task}
              - {name: station, variable_type: per_task}
        tasks:
          - name: Literal
            data_connection: Keyed API
            task_variables: {site: "09380000", station: stn-literal-3XKD9W}
            mappings: [{source_identifier: q, target_datastream_id: DS_ONE}]
          - name: Templated
            data_connection: Keyed API
            task_variables: {site: "09380001", station: "{{ var.value.station_key }}"}
            mappings: [{source_identifier: q, target_datastream_id: DS_TWO}]
        """.replace("DS_ONE", DS1).replace("DS_TWO", DS2))
    result = factory.build_dags(tmp_path / "defs")
    assert result.errors == []
    literal = result.dags["hydroserver_literal"].doc_md
    templated = result.dags["hydroserver_templated"].doc_md
    for doc in (literal, templated):
        assert "stn-literal-3XKD9W" not in doc and "tkn-6MQ1ZP" not in doc
        assert "`https://api.example.org/{site}/obs.json?key={station}&token=***`" in doc
    assert "| `{station}` | per_task | secret (not shown) |" in literal
    assert "| `{site}` | per_task | `09380000` |" in literal
    assert ("| `{station}` | per_task | secret, read from `{{ var.value.station_key }}` |"
            in templated)


def test_serializes_for_the_scheduler(tmp_path):
    dag = one_dag(tmp_path, "interval: 1\ninterval_period: hours")
    sdag = scheduled(dag)
    assert type(sdag.timetable).__name__ == "IntervalTimetable"
    assert set(sdag.params) == {"window_start", "window_end", "dry_run", "chunk_rows"}


# --------------------------------------------------------------------------------------------
# Folders, the environment variable and the worker's fast path
# --------------------------------------------------------------------------------------------


def test_definitions_folder_argument_env_and_default(tmp_path, monkeypatch):
    monkeypatch.delenv(factory.DEFINITIONS_DIR_ENV, raising=False)
    dag_file = tmp_path / "dags" / "x.py"
    assert factory.definitions_folder(None, dag_file) == (tmp_path / "dags" / "definitions").resolve()
    monkeypatch.setenv(factory.DEFINITIONS_DIR_ENV, str(tmp_path / "env"))
    assert factory.definitions_folder(None, dag_file) == tmp_path / "env"
    assert factory.definitions_folder(tmp_path / "arg", dag_file) == tmp_path / "arg"


def test_register_dags_fills_the_namespace_and_logs_problems(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "defs"
    write(folder, "good.yaml", CONNECTIONS + "tasks:" + task_yaml("Station 42"))
    write(folder, "bad.yaml", CONNECTIONS + "tasks:" + task_yaml(
        "Station 43", "interval: 1\ninterval_period: fortnights", target=DS2))
    monkeypatch.setenv(factory.DEFINITIONS_DIR_ENV, str(folder))
    namespace = {"__file__": str(tmp_path / "dag_file.py")}
    result = factory.register_dags(namespace)
    assert "hydroserver_station_42" in namespace and len(result.errors) == 1
    assert "bad.yaml: task 'Station 43': field 'interval_period'" in caplog.text
    with pytest.raises(DefinitionErrors, match="bad.yaml: task 'Station 43'"):
        factory.raise_definition_errors(dag_file=namespace["__file__"])


def test_worker_builds_and_validates_only_its_dag(tmp_path, monkeypatch):
    folder = tmp_path / "defs"
    write(folder, "a.yaml", CONNECTIONS + "tasks:" + task_yaml("Station 42")
          + task_yaml("Station 43", "interval: 1\ninterval_period: fortnights", target=DS2))
    write(folder, "b.yaml", "tasks: [{name: Broken elsewhere, mappings: 7}]\n")
    full = factory.build_dags(folder)
    assert list(full.dags) == ["hydroserver_station_42"] and len(full.errors) >= 2

    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "hydroserver_station_42")
    namespace: dict = {}
    result = factory.register_dags(namespace, folder)
    assert list(result.dags) == ["hydroserver_station_42"]
    assert result.errors == []  # the other tasks were not validated at all
    dag = namespace["hydroserver_station_42"]
    assert dag.get_task("ingest").task_variables == {"station": "s42"}
    factory.raise_definition_errors(folder)  # a worker never reports definition problems

    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "hydroserver_station_43")
    assert factory.register_dags({}, folder).dags == {}  # broken: not built on a worker either


def test_worker_fast_path_agrees_with_the_full_load_on_conflicts(tmp_path, monkeypatch):
    folder = tmp_path / "defs"
    write(folder, "a.yaml", CONNECTIONS + "tasks:" + task_yaml("Station 42", target=DS1))
    write(folder, "b.yaml", CONNECTIONS + "tasks:" + task_yaml("Other station", target=DS1))
    assert factory.build_dags(folder).dags == {}  # one datastream, two tasks: both refused
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "hydroserver_station_42")
    assert factory.register_dags({}, folder).dags == {}


def test_worker_fast_path_reads_hydroserver_s_camel_case_export(tmp_path, monkeypatch):
    """The fast path reads references and targets with the models' own spellings: a task of
    HydroServer's export (dataConnectionId, targetDatastream: {id}) is found and built, and a
    datastream it shares with another file refuses it there exactly as the full load does."""
    import json

    connection = {"id": "c1", "name": "C", "sourceUrl": "http://127.0.0.1:8765/data.csv",
                  "payload": {"type": "CSV", "timestampKey": "Timestamp"}}
    task = {"id": "t1", "name": "Exported", "dataConnectionId": "C1",
            "mappings": [{"sourceIdentifier": "v", "targetDatastream": {"id": DS1.upper()}}]}
    folder = tmp_path / "defs"
    write(folder, "export.json", json.dumps({"dataConnections": [connection], "tasks": [task]}))
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "hydroserver_exported")
    assert list(factory.register_dags({}, folder).dags) == ["hydroserver_exported"]
    write(folder, "other.yaml", CONNECTIONS + "tasks:" + task_yaml("Other station", target=DS1))
    assert factory.register_dags({}, folder).dags == {}
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID")
    assert factory.build_dags(folder).dags == {}


def test_missing_folder_is_reported(tmp_path):
    result = factory.build_dags(tmp_path / "nowhere")
    assert result.dags == {} and "does not exist" in str(result.errors[0])
    with pytest.raises(DefinitionErrors, match="nowhere"):
        factory.raise_definition_errors(tmp_path / "nowhere")


def test_run_window_macro_directly():
    hourly = factory.RunWindowMacro("t", windowed=True, interval_seconds=3600)
    assert hourly(run()) == RunWindow("2025-05-05T09:07:00+00:00",
                                            "2025-05-05T10:07:00+00:00")
    manual = factory.RunWindowMacro("t", windowed=False)
    assert manual(run()) == RunWindow("", "")
    # an incremental task never gets the schedule's window from the macro (it would reload it):
    # only the trigger form's window or a backfill's interval make its run own a window
    incremental = factory.RunWindowMacro("t", windowed=False, interval_seconds=3600)
    assert incremental(run()) == RunWindow("", "")


def test_garbage_collection_is_restored_after_a_build(tmp_path):
    import gc

    write(tmp_path / "defs", "one.yaml", CONNECTIONS + "tasks:" + task_yaml("Station 42"))
    assert gc.isenabled()
    factory.build_dags(tmp_path / "defs")
    assert gc.isenabled()
    gc.disable()
    try:
        factory.build_dags(tmp_path / "defs")
        assert not gc.isenabled()  # a caller that had disabled it keeps it disabled
    finally:
        gc.enable()
