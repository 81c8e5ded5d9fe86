"""Definition files and folders: loading, per-file and per-task errors, the JSON Schema."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from hydroserver_provider.definitions import Task
from hydroserver_provider.definitions.files import (
    DefinitionFile,
    definition_paths,
    load_definition_file,
    load_definitions,
    parse_definitions,
)
from hydroserver_provider.definitions.schema import SCHEMA_PATH, definition_json_schema
from hydroserver_provider.errors import DefinitionError, DefinitionErrors

REPO = Path(__file__).resolve().parents[2]
DS = "5f2b8c1e-{:04x}-4a4e-9a57-3c3c6f0e2d11"

DESIGN_EXAMPLE = """\
defaults:                      # Airflow settings for every task in this file
  hydroserver_conn_id: hydroserver_default
  retries: 3
data_connections:
  - name: Station API
    source_url: https://api.example.com/{station_id}/data.csv?start={start}
    payload_type: CSV
    timestamp_key: Timestamp
    timestamp_format: "%Y-%m-%d %H:%M:%S"
    timezone_type: iana
    timezone: America/Denver
    header_row: 1
    data_start_row: 2
    delimiter: ","
    placeholder_variables:
      - {name: station_id, variable_type: per_task}
      - {name: start, variable_type: window_start, timestamp_format: "%Y-%m-%dT%H:%M:%S"}
    notification:
      recipient_emails: [ops@example.com]
      schedule: {enabled: true, interval: 1, interval_period: days}
tasks:
  - name: Station 42
    data_connection: Station API
    task_variables: {station_id: station-42}
    mappings:
      - {source_identifier: Temperature, target_datastream_id: 5f2b8c1e-0001-4a4e-9a57-3c3c6f0e2d11}
    interval: 1
    interval_period: hours
    start_time: 2025-01-01T00:00:00Z
    enabled: true
  - name: Station 43
    data_connection: Station API
    task_variables: {station_id: station-43}
    mappings:
      - {source_identifier: Temperature, target_datastream_id: 5f2b8c1e-0002-4a4e-9a57-3c3c6f0e2d11}
    crontab: "0 * * * *"
    airflow: {retries: 5, pool: stations}
"""

JSON_EXAMPLE = {
    "defaults": {"retries": 1},
    "data_connections": [{
        "name": "Readings", "source_url": "https://api.example.com/readings.json",
        "payload": {"type": "JSON", "timestamp_key": "datetime", "jmespath": "data[*]"},
        "auth": {"header_name": "X-Api-Key", "variable": "readings_api_key"},
    }],
    "tasks": [{
        "name": "Readings", "data_connection": "Readings",
        "mappings": [{"source_identifier": "temperature",
                      "target_datastream_id": DS.format(10)}],
        "schedule": {"crontab": "*/15 * * * *", "timezone": "America/Denver"},
    }],
}


def hydroserver_export() -> dict:
    """What an import from HydroServer's API looks like: lists of connections and tasks."""
    connection = {
        "id": "7d1e0c9a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "name": "Station API",
        "description": "Hourly readings", "sourceUrl": "https://api.example.com/{sid}.csv",
        "workspace": {"id": "0b6c3a52-6a2e-4a4e-9a57-3c3c6f0e2d11", "name": "W",
                      "isPrivate": False},
        "timezoneType": "offset", "timezone": "-07:00", "authHeaderName": None,
        "authHeaderValue": None, "taskCount": 2, "taskAttentionCount": 0,
        "payload": {"type": "CSV", "timestampKey": "Time", "timestampFormat": "ISO8601",
                    "headerRow": 1, "dataStartRow": 2, "delimiter": ";",
                    "dataIngestionWindow": None},
        "placeholderVariables": [{"name": "sid", "type": "per_task", "timestampFormat": None}],
        "notification": None,
    }
    tasks = [{
        "id": f"9a8b7c6d-1234-4567-89ab-cdef0123456{i}", "name": f"Station {i}",
        "workspaceId": "0b6c3a52-6a2e-4a4e-9a57-3c3c6f0e2d11",
        "dataConnectionId": "7d1e0c9a-2b3c-4d5e-8f90-a1b2c3d4e5f6",
        "description": None, "taskVariables": {"sid": f"s{i}"},
        "schedule": {"enabled": True, "interval": 15, "intervalPeriod": "minutes",
                     "crontab": None, "startTime": "2025-01-01T00:00:00Z", "nextRunAt": None},
        "mappings": [{"sourceIdentifier": "Stage", "targetDatastreamId": DS.format(20 + i)}],
        "latestRun": None,
    } for i in range(2)]
    return {"dataConnections": [connection], "tasks": tasks}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def task_yaml(name: str, target: str, connection: str = "C") -> str:
    return (f"  - name: {name}\n    data_connection: {connection}\n"
            f"    mappings: [{{source_identifier: v, target_datastream_id: {target}}}]\n")


def connection_yaml(name: str = "C") -> str:
    return (f"  - name: {name}\n    source_url: https://x.org/data.csv\n"
            "    payload_type: CSV\n    timestamp_key: t\n")


def simple_file(*tasks: str) -> str:
    return "data_connections:\n" + connection_yaml() + "tasks:\n" + "".join(tasks)


# --------------------------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------------------------


def test_design_example_loads_with_resolved_tasks(tmp_path):
    f = load_definition_file(write(tmp_path, "stations.yaml", DESIGN_EXAMPLE))
    assert isinstance(f, DefinitionFile) and f.ok and f.errors == ()
    assert f.source == str(tmp_path / "stations.yaml")
    assert f.defaults.given() == {"hydroserver_conn_id": "hydroserver_default", "retries": 3}
    assert [c.name for c in f.data_connections] == ["Station API"]
    first, second = f.tasks
    assert isinstance(first, Task)
    assert first.data_connection is f.data_connections[0]
    assert first.airflow.given() == {"hydroserver_conn_id": "hydroserver_default", "retries": 3}
    assert second.airflow.given() == {"hydroserver_conn_id": "hydroserver_default", "retries": 5,
                                      "pool": "stations"}
    assert first.schedule.start_time == datetime(2025, 1, 1, tzinfo=UTC)
    assert first.schedule.interval_delta is not None and second.schedule.crontab == "0 * * * *"
    assert second.schedule.start_time is None
    f.raise_for_errors()  # nothing to raise


def test_json_file(tmp_path):
    f = load_definition_file(write(tmp_path, "readings.json", json.dumps(JSON_EXAMPLE)))
    assert f.ok
    (task,) = f.tasks
    assert task.data_connection.auth.variable == "readings_api_key"
    assert task.schedule.timezone == "America/Denver" and task.airflow.given() == {"retries": 1}


def test_hydroserver_export_document():
    f = parse_definitions(hydroserver_export(), "export.json")
    assert f.ok, [str(e) for e in f.errors]
    assert [t.name for t in f.tasks] == ["Station 0", "Station 1"]
    connection = f.tasks[0].data_connection
    assert connection.id == "7d1e0c9a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
    assert (connection.timezone_type, connection.timezone) == ("offset", "-0700")
    assert connection.payload.delimiter == ";" and connection.timestamp_format is None
    assert connection.workspace_id == "0b6c3a52-6a2e-4a4e-9a57-3c3c6f0e2d11"
    assert f.tasks[1].task_variables == {"sid": "s1"}


def test_bad_task_does_not_hide_the_good_ones(tmp_path):
    text = simple_file(task_yaml("Good", DS.format(1)),
                       "  - name: Bad\n    data_connection: C\n    mappings: "
                       "[{source_identifier: v}]\n    interval: 1\n",
                       task_yaml("Also good", DS.format(2)))
    f = load_definition_file(write(tmp_path, "mixed.yaml", text))
    assert [t.name for t in f.tasks] == ["Good", "Also good"]
    assert {(e.location, e.field) for e in f.errors} == {
        (f"{tmp_path / 'mixed.yaml'}: task 'Bad'", "mappings[0].target_datastream_id"),
        (f"{tmp_path / 'mixed.yaml'}: task 'Bad'", "interval_period"),
    }
    with pytest.raises(DefinitionErrors) as info:
        f.raise_for_errors()
    assert len(info.value) == 2 and "task 'Bad'" in str(info.value)


def test_tasks_of_a_broken_connection_report_it(tmp_path):
    text = ("data_connections:\n  - name: C\n    source_url: https://x.org/\n"
            "    payload_type: CSV\n    delimiter: colon\n"
            "tasks:\n" + task_yaml("T", DS.format(1)))
    f = load_definition_file(write(tmp_path, "broken.yaml", text))
    assert f.tasks == () and f.data_connections == ()
    connection_error, task_error = f.errors
    assert connection_error.location.endswith("data connection 'C'")
    assert connection_error.field == "delimiter"
    assert task_error.location.endswith("task 'T'") and task_error.field == "data_connection"
    assert "cannot be used: it has errors" in str(task_error)


def test_unknown_connection_reference_with_hint():
    data = yaml.safe_load(simple_file(task_yaml("T", DS.format(1), connection="c")))
    (error,) = parse_definitions(data, "f.yaml").errors
    assert error.location == "f.yaml: task 'T'" and error.field == "data_connection"
    assert error.found == "c" and "did you mean 'C'?" in str(error)


def test_duplicate_connection_names_make_references_ambiguous():
    text = "data_connections:\n" + connection_yaml() + connection_yaml() + "tasks:\n" + \
        task_yaml("T", DS.format(1))
    f = parse_definitions(yaml.safe_load(text), "f.yaml")
    assert [e.field for e in f.errors] == ["name", "data_connection"]
    assert "two data connections have this name" in str(f.errors[0])
    assert "two data connections are named 'C'" in str(f.errors[1])
    assert f.tasks == ()


def test_a_connection_refused_as_a_duplicate_cannot_be_used_by_its_id():
    data = yaml.safe_load("data_connections:\n" + connection_yaml() + connection_yaml()
                          + "    id: second\ntasks:\n" + task_yaml("T", DS.format(1), "second"))
    f = parse_definitions(data, "f.yaml")
    assert [e.field for e in f.errors] == ["name", "data_connection"]
    assert "cannot be used: two data connections are named 'C'" in str(f.errors[1])


def test_task_detail_with_its_connection_inline_and_by_id_loads():
    data = hydroserver_export()
    listed = data["dataConnections"][0]
    data["tasks"][0]["dataConnection"] = dict(listed)  # HydroServer's task detail answer
    f = parse_definitions(data, "export.json")
    assert f.ok, [str(e) for e in f.errors]
    assert f.tasks[0].data_connection is f.data_connections[0]


def test_duplicate_task_names_in_one_file():
    text = simple_file(task_yaml("Station  One", DS.format(1)), task_yaml("STATION one",
                                                                          DS.format(2)))
    f = parse_definitions(yaml.safe_load(text), "f.yaml")
    assert f.tasks == ()
    assert [e.location for e in f.errors] == ["f.yaml: task 'Station  One'",
                                              "f.yaml: task 'STATION one'"]
    assert all(e.field == "name" and "same name" in str(e) for e in f.errors)
    assert "also task 'STATION one' in f.yaml" in str(f.errors[0])


def test_one_datastream_in_two_tasks_of_one_file():
    text = simple_file(task_yaml("A", DS.format(1)), task_yaml("B", DS.format(1).upper()))
    f = parse_definitions(yaml.safe_load(text), "f.yaml")
    assert f.tasks == ()
    a, b = f.errors
    assert (a.field, a.found, b.found) == ("mappings", DS.format(1), DS.format(1))
    assert "also task 'B' in f.yaml" in str(a) and "also task 'A' in f.yaml" in str(b)


def test_unknown_top_level_key_and_bad_defaults():
    data = {"default": {}, "defaults": {"retries": "three", "dag_id": "x"},
            "tasks": "none"}
    f = parse_definitions(data, "f.yaml")
    by_field = {e.field: e for e in f.errors}
    assert "did you mean 'defaults'?" in str(by_field["default"])
    assert by_field["defaults.retries"].found == "three"
    assert "each task" in str(by_field["defaults.dag_id"])
    assert by_field["tasks"].expected == "a list of mappings"


def test_camel_case_top_level_key_and_schema_key():
    data = hydroserver_export()
    data["$schema"] = "../hydroserver_provider/schemas/definition.schema.json"
    assert parse_definitions(data, "x").ok


def test_document_that_is_not_a_mapping_and_empty_file(tmp_path):
    f = parse_definitions(["a"], "list.yaml")
    assert f.errors[0].location == "list.yaml" and "is a mapping" in str(f.errors[0])
    empty = load_definition_file(write(tmp_path, "empty.yaml", "# nothing yet\n"))
    assert empty.ok and empty.tasks == ()


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "bad.yaml", "tasks:\n  - name: [unclosed\n    data_connection: C\n")
    (error,) = load_definition_file(path).errors
    assert error.location.startswith(f"{path}, line ")
    assert "not valid YAML" in str(error)


def test_yaml_duplicate_key_is_refused(tmp_path):
    text = simple_file("  - name: T\n    data_connection: C\n    mappings: []\n"
                       "    mappings: [{source_identifier: v, target_datastream_id: x}]\n")
    (error,) = load_definition_file(write(tmp_path, "dup.yaml", text)).errors
    assert ", line 10, column 5" in error.location
    assert "the key 'mappings' is written twice" in str(error) and "first on line 9" in str(error)


def test_json_syntax_error_and_duplicate_key(tmp_path):
    (error,) = load_definition_file(write(tmp_path, "bad.json", '{"tasks": [}')).errors
    assert "line 1, column" in error.location and "not valid JSON" in str(error)
    (error,) = load_definition_file(write(tmp_path, "dup.json", '{"tasks": [], "tasks": []}'))\
        .errors
    assert "written twice" in str(error)


def test_missing_file_is_an_error_not_an_exception(tmp_path):
    (error,) = load_definition_file(tmp_path / "nope.yaml").errors
    assert "cannot read the file" in str(error)


# --------------------------------------------------------------------------------------------
# A folder
# --------------------------------------------------------------------------------------------


def test_folder_with_one_broken_file_and_one_good_file(tmp_path):
    write(tmp_path, "a_broken.yaml", "tasks: [\n")
    write(tmp_path, "b_good.yaml", DESIGN_EXAMPLE)
    files, errors = load_definitions(tmp_path)
    assert [Path(f.source).name for f in files] == ["a_broken.yaml", "b_good.yaml"]
    broken, good = files
    assert broken.tasks == () and len(broken.errors) == 1
    assert good.ok and [t.name for t in good.tasks] == ["Station 42", "Station 43"]
    assert errors == list(broken.errors)
    assert str(tmp_path / "a_broken.yaml") in errors[0].location


def test_conflicts_across_files_refuse_both_tasks(tmp_path):
    write(tmp_path, "one.yaml", simple_file(task_yaml("Same", DS.format(1)),
                                            task_yaml("Writer A", DS.format(9)),
                                            task_yaml("Fine 1", DS.format(3))))
    write(tmp_path, "sub/two.yml", simple_file(task_yaml("same", DS.format(2)),
                                               task_yaml("Writer B", DS.format(9)),
                                               task_yaml("Fine 2", DS.format(4))))
    files, errors = load_definitions(tmp_path)
    assert [[t.name for t in f.tasks] for f in files] == [["Fine 1"], ["Fine 2"]]
    assert len(errors) == 4
    by_task = {e.location.rsplit(": ", 1)[1]: e for e in errors}
    assert by_task["task 'Same'"].field == "name"
    assert f"also task 'same' in {tmp_path / 'sub' / 'two.yml'}" in str(by_task["task 'Same'"])
    assert f"also task 'Same' in {tmp_path / 'one.yaml'}" in str(by_task["task 'same'"])
    writer_a, writer_b = by_task["task 'Writer A'"], by_task["task 'Writer B'"]
    assert writer_a.field == writer_b.field == "mappings"
    assert writer_a.found == DS.format(9) and "also task 'Writer B'" in str(writer_a)
    assert "also task 'Writer A'" in str(writer_b)
    assert [e for f in files for e in f.errors] == errors


def test_duplicate_hydroserver_task_ids_across_files(tmp_path):
    one = hydroserver_export()
    two = hydroserver_export()
    two["tasks"] = two["tasks"][:1]
    two["tasks"][0] = {**two["tasks"][0], "name": "Renamed",
                       "mappings": [{"sourceIdentifier": "Stage",
                                     "targetDatastreamId": DS.format(99)}]}
    write(tmp_path, "one.json", json.dumps(one))
    write(tmp_path, "two.json", json.dumps(two))
    files, errors = load_definitions(tmp_path)
    assert [t.name for f in files for t in f.tasks] == ["Station 1"]
    assert {e.field for e in errors} == {"id"}


def test_folder_walk_skips_hidden_files_and_other_suffixes(tmp_path):
    write(tmp_path, "b.yml", "")
    write(tmp_path, "a.json", "{}")
    write(tmp_path, "z/c.YAML", "")
    write(tmp_path, ".hidden.yaml", "tasks: [")
    write(tmp_path, ".git/x.yaml", "tasks: [")
    write(tmp_path, "__pycache__/x.yaml", "tasks: [")
    write(tmp_path, "notes.txt", "")
    names = [p.relative_to(tmp_path).as_posix() for p in definition_paths(tmp_path)]
    assert names == ["a.json", "b.yml", "z/c.YAML"]
    files, errors = load_definitions(tmp_path)
    assert len(files) == 3 and errors == []


def test_missing_folder(tmp_path):
    files, errors = load_definitions(tmp_path / "nope")
    assert files == [] and "does not exist" in str(errors[0])


# --------------------------------------------------------------------------------------------
# JSON Schema
# --------------------------------------------------------------------------------------------


def _jsonable(value):
    """Data as a YAML-to-JSON conversion gives it (dates as ISO strings)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat().replace("+00:00", "Z")
    return value


def _validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_published_schema_is_up_to_date():
    published = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert published == definition_json_schema(), (
        "regenerate with: python -m hydroserver_provider.definitions.schema")


GUIDE_EXAMPLE = {  # the data connections and tasks of hydroserverpy's loading guide, as a file
    "data_connections": [
        {"name": "My CSV Source", "workspace": "your-workspace-id",
         "source_url": "https://api.example.com/readings.csv?start={start_date}",
         "timestamp_key": "Timestamp", "payload_type": "CSV",
         "description": "Hourly sensor readings.", "timestamp_format": "%Y-%m-%d %H:%M:%S",
         "timezone_type": "utc", "header_row": 1, "data_start_row": 2, "delimiter": ",",
         "placeholder_variables": [{"name": "start_date",
                                    "variable_type": "latest_observation_timestamp",
                                    "timestamp_format": "%Y-%m-%dT%H:%M:%S"}]},
        {"name": "My JSON Source", "workspace": "your-workspace-id",
         "source_url": "https://api.example.com/readings.json", "timestamp_key": "datetime",
         "payload_type": "JSON", "jmespath": "data[*]"},
        {"name": "Mountain Time Source", "workspace": "your-workspace-id",
         "source_url": "https://api.example.com/readings.csv", "timestamp_key": "Time",
         "payload_type": "CSV", "timezone_type": "iana", "timezone": "America/Denver"},
        {"name": "Station API", "workspace": "your-workspace-id",
         "source_url": "https://api.example.com/{station_id}?as_of={run_time}",
         "timestamp_key": "timestamp", "payload_type": "JSON", "jmespath": "observations[*]",
         "placeholder_variables": [{"name": "station_id", "variable_type": "per_task"},
                                   {"name": "run_time", "variable_type": "run_time",
                                    "timestamp_format": "%Y-%m-%dT%H:%M:%S"}]},
        {"name": "Notified Source", "workspace": "your-workspace-id",
         "source_url": "https://api.example.com/readings.csv", "timestamp_key": "Timestamp",
         "payload_type": "CSV", "notification": {
             "recipient_emails": ["admin@example.com", "engineer@example.com"],
             "schedule": {"enabled": True, "interval": 1, "interval_period": "days"}}},
    ],
    "tasks": [
        {"name": "Hourly Temperature and Humidity", "data_connection": "My CSV Source",
         "description": "Loads hourly readings from the station API.",
         "mappings": [{"source_identifier": "Temperature", "target_datastream_id": "t-id"},
                      {"source_identifier": "Humidity", "target_datastream_id": "h-id"}],
         "interval": 1, "interval_period": "hours", "enabled": True},
        {"name": "Station 42 Temperature", "data_connection": "Station API",
         "task_variables": {"station_id": "station-42"},
         "mappings": [{"source_identifier": "Temperature", "target_datastream_id": "s-id"}],
         "interval": 1, "interval_period": "hours", "enabled": True},
    ],
}


def _examples():
    yield "design", yaml.safe_load(DESIGN_EXAMPLE)
    yield "json", JSON_EXAMPLE
    yield "export", hydroserver_export()
    yield "guide", GUIDE_EXAMPLE
    for path in sorted((REPO / "dags" / "definitions").glob("*.y*ml")) + sorted(
            (REPO / "dags" / "definitions").glob("*.json")):
        yield path.name, yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name, document", list(_examples()), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_examples_validate_against_the_schema_and_load(name, document):
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in _validator().iter_errors(_jsonable(document))]
    assert errors == []
    assert parse_definitions(document, name).ok


def test_schema_refuses_what_the_loader_refuses():
    validator = _validator()
    secret = hydroserver_export()
    secret["dataConnections"][0]["authHeaderValue"] = "secret"
    assert not validator.is_valid(secret)
    typo = yaml.safe_load(DESIGN_EXAMPLE)
    typo["tasks"][0]["intervall"] = 1
    assert not validator.is_valid(_jsonable(typo))
    no_target = yaml.safe_load(DESIGN_EXAMPLE)
    del no_target["tasks"][0]["mappings"][0]["target_datastream_id"]
    assert not validator.is_valid(_jsonable(no_target))


def test_errors_are_definition_errors():
    f = parse_definitions({"tasks": [{"name": "x"}]}, "f")
    assert f.errors and all(isinstance(e, DefinitionError) for e in f.errors)
