"""The troubleshooting table of hydroserverpy's data-loading guide, one test per row.

Each problem is made the way a user makes it -- in a definition file -- and met the way a user
meets it here: ``hydroserver-airflow validate``, the import error Airflow shows for the
definitions check (``hydroserver_definition_check.py``), a run of the task's DAG (its ingest task,
rendered and executed like Airflow does, into the local HydroServer: the task log and the run
summary in XCom), ``hydroserver-airflow preview``, and the connection's Test button. Each test
asserts the exact message and where it appears.

| guide symptom | where it shows here |
| --- | --- |
| runs but loads nothing: source_identifier not matching | run summary + task log, preview |
| JSON task loads no records: jmespath | task log (the run fails) |
| timestamps shifted by hours: no zone | run summary note + task log warning, preview |
| timestamps fail to parse | task log (the run fails) |
| URL placeholder not filled in | validate, import error |
| per_task placeholder missing from task_variables | validate, import error |
| task never runs automatically | validate, import error, the DAG list (schedule, paused) |
| authentication error | Test button, preview, task log, run summary |
"""

from __future__ import annotations

import json
import logging
import shutil
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

import hydroserver_provider.compat  # noqa: F401  (Airflow sets up its logging here, not under capsys)
from hydroserver_provider.cli import main
from hydroserver_provider.errors import IngestionFailed, ParseError
from hydroserver_provider.testing import stations
from hydroserver_provider.testing.sources import LocalSourceServer

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 6, 1, 6, tzinfo=UTC)  # 00:00 in Denver (MDT, UTC-6)
INTERVAL = (T0, T0 + timedelta(hours=1))


class FakeTI:
    def __init__(self) -> None:
        self.pushed: dict = {}

    def xcom_push(self, key, value) -> None:
        self.pushed[key] = value


@pytest.fixture
def world(local_hydroserver, tmp_path, monkeypatch):
    """The local HydroServer with its connection in the environment (the key in the form's API
    key field), a logger CSV in Denver local time and a JSON API, and a definitions folder."""
    hs = local_hydroserver
    monkeypatch.setenv("AIRFLOW_CONN_HYDROSERVER_DEFAULT", json.dumps(
        {"conn_type": "hydroserver", "host": hs.url, "password": hs.api_key,
         "extra": {"retries": 1, "retry_backoff": 0.01}}))
    monkeypatch.delenv("HYDROSERVER_DEFINITIONS_DIR", raising=False)
    monkeypatch.delenv("HYDROSERVER_API_KEY", raising=False)
    folder = tmp_path / "dags" / "definitions"
    folder.mkdir(parents=True)
    with LocalSourceServer() as source:
        source.add("/logger.csv", stations.logger_csv(*INTERVAL))
        source.add("/river.json", stations.api_json(T0, T0 + timedelta(hours=3)),
                   "application/json")
        yield SimpleNamespace(hs=hs, source=source, folder=folder)


def define(world, *parts: str) -> Path:
    """Write the definition file from its parts (each dedented on its own)."""
    text = "".join(textwrap.dedent(part).lstrip("\n") for part in parts)
    path = world.folder / "stations.yaml"
    path.write_text(text.replace("{source}", world.source.url), encoding="utf-8")
    return path


def logger_connection(**changes: str) -> str:
    """The logger's data connection; ``changes`` replace (or, set to "", remove) its keys."""
    keys = {"source_url": "{source}/logger.csv", "payload_type": "CSV",
            "timestamp_key": "Date Time", "timestamp_format": '"%Y-%m-%d %H:%M:%S"',
            "timezone_type": "iana", "timezone": "America/Denver", "data_start_row": "3"}
    keys.update(changes)
    lines = "".join(f"    {k}: {v}\n" for k, v in keys.items() if v)
    return f"data_connections:\n  - name: Logger CSV\n{lines}"


def validate(path: Path, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()  # what earlier steps printed (Airflow's own logs) is not ours
    code = main(["validate", str(path)])
    return code, capsys.readouterr().out.splitlines()


def import_error(world) -> str:
    """The import error Airflow records for the DAG folder (the shipped DAG files, as a user
    installs them), from a real DagBag."""
    from airflow.dag_processing.dagbag import DagBag

    dags = world.folder.parent
    for name in ("hydroserver_ingestion.py", "hydroserver_definition_check.py"):
        shutil.copy(REPO / "dags" / name, dags)
    bag = DagBag(dag_folder=str(dags))
    (location, message), = bag.import_errors.items()
    assert location == str(dags / "hydroserver_definition_check.py")
    return message


def build(world) -> dict:
    from hydroserver_provider.factory import build_dags

    result = build_dags(world.folder)
    assert result.errors == []
    return result.dags


def run(world, dag_id: str, caplog, interval=INTERVAL) -> SimpleNamespace:
    """One scheduled run of the DAG's ingest task: templates rendered from a run context as the
    task runner renders them, then ``execute``. Returns the summary (``return_value``) or the
    exception, the XCom ``summary`` of a failed run, and the task log (our loggers)."""
    dag = build(world)[dag_id]
    task = dag.get_task("ingest")
    dag_run = SimpleNamespace(data_interval_start=interval[0], data_interval_end=interval[1],
                              run_after=interval[1], run_type="scheduled", conf={})
    ti = FakeTI()
    context = {"dag": dag, "task": task, "ti": ti, "dag_run": dag_run,
               "params": {name: dag.params[name] for name in dag.params},
               "data_interval_start": interval[0], "data_interval_end": interval[1]}
    task.render_template_fields(context)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hydroserver_provider"):
        try:
            result, error = task.execute(context), None
        except Exception as exc:
            result, error = None, exc
    log = [f"{r.levelname} {r.getMessage()}" for r in caplog.records
           if r.name.startswith("hydroserver_provider")]
    return SimpleNamespace(summary=result, error=error, xcom=ti.pushed.get("summary"), log=log)


def preview(world, task: str, capsys, *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["preview", task, "--definitions", str(world.folder),
                 "--start", INTERVAL[0].isoformat(), "--end", INTERVAL[1].isoformat(), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def row(out: str, start: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(start))


# -------------------------------------------------------------------------------------------------


def test_source_identifier_not_matching_a_column(world, capsys, caplog):
    """*Task runs but no observations are loaded*: a source_identifier must match a column
    header exactly (case-sensitive). Here the run fails for that datastream, naming the column
    and the closest header; the other datastream still loads."""
    level = world.hs.create_datastream(name="Water Level", unit="ft")
    temp = world.hs.create_datastream(name="Water Temp")
    define(world, logger_connection(), f"""
        tasks:
          - name: Logger 42
            data_connection: Logger CSV
            interval: 1
            interval_period: hours
            mappings:
              - {{source_identifier: water level, target_datastream_id: {level}}}
              - {{source_identifier: Water Temp, target_datastream_id: {temp}}}
        """)
    why = ("data connection 'Logger CSV', header (line 1): column 'water level' not found; did "
           "you mean 'Water Level'? Available columns: 'Date Time', 'Water Level', 'Water Temp'")

    # before any run: preview shows it in the datastream's row
    code, out, _ = preview(world, "Logger 42", capsys)
    assert code == 1
    assert row(out, "Water Level  ").endswith(f"ERROR: {why}")

    outcome = run(world, "hydroserver_logger_42", caplog)
    # the task fails (so Airflow retries and alerts) with this message in the task log...
    assert isinstance(outcome.error, IngestionFailed)
    message = f"1 of 2 datastreams failed (Water Level: {why}). Loaded 4 observations into 1 " \
              "datastream."
    assert str(outcome.error) == message
    # ...and the run summary (XCom "summary", HydroServer's run record) says the same
    assert outcome.xcom["status"] == "FAILURE" and outcome.xcom["message"] == message
    failed, loaded = outcome.xcom["datastreams"]
    assert (failed["status"], failed["error"], failed["loaded"]) == ("FAILURE", why, 0)
    assert (loaded["status"], loaded["loaded"]) == ("SUCCESS", 4)
    assert world.hs.observations(level) == [] and len(world.hs.observations(temp)) == 4


def test_json_jmespath_selecting_nothing(world, caplog):
    """*JSON task loads no records*: the jmespath must select the list of records. A path that
    matches nothing fails the run saying what the document holds; a path stopping at the
    object around the list says which expression would work."""
    flow = world.hs.create_datastream(name="Discharge")
    for jmespath, why in (
        ("records[*]", "data connection 'River API': jmespath 'records[*]' matched nothing; the "
                       "document is an object with keys 'station', 'data'"),
        ("data", "data connection 'River API': jmespath 'data' selected an object with keys "
                 "'records', expected a list of records; did you mean 'data.records[*]'?"),
    ):
        define(world, f"""
            data_connections:
              - name: River API
                source_url: {{source}}/river.json
                payload_type: JSON
                jmespath: "{jmespath}"
                timestamp_key: time
            tasks:
              - name: River site
                data_connection: River API
                crontab: "0 * * * *"
                mappings:
                  - {{source_identifier: values.discharge, target_datastream_id: {flow}}}
            """)
        outcome = run(world, "hydroserver_river_site", caplog)
        assert isinstance(outcome.error, ParseError)  # in the task log, as the task's error
        assert str(outcome.error) == why and outcome.xcom is None  # nothing was loaded
    assert world.hs.observations(flow) == []
    # the right expression loads every record
    text = (world.folder / "stations.yaml").read_text().replace('"data"', '"data.records[*]"')
    (world.folder / "stations.yaml").write_text(text)
    outcome = run(world, "hydroserver_river_site", caplog)
    assert outcome.summary["message"] == "Loaded 3 observations into 1 datastream."


def test_timestamps_shifted_by_hours_because_no_zone(world, capsys, caplog):
    """*Timestamps are shifted by several hours*: the logger writes Denver local time without an
    offset. With no timezone_type they are read as UTC, as HydroServer does -- six hours early
    in June -- and every run and preview says so in a note."""
    level = world.hs.create_datastream(name="Water Level", unit="ft")
    task = f"""
        tasks:
          - name: Logger 42
            data_connection: Logger CSV
            interval: 1
            interval_period: hours
            mappings:
              - {{source_identifier: Water Level, target_datastream_id: {level}}}
        """
    define(world, logger_connection(timezone_type="", timezone=""), task)
    note = ("column 'Date Time': timestamps such as '2025-06-01 00:00:00' carry no UTC offset and "
            "the data connection sets no timezone_type, so they were read as UTC (as HydroServer "
            "does). If the source writes local time, the stored times are shifted by its UTC "
            "offset: set timezone_type: iana with timezone (e.g. America/Denver), or "
            "timezone_type: offset with timezone (e.g. -0700); timezone_type: utc confirms UTC "
            "and ends this note")
    code, out, _ = preview(world, "Logger 42", capsys)
    assert code == 0 and f"Note: {note}" in out.splitlines()
    assert row(out, "2025-06-01T00:00:00Z").split()[1] == "4.587"  # local midnight, read as UTC

    outcome = run(world, "hydroserver_logger_42", caplog)
    assert outcome.summary["status"] == "SUCCESS" and outcome.summary["notes"] == [note]
    assert f"WARNING Note: {note}" in outcome.log  # the task log
    first_stored = world.hs.observations(level)[0][0]
    assert T0 - first_stored == timedelta(hours=6)  # six hours early

    # the fix the note names (into a fresh datastream): the times are right, the note is gone
    fixed = world.hs.create_datastream(name="Water Level (fixed)", unit="ft")
    define(world, logger_connection(), task.replace(level, fixed))
    outcome = run(world, "hydroserver_logger_42", caplog)
    assert outcome.summary["notes"] == [] and not any("Note:" in line for line in outcome.log)
    assert world.hs.observations(fixed)[0][0] == T0


def test_timestamps_failing_to_parse(world, caplog):
    """*Timestamps fail to parse*: timestamp_key names the column, timestamp_format must match
    the values. Either mistake fails the run saying what was expected and what was found."""
    level = world.hs.create_datastream(name="Water Level", unit="ft")
    task = f"""
        tasks:
          - name: Logger 42
            data_connection: Logger CSV
            interval: 1
            interval_period: hours
            mappings:
              - {{source_identifier: Water Level, target_datastream_id: {level}}}
        """
    cases = (
        ({"timestamp_format": '"%m/%d/%Y %H:%M"'},
         "none of the 4 timestamps in column 'Date Time' could be read as '%m/%d/%Y %H:%M': "
         "first value '2025-06-01 00:00:00'; check timestamp_format against the values (or unset "
         "it for ISO 8601)"),
        ({"timestamp_key": "Datetime"},
         "data connection 'Logger CSV', header (line 1): timestamp column 'Datetime' not found; "
         "did you mean 'Date Time'? Available columns: 'Date Time', 'Water Level', 'Water Temp'"),
    )
    for changes, why in cases:
        define(world, logger_connection(**changes), task)
        outcome = run(world, "hydroserver_logger_42", caplog)
        assert isinstance(outcome.error, ParseError)  # the task's error, in its log
        assert str(outcome.error) == why
    assert world.hs.observations(level) == []

    # a few unreadable values among good ones: dropped and counted in the summary, with examples
    body = stations.logger_csv(*INTERVAL).replace("2025-06-01 00:15:00", "2025-06-01 0:15")
    world.source.add("/logger.csv", body)
    define(world, logger_connection(), task)
    outcome = run(world, "hydroserver_logger_42", caplog)
    assert outcome.summary["status"] == "SUCCESS" and outcome.summary["loaded"] == 3
    (stats,) = outcome.summary["datastreams"]
    assert stats["dropped"] == {"unparsable_timestamp": 1}
    assert outcome.summary["timestamps"]["unparsable_examples"] == ["2025-06-01 0:15"]


def test_url_placeholder_without_a_placeholder_variables_entry(world, capsys):
    """*URL placeholder is not being filled in*: every {name} in source_url needs a
    placeholder_variables entry. Refused before any run: by validate and as the import error of
    the definitions check, naming the placeholder -- and Airflow's Jinja, which the URL is not,
    is pointed to the window placeholders."""
    path = define(world, """
        data_connections:
          - name: Station API
            source_url: https://api.example.com/{station_id}/data.csv?start={start_date}
            payload_type: CSV
            timestamp_key: Timestamp
            timezone_type: utc
            placeholder_variables:
              - {name: station_id, variable_type: per_task}
        tasks:
          - name: Station 42
            data_connection: Station API
            task_variables: {station_id: "42"}
            mappings:
              - {source_identifier: Temperature, target_datastream_id: 0d000000-0000-4000-8000-000000000001}
        """)
    problem = (f"{path}: data connection 'Station API': field 'placeholder_variables': the source "
               "URL has the placeholder {start_date} but no placeholder variable describes it "
               "(expected a placeholder_variables entry named 'start_date', found 'station_id')")
    code, out = validate(path, capsys)
    assert code == 1 and out[0] == f"- {problem}"
    assert problem in import_error(world)

    path.write_text(path.read_text().replace("{start_date}", "{{ data_interval_start }}"))
    code, out = validate(path, capsys)
    assert code == 1
    assert out[0] == (
        f"- {path}: data connection 'Station API': field 'source_url': the source URL is not a "
        "Jinja template: '{{ data_interval_start }}' would never be filled in. Write a placeholder "
        "such as {start} and describe it in placeholder_variables: {name: start, variable_type: "
        "window_start} (window_start / window_end are the run's data interval) (expected "
        "placeholders written as {name}, found 'https://api.example.com/{station_id}/data.csv?"
        "start={{ data_interval_start }}')")


def test_per_task_placeholder_missing_from_task_variables(world, capsys):
    """*Task has a per_task placeholder but task_variables is missing the key*: refused by
    validate and shown as the definitions' import error, naming the task and the key."""
    path = define(world, """
        data_connections:
          - name: Station API
            source_url: https://api.example.com/{station_id}/data.csv
            payload_type: CSV
            timestamp_key: Timestamp
            timezone_type: utc
            placeholder_variables:
              - {name: station_id, variable_type: per_task}
        tasks:
          - name: Station 42
            data_connection: Station API
            task_variables: {site: "42"}
            mappings:
              - {source_identifier: Temperature, target_datastream_id: 0d000000-0000-4000-8000-000000000001}
        """)
    problem = (f"{path}: task 'Station 42': field 'task_variables': the data connection 'Station "
               "API' has the per_task variable 'station_id', which this task gives no value "
               "(expected task_variables: {station_id: ...}, found 'site')")
    code, out = validate(path, capsys)
    assert code == 1 and out[0] == f"- {problem}" and out[-1] == "1 problem (1 file checked)"
    assert problem in import_error(world)


def test_task_never_runs_automatically(world, capsys):
    """*Task never runs automatically*: it needs enabled and an interval with its period, or a
    crontab. An incomplete schedule is refused (validate, import error); a task without a
    schedule is a manual-only DAG, and an enabled: false one gets no schedule either (its
    manual runs still start at once), as the DAG list shows them."""
    path = define(world, """
        data_connections:
          - name: Station API
            source_url: https://api.example.com/data.csv
            payload_type: CSV
            timestamp_key: Timestamp
            timezone_type: utc
        tasks:
          - name: No schedule
            data_connection: Station API
            mappings: [{source_identifier: T, target_datastream_id: 0d000000-0000-4000-8000-000000000001}]
          - name: Disabled
            data_connection: Station API
            enabled: false
            interval: 1
            interval_period: hours
            mappings: [{source_identifier: T, target_datastream_id: 0d000000-0000-4000-8000-000000000002}]
          - name: Hourly
            data_connection: Station API
            interval: 1
            interval_period: hours
            mappings: [{source_identifier: T, target_datastream_id: 0d000000-0000-4000-8000-000000000003}]
          - name: No period
            data_connection: Station API
            interval: 1
            mappings: [{source_identifier: T, target_datastream_id: 0d000000-0000-4000-8000-000000000004}]
        """)
    problem = (f"{path}: task 'No period': field 'interval_period': an interval needs its period "
               "(expected minutes, hours or days, found nothing)")
    code, out = validate(path, capsys)
    assert code == 1 and out[0] == f"- {problem}" and out[-1] == "1 problem (1 file checked)"
    assert problem in import_error(world)

    path.write_text(path.read_text().split("  - name: No period")[0])
    dags = build(world)
    manual, disabled, hourly = (dags[f"hydroserver_{n}"] for n in ("no_schedule", "disabled",
                                                                   "hourly"))
    # the DAG list: description and schedule columns, and the pause toggle
    assert manual.description == "Station API -> 1 datastream, manual only"
    assert "- **Schedule:** manual only" in manual.doc_md
    assert manual.timetable.summary == "manual only" and not manual.is_paused_upon_creation
    assert disabled.timetable.summary == "disabled (every hour)"  # no automatic runs
    assert not disabled.is_paused_upon_creation and not hourly.is_paused_upon_creation
    assert hourly.timetable.summary == "every hour"


def test_authentication_error(world, capsys, caplog, monkeypatch):
    """*Authentication error*: a wrong API key, email or password, or a key without permission.
    The Test button proves the credentials (a wrong key is otherwise hidden by HydroServer's
    anonymous answers to public reads), preview warns, and a run fails saying which it was."""
    from hydroserver_provider.hooks.hydroserver import HydroServerHook

    hs = world.hs
    private = hs.create_datastream(name="Water Level", unit="ft")
    public = hs.create_datastream(name="Water Level (public)", unit="ft", is_private=False)
    define(world, logger_connection(), f"""
        tasks:
          - name: Private
            data_connection: Logger CSV
            interval: 1
            interval_period: hours
            mappings: [{{source_identifier: Water Level, target_datastream_id: {private}}}]
          - name: Public
            data_connection: Logger CSV
            interval: 1
            interval_period: hours
            mappings: [{{source_identifier: Water Level, target_datastream_id: {public}}}]
        """)

    def connection(**fields) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_HYDROSERVER_DEFAULT", json.dumps(
            {"conn_type": "hydroserver", "host": hs.url, **fields,
             "extra": {"retries": 1, "retry_backoff": 0.01}}))

    refused = (f"HydroServer at {hs.url} did not accept the API key (answered as to an "
               "anonymous visitor: no workspace). A wrong key still reads public datastreams "
               "(HydroServer answers those anonymously), but every write would fail: check the key")
    connection(password="wrong-key-0123456789")
    # the Test button
    assert HydroServerHook().test_connection() == (False, refused)
    # preview: the public datastream reads fine anonymously, the warning says why that is moot
    code, out, _ = preview(world, "Public", capsys)
    assert code == 1 and "Would load 4 observations" in out
    assert out.splitlines()[-1] == (f"Warning: {refused}. This preview shows what HydroServer "
                                    "answers anonymously (public datastreams only); a scheduled "
                                    "run would fail")
    # a run: a private datastream "does not exist" for an anonymous visitor; the run says why
    outcome = run(world, "hydroserver_private", caplog)
    assert str(outcome.error) == refused
    # a public one reads, then its write is refused
    outcome = run(world, "hydroserver_public", caplog)
    write = (f"HydroServer at {hs.url} answered 401 to POST /api/data/datastreams/{public}/"
             "observations/bulk-create: the API key was not accepted")
    assert str(outcome.error) == (f"1 of 1 datastreams failed (Water Level (public): {write}). "
                                  "Loaded 0 observations into 0 datastreams.")
    assert outcome.xcom["datastreams"][0]["error"] == write

    # a wrong password
    connection(login=hs.email, password="not-the-password")
    login = (f"HydroServer at {hs.url} refused the login for '{hs.email}' (HTTP 400): check the "
             "connection's email and password")
    assert HydroServerHook().test_connection() == (False, login)
    assert str(run(world, "hydroserver_private", caplog).error) == login

    # a key without permission to write (a Viewer key): accepted, but the write is refused
    connection(password=hs.create_api_key(role="Viewer"))
    assert HydroServerHook().test_connection()[0]
    outcome = run(world, "hydroserver_private", caplog)
    assert outcome.xcom["datastreams"][0]["error"] == (
        f"HydroServer answered 403 to POST /api/data/datastreams/{private}/observations/"
        "bulk-create: You do not have permission to edit this datastream")
    assert hs.observations(private) == [] and hs.observations(public) == []
    for secret in ("wrong-key-0123456789", "not-the-password"):
        assert not any(secret in line for line in outcome.log)
